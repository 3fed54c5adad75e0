// Command file-count is mao's example tool. It follows the MAO tool
// contract: it runs without interaction, reads the input dataset mounted at
// /usr/src/app/input (if any), and writes into its data repository, mounted
// at /usr/src/app/data:
//
//   - control-<UTC timestamp>.csv holding one number, the count of files in
//     the input, for the spike detector;
//   - counts/<UTC timestamp>.csv with the count per file extension.
//
// Each run writes new files and never overwrites an earlier run's output.
package main

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

const (
	input = "/usr/src/app/input"
	data  = "/usr/src/app/data"
)

func main() {
	if err := run(time.Now().UTC()); err != nil {
		fmt.Fprintln(os.Stderr, "file-count:", err)
		os.Exit(1)
	}
}

func run(now time.Time) error {
	root := input
	if _, err := os.Stat(input); err != nil {
		fmt.Println("no input dataset mounted; counting the data repository instead")
		root = data
	}
	byExt := map[string]int{}
	total := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == ".git" {
			return filepath.SkipDir
		}
		if !d.IsDir() {
			ext := strings.TrimPrefix(filepath.Ext(d.Name()), ".")
			if ext == "" {
				ext = "(none)"
			}
			byExt[ext]++
			total++
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("walk %s: %w", root, err)
	}
	stamp := now.Format("20060102T150405.000Z") // sortable, and distinct for runs a second apart
	fmt.Printf("counted %d files in %s\n", total, root)

	var report strings.Builder
	report.WriteString("extension,files\n")
	exts := make([]string, 0, len(byExt))
	for ext := range byExt {
		exts = append(exts, ext)
	}
	sort.Strings(exts)
	for _, ext := range exts {
		fmt.Fprintf(&report, "%s,%d\n", ext, byExt[ext])
		fmt.Printf("  %-8s %d\n", ext, byExt[ext])
	}
	if err := os.MkdirAll(filepath.Join(data, "counts"), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(data, "counts", stamp+".csv"), []byte(report.String()), 0o644); err != nil {
		return err
	}
	control := filepath.Join(data, "control-"+stamp+".csv")
	if err := os.WriteFile(control, []byte(fmt.Sprintf("%d\n", total)), 0o644); err != nil {
		return err
	}
	fmt.Println("wrote", filepath.Base(control))
	return nil
}
