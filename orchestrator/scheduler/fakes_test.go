package scheduler

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/orchestrator/errs"
	"github.com/mao-research/mao/orchestrator/store"
	"github.com/mao-research/mao/toolspec"
)

// fakeSchedules serves a fixed list and lets a test send watch events.
// The scheduler watches once it has loaded, caught up and armed the
// schedules it listed: each watch is reported on watching, if set.
type fakeSchedules struct {
	mu       sync.Mutex
	list     []toolspec.Schedule
	events   chan []toolspec.ScheduleEvent
	watching chan struct{}
}

func (f *fakeSchedules) Schedules(context.Context) ([]toolspec.Schedule, int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.list), 1, nil
}

// WatchSchedules hands the scheduler the test's own channel: a send
// returns once the scheduler has taken the batch, and, the scheduler being
// a loop, once it has applied the batch before (see harness.send).
func (f *fakeSchedules) WatchSchedules(ctx context.Context, _ int64) <-chan []toolspec.ScheduleEvent {
	if f.watching != nil {
		f.watching <- struct{}{}
	}
	return f.events
}

// fakeClaims keeps run records like the store: one per ID.
type fakeClaims struct {
	mu        sync.Mutex
	runs      map[string]api.Run
	failNext  int // ClaimRun fails with ErrUnavailable this many times
	pruned    []string
	claimedBy map[string]int // run ID → successful claims (must stay 1)
	claims    chan api.Run   // every successful claim
}

func newClaims() *fakeClaims {
	return &fakeClaims{runs: map[string]api.Run{}, claimedBy: map[string]int{}, claims: make(chan api.Run, 1000)}
}

func (f *fakeClaims) ClaimRun(_ context.Context, r api.Run) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failNext > 0 {
		f.failNext--
		return false, fmt.Errorf("etcd down: %w", errs.ErrUnavailable)
	}
	if _, ok := f.runs[r.ID]; ok {
		return false, nil
	}
	f.runs[r.ID] = r
	f.claimedBy[r.ID]++
	f.claims <- r
	return true, nil
}

func (f *fakeClaims) ofSchedule(id string) []api.Run {
	var out []api.Run
	for _, r := range f.runs {
		if r.Schedule == id {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ScheduledTime.Before(*out[j].ScheduledTime) })
	return out
}

func (f *fakeClaims) LastScheduledRun(_ context.Context, id, site string) (*api.Run, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	runs := f.ofSite(f.ofSchedule(id), site)
	if len(runs) == 0 {
		return nil, nil
	}
	return &runs[len(runs)-1], nil
}

func (f *fakeClaims) Run(_ context.Context, id string) (api.Run, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.runs[id]
	if !ok {
		return r, fmt.Errorf("run %s: %w", id, errs.ErrNotFound)
	}
	return r, nil
}

func (f *fakeClaims) LatestExecutedRun(_ context.Context, id, site string) (*api.Run, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	runs := f.ofSite(f.ofSchedule(id), site)
	for i := len(runs) - 1; i >= 0; i-- {
		if runs[i].State != api.StateSkipped && runs[i].State != api.StateMissed {
			return &runs[i], nil
		}
	}
	return nil, nil
}

// ofSite keeps the runs of site; "" keeps all.
func (f *fakeClaims) ofSite(runs []api.Run, site string) []api.Run {
	if site == "" {
		return runs
	}
	var out []api.Run
	for _, r := range runs {
		if r.Site == site {
			out = append(out, r)
		}
	}
	return out
}

// PruneSchedule keeps runs that have not ended, like the store.
func (f *fakeClaims) PruneSchedule(_ context.Context, id string, keep int) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	runs := f.ofSchedule(id)
	var removed []string
	for _, r := range runs[:max(len(runs)-keep, 0)] {
		if r.State.Terminal() {
			delete(f.runs, r.ID)
			removed = append(removed, r.ID)
		}
	}
	f.pruned = append(f.pruned, removed...)
	return removed, nil
}

func (f *fakeClaims) prunedIDs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.pruned)
}

func (f *fakeClaims) claimCount() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.claimedBy)
}

func (f *fakeClaims) set(r api.Run) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.runs[r.ID] = r
}

// states lists "tick-offset:state:trigger" of a schedule's runs in tick order.
func (f *fakeClaims) summary(id string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, r := range f.ofSchedule(id) {
		out = append(out, strings.TrimPrefix(r.ID, id+"-")+":"+string(r.State)+":"+r.Trigger)
	}
	return out
}

type fakeTools map[string]toolspec.Tool

// fakeImages has every image but those in missing.
type fakeImages struct{ missing map[string]bool }

func (f fakeImages) CheckImage(_ context.Context, image string) error {
	if f.missing[image] {
		return fmt.Errorf("image %s is not here", image)
	}
	return nil
}

func (f fakeTools) Tool(_ context.Context, name string) (toolspec.Tool, error) {
	t, ok := f[name]
	if !ok {
		return t, fmt.Errorf("no tool named %q: %w", name, errs.ErrNotFound)
	}
	return t, nil
}

// fakeLauncher reports each launched run on a channel. With complete set,
// the run ends at once (succeeds) in claims.
type fakeLauncher struct {
	launched chan api.Run
	complete *fakeClaims
}

func (f *fakeLauncher) Launch(_ context.Context, run api.Run, _ toolspec.Tool) error {
	if f.complete != nil {
		done := run
		done.State = api.StateSucceeded
		f.complete.set(done)
	}
	f.launched <- run
	return nil
}

var (
	_ Schedules = (*fakeSchedules)(nil)
	_ Claims    = (*fakeClaims)(nil)
	_ History   = (*fakeClaims)(nil)
	_ History   = (*store.Store)(nil)
	_ Tools     = fakeTools(nil)
	_ Launcher  = (*fakeLauncher)(nil)
	_ Schedules = (*store.Store)(nil)
	_ Claims    = (*store.Store)(nil)
)
