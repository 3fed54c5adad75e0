package runlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// lockedBuffer lets a test read what a follower has written so far.
type lockedBuffer struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	grew chan struct{}
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.buf.Write(p)
	if n > 0 {
		select {
		case b.grew <- struct{}{}:
		default:
		}
	}
	return n, err
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestFollowSeesEveryWrite(t *testing.T) {
	d, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	l, err := d.Create("r1")
	if err != nil {
		t.Fatal(err)
	}
	out := &lockedBuffer{grew: make(chan struct{}, 1)}
	done := make(chan error)
	go func() { done <- d.Copy(context.Background(), "r1", true, out, nil) }()
	var want strings.Builder
	for i := 0; i < 50; i++ {
		line := fmt.Sprintf("line %d\n", i)
		want.WriteString(line)
		if _, err := io.WriteString(l, line); err != nil {
			t.Fatal(err)
		}
	}
	// The follower must still be waiting: the log is open.
	for !strings.HasSuffix(out.String(), "line 49\n") {
		<-out.grew
	}
	select {
	case err := <-done:
		t.Fatalf("follower returned before Close: %v", err)
	default:
	}
	l.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if out.String() != want.String() {
		t.Fatalf("followed %q, want %q", out.String(), want.String())
	}
}

func TestCopyAndTail(t *testing.T) {
	d, _ := Open(t.TempDir())
	l, _ := d.Create("r2")
	for i := 1; i <= 20; i++ {
		fmt.Fprintf(l, "l%d\n", i)
	}
	l.Close()
	tests := []struct {
		name string
		do   func(w io.Writer) error
		want string
	}{
		{"copy", func(w io.Writer) error { return d.Copy(context.Background(), "r2", false, w, nil) }, "l1\n"},
		{"follow ended log", func(w io.Writer) error { return d.Copy(context.Background(), "r2", true, w, nil) }, "l1\n"},
		{"tail 3", func(w io.Writer) error { return d.Tail("r2", 3, w) }, "l18\nl19\nl20\n"},
		{"tail more than all", func(w io.Writer) error { return d.Tail("r2", 100, w) }, "l1\nl2\n"},
	}
	for _, tc := range tests {
		var b bytes.Buffer
		if err := tc.do(&b); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !strings.HasPrefix(b.String(), tc.want) {
			t.Errorf("%s: got %q, want prefix %q", tc.name, b.String(), tc.want)
		}
	}
	if err := d.Copy(context.Background(), "nope", false, io.Discard, nil); !errors.Is(err, ErrNoLog) {
		t.Errorf("missing log: %v", err)
	}
	if err := d.Tail("nope", 1, io.Discard); !errors.Is(err, ErrNoLog) {
		t.Errorf("missing log tail: %v", err)
	}
}

// TestTail checks Tail's lines, and that what it holds in memory does not
// follow the number of lines asked for: tail=10000000000000 once made the
// daemon allocate that many strings and die out of memory.
func TestTail(t *testing.T) {
	d, _ := Open(t.TempDir())
	write := func(id, text string) {
		l, err := d.Create(id)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(l, text)
		l.Close()
	}
	long := strings.Repeat("x", 3*tailBlock) // lines across blocks
	write("lines", "a\nb\nc\n")
	write("open-end", "a\nb\nc")
	write("blank", "a\n\n\nb\n")
	write("empty", "")
	write("crlf", "a\r\nb\r\n")
	write("long", long+"\n"+long+"\nend\n")
	tests := []struct {
		id   string
		n    int
		want string
	}{
		{"lines", 1, "c\n"},
		{"lines", 2, "b\nc\n"},
		{"lines", 3, "a\nb\nc\n"},
		{"lines", 4, "a\nb\nc\n"},
		{"lines", 10000000000000, "a\nb\nc\n"},
		{"open-end", 1, "c\n"},
		{"open-end", 2, "b\nc\n"},
		{"blank", 2, "\nb\n"},
		{"blank", 3, "\n\nb\n"},
		{"empty", 5, ""},
		{"crlf", 1, "b\r\n"},
		{"long", 1, "end\n"},
		{"long", 2, long + "\nend\n"},
		{"long", 3, long + "\n" + long + "\nend\n"},
	}
	for _, tc := range tests {
		var b bytes.Buffer
		if err := d.Tail(tc.id, tc.n, &b); err != nil || b.String() != tc.want {
			t.Errorf("Tail(%s, %d) = %.40q, %v; want %.40q", tc.id, tc.n, b.String(), err, tc.want)
		}
	}
	allocs := testing.AllocsPerRun(5, func() { _ = d.Tail("lines", 1<<40, io.Discard) })
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if err := d.Tail("lines", 1<<40, io.Discard); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
		t.Errorf("Tail of 2^40 lines allocated %d bytes (%v allocations)", grew, allocs)
	}
	for _, id := range []string{"../lines", "a/b", "..", ""} {
		if err := d.Tail(id, 1, io.Discard); !errors.Is(err, ErrNoLog) {
			t.Errorf("Tail(%q): %v, want ErrNoLog", id, err)
		}
	}
}

func TestFollowStopsWithContext(t *testing.T) {
	d, _ := Open(t.TempDir())
	l, _ := d.Create("r3")
	defer l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- d.Copy(ctx, "r3", true, io.Discard, nil) }()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestAwait(t *testing.T) {
	d, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := d.Await(ctx, "r1"); !errors.Is(err, ErrNoLog) {
		t.Fatalf("Await of a log that never comes = %v, want ErrNoLog", err)
	}
	done := make(chan error, 1)
	go func() { done <- d.Await(context.Background(), "r1") }()
	l, err := d.Create("r1")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := <-done; err != nil {
		t.Fatalf("Await after Create = %v", err)
	}
}

// TestFollowerOfALogJustCreated replays what a follower of a run that
// was just claimed does (Await, then Copy with follow) while the run
// starts writing: the follower must get every line and end only at Close.
// Create once made the file before it registered the log as live, and a
// follower that came in between took the log for an ended, empty one;
// the follower here asks without pause, to come in between if it can.
func TestFollowerOfALogJustCreated(t *testing.T) {
	d, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for i := range 300 {
		id := fmt.Sprintf("r%d", i)
		out := &lockedBuffer{grew: make(chan struct{}, 1)}
		done := make(chan error, 1)
		ready := make(chan struct{})
		go func() {
			// Asked again and again, as a follower whose Await saw the
			// file could ask at any moment.
			close(ready)
			for {
				err := d.Copy(context.Background(), id, true, out, nil)
				if !errors.Is(err, ErrNoLog) {
					done <- err
					return
				}
			}
		}()
		<-ready
		l, err := d.Create(id)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(l, "hello\n"); err != nil {
			t.Fatal(err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if out.String() != "hello\n" {
			t.Fatalf("round %d: the follower got %q, want the whole log", i, out.String())
		}
	}
}

// TestRunIDsThatClimbOut replays the log-path attack: a run record written
// to etcd under /mao/runs/../../… named files outside the log directory,
// which the site then read or deleted. Every method refuses such an ID and
// leaves the file alone.
func TestRunIDsThatClimbOut(t *testing.T) {
	root := t.TempDir()
	d, err := Open(filepath.Join(root, "logs"))
	if err != nil {
		t.Fatal(err)
	}
	victim := filepath.Join(root, "secret")
	if err := os.WriteFile(victim+".log", []byte("host secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"../secret", "../../secret", "/etc/passwd", ".hidden", "a/b", "", "Upper", "a\x00b", strings.Repeat("a", 256)} {
		if _, err := d.Create(id); err == nil {
			t.Errorf("Create(%q) succeeded", id)
		}
		if err := d.Remove(id); err == nil {
			t.Errorf("Remove(%q) succeeded", id)
		}
		var out strings.Builder
		if err := d.Tail(id, 10, &out); err == nil || out.Len() > 0 {
			t.Errorf("Tail(%q) = %q, %v", id, out.String(), err)
		}
		if err := d.Copy(context.Background(), id, false, &out, nil); err == nil || out.Len() > 0 {
			t.Errorf("Copy(%q) = %q, %v", id, out.String(), err)
		}
		if err := d.Await(context.Background(), id); err == nil {
			t.Errorf("Await(%q) succeeded", id)
		}
	}
	if b, err := os.ReadFile(victim + ".log"); err != nil || string(b) != "host secret\n" {
		t.Fatalf("the file outside the log directory: %q, %v", b, err)
	}
}
