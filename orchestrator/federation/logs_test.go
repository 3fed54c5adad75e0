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
	"github.com/mao-research/mao/orchestrator/runs"
)

// fakeDeletions is a watch of run deletions that the test drives: each
// watch is handed to the test, which sends batches on it or fails it.
type fakeDeletions struct{ watches chan *deletionWatch }

type deletionWatch struct {
	from int64 // the revision it watches after
	ch   chan []runs.Deletion
	once sync.Once
}

// fail ends the watch, as a watch that etcd cancelled.
func (w *deletionWatch) fail() { w.once.Do(func() { close(w.ch) }) }

func (f fakeDeletions) WatchRunDeletions(ctx context.Context, rev int64) <-chan []runs.Deletion {
	w := &deletionWatch{from: rev, ch: make(chan []runs.Deletion)}
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
// failed removal does not stop the others, that a watch that fails starts
// again after the retry delay from the last deletion seen, and that one
// that keeps failing without a deletion starts from now.
func TestPrunedLogs(t *testing.T) {
	clock := clockwork.NewFakeClockAt(start)
	dels, logs := fakeDeletions{watches: make(chan *deletionWatch, 1)}, &fakeLogFiles{}
	p := federation.NewPrunedLogs(dels, logs, 5, federation.Options{Site: "here", Clock: clock})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); p.Run(ctx) }()
	defer func() { cancel(); <-done }()

	// fail ends a watch and returns the next, once the retry delay passed.
	fail := func(w *deletionWatch) *deletionWatch {
		t.Helper()
		w.fail()
		wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer wcancel()
		if err := clock.BlockUntilContext(wctx, 1); err != nil {
			t.Fatal(err)
		}
		clock.Advance(2 * time.Second)
		return <-dels.watches
	}
	watch := <-dels.watches
	if watch.from != 5 {
		t.Fatalf("first watch from %d, want 5", watch.from)
	}
	watch.ch <- []runs.Deletion{{Run: "r1", Rev: 7}, {Run: "broken", Rev: 8}, {Run: "r2", Rev: 9}}
	watch.ch <- nil // taken once the batch before is handled
	if got := logs.list(); !slices.Equal(got, []string{"r1", "r2"}) {
		t.Fatalf("removed %v, want r1 r2", got)
	}
	steps := []struct {
		name string
		send []runs.Deletion
		from int64 // where the next watch starts
	}{
		{"resumes after the last deletion", nil, 9},
		{"a failure without deletions: from the same revision", nil, 9},
		{"a second one in a row: from now", nil, 0},
		{"a deletion resets it", []runs.Deletion{{Run: "r3", Rev: 12}}, 12},
	}
	for _, st := range steps {
		if st.send != nil {
			watch.ch <- st.send
			watch.ch <- nil
		}
		if watch = fail(watch); watch.from != st.from {
			t.Fatalf("%s: next watch from %d, want %d", st.name, watch.from, st.from)
		}
	}
	if got := logs.list(); !slices.Equal(got, []string{"r1", "r2", "r3"}) {
		t.Fatalf("removed %v, want r1 r2 r3", got)
	}
}
