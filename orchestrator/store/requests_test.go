package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/orchestrator/errs"
	"github.com/mao-research/mao/orchestrator/runs"
	"github.com/mao-research/mao/toolspec"
)

var testNow = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

// requested is a run that asks for a site with target.
func requested(id string, target toolspec.Target) api.Run {
	return api.Run{ID: id, Tool: "t", State: api.StatePending, Trigger: api.TriggerManual,
		Target: &target, Attempt: 1, MaxAttempts: 1, CreatedAt: testNow}
}

// held is a run that site holds in state.
func held(id, site string, state api.RunState) api.Run {
	r := api.Run{ID: id, Tool: "t", Site: site, State: state, Trigger: api.TriggerManual,
		Attempt: 1, MaxAttempts: 1, CreatedAt: testNow}
	if state != api.StatePending {
		started := testNow.Add(time.Second)
		r.StartedAt = &started
	}
	return r
}

// request returns the open request for run id, if there is one.
func request(t *testing.T, s *Store, id string) (runs.Request, bool) {
	t.Helper()
	reqs, _, err := s.Requests(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range reqs {
		if r.Run == id {
			return r, true
		}
	}
	return runs.Request{}, false
}

func TestRequestAndClaim(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, c := newStore(t)
	anySite := toolspec.Target{Mode: toolspec.TargetAny}
	atSite := requested("t-1", anySite)
	atSite.Site = "a"
	if err := s.RequestRun(ctx, atSite); err == nil {
		t.Fatal("a run held by a site was stored as a request")
	}
	if err := s.RequestRun(ctx, requested("t-1", anySite)); err != nil {
		t.Fatal(err)
	}
	// One run of an --all request is a fan-out.
	fanOut := requested("t-1772600767-abcdef-b", toolspec.Target{Mode: toolspec.TargetSite, Site: "b"})
	if err := s.RequestRun(ctx, fanOut); err != nil {
		t.Fatal(err)
	}
	if req, ok := request(t, s, fanOut.ID); !ok || !req.FanOut {
		t.Fatalf("fan-out request = %+v (%v)", req, ok)
	}
	got, err := s.Run(ctx, "t-1")
	if err != nil || got.State != api.StatePending || got.Site != "" {
		t.Fatalf("requested run = %+v, %v; want pending with no site", got, err)
	}
	req, ok := request(t, s, "t-1")
	want := runs.Request{Run: "t-1", Tool: "t", Target: anySite, CreatedAt: testNow}
	if !ok || !reflect.DeepEqual(req, want) {
		t.Fatalf("request = %+v (%v), want %+v", req, ok, want)
	}
	if err := s.RequestRun(ctx, requested("t-1", anySite)); !errors.Is(err, errs.ErrExists) {
		t.Fatalf("second request with one ID: %v, want errs.ErrExists", err)
	}
	if err := s.RequestRun(ctx, api.Run{ID: "t-0", Tool: "t"}); err == nil {
		t.Fatal("a request without a target was stored")
	}

	// A site that is not live claims nothing (see also TestClaimsNeedTheLiveLease).
	if _, ok, err := s.ClaimRequest(ctx, "t-1", "a"); ok || !errors.Is(err, ErrNotLive) {
		t.Fatalf("claim by a site that is not live: %v %v, want ErrNotLive", ok, err)
	}
	// Two live sites claim at once: one wins.
	sites := []string{"a", "b"}
	for _, site := range sites {
		joinSite(t, s, site)
	}
	won := make([]bool, len(sites))
	var wg sync.WaitGroup
	for i, site := range sites {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, ok, err := s.ClaimRequest(ctx, "t-1", site)
			if err != nil {
				t.Errorf("claim by %s: %v", site, err)
			}
			if ok && r.Site != site {
				t.Errorf("claim by %s returned site %q", site, r.Site)
			}
			won[i] = ok
		}()
	}
	wg.Wait()
	if won[0] == won[1] {
		t.Fatalf("claims won = %v, want exactly one", won)
	}
	winner := sites[0]
	if won[1] {
		winner = sites[1]
	}
	if got, _ := s.Run(ctx, "t-1"); got.Site != winner || got.State != api.StatePending {
		t.Fatalf("claimed run = site %q state %s, want site %q pending", got.Site, got.State, winner)
	}
	if _, ok := request(t, s, "t-1"); ok {
		t.Fatal("the request is still there after the claim")
	}

	// A claim that finds no request, or a request whose run no longer
	// waits (which it drops), is refused.
	started := held("t-2", "", api.StateRunning)
	if err := s.CreateRun(ctx, started); err != nil {
		t.Fatal(err)
	}
	stale := `{"run":"t-2","tool":"t","target":{"mode":"any"},"created_at":"2026-03-04T05:06:07Z"}`
	orphan := `{"run":"t-3","tool":"t","target":{"mode":"any"},"created_at":"2026-03-04T05:06:07Z"}`
	for id, v := range map[string]string{"t-2": stale, "t-3": orphan} {
		if _, err := c.Put(ctx, "/mao/requests/"+id, v); err != nil {
			t.Fatal(err)
		}
	}
	joinSite(t, s, "c")
	for _, tc := range []struct{ name, id string }{
		{"missing request", "t-missing"},
		{"claimed already", "t-1"},
		{"run no longer waits", "t-2"},
		{"run record gone", "t-3"},
	} {
		if r, ok, err := s.ClaimRequest(ctx, tc.id, "c"); ok || err != nil {
			t.Errorf("%s: claim = %+v, %v, %v; want false", tc.name, r, ok, err)
		}
		if _, ok := request(t, s, tc.id); ok {
			t.Errorf("%s: the request is left", tc.name)
		}
	}
	if got, _ := s.Run(ctx, "t-2"); got.Site != "" || got.State != api.StateRunning {
		t.Fatalf("a stale claim changed the run: %+v", got)
	}
}

func TestWatchRequests(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, _ := newStore(t)
	joinSite(t, s, "a")
	if err := s.RequestRun(ctx, requested("t-1", toolspec.Target{})); err != nil {
		t.Fatal(err)
	}
	reqs, rev, err := s.Requests(ctx)
	if err != nil || len(reqs) != 1 || reqs[0].Run != "t-1" {
		t.Fatalf("requests = %+v, %v", reqs, err)
	}
	events := s.WatchRequests(ctx, rev)
	if err := s.RequestRun(ctx, requested("t-2", toolspec.Target{Mode: toolspec.TargetSite, Site: "a"})); err != nil {
		t.Fatal(err)
	}
	// The claim deletes t-1's request; deletions are not reported.
	if _, ok, err := s.ClaimRequest(ctx, "t-1", "a"); !ok || err != nil {
		t.Fatalf("claim: %v %v", ok, err)
	}
	if err := s.RequestRun(ctx, requested("t-3", toolspec.Target{})); err != nil {
		t.Fatal(err)
	}
	var got []string
	for len(got) < 2 {
		batch, ok := <-events
		if !ok {
			t.Fatal("watch closed")
		}
		for _, r := range batch {
			got = append(got, r.Run)
		}
	}
	if strings.Join(got, ",") != "t-2,t-3" {
		t.Fatalf("watched requests %v, want t-2,t-3", got)
	}
}

func TestLoseRun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newStore(t)
	log := slog.New(slog.DiscardHandler)
	live, err := s.Join(ctx, api.Site{Name: "live"}, 10*time.Second, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { live.Leave(context.Background()) })

	siteTarget := func(site string, labels map[string]string) *toolspec.Target {
		return &toolspec.Target{Mode: toolspec.TargetSite, Site: site, Labels: labels}
	}
	gpu := map[string]string{"gpu": "yes"}
	type want struct {
		ok       bool
		state    api.RunState
		site     string
		attempt  int
		attempts []api.RunState // the states filed in attempts
		retry    *toolspec.Target
		fanOut   bool // the retry is one run of an --all target
	}
	tests := []struct {
		name string
		run  func(r *api.Run)
		dead string
		want want
	}{
		{
			name: "any target stays any",
			run:  func(r *api.Run) { r.Target, r.MaxAttempts = &toolspec.Target{Mode: toolspec.TargetAny, Labels: gpu}, 2 },
			want: want{ok: true, state: api.StatePending, attempt: 2, attempts: []api.RunState{api.StateLost},
				retry: &toolspec.Target{Mode: toolspec.TargetAny, Labels: gpu}},
		},
		{
			name: "no target waits for the site",
			run:  func(r *api.Run) { r.MaxAttempts = 2 },
			want: want{ok: true, state: api.StatePending, attempt: 2, attempts: []api.RunState{api.StateLost}, retry: siteTarget("dead", nil)},
		},
		{
			name: "site target waits for the site",
			run:  func(r *api.Run) { r.Target, r.MaxAttempts = siteTarget("dead", gpu), 2 },
			want: want{ok: true, state: api.StatePending, attempt: 2, attempts: []api.RunState{api.StateLost}, retry: siteTarget("dead", gpu)},
		},
		{
			name: "one of an all schedule's runs waits for the site",
			run: func(r *api.Run) {
				r.ID, r.Schedule, r.Trigger = "s-1700000000-dead", "s", api.TriggerSchedule
				r.Target, r.MaxAttempts = &toolspec.Target{Mode: toolspec.TargetAll, Labels: gpu}, 2
			},
			want: want{ok: true, state: api.StatePending, attempt: 2, attempts: []api.RunState{api.StateLost}, retry: siteTarget("dead", gpu),
				fanOut: true},
		},
		{
			name: "a scheduled run from before targets goes to any site",
			run:  func(r *api.Run) { r.Schedule, r.Trigger, r.MaxAttempts = "s", api.TriggerSchedule, 2 },
			want: want{ok: true, state: api.StatePending, attempt: 2, attempts: []api.RunState{api.StateLost},
				retry: &toolspec.Target{Mode: toolspec.TargetAny}},
		},
		{
			name: "second of three attempts",
			run: func(r *api.Run) {
				r.Attempt, r.MaxAttempts, r.Target = 2, 3, &toolspec.Target{Mode: toolspec.TargetAny}
				r.Attempts = []api.Attempt{{Attempt: 1, State: api.StateFailed}}
			},
			want: want{ok: true, state: api.StatePending, attempt: 3, attempts: []api.RunState{api.StateFailed, api.StateLost},
				retry: &toolspec.Target{Mode: toolspec.TargetAny}},
		},
		{
			// attempts lists the earlier attempts; the last one is the
			// run's own state, as the runner records a last failure.
			name: "no attempts left ends lost",
			run:  func(r *api.Run) { r.Target = &toolspec.Target{Mode: toolspec.TargetAny} },
			want: want{ok: true, state: api.StateLost, site: "dead", attempt: 1},
		},
		{
			name: "a record from before retries ends lost",
			run:  func(r *api.Run) { r.Attempt, r.MaxAttempts = 0, 0 },
			want: want{ok: true, state: api.StateLost, site: "dead", attempt: 1},
		},
		{
			name: "a run that had not started is requested again as it is",
			run: func(r *api.Run) {
				r.State, r.StartedAt, r.Target = api.StatePending, nil, &toolspec.Target{Mode: toolspec.TargetAny}
			},
			want: want{ok: true, state: api.StatePending, attempt: 1, retry: &toolspec.Target{Mode: toolspec.TargetAny}},
		},
		{
			name: "a live site keeps its run",
			run:  func(r *api.Run) { r.Site, r.MaxAttempts = "live", 2 },
			dead: "live",
			want: want{state: api.StateRunning, site: "live", attempt: 1},
		},
		{
			name: "an ended run stays",
			run:  func(r *api.Run) { r.State, r.MaxAttempts = api.StateSucceeded, 2 },
			want: want{state: api.StateSucceeded, site: "dead", attempt: 1},
		},
		{
			name: "a run held by another site stays",
			run:  func(r *api.Run) { r.Site, r.MaxAttempts = "other", 2 },
			want: want{state: api.StateRunning, site: "other", attempt: 1},
		},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			run := held("t-"+string(rune('a'+i)), "dead", api.StateRunning)
			tc.run(&run)
			if err := s.CreateRun(ctx, run); err != nil {
				t.Fatal(err)
			}
			dead := tc.dead
			if dead == "" {
				dead = "dead"
			}
			now := testNow.Add(time.Hour)
			ret, ok, err := s.LoseRun(ctx, run.ID, dead, now)
			if err != nil || ok != tc.want.ok {
				t.Fatalf("LoseRun = %v, %v; want %v", ok, err, tc.want.ok)
			}
			got, err := s.Run(ctx, run.ID)
			if err != nil {
				t.Fatal(err)
			}
			if ok && !reflect.DeepEqual(ret, got) {
				t.Errorf("LoseRun returned %+v, stored %+v", ret, got)
			}
			if got.State != tc.want.state || got.Site != tc.want.site || got.Attempt != tc.want.attempt {
				t.Errorf("run: state %s site %q attempt %d; want %s %q %d", got.State, got.Site, got.Attempt,
					tc.want.state, tc.want.site, tc.want.attempt)
			}
			var states []api.RunState
			for _, a := range got.Attempts {
				states = append(states, a.State)
			}
			if !reflect.DeepEqual(states, tc.want.attempts) {
				t.Errorf("attempts %v, want %v", states, tc.want.attempts)
			}
			if n := len(got.Attempts); n > 0 && tc.want.ok && got.Attempts[n-1].State == api.StateLost {
				if a := got.Attempts[n-1]; a.Attempt != max(run.Attempt, 1) || a.FinishedAt == nil || !a.FinishedAt.Equal(now) ||
					!strings.HasPrefix(a.Reason, "lost:") || a.StartedAt == nil {
					t.Errorf("lost attempt %+v", a)
				}
			}
			switch got.State {
			case api.StateLost:
				if got.FinishedAt == nil || !got.FinishedAt.Equal(now) || !strings.HasPrefix(got.Reason, "lost:") {
					t.Errorf("lost run: finished_at %v reason %q", got.FinishedAt, got.Reason)
				}
			case api.StatePending:
				if tc.want.ok && (got.StartedAt != nil || got.FinishedAt != nil) {
					t.Errorf("requested again with started_at %v finished_at %v", got.StartedAt, got.FinishedAt)
				}
			}
			req, requested := request(t, s, run.ID)
			switch {
			case tc.want.retry == nil && requested:
				t.Errorf("request %+v, want none", req)
			case tc.want.retry != nil && !requested:
				t.Errorf("no request, want one for %s", tc.want.retry)
			case tc.want.retry != nil:
				if !reflect.DeepEqual(req.Target, *tc.want.retry) || !reflect.DeepEqual(got.Target, tc.want.retry) ||
					req.Tool != "t" || req.FanOut != tc.want.fanOut || !req.CreatedAt.Equal(now) {
					t.Errorf("request %+v, run target %v; want target %+v", req, got.Target, *tc.want.retry)
				}
			}
		})
	}
	if _, ok, err := s.LoseRun(ctx, "t-missing", "dead", testNow); ok || err != nil {
		t.Errorf("LoseRun of a missing run = %v, %v", ok, err)
	}
}

func TestLoseRunOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newStore(t)
	run := held("t-1", "dead", api.StateRunning)
	run.MaxAttempts = 3
	if err := s.CreateRun(ctx, run); err != nil {
		t.Fatal(err)
	}
	const settlers = 3
	results := make(chan bool, settlers)
	var wg sync.WaitGroup
	for range settlers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, ok, err := s.LoseRun(ctx, "t-1", "dead", testNow)
			if err != nil {
				t.Error(err)
			}
			results <- ok
		}()
	}
	wg.Wait()
	close(results)
	settled := 0
	for ok := range results {
		if ok {
			settled++
		}
	}
	if settled != 1 {
		t.Fatalf("%d of %d LoseRun calls settled the run, want 1", settled, settlers)
	}
	if got, _ := s.Run(ctx, "t-1"); got.Attempt != 2 || len(got.Attempts) != 1 {
		t.Fatalf("run settled more than once: attempt %d, attempts %+v", got.Attempt, got.Attempts)
	}
}

func TestSaveRunOnlyWhileHeld(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newStore(t)
	run := held("t-1", "a", api.StateRunning)
	run.MaxAttempts = 2
	if err := s.CreateRun(ctx, run); err != nil {
		t.Fatal(err)
	}
	notHeld := func(err error) bool { return errors.Is(err, ErrNotHeld) && errors.Is(err, errs.ErrChanged) }
	run.DataCommitBefore = "abc"
	if err := s.SaveRun(ctx, run); err != nil {
		t.Fatalf("save by the holding site: %v", err)
	}
	if _, ok, err := s.LoseRun(ctx, "t-1", "a", testNow); !ok || err != nil {
		t.Fatalf("lose: %v %v", ok, err)
	}
	run.State = api.StateSucceeded
	if err := s.SaveRun(ctx, run); !notHeld(err) {
		t.Fatalf("save by the site that lost the run (now unclaimed): %v, want ErrNotHeld", err)
	}
	joinSite(t, s, "b")
	claimed, ok, err := s.ClaimRequest(ctx, "t-1", "b")
	if !ok || err != nil {
		t.Fatalf("claim: %v %v", ok, err)
	}
	if err := s.SaveRun(ctx, run); !notHeld(err) {
		t.Fatalf("save by the site that lost the run (now b's): %v, want ErrNotHeld", err)
	}
	claimed.State = api.StateRunning
	if err := s.SaveRun(ctx, claimed); err != nil {
		t.Fatalf("save by the new holder: %v", err)
	}
	if got, _ := s.Run(ctx, "t-1"); got.Site != "b" || got.State != api.StateRunning {
		t.Fatalf("run = site %q state %s", got.Site, got.State)
	}
	// The site that lost the run claims it again (a run meant for it):
	// its abandoned first attempt still cannot overwrite the second.
	again := held("t-3", "a", api.StateRunning)
	again.Target, again.MaxAttempts = &toolspec.Target{Mode: toolspec.TargetSite, Site: "a"}, 2
	if err := s.CreateRun(ctx, again); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.LoseRun(ctx, "t-3", "a", testNow); !ok || err != nil {
		t.Fatalf("lose: %v %v", ok, err)
	}
	joinSite(t, s, "a") // the site registers again
	second, ok, err := s.ClaimRequest(ctx, "t-3", "a")
	if !ok || err != nil || second.Attempt != 2 {
		t.Fatalf("claim again: %+v %v %v", second, ok, err)
	}
	again.State = api.StateFailed
	if err := s.SaveRun(ctx, again); !notHeld(err) {
		t.Fatalf("save of attempt 1 after attempt 2 was claimed by the same site: %v, want ErrNotHeld", err)
	}
	second.State = api.StateSucceeded
	if err := s.SaveRun(ctx, second); err != nil {
		t.Fatalf("save of attempt 2: %v", err)
	}
	fresh := held("t-2", "a", api.StateFailed)
	if err := s.SaveRun(ctx, fresh); err != nil {
		t.Fatalf("save of a record that is gone: %v", err)
	}
	if got, err := s.Run(ctx, "t-2"); err != nil || got.State != api.StateFailed {
		t.Fatalf("written again: %+v, %v", got, err)
	}
}

func TestWaitClaimed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newStore(t)
	joinSite(t, s, "b")
	if err := s.CreateRun(ctx, held("t-1", "a", api.StateRunning)); err != nil {
		t.Fatal(err)
	}
	if got, err := s.WaitClaimed(ctx, "t-1"); err != nil || got.Site != "a" {
		t.Fatalf("claimed run: %+v, %v", got, err)
	}
	if _, err := s.WaitClaimed(ctx, "t-missing"); !errors.Is(err, errs.ErrNotFound) {
		t.Fatalf("missing run: %v, want errs.ErrNotFound", err)
	}
	if err := s.RequestRun(ctx, requested("t-2", toolspec.Target{})); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if got, err := s.WaitClaimed(short, "t-2"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("unclaimed run, context ended: %+v, %v", got, err)
	}
	type result struct {
		run api.Run
		err error
	}
	done := make(chan result, 1)
	go func() {
		r, err := s.WaitClaimed(ctx, "t-2")
		done <- result{r, err}
	}()
	if _, ok, err := s.ClaimRequest(ctx, "t-2", "b"); !ok || err != nil {
		t.Fatalf("claim: %v %v", ok, err)
	}
	if r := <-done; r.err != nil || r.run.Site != "b" {
		t.Fatalf("after the claim: %+v, %v", r.run, r.err)
	}
}

func TestWatchRegistry(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, _ := newStore(t)
	if err := s.CreateTool(ctx, tool("t1", "")); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateDataset(ctx, toolspec.Dataset{Name: "d1", URL: "file:///d1"}); err != nil {
		t.Fatal(err)
	}
	type event struct {
		kind, name string
		deleted    bool
	}
	asEvent := func(e toolspec.RegistryEvent) event {
		if (e.Tool != nil && (e.Kind != toolspec.KindTool || e.Tool.Name != e.Name)) ||
			(e.Dataset != nil && (e.Kind != toolspec.KindDataset || e.Dataset.Name != e.Name)) {
			t.Errorf("event %+v: record of the wrong kind or name", e)
		}
		return event{e.Kind, e.Name, e.Tool == nil && e.Dataset == nil}
	}
	tests := []struct {
		kind    string
		listed  event
		changes []func() error
		want    []event
	}{
		{
			kind:   toolspec.KindTool,
			listed: event{toolspec.KindTool, "t1", false},
			changes: []func() error{
				func() error { return s.CreateTool(ctx, tool("t2", "")) },
				func() error { return s.DeleteTool(ctx, "t1") },
			},
			want: []event{{toolspec.KindTool, "t2", false}, {toolspec.KindTool, "t1", true}},
		},
		{
			kind:   toolspec.KindDataset,
			listed: event{toolspec.KindDataset, "d1", false},
			changes: []func() error{
				func() error { return s.CreateDataset(ctx, toolspec.Dataset{Name: "d2", URL: "file:///d2"}) },
				func() error { return s.DeleteDataset(ctx, "d1") },
			},
			want: []event{{toolspec.KindDataset, "d2", false}, {toolspec.KindDataset, "d1", true}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.kind, func(t *testing.T) {
			list, rev, err := s.ListRegistry(ctx, tc.kind)
			if err != nil || len(list) != 1 || asEvent(list[0]) != tc.listed {
				t.Fatalf("list = %+v, %v; want %+v", list, err, tc.listed)
			}
			events := s.WatchRegistry(ctx, tc.kind, rev)
			for _, change := range tc.changes {
				if err := change(); err != nil {
					t.Fatal(err)
				}
			}
			var got []event
			for len(got) < len(tc.want) {
				batch, ok := <-events
				if !ok {
					t.Fatal("watch closed")
				}
				for _, e := range batch.Events {
					got = append(got, asEvent(e))
				}
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("events %+v, want %+v", got, tc.want)
			}
		})
	}
}

// joinSite makes a site live until the test ends and returns its
// membership.
func joinSite(t *testing.T, s *Store, name string) *Membership {
	t.Helper()
	m, err := s.Join(context.Background(), api.Site{Name: name}, 30*time.Second, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Leave(context.Background()) })
	return m
}

// TestRegistryProgress checks that a registry watch reports, when asked,
// the revision of a write elsewhere in etcd: the copy of the registry
// learns that it missed nothing, without a change of its own.
func TestRegistryProgress(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, _ := newStore(t)
	for _, kind := range []string{toolspec.KindTool, toolspec.KindDataset} {
		t.Run(kind, func(t *testing.T) {
			_, rev, err := s.ListRegistry(ctx, kind)
			if err != nil {
				t.Fatal(err)
			}
			batches := s.WatchRegistry(ctx, kind, rev)
			if err := s.CreateRun(ctx, api.Run{ID: "elsewhere-" + kind, Tool: "t", State: api.StatePending, CreatedAt: testNow}); err != nil {
				t.Fatal(err)
			}
			want, err := s.Revision(ctx)
			if err != nil || want <= rev {
				t.Fatalf("revision %d after the write, %d before: %v", want, rev, err)
			}
			if err := s.RegistryProgress(ctx, kind); err != nil {
				t.Fatal(err)
			}
			select {
			case b, ok := <-batches:
				if !ok || len(b.Events) != 0 || b.Rev < want {
					t.Fatalf("batch %+v (open %v); want a progress report at %d or later", b, ok, want)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("no progress report")
			}
		})
	}
}

// TestRegistryWatchRevisions replays a watch that is behind: etcd sends
// its events in chunks of 1,000 revisions, each stamped with its current
// revision. A batch's Rev must be that of the last change it carries, so
// that a copy of the registry never counts itself up to date with changes
// still on their way.
func TestRegistryWatchRevisions(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, _ := newStore(t)
	from, err := s.Revision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const n = 1500
	for i := range n {
		if err := s.CreateTool(ctx, tool(fmt.Sprintf("t%04d", i), "")); err != nil {
			t.Fatal(err)
		}
	}
	seen := 0
	for b := range s.WatchRegistry(ctx, toolspec.KindTool, from) {
		seen += len(b.Events)
		// Each tool was one revision: Rev from+k means k tools.
		if got := int(b.Rev - from); len(b.Events) > 0 && got != seen {
			t.Fatalf("a batch says it has every change up to %d tools; %d have arrived", got, seen)
		}
		if seen == n {
			return
		}
	}
	t.Fatalf("the watch ended after %d of %d tools", seen, n)
}
