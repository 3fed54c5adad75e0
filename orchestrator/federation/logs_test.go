package federation_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/mao-research/mao/orchestrator/federation"
)

// fakeDeletions is a watch of run deletions that the test drives: each
// watch is handed to the test, which sends batches on it or fails it.
type fakeDeletions struct{ watches chan *deletionWatch }

type deletionWatch struct {
	ch   chan []string
	once sync.Once
}

// fail ends the watch, as a watch that etcd cancelled.
func (w *deletionWatch) fail() { w.once.Do(func() { close(w.ch) }) }

func (f fakeDeletions) WatchRunDeletions(ctx context.Context) <-chan []string {
	w := &deletionWatch{ch: make(chan []string)}
	go func() { <-ctx.Done(); w.fail() }()
	f.watches <- w
	return w.ch
}

// fakeLogFiles records removals; removing "broken" fails.
type fakeLogFiles struct {
	mu      sync.Mutex
	removed []string
}

func (f *fakeLogFiles) Remove(id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if id == "broken" {
		return errors.New("permission denied")
	}
	f.removed = append(f.removed, id)
	return nil
}

func (f *fakeLogFiles) list() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.removed)
}

var (
	_ federation.RunDeletions = fakeDeletions{}
	_ federation.LogFiles     = (*fakeLogFiles)(nil)
)

// TestPrunedLogs checks that the logs of pruned runs are removed, that a
// failed removal does not stop the others, and that a watch that fails is
// started again after the retry delay.
func TestPrunedLogs(t *testing.T) {
	clock := clockwork.NewFakeClockAt(start)
	dels, logs := fakeDeletions{watches: make(chan *deletionWatch, 1)}, &fakeLogFiles{}
	p := federation.NewPrunedLogs(dels, logs, federation.Options{Site: "here", Clock: clock})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); p.Run(ctx) }()
	defer func() { cancel(); <-done }()

	watch := <-dels.watches
	watch.ch <- []string{"r1", "broken", "r2"}
	watch.ch <- nil // taken once the batch before is handled
	if got := logs.list(); !slices.Equal(got, []string{"r1", "r2"}) {
		t.Fatalf("removed %v, want r1 r2", got)
	}

	// The watch fails: a new one starts after the retry delay.
	watch.fail()
	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	if err := clock.BlockUntilContext(wctx, 1); err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * time.Second)
	watch = <-dels.watches
	watch.ch <- []string{"r3"}
	watch.ch <- nil
	if got := logs.list(); !slices.Equal(got, []string{"r1", "r2", "r3"}) {
		t.Fatalf("removed %v, want r1 r2 r3", got)
	}
}
