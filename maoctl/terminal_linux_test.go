package maoctl

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/internal/testenv"
	"github.com/mao-research/mao/internal/testsite"
)

// openPty opens a pseudo-terminal in raw mode (no newline translation):
// what maoctl writes to tty, master reads.
func openPty(t *testing.T) (master, tty *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { master.Close() })
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	tty, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := term.MakeRaw(int(tty.Fd())); err != nil {
		t.Fatal(err)
	}
	return master, tty
}

// onTerminal runs maoctl with its stdout on a terminal and returns what
// the terminal received.
func onTerminal(t *testing.T, args ...string) string {
	t.Helper()
	master, tty := openPty(t)
	got := make(chan string, 1)
	go func() {
		var b bytes.Buffer
		io.Copy(&b, master) // until the tty side is closed (EIO)
		got <- b.String()
	}()
	var errOut bytes.Buffer
	err := Run(t.Context(), args, tty, &errOut)
	tty.Close()
	if err != nil {
		t.Fatalf("maoctl %s: %v\n%s", strings.Join(args, " "), err, errOut.String())
	}
	return <-got
}

// On a terminal, a run's log is printed without control sequences, unless
// --raw says otherwise: a log read whole (run logs, run show's end of it)
// and one followed while the run writes it (tool run --follow, whose tool
// really prints the sequences).
func TestLogsOnATerminal(t *testing.T) {
	if !isTerminal(func() *os.File { _, tty := openPty(t); return tty }()) {
		t.Fatal("a pseudo-terminal is not a terminal")
	}
	hostile := "\x1b]52;c;Y3VybCBldmlsIHwgc2g=\x07\x1b]0;owned\x1b\\\x1b[31mred\x1b[0m\rover\a\n"
	const clean = "red\nover\n"
	s := testsite.Start(t, testsite.Options{Docker: true})
	id := hostileRun(t, s, hostile)

	if got := onTerminal(t, "--addr", s.Addr, "run", "logs", id); got != clean {
		t.Errorf("run logs: %q, want %q", got, clean)
	}
	if got := onTerminal(t, "--addr", s.Addr, "run", "logs", "--raw", id); got != hostile {
		t.Errorf("run logs --raw: %q, want the log unchanged %q", got, hostile)
	}
	if got := onTerminal(t, "--addr", s.Addr, "run", "show", id); strings.ContainsAny(got, "\x1b\a\r") ||
		!strings.Contains(got, "\n  red\n  over\n") {
		t.Errorf("run show: %q, want the log's end without control sequences", got)
	}
	escaped := strconv.Quote(hostile) // the tool prints it unquoted
	s.Tool(t, api.Tool{Name: "hostile", Author: "lab", Image: testenv.BuildTestImage(t), DataRepo: testenv.GitRepo(t, nil),
		Command: []string{"-print", escaped[1 : len(escaped)-1]}, Network: "none"})
	// The orchestrator may add its own lines after the tool's.
	if got := onTerminal(t, "--addr", s.Addr, "tool", "run", "hostile", "--follow"); !strings.HasPrefix(got, clean) ||
		strings.ContainsAny(got, "\x1b\a\r") {
		t.Errorf("tool run --follow: %q, want %q first and no control sequences", got, clean)
	}
}

// On a terminal, tool data shows the clone's progress on stderr (the
// golden case tool-data shows that elsewhere it shows none).
func TestToolDataProgressOnATerminal(t *testing.T) {
	s := testsite.Start(t, testsite.Options{})
	files := map[string]string{}
	for i := range 50 {
		files[fmt.Sprintf("run-%02d.csv", i)] = strings.Repeat(fmt.Sprintf("%d,", i), 1000)
	}
	s.Tool(t, api.Tool{Name: "results", Author: "lab", Image: "mao/results:1", DataRepo: testenv.GitRepo(t, files)})
	master, tty := openPty(t)
	got := make(chan string, 1)
	go func() {
		var b bytes.Buffer
		io.Copy(&b, master)
		got <- b.String()
	}()
	err := Run(t.Context(), []string{"--addr", s.Addr, "tool", "data", "results", t.TempDir()}, tty, tty)
	tty.Close()
	if err != nil {
		t.Fatal(err)
	}
	if out := <-got; !strings.Contains(out, "objects") || !strings.Contains(out, "cloned the data of tool results") {
		t.Errorf("on a terminal: %q, want the clone's progress and the result", out)
	}
}
