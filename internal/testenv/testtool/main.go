// Command testtool is the tool image used by mao's integration tests. It
// follows the MAO tool contract and does what its flags say, in this order:
// print env, print who it is (uid, gid, capabilities, cgroup limits), print
// lines, print a text (control sequences too), list the input, dial an address, try file operations in the data
// folder, leave a setuid file and one given away, mark the run, write a
// control file, start processes, write files and links (as a hostile tool
// could), sleep, exit.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

func main() {
	var (
		exit    = flag.Int("exit", 0, "exit code")
		sleep   = flag.Duration("sleep", 0, "sleep before exiting")
		control = flag.String("control", "", "write this value to control-<unixnano>.csv in the data folder")
		lines   = flag.Int("lines", 0, "print this many numbered lines")
		text    = flag.String("print", "", `print this text, its Go escapes (\x1b, \a, \r, \n...) made the bytes they stand for (a hostile log)`)
		env     = flag.Bool("env", false, "print the MAO_* environment and TOOL_* variables")
		input   = flag.Bool("input", false, "list the input folder")
		mark    = flag.Bool("mark", false, "write a file named run-$MAO_RUN_ID holding $MAO_SCHEDULED_TIME into the data folder")
		data    = flag.String("data", "/usr/src/app/data", "data folder")
		whoami  = flag.Bool("whoami", false, `print "uid=U gid=G"`)
		caps    = flag.Bool("caps", false, "print the Cap* and NoNewPrivs lines of /proc/self/status")
		limits  = flag.Bool("limits", false, `print "memory.limit=N" and "pids.max=N" from the container's cgroup`)
		dial    = flag.String("dial", "", `connect to this TCP address, send "hello from testtool\n" and print "dialed ADDR" (exit 1 if it cannot)`)
		tryOps  = flag.Bool("writes", false, `try the file operations a tool does in the data folder, print "OP: ok" or "OP: ERROR" for each; exit 1 if one failed`)
		fork    = flag.Int("fork", 0, `try to start this many child processes that wait, print "started N of M" (children die with the container)`)
		setuid  = flag.String("setuid-file", "", "write this file into the data folder as a setuid and setgid program (exit 1 if it cannot)")
		give    = flag.String("give", "", "write this file into the data folder and give it to uid and gid 4321 (exit 1 if it cannot)")
		now     = flag.String("now", "", "write the current time (Unix nanoseconds) into this file in the data folder")
		files   [][2]string // path in the data folder, content
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
	flag.Func("write", "write PATH=CONTENT into the data folder (repeatable)", pair(&files))
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
	if *whoami {
		fmt.Printf("uid=%d gid=%d\n", os.Getuid(), os.Getgid())
	}
	if *caps {
		printStatus("Cap", "NoNewPrivs")
	}
	if *limits {
		printLimits()
	}
	for i := 1; i <= *lines; i++ {
		fmt.Printf("line %d\n", i)
	}
	if *text != "" {
		unquoted, err := strconv.Unquote(`"` + strings.ReplaceAll(*text, `"`, `\"`) + `"`)
		if err != nil {
			fmt.Fprintln(os.Stderr, "print:", err)
			os.Exit(2)
		}
		fmt.Print(unquoted)
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
	if *dial != "" {
		conn, err := net.DialTimeout("tcp", *dial, 5*time.Second)
		if err == nil {
			_, err = conn.Write([]byte("hello from testtool\n"))
			conn.Close()
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "dial:", err)
			os.Exit(1)
		}
		fmt.Println("dialed", *dial)
	}
	if *tryOps && !tryWrites(*data) {
		os.Exit(1)
	}
	if *setuid != "" {
		name := filepath.Join(*data, *setuid)
		err := os.WriteFile(name, []byte("#!/bin/sh\nid\n"), 0o755)
		if err == nil {
			err = os.Chmod(name, 0o755|os.ModeSetuid|os.ModeSetgid)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "setuid-file:", err)
			os.Exit(1)
		}
		fmt.Println("wrote setuid", *setuid)
	}
	if *give != "" {
		name := filepath.Join(*data, *give)
		err := os.WriteFile(name, []byte("given away\n"), 0o644)
		if err == nil {
			err = os.Lchown(name, 4321, 4321)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "give:", err)
			os.Exit(1)
		}
		fmt.Println("gave", *give)
	}
	if *mark {
		name := filepath.Join(*data, "run-"+os.Getenv("MAO_RUN_ID"))
		if err := os.WriteFile(name, []byte(os.Getenv("MAO_SCHEDULED_TIME")+"\n"), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "mark:", err)
			os.Exit(1)
		}
	}
	if *now != "" {
		if err := os.WriteFile(filepath.Join(*data, *now), []byte(fmt.Sprintln(time.Now().UnixNano())), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "now:", err)
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
	if *fork > 0 {
		started, err := forkWaiters(*fork)
		fmt.Printf("started %d of %d\n", started, *fork)
		if err != nil {
			fmt.Println("stopped by:", err)
		}
	}
	for _, w := range files {
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

// printStatus prints the lines of /proc/self/status whose key starts with
// one of prefixes.
func printStatus(prefixes ...string) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		fmt.Fprintln(os.Stderr, "status:", err)
		os.Exit(1)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		for _, p := range prefixes {
			if strings.HasPrefix(sc.Text(), p) {
				fmt.Println(strings.Join(strings.Fields(sc.Text()), " "))
			}
		}
	}
}

// printLimits prints the container's memory and pids limits, from cgroup v2
// or v1 files.
func printLimits() {
	read := func(paths ...string) string {
		for _, p := range paths {
			if b, err := os.ReadFile(p); err == nil {
				return strings.TrimSpace(string(b))
			}
		}
		return "unknown"
	}
	fmt.Println("memory.limit=" + read("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"))
	fmt.Println("pids.max=" + read("/sys/fs/cgroup/pids.max", "/sys/fs/cgroup/pids/pids.max"))
}

// tryWrites does in dir what tools do with their output, each step
// reported; it reports whether all succeeded. Running as root, it also
// gives a file away (as tar and cp -a do when they keep owners) and then
// goes on writing it.
func tryWrites(dir string) bool {
	ok := true
	step := func(op string, err error) {
		if err != nil {
			ok = false
			fmt.Printf("%s: ERROR %v\n", op, err)
			return
		}
		fmt.Printf("%s: ok\n", op)
	}
	appendTo := func(name string) error {
		f, err := os.OpenFile(name, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		_, err = f.WriteString("2\n")
		return errors.Join(err, f.Close())
	}
	then := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

	sub := filepath.Join(dir, "writes")
	file := filepath.Join(sub, "out.csv")
	step("mkdir", os.MkdirAll(sub, 0o755))
	step("create", os.WriteFile(file, []byte("1\n"), 0o644))
	step("append", appendTo(file))
	step("chmod", os.Chmod(file, 0o664))
	step("chtimes", os.Chtimes(file, then, then))
	if os.Getuid() == 0 {
		step("chown", os.Lchown(file, 4321, 4321))
		step("append to a file given away", appendTo(file))
		step("chmod a file given away", os.Chmod(file, 0o644))
		step("chtimes a file given away", os.Chtimes(file, then, then))
	}
	step("rename", os.Rename(file, filepath.Join(sub, "renamed.csv")))
	step("remove", os.Remove(filepath.Join(sub, "renamed.csv")))
	step("rmdir", os.Remove(sub))

	// The files already there (the orchestrator's checkout).
	entries, err := os.ReadDir(dir)
	step("list", err)
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		name := filepath.Join(dir, e.Name())
		step("append to "+e.Name(), appendTo(name))
		step("chmod "+e.Name(), os.Chmod(name, 0o644))
		step("chtimes "+e.Name(), os.Chtimes(name, then, then))
	}
	return ok
}
