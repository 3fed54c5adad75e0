package runner

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/orchestrator/errs"
)

var (
	errNotHeld     = errs.New(errs.ErrChanged, "the run is held by another site")
	errUnavailable = errs.New(errs.ErrUnavailable, "etcd unavailable")
)

// fencedFixture is a fixture whose runner has a lease and a detector.
func fencedFixture(t *testing.T, edits ...func(*Options)) (*fixture, *fakeLease, *fakeOutputs) {
	t.Helper()
	lease, outputs := newFakeLease(), &fakeOutputs{}
	f := newFixture(t, append([]func(*Options){func(o *Options) { o.Lease, o.Outputs = lease, outputs }}, edits...)...)
	return f, lease, outputs
}

// TestOutputKeptOnlyWhileHeld checks the promise that a successful
// attempt's output leaves its container (the commit in the clone, the
// detector's series) only once the site has made sure, in etcd, that it
// still holds the attempt, just before each: an attempt that the site lost
// meanwhile commits nothing, gives the detector nothing, has its output
// discarded, and its record says why; while etcd does not answer, the site
// asks again instead of guessing.
func TestOutputKeptOnlyWhileHeld(t *testing.T) {
	tests := []struct {
		name      string
		holds     []error // Holds' answers, in turn
		state     api.RunState
		reason    string // a prefix
		committed bool
		detected  bool
		asked     int // Holds calls
	}{
		{"held", nil, api.StateSucceeded, "", true, true, 2},
		{"lost before the commit", []error{errNotHeld}, api.StateFailed, "output discarded: the run is held by another site", false, false, 1},
		{"lost between the commit and the series", []error{nil, errNotHeld}, api.StateSucceeded, "", true, false, 2},
		{"etcd away, then back: held", []error{errUnavailable, errUnavailable}, api.StateSucceeded, "", true, true, 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, lease, outputs := fencedFixture(t)
			lease.holds = slices.Clone(tc.holds)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			go func() { // the waits between questions to etcd
				for range tc.holds {
					if f.clock.BlockUntilContext(ctx, 1) == nil {
						f.clock.Advance(saveRetry)
					}
				}
			}()
			run := f.runToEnd(t, "t1")
			if run.State != tc.state || !strings.HasPrefix(run.Reason, tc.reason) {
				t.Fatalf("run %s: %q, want %s: %q", run.State, run.Reason, tc.state, tc.reason)
			}
			if got := f.git.commits == 1; got != tc.committed {
				t.Errorf("committed = %v, want %v", got, tc.committed)
			}
			if got := len(f.git.discarded) == 1; got == tc.committed {
				t.Errorf("discarded = %v, want %v", got, !tc.committed)
			}
			if got := len(outputs.detected) == 1; got != tc.detected {
				t.Errorf("given to the detector = %v, want %v", got, tc.detected)
			}
			if n := lease.calls(); n != tc.asked {
				t.Errorf("asked etcd %d times, want %d", n, tc.asked)
			}
			for _, asked := range lease.asked {
				if asked.ID != run.ID || asked.Attempt != 1 || asked.State != api.StateRunning || asked.Site != "s1" {
					t.Errorf("asked about %+v, want the running attempt 1 at s1", asked)
				}
			}
		})
	}
}

// TestContainerStartsOnlyWhileLeaseValid checks the promise that no
// container starts while the site's lease may have expired by the site's
// own clock (other sites take its runs over once it has): the run waits
// for the next renewal and then starts; if the site learns meanwhile that
// its lease expired and abandons its runs, no container has started and
// the record says why.
func TestContainerStartsOnlyWhileLeaseValid(t *testing.T) {
	tests := []struct {
		name       string
		duringSync bool // the lease lapses while the clone syncs, once the container is created
		then       func(f *fixture, lease *fakeLease)
		state      api.RunState
		reason     string
		started    bool
	}{
		{"renewed", false, func(_ *fixture, lease *fakeLease) { lease.renew() }, api.StateSucceeded, "", true},
		{"expired", false, func(f *fixture, _ *fakeLease) { f.r.Abandon(errors.New("this site's lease expired")) }, api.StateFailed,
			"interrupted before its container started: this site's lease expired", false},
		{"renewed after lapsing during the sync", true, func(_ *fixture, lease *fakeLease) { lease.renew() }, api.StateSucceeded, "", true},
		{"expired during the sync", true, func(f *fixture, _ *fakeLease) { f.r.Abandon(errors.New("this site's lease expired")) }, api.StateFailed,
			"interrupted before its container started: this site's lease expired", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dataDir := t.TempDir()
			if err := os.MkdirAll(filepath.Join(dataDir, "repos", "t1"), 0o755); err != nil {
				t.Fatal(err) // the clone exists: it syncs while the container is created
			}
			f, lease, _ := fencedFixture(t, func(o *Options) { o.DataDir, o.HostDataDir = dataDir, "" })
			lease.waiting = make(chan struct{}, 10)
			lapse := func() {
				lease.mu.Lock()
				lease.lapsed = true
				lease.mu.Unlock()
			}
			if tc.duringSync {
				f.rt.created = make(chan struct{}, 1)
				f.git.onSync = func() { <-f.rt.created; lapse() } // after the check before the create
			} else {
				lapse()
			}
			run, err := f.r.Start(context.Background(), "t1", "")
			if err != nil {
				t.Fatal(err)
			}
			<-lease.waiting
			f.rt.mu.Lock()
			started := len(f.rt.specs)
			f.rt.mu.Unlock()
			if started != 0 {
				t.Fatal("a container started while the lease was lapsed")
			}
			tc.then(f, lease)
			f.r.Shutdown(context.Background())
			got := f.rec.last(run.ID)
			if got.State != tc.state || got.Reason != tc.reason || (len(f.rt.specs) == 1) != tc.started {
				t.Fatalf("run %s %q, %d containers; want %s %q, started %v", got.State, got.Reason, len(f.rt.specs),
					tc.state, tc.reason, tc.started)
			}
		})
	}
}

// TestNoAttemptOfARunTakenOver checks that an attempt whose start the
// store refuses, because another site holds the run now, does not
// prepare, start a container or retry.
func TestNoAttemptOfARunTakenOver(t *testing.T) {
	f, _, _ := fencedFixture(t)
	f.rec.refuse = func(r api.Run) error {
		if r.State == api.StatePending {
			return nil
		}
		return errNotHeld
	}
	run, tool := scheduledRun(f, 2)
	if err := f.r.Launch(context.Background(), run, tool); err != nil {
		t.Fatal(err)
	}
	f.r.Shutdown(context.Background())
	if len(f.rt.specs) != 0 || len(f.git.synced) != 0 {
		t.Fatalf("ran %d containers, synced %v", len(f.rt.specs), f.git.synced)
	}
	if got := f.rec.states(run.ID); len(got) != 0 {
		t.Fatalf("recorded %v", got)
	}
}

// TestCarriedRunsAreNotFenced checks the promise that a run the site
// carries through its journal while etcd does not answer it (one that no
// other site may run) goes on without the lease: its container starts
// while the lease is lapsed, its output is committed without asking etcd
// whether the site holds it, and Abandon (the lease expired) leaves it
// running; a run waiting for the lease starts once the site goes offline
// and carries it.
func TestCarriedRunsAreNotFenced(t *testing.T) {
	t.Run("carried: no lease, no Holds", func(t *testing.T) {
		f, lease, outputs := fencedFixture(t)
		f.r.opts.Offline = newFakeOffline(true)
		lease.lapsed, lease.holds = true, []error{errNotHeld, errNotHeld}
		run := f.runToEnd(t, "t1")
		if run.State != api.StateSucceeded || f.git.commits != 1 || lease.calls() != 0 || len(outputs.detected) != 1 {
			t.Fatalf("run %s %q, %d commits, Holds asked %d times, detector given %v", run.State, run.Reason, f.git.commits,
				lease.calls(), outputs.detected)
		}
	})
	t.Run("waiting for the lease, then offline", func(t *testing.T) {
		f, lease, _ := fencedFixture(t)
		offline := newFakeOffline(false)
		f.r.opts.Offline = offline
		lease.lapsed, lease.waiting = true, make(chan struct{}, 10)
		run, err := f.r.Start(context.Background(), "t1", "")
		if err != nil {
			t.Fatal(err)
		}
		<-lease.waiting
		offline.goOffline()
		f.r.Shutdown(context.Background())
		if got := f.rec.last(run.ID); got.State != api.StateSucceeded || len(f.rt.specs) != 1 || lease.calls() != 0 {
			t.Fatalf("run %s %q, %d containers, Holds asked %d times", got.State, got.Reason, len(f.rt.specs), lease.calls())
		}
	})
	t.Run("not abandoned", func(t *testing.T) {
		f, _, _ := fencedFixture(t)
		f.r.opts.Offline = newFakeOffline(true)
		f.rt.gate, f.rt.started = make(chan struct{}), make(chan struct{}, 1)
		run, err := f.r.Start(context.Background(), "t1", "")
		if err != nil {
			t.Fatal(err)
		}
		<-f.rt.started
		f.r.Abandon(errors.New("this site's lease expired")) // returns at once: nothing to stop
		close(f.rt.gate)
		f.r.Shutdown(context.Background())
		if got := f.rec.last(run.ID); got.State != api.StateSucceeded {
			t.Fatalf("run %s %q, want succeeded", got.State, got.Reason)
		}
	})
}
