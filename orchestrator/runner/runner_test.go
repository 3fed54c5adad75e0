package runner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/orchestrator/container"
	"github.com/mao-research/mao/orchestrator/runlog"
	"github.com/mao-research/mao/orchestrator/runs"
	"github.com/mao-research/mao/toolspec"
)

type fixture struct {
	reg   *fakeRegistry
	rec   *fakeRecords
	rt    *fakeContainers
	git   *fakeGit
	logs  *runlog.Dir
	clock *clockwork.FakeClock
	r     *Runner
}

// newFixture returns a runner at site s1 with fakes; edits change its
// options.
func newFixture(t *testing.T, edits ...func(*Options)) *fixture {
	t.Helper()
	logs, err := runlog.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{
		reg: &fakeRegistry{
			tools: map[string]toolspec.Tool{
				"t1": {Name: "t1", Author: "a", Image: "img:1", DataRepo: "file:///data.git", Env: map[string]string{"K": "v"},
					Timeout: "2m", Network: "none", Resources: &toolspec.Resources{CPUs: 0.5, Memory: "64MiB"}},
				"t2": {Name: "t2", Author: "a", Image: "img:2", DataRepo: "file:///d2.git", InputDataset: "ds"},
			},
			datasets: map[string]toolspec.Dataset{"ds": {Name: "ds", URL: "file:///ds.git", Branch: "main"}},
		},
		rec:   &fakeRecords{},
		rt:    &fakeContainers{output: "hello\n"},
		git:   &fakeGit{files: []string{"control-1.csv"}},
		logs:  logs,
		clock: clockwork.NewFakeClockAt(time.Date(2026, 11, 22, 1, 2, 3, 0, time.UTC)),
	}
	opts := Options{Site: "s1", DataDir: "/var/mao", HostDataDir: "/host/mao", Logs: logs, Clock: f.clock}
	for _, edit := range edits {
		edit(&opts)
	}
	f.r = New(f.reg, f.rec, f.rt, f.git, opts)
	// A root orchestrator, whatever runs the tests; the data folders
	// (under /var/mao) do not exist, so there is nothing to chown.
	f.r.owner, f.r.privileged = owner{uid: 0, gid: 0}, true
	return f
}

// runToEnd starts a run of tool and waits until the runner is idle.
func (f *fixture) runToEnd(t *testing.T, tool string) api.Run {
	t.Helper()
	run, err := f.r.Start(context.Background(), tool, "")
	if err != nil {
		t.Fatal(err)
	}
	f.r.Shutdown(context.Background())
	return f.rec.last(run.ID)
}

func TestRunOutcomes(t *testing.T) {
	tests := []struct {
		name      string
		setup     func(*fixture)
		tool      string
		state     api.RunState
		exitCode  int // -1: none recorded
		reason    string
		committed bool
		ranImage  bool
	}{
		{"success", func(*fixture) {}, "t1", api.StateSucceeded, 0, "", true, true},
		{"exit 3", func(f *fixture) { f.rt.exit = container.Exit{Code: 3} }, "t1", api.StateFailed, 3, "exit code 3", false, true},
		{"timeout", func(f *fixture) { f.rt.exit = container.Exit{Code: 137, TimedOut: true} }, "t1", api.StateTimedOut, 137, "timed out after 2m0s; the container was stopped", false, true},
		{"git error", func(f *fixture) { f.git.syncErr = errors.New("clone file:///data.git: repository not found") }, "t1",
			api.StateFailed, -1, "data repository: clone file:///data.git: repository not found", false, false},
		{"pull error", func(f *fixture) { f.rt.imageErr = errors.New("pull img:1: connection refused") }, "t1",
			api.StateFailed, -1, "image: pull img:1: connection refused", false, false},
		{"with input dataset", func(*fixture) {}, "t2", api.StateSucceeded, 0, "", true, true},
		{"missing input dataset", func(f *fixture) { delete(f.reg.datasets, "ds") }, "t2", api.StateFailed, -1, "input dataset ds: dataset ds: not found", false, false},
		// The output of a run whose commit failed is discarded like a
		// failed run's, so that the next run's commit does not take it in.
		{"commit error", func(f *fixture) { f.git.commitErr = errors.New("disk full") }, "t1", api.StateFailed, 0,
			"commit the run's output: disk full", false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			tc.setup(f)
			run := f.runToEnd(t, tc.tool)
			if run.State != tc.state || run.Reason != tc.reason {
				t.Fatalf("state %s reason %q, want %s %q", run.State, run.Reason, tc.state, tc.reason)
			}
			if got := f.rec.states(run.ID); !slices.Equal(got, []api.RunState{api.StatePending, api.StateRunning, tc.state}) {
				t.Errorf("state history %v", got)
			}
			if (run.ExitCode == nil) != (tc.exitCode == -1) || (run.ExitCode != nil && *run.ExitCode != tc.exitCode) {
				t.Errorf("exit code %v, want %d", run.ExitCode, tc.exitCode)
			}
			if run.FinishedAt == nil || run.StartedAt == nil {
				t.Errorf("times not recorded: %+v", run)
			}
			if got := f.git.commits == 1 && f.git.commitErr == nil; got != tc.committed {
				t.Errorf("committed = %v, want %v", got, tc.committed)
			}
			if tc.committed && (run.DataCommitAfter != "c1" || run.DataCommitBefore != "c0" || !slices.Equal(run.Files, []string{"control-1.csv"})) {
				t.Errorf("commits %s→%s files %v", run.DataCommitBefore, run.DataCommitAfter, run.Files)
			}
			if !tc.committed && tc.ranImage && len(f.git.discarded) != 1 {
				t.Errorf("a failed run's output was not discarded")
			}
			if got := len(f.rt.specs) == 1; got != tc.ranImage {
				t.Errorf("container ran = %v, want %v", got, tc.ranImage)
			}
			var log bytes.Buffer
			if err := f.logs.Copy(context.Background(), run.ID, false, &log, nil); err != nil {
				t.Fatal(err)
			}
			if tc.ranImage && !strings.HasPrefix(log.String(), "hello\n") {
				t.Errorf("log %q does not start with the container output", log.String())
			}
			if tc.reason != "" && !strings.Contains(log.String(), tc.reason) {
				t.Errorf("log %q does not give the reason", log.String())
			}
		})
	}
}

func TestContainerSpec(t *testing.T) {
	f := newFixture(t)
	run := f.runToEnd(t, "t1")
	spec := f.rt.specs[0]
	want := container.Spec{
		Name:      "mao-" + run.ID + "-1",
		Image:     "sha256:img:1",
		Env:       []string{"K=v", "MAO_RUN_ID=" + run.ID, "MAO_SCHEDULED_TIME=2026-11-22T01:02:03Z", "MAO_SITE=s1", "MAO_TOOL=t1"},
		Labels:    map[string]string{LabelRun: run.ID, LabelAttempt: "1", LabelTool: "t1", LabelSite: "s1"},
		Mounts:    []container.Mount{{Source: "/host/mao/repos/t1", Target: "/usr/src/app/data"}},
		NanoCPUs:  5e8,
		Memory:    64 << 20,
		PidsLimit: 4096,
		Network:   "none",
		Timeout:   2 * time.Minute,
	}
	if spec.Name != want.Name || spec.Image != want.Image || !slices.Equal(spec.Env, want.Env) ||
		!slices.Equal(spec.Mounts, want.Mounts) || spec.NanoCPUs != want.NanoCPUs || spec.Memory != want.Memory ||
		spec.PidsLimit != want.PidsLimit || spec.User != want.User ||
		spec.Network != want.Network || spec.Timeout != want.Timeout || !maps.Equal(spec.Labels, want.Labels) {
		t.Fatalf("spec\n got %+v\nwant %+v", spec, want)
	}
	if !strings.HasPrefix(run.ID, "t1-1795309323-") || run.ImageID != "sha256:img:1" || run.Trigger != "manual" {
		t.Fatalf("run %+v", run)
	}

	f = newFixture(t)
	run = f.runToEnd(t, "t2")
	mounts := f.rt.specs[0].Mounts
	if len(mounts) != 2 || mounts[1] != (container.Mount{Source: "/host/mao/datasets/ds", Target: "/usr/src/app/input", ReadOnly: true}) {
		t.Fatalf("mounts %+v", mounts)
	}
	if !slices.Contains(f.git.synced, "/var/mao/datasets/ds@file:///ds.git#main") || run.InputCommit != "c1" {
		t.Fatalf("dataset not synced: %v, run %+v", f.git.synced, run)
	}
}

func TestStartUnknownTool(t *testing.T) {
	f := newFixture(t)
	if _, err := f.r.Start(context.Background(), "nope", ""); !errors.Is(err, errNotFound) {
		t.Fatalf("err = %v", err)
	}
	if runs, _ := f.rec.Runs(context.Background(), ""); len(runs) != 0 {
		t.Fatalf("a run was recorded: %v", runs)
	}
}

func TestRunsOfOneToolDoNotOverlap(t *testing.T) {
	f := newFixture(t)
	for range 5 {
		if _, err := f.r.Start(context.Background(), "t1", ""); err != nil {
			t.Fatal(err)
		}
	}
	f.r.Shutdown(context.Background())
	if f.rt.maxConc != 1 || len(f.rt.specs) != 5 {
		t.Fatalf("%d runs, at most %d at once; want 5, 1", len(f.rt.specs), f.rt.maxConc)
	}
}

func TestShutdownInterruptsRuns(t *testing.T) {
	f := newFixture(t)
	f.rt.block = true
	f.rt.started = make(chan struct{}, 1)
	run, err := f.r.Start(context.Background(), "t1", "")
	if err != nil {
		t.Fatal(err)
	}
	<-f.rt.started
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // no grace at all
	f.r.Shutdown(ctx)
	got := f.rec.last(run.ID)
	if got.State != api.StateFailed || !strings.Contains(got.Reason, "shut down") {
		t.Fatalf("run after shutdown: %s %q", got.State, got.Reason)
	}
	if _, err := f.r.Start(context.Background(), "t1", ""); !errors.Is(err, ErrShuttingDown) {
		t.Fatalf("start after shutdown: %v", err)
	}
}

func TestAbandonStopsRunsWithItsCause(t *testing.T) {
	f := newFixture(t)
	f.rt.block = true
	f.rt.started = make(chan struct{}, 1)
	run, err := f.r.Start(context.Background(), "t1", "")
	if err != nil {
		t.Fatal(err)
	}
	<-f.rt.started
	f.r.Abandon(errors.New("the site's lease expired"))
	f.r.Shutdown(context.Background()) // waits for the run's goroutine
	got := f.rec.last(run.ID)
	if got.State != api.StateFailed || got.Reason != "interrupted: the site's lease expired" {
		t.Fatalf("abandoned run: %s %q", got.State, got.Reason)
	}
}

func TestRecover(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	for _, r := range []api.Run{
		{ID: "t1-pending", Tool: "t1", Site: "s1", State: api.StatePending},
		{ID: "t1-running", Tool: "t1", Site: "s1", State: api.StateRunning},
		{ID: "gone-pending", Tool: "gone", Site: "s1", State: api.StatePending},
		{ID: "t1-other-site", Tool: "t1", Site: "s2", State: api.StateRunning},
		{ID: "t1-done", Tool: "t1", Site: "s1", State: api.StateSucceeded},
	} {
		f.rec.CreateRun(ctx, r)
	}
	if err := f.r.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	f.r.Shutdown(ctx)
	want := map[string]api.RunState{
		"t1-pending":    api.StateSucceeded,
		"t1-running":    api.StateFailed,
		"gone-pending":  api.StateFailed,
		"t1-other-site": api.StateRunning,
		"t1-done":       api.StateSucceeded,
	}
	for id, state := range want {
		if got := f.rec.last(id); got.State != state {
			t.Errorf("%s: %s (%s), want %s", id, got.State, got.Reason, state)
		}
	}
	slices.Sort(f.rt.removed)
	if !slices.Equal(f.rt.removed, []string{"mao.run=gone-pending", "mao.run=t1-pending", "mao.run=t1-running"}) {
		t.Errorf("removed containers %v", f.rt.removed)
	}
}

func TestRecoverCleansBeforeRestarting(t *testing.T) {
	f := newFixture(t)
	f.rt.rmErr = errors.New("docker is down") // a warning, not a reason to stop
	ctx := context.Background()
	f.rec.CreateRun(ctx, api.Run{ID: "t1-new", Tool: "t1", Site: "s1", State: api.StatePending, CreatedAt: time.Unix(20, 0)})
	f.rec.CreateRun(ctx, api.Run{ID: "t1-old", Tool: "t1", Site: "s1", State: api.StateRunning, CreatedAt: time.Unix(10, 0)})
	if err := f.r.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	f.r.Shutdown(ctx)
	want := []string{"discard /var/mao/repos/t1", "sync /var/mao/repos/t1"}
	if len(f.git.calls) < 2 || !slices.Equal(f.git.calls[:2], want) {
		t.Fatalf("git calls %v, want %v first", f.git.calls, want)
	}
	if got := f.rec.last("t1-new"); got.State != api.StateSucceeded {
		t.Fatalf("restarted run: %s %s", got.State, got.Reason)
	}
}

func TestPrepareTimeout(t *testing.T) {
	f := newFixture(t)
	f.git.hang = true
	f.r.opts.PrepareTimeout = 50 * time.Millisecond
	run := f.runToEnd(t, "t1")
	if run.State != api.StateFailed || !strings.Contains(run.Reason, "deadline exceeded") {
		t.Fatalf("%s %q", run.State, run.Reason)
	}
}

func TestInputDatasetStaysPutWhileRead(t *testing.T) {
	f := newFixture(t)
	f.reg.tools["t3"] = toolspec.Tool{Name: "t3", Author: "a", Image: "img:3", DataRepo: "file:///d3.git", InputDataset: "ds"}
	f.rt.gate = make(chan struct{})
	f.rt.started = make(chan struct{}, 3)
	f.rec.ended = make(chan string, 3)
	ctx := context.Background()
	first, err := f.r.Start(ctx, "t2", "")
	if err != nil {
		t.Fatal(err)
	}
	<-f.rt.started // t2 reads the dataset now
	second, err := f.r.Start(ctx, "t3", "")
	if err != nil {
		t.Fatal(err)
	}
	<-f.rt.started
	close(f.rt.gate)
	<-f.rec.ended
	<-f.rec.ended
	var dsSyncs int
	for _, c := range f.git.calls {
		if c == "sync /var/mao/datasets/ds" {
			dsSyncs++
		}
	}
	a, b := f.rec.last(first.ID), f.rec.last(second.ID)
	if dsSyncs != 1 || a.InputCommit == "" || a.InputCommit != b.InputCommit {
		t.Fatalf("dataset synced %d times while read; commits %q and %q", dsSyncs, a.InputCommit, b.InputCommit)
	}
	// Once nobody reads it, the next run syncs it again.
	third := f.runToEnd(t, "t3")
	if third.InputCommit == a.InputCommit {
		t.Fatalf("dataset not synced once idle: %q", third.InputCommit)
	}
}

// scheduledRun is a claimed run of t1 for a schedule with retries.
func scheduledRun(f *fixture, retries int) (api.Run, toolspec.Tool) {
	tool := f.reg.tools["t1"]
	tick := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	sch := toolspec.Schedule{ID: "t1-daily-abcd", Tool: "t1", Retries: retries, RetryDelay: "1m",
		Env: map[string]string{"K": "from-schedule", "EXTRA": "1"}}
	return runs.NewTick(runs.Tick(sch.ID, tick), sch, tool, "s1", api.TriggerSchedule, f.clock.Now()), tool
}

func TestRetries(t *testing.T) {
	tests := []struct {
		name     string
		exits    []container.Exit
		state    api.RunState
		attempts int
	}{
		{"fails every attempt", []container.Exit{{Code: 3}, {Code: 3}, {Code: 3}}, api.StateFailed, 3},
		{"succeeds on the second", []container.Exit{{Code: 3}, {Code: 0}}, api.StateSucceeded, 2},
		{"timeout then success", []container.Exit{{Code: 137, TimedOut: true}, {Code: 0}}, api.StateSucceeded, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.rt.exits = tc.exits
			f.rec.ended = make(chan string, 1)
			run, tool := scheduledRun(f, 2)
			ctx := context.Background()
			if err := f.r.Launch(ctx, run, tool); err != nil {
				t.Fatal(err)
			}
			for range tc.attempts - 1 {
				f.clock.BlockUntilContext(ctx, 1) // the runner waits for the retry delay
				f.clock.Advance(time.Minute)
			}
			<-f.rec.ended
			got := f.rec.last(run.ID)
			if got.State != tc.state || got.Attempt != tc.attempts || len(got.Attempts) != tc.attempts-1 {
				t.Fatalf("state %s attempt %d with %d earlier: %+v", got.State, got.Attempt, len(got.Attempts), got)
			}
			if got.Attempts[0].Attempt != 1 || got.Attempts[0].State == api.StateSucceeded || got.Attempts[0].FinishedAt == nil {
				t.Errorf("first attempt: %+v", got.Attempts[0])
			}
			var pendings int
			for _, s := range f.rec.states(run.ID) {
				if s == api.StatePending {
					pendings++
				}
			}
			if pendings != tc.attempts-1 {
				t.Errorf("history %v: want a pending state before each retry", f.rec.states(run.ID))
			}
			for i, spec := range f.rt.specs { // each attempt its own container
				if want := fmt.Sprintf("mao-%s-%d", run.ID, i+1); spec.Name != want || spec.Labels[LabelAttempt] != strconv.Itoa(i+1) {
					t.Errorf("attempt %d ran in container %s (label %s), want %s", i+1, spec.Name, spec.Labels[LabelAttempt], want)
				}
			}
			spec := f.rt.specs[0]
			if !slices.Contains(spec.Env, "K=from-schedule") || !slices.Contains(spec.Env, "EXTRA=1") ||
				!slices.Contains(spec.Env, "MAO_SCHEDULED_TIME=2026-11-22T00:00:00Z") {
				t.Errorf("env %v", spec.Env)
			}
		})
	}
}

func TestShutdownDuringRetryDelayKeepsTheRunPending(t *testing.T) {
	f := newFixture(t)
	f.rt.exit = container.Exit{Code: 1}
	run, tool := scheduledRun(f, 1)
	ctx := context.Background()
	if err := f.r.Launch(ctx, run, tool); err != nil {
		t.Fatal(err)
	}
	f.clock.BlockUntilContext(ctx, 1)
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	f.r.Shutdown(cancelled)
	got := f.rec.last(run.ID)
	if got.State != api.StatePending || got.RetryAt == nil || got.Attempt != 2 {
		t.Fatalf("after shutdown: %s attempt %d retry at %v", got.State, got.Attempt, got.RetryAt)
	}
}

func TestLaunchIsIdempotent(t *testing.T) {
	f := newFixture(t)
	f.rt.gate = make(chan struct{})
	f.rt.started = make(chan struct{}, 2)
	run, tool := scheduledRun(f, 0)
	ctx := context.Background()
	for range 3 {
		if err := f.r.Launch(ctx, run, tool); err != nil {
			t.Fatal(err)
		}
	}
	<-f.rt.started
	close(f.rt.gate)
	f.r.Shutdown(ctx)
	if len(f.rt.specs) != 1 {
		t.Fatalf("a run launched three times ran %d times", len(f.rt.specs))
	}
}

func TestRecoverRetriesAnInterruptedAttempt(t *testing.T) {
	f := newFixture(t)
	f.rec.ended = make(chan string, 1)
	run, _ := scheduledRun(f, 1)
	run.State = api.StateRunning
	ctx := context.Background()
	f.rec.CreateRun(ctx, run)
	if err := f.r.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	got := f.rec.last(run.ID)
	if got.State != api.StatePending || got.Attempt != 2 || len(got.Attempts) != 1 || !strings.Contains(got.Attempts[0].Reason, "interrupted") {
		t.Fatalf("after recovery: %+v", got)
	}
	f.clock.BlockUntilContext(ctx, 1)
	f.clock.Advance(time.Minute)
	<-f.rec.ended
	if got := f.rec.last(run.ID); got.State != api.StateSucceeded || got.Attempt != 2 {
		t.Fatalf("second attempt: %s attempt %d", got.State, got.Attempt)
	}
}

// TestAbandonedRunRunsAgainWhenClaimedAgain: after its site lost its
// lease, a run is abandoned; when the same site claims the run's next
// attempt, it runs.
func TestAbandonedRunRunsAgainWhenClaimedAgain(t *testing.T) {
	f := newFixture(t)
	f.rt.block = true
	f.rt.started = make(chan struct{}, 2)
	run, tool := scheduledRun(f, 1)
	ctx := context.Background()
	if err := f.r.Launch(ctx, run, tool); err != nil {
		t.Fatal(err)
	}
	<-f.rt.started
	f.r.Abandon(errors.New("the site's lease expired")) // returns once the run has ended
	f.rt.block = false
	run.Attempt = 2 // as LoseRun requests it again
	if err := f.r.Launch(ctx, run, tool); err != nil {
		t.Fatal(err)
	}
	f.r.Shutdown(ctx)
	if got := f.rec.last(run.ID); len(f.rt.specs) != 2 || got.State != api.StateSucceeded || got.Attempt != 2 {
		t.Fatalf("%d runs; last record %s, attempt %d", len(f.rt.specs), got.State, got.Attempt)
	}
}

// fakeOutbox notes what the runner queued.
type fakeOutbox struct {
	mu     sync.Mutex
	queued []string // run@commit
}

func (f *fakeOutbox) Enqueue(run api.Run, _ toolspec.Tool, commit string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queued = append(f.queued, run.ID+"@"+commit)
}

// TestSuccessfulRunsGoToTheOutbox: the commit a successful run kept is
// queued for its data repository, and its record says the push is
// pending; a tool with push: off, a failed run and a run that wrote
// nothing queue nothing, and their records have no push.
func TestSuccessfulRunsGoToTheOutbox(t *testing.T) {
	tests := []struct {
		name   string
		setup  func(*fixture)
		push   string
		queued bool
	}{
		{"push: branch (the default)", func(*fixture) {}, "", true},
		{"push: site-branch", func(*fixture) {}, toolspec.PushSiteBranch, true},
		{"push: off", func(*fixture) {}, toolspec.PushOff, false},
		{"a failed run", func(f *fixture) { f.rt.exit = container.Exit{Code: 1} }, "", false},
		{"nothing written", func(f *fixture) { f.git.files = nil; f.git.same = true }, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			box := &fakeOutbox{}
			f := newFixture(t, func(o *Options) { o.Outbox = box })
			tool := f.reg.tools["t1"]
			tool.Push = tc.push
			f.reg.tools["t1"] = tool
			tc.setup(f)
			run := f.runToEnd(t, "t1")
			var want []string
			if tc.queued {
				want = []string{run.ID + "@" + run.DataCommitAfter}
			}
			if !slices.Equal(box.queued, want) {
				t.Errorf("queued %v, want %v", box.queued, want)
			}
			switch {
			case tc.queued && (run.Push == nil || run.Push.State != api.PushPending):
				t.Errorf("push %+v, want pending", run.Push)
			case !tc.queued && run.Push != nil:
				t.Errorf("push %+v, want none", run.Push)
			}
		})
	}
}

// TestRecoverReplays checks what a restart does with replays a previous
// life left: a running one is failed and only its scratch goes (never a
// discard in the site's clone of the tool), and scratch left by a replay
// that ended is swept.
func TestRecoverReplays(t *testing.T) {
	f := newFixture(t)
	f.r.opts.DataDir = t.TempDir()
	ctx := context.Background()
	replay := &api.Replay{Of: "t1-1", Site: "s1"}
	for _, r := range []api.Run{
		{ID: "t1-running", Tool: "t1", Site: "s1", State: api.StateRunning, Replay: replay},
		{ID: "t1-ended", Tool: "t1", Site: "s1", State: api.StateSucceeded, Replay: replay},
	} {
		f.rec.CreateRun(ctx, r)
		if err := os.MkdirAll(filepath.Join(f.r.opts.DataDir, replaysDir, r.ID, "data"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.r.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	f.r.Shutdown(ctx)
	if got := f.rec.last("t1-running"); got.State != api.StateFailed {
		t.Errorf("interrupted replay: %s", got.State)
	}
	if len(f.git.discarded) != 0 {
		t.Errorf("discarded %v; a replay never touches the site's clone", f.git.discarded)
	}
	if left, _ := os.ReadDir(filepath.Join(f.r.opts.DataDir, replaysDir)); len(left) != 0 {
		t.Errorf("scratch left: %v", left)
	}
}

// TestSyncWhileCreating checks that the sync of a run's folders is off
// the path to its container's start when the folders exist: the container
// is created while they sync, and starts once they have. A first clone is
// synced before the container that mounts it is created; a sync that
// fails fails the run, with no container started.
func TestSyncWhileCreating(t *testing.T) {
	tests := []struct {
		name          string
		tool          string
		dirs          []string // folders under the data directory that exist
		syncErr       error
		createdBefore bool // the container was created before the sync began
		state         api.RunState
		reason        string
	}{
		{"clone exists", "t1", []string{"repos/t1"}, nil, true, api.StateSucceeded, ""},
		{"first clone", "t1", nil, nil, false, api.StateSucceeded, ""},
		{"clone and input dataset exist", "t2", []string{"repos/t2", "datasets/ds"}, nil, true, api.StateSucceeded, ""},
		{"input dataset's first clone", "t2", []string{"repos/t2"}, nil, false, api.StateSucceeded, ""},
		{"sync fails", "t1", []string{"repos/t1"}, errors.New("fetch: remote hung up"), true, api.StateFailed,
			"data repository: fetch: remote hung up"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dataDir := t.TempDir()
			for _, d := range tc.dirs {
				if err := os.MkdirAll(filepath.Join(dataDir, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			f := newFixture(t, func(o *Options) { o.DataDir, o.HostDataDir = dataDir, "" })
			f.git.syncErr = tc.syncErr
			f.rt.created = make(chan struct{}, 1)
			var createdBefore []bool
			f.git.onSync = func() {
				if tc.createdBefore && len(createdBefore) == 0 {
					// Waits for the create: a runner that syncs first
					// never creates, and the wait ends without it.
					select {
					case <-f.rt.created:
						createdBefore = append(createdBefore, true)
					case <-time.After(10 * time.Second):
						createdBefore = append(createdBefore, false)
					}
					return
				}
				createdBefore = append(createdBefore, len(f.rt.created) > 0)
			}
			run := f.runToEnd(t, tc.tool)
			if run.State != tc.state || run.Reason != tc.reason {
				t.Fatalf("state %s reason %q, want %s %q", run.State, run.Reason, tc.state, tc.reason)
			}
			if len(createdBefore) == 0 || createdBefore[0] != tc.createdBefore {
				t.Errorf("created before the sync began: %v, want %v", createdBefore, tc.createdBefore)
			}
			if started := len(f.rt.specs) == 1; started != (tc.syncErr == nil) {
				t.Errorf("container started: %v", started)
			}
			if tc.syncErr == nil && (run.DataCommitBefore != "c0" || (tc.tool == "t2" && run.InputCommit == "")) {
				t.Errorf("the sync's commits are not recorded: %+v", run)
			}
		})
	}
}
