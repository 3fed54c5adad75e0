// Command testreport reads `go test -json` output on stdin and prints a
// short report: the output of failed tests, then how many tests passed,
// failed and were skipped, and how many integration tests (those that used
// a real Docker engine or etcd through internal/testenv) ran.
//
// With -strict, a skipped test is a failure too: CI must run every
// integration test, not skip it. It exits 1 when anything failed.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// event is one line of `go test -json` (test2json) output.
type event struct {
	Action  string
	Package string
	Test    string
	Output  string
	Elapsed float64
}

// marker is what internal/testenv logs when a test uses a real service.
const marker = "mao-integration: "

func main() {
	strict := flag.Bool("strict", false, "treat skipped tests as failures")
	flag.Parse()
	ok, err := report(os.Stdin, os.Stdout, *strict)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testreport:", err)
		os.Exit(2)
	}
	if !ok {
		os.Exit(1)
	}
}

func report(in io.Reader, out io.Writer, strict bool) (bool, error) {
	output := map[string]*strings.Builder{} // test → its output
	result := map[string]string{}           // test → pass|fail|skip
	uses := map[string]map[string]bool{}    // service → top-level tests that used it
	var pkgFailed []string
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			fmt.Fprintln(out, sc.Text()) // build errors are not JSON
			continue
		}
		id := e.Package + " " + e.Test
		switch e.Action {
		case "output":
			if output[id] == nil {
				output[id] = &strings.Builder{}
			}
			output[id].WriteString(e.Output)
			if i := strings.Index(e.Output, marker); i >= 0 && e.Test != "" {
				service := strings.Fields(e.Output[i+len(marker):])[0]
				if uses[service] == nil {
					uses[service] = map[string]bool{}
				}
				uses[service][e.Package+" "+strings.SplitN(e.Test, "/", 2)[0]] = true
			}
		case "pass", "fail", "skip":
			if e.Test == "" {
				if e.Action == "fail" {
					pkgFailed = append(pkgFailed, e.Package)
				}
				continue
			}
			result[id] = e.Action
		}
	}
	if err := sc.Err(); err != nil {
		return false, err
	}
	counts := map[string]int{}
	var failed, skipped []string
	for id, r := range result {
		counts[r]++
		switch r {
		case "fail":
			failed = append(failed, id)
		case "skip":
			skipped = append(skipped, id)
		}
	}
	sort.Strings(failed)
	sort.Strings(skipped)
	for _, id := range failed {
		fmt.Fprintf(out, "\n--- FAIL %s\n%s", id, output[id])
	}
	for _, pkg := range pkgFailed {
		if b := output[pkg+" "]; b != nil && !hasFailedTest(failed, pkg) {
			fmt.Fprintf(out, "\n--- FAIL package %s\n%s", pkg, b)
		}
	}
	for _, id := range skipped {
		fmt.Fprintf(out, "--- SKIP %s: %s", id, lastLine(output[id]))
	}
	services := make([]string, 0, len(uses))
	for s := range uses {
		services = append(services, s)
	}
	sort.Strings(services)
	var integ []string
	for _, s := range services {
		integ = append(integ, fmt.Sprintf("%d with %s", len(uses[s]), s))
	}
	fmt.Fprintf(out, "\nintegration tests that ran (top-level): %s\n", strings.Join(integ, ", "))
	ok := len(failed) == 0 && len(pkgFailed) == 0
	if strict && len(skipped) > 0 {
		fmt.Fprintf(out, "FAIL: %d tests skipped; every test must run here\n", len(skipped))
		ok = false
	}
	if ok {
		fmt.Fprintln(out, "PASS (counts include subtests)")
	} else {
		fmt.Fprintln(out, "FAIL (counts include subtests)")
	}
	fmt.Fprintf(out, "tests: %d passed, %d failed, %d skipped\n", counts["pass"], counts["fail"], counts["skip"])
	return ok, nil
}

func hasFailedTest(failed []string, pkg string) bool {
	for _, id := range failed {
		if strings.HasPrefix(id, pkg+" ") {
			return true
		}
	}
	return false
}

func lastLine(b *strings.Builder) string {
	if b == nil {
		return "\n"
	}
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	return strings.TrimSpace(lines[len(lines)-1]) + "\n"
}
