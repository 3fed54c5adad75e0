// Command testtool is the tool image used by mao's integration tests. It
// follows the MAO tool contract and does what its flags say, in this order:
// print env, print lines, list the input, mark the run, write a control
// file, write files and links (as a hostile tool could), sleep, exit.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

func main() {
	var (
		exit    = flag.Int("exit", 0, "exit code")
		sleep   = flag.Duration("sleep", 0, "sleep before exiting")
		control = flag.String("control", "", "write this value to control-<unixnano>.csv in the data folder")
		lines   = flag.Int("lines", 0, "print this many numbered lines")
		env     = flag.Bool("env", false, "print the MAO_* environment and TOOL_* variables")
		input   = flag.Bool("input", false, "list the input folder")
		mark    = flag.Bool("mark", false, "write a file named run-$MAO_RUN_ID holding $MAO_SCHEDULED_TIME into the data folder")
		data    = flag.String("data", "/usr/src/app/data", "data folder")
		writes  [][2]string // path in the data folder, content
		links   [][2]string // path in the data folder, target
	)
	pair := func(list *[][2]string) func(string) error {
		return func(v string) error {
			k, val, ok := strings.Cut(v, "=")
			if !ok {
				return fmt.Errorf("%q is not PATH=VALUE", v)
			}
			*list = append(*list, [2]string{k, val})
			return nil
		}
	}
	flag.Func("write", "write PATH=CONTENT into the data folder (repeatable)", pair(&writes))
	flag.Func("link", "make PATH=TARGET a symbolic link in the data folder (repeatable)", pair(&links))
	flag.Parse()
	if *env {
		vars := os.Environ()
		sort.Strings(vars)
		for _, kv := range vars {
			if strings.HasPrefix(kv, "MAO_") || strings.HasPrefix(kv, "TOOL_") {
				fmt.Println(kv)
			}
		}
	}
	for i := 1; i <= *lines; i++ {
		fmt.Printf("line %d\n", i)
	}
	if *input {
		entries, err := os.ReadDir("/usr/src/app/input")
		if err != nil {
			fmt.Fprintln(os.Stderr, "input:", err)
			os.Exit(1)
		}
		for _, e := range entries {
			fmt.Println("input:", e.Name())
		}
	}
	if *mark {
		name := filepath.Join(*data, "run-"+os.Getenv("MAO_RUN_ID"))
		if err := os.WriteFile(name, []byte(os.Getenv("MAO_SCHEDULED_TIME")+"\n"), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "mark:", err)
			os.Exit(1)
		}
	}
	if *control != "" {
		name := filepath.Join(*data, fmt.Sprintf("control-%d.csv", time.Now().UnixNano()))
		if err := os.WriteFile(name, []byte(*control+"\n"), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "write control:", err)
			os.Exit(1)
		}
		fmt.Println("wrote", filepath.Base(name))
	}
	for _, w := range writes {
		name := filepath.Join(*data, w[0])
		err := os.MkdirAll(filepath.Dir(name), 0o755)
		if err == nil {
			err = os.WriteFile(name, []byte(w[1]), 0o644)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "write:", err)
			os.Exit(1)
		}
		fmt.Println("wrote", w[0])
	}
	for _, l := range links {
		name := filepath.Join(*data, l[0])
		if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			fmt.Fprintln(os.Stderr, "link:", err)
			os.Exit(1)
		}
		if err := os.Symlink(l[1], name); err != nil {
			fmt.Fprintln(os.Stderr, "link:", err)
			os.Exit(1)
		}
		fmt.Println("linked", l[0], "to", l[1])
	}
	if *sleep > 0 {
		fmt.Println("sleeping", *sleep)
		time.Sleep(*sleep)
	}
	if *exit != 0 {
		fmt.Fprintln(os.Stderr, "exiting with", *exit)
	}
	os.Exit(*exit)
}
