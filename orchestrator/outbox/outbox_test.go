package outbox_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/internal/gitserver"
	"github.com/mao-research/mao/orchestrator/errs"
	"github.com/mao-research/mao/orchestrator/gitrepo"
	"github.com/mao-research/mao/orchestrator/outbox"
	"github.com/mao-research/mao/toolspec"
)

const site = "lab-a"

var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

// repos pushes with gitrepo, as the daemon's adapter does, and notes the
// clock's time of each attempt.
type repos struct {
	r     *gitrepo.Repos
	clock clockwork.Clock
	mu    sync.Mutex
	at    []time.Duration // since t0
	done  chan error      // each attempt's error, once it returned
}

func (g *repos) Push(ctx context.Context, dir string, req outbox.PushRequest) ([]outbox.Pushed, error) {
	g.mu.Lock()
	g.at = append(g.at, g.clock.Now().Sub(t0))
	g.mu.Unlock()
	res, err := g.r.Push(ctx, dir, gitrepo.PushOptions{Branch: req.Branch, ConflictBranch: req.ConflictBranch, Want: req.Want, Wait: req.Wait})
	out := make([]outbox.Pushed, len(res.Commits))
	for i, c := range res.Commits {
		out[i] = outbox.Pushed{Local: c.Local, Remote: c.Remote, Branch: c.Branch, Conflict: c.Conflict}
	}
	g.done <- err
	return out, err
}

func (g *repos) attempts() []time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.at)
}

// records keeps run records in memory, as the store does (a pure-logic
// stand-in), and tells each stored change.
type records struct {
	mu      sync.Mutex
	runs    map[string]api.Run
	changes chan api.Run
	refuse  error // when set, UpdateRun fails with it (etcd away or full)
}

func (f *records) setRefuse(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refuse = err
}

func newRecords() *records {
	return &records{runs: map[string]api.Run{}, changes: make(chan api.Run, 100)}
}

func (f *records) put(r api.Run) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.runs[r.ID] = r
}

func (f *records) get(id string) api.Run {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.runs[id]
}

func (f *records) PushingRuns(_ context.Context, site string) ([]api.Run, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []api.Run
	for _, r := range f.runs {
		if r.Site == site && r.Push != nil && !r.Push.State.Done() {
			out = append(out, r)
		}
	}
	return out, nil
}

func (f *records) UpdateRun(_ context.Context, id string, fn func(api.Run) (api.Run, error)) (api.Run, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.refuse != nil {
		return api.Run{}, f.refuse
	}
	cur, ok := f.runs[id]
	if !ok {
		return api.Run{}, errs.New(errs.ErrNotFound, "no run "+id)
	}
	next, err := fn(cur)
	if err != nil {
		return cur, err
	}
	f.runs[id] = next
	f.changes <- next
	return next, nil
}

// next waits for the next stored change of a run's push.
func (f *records) next(t *testing.T) api.Run {
	t.Helper()
	select {
	case r := <-f.changes:
		return r
	case <-time.After(30 * time.Second):
		t.Fatal("no record changed")
		return api.Run{}
	}
}

type tools map[string]toolspec.Tool

func (f tools) Tool(_ context.Context, name string) (toolspec.Tool, error) {
	if t, ok := f[name]; ok {
		return t, nil
	}
	return toolspec.Tool{}, errs.New(errs.ErrNotFound, "no tool "+name)
}

// alerts notes what it hears.
type alerts struct {
	mu      sync.Mutex
	failing []string
	landed  []string
}

func (a *alerts) PushFailing(r api.Run) {
	a.mu.Lock()
	a.failing = append(a.failing, r.ID)
	a.mu.Unlock()
}
func (a *alerts) PushLanded(r api.Run) { a.mu.Lock(); a.landed = append(a.landed, r.ID); a.mu.Unlock() }
func (a *alerts) heard() (failing, landed []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.failing), slices.Clone(a.landed)
}

// world is a site's data directory with one tool's clone of a bare
// repository behind a gate, and an outbox over them.
type world struct {
	t       *testing.T
	bare    *gitserver.Repos
	gate    *gitserver.Gate
	git     *repos
	rec     *records
	alerts  *alerts
	clock   *clockwork.FakeClock
	dir     string // the clone
	tool    toolspec.Tool
	box     *outbox.Outbox
	stopped chan struct{}
}

func newWorld(t *testing.T, opts outbox.Options) *world {
	t.Helper()
	w := &world{t: t, bare: gitserver.New(t), rec: newRecords(), alerts: &alerts{}, clock: clockwork.NewFakeClockAt(t0)}
	w.bare.Bare(t, "data", nil)
	var base string
	base, w.gate = w.bare.GatedDaemon(t)
	data := t.TempDir()
	w.dir = filepath.Join(data, "repos", "crawler")
	r := gitrepo.New(gitrepo.Options{Now: w.clock.Now})
	w.git = &repos{r: r, clock: w.clock, done: make(chan error, 100)}
	if _, _, err := r.Sync(context.Background(), w.dir, base+"data.git", ""); err != nil {
		t.Fatal(err)
	}
	w.tool = toolspec.Tool{Name: "crawler", DataRepo: base + "data.git"}
	opts.Site, opts.DataDir, opts.Clock, opts.Alerts = site, data, w.clock, w.alerts
	w.box = outbox.New(w.git, w.rec, tools{"crawler": w.tool}, opts)
	return w
}

func (w *world) start() {
	ctx, cancel := context.WithCancel(context.Background())
	w.stopped = make(chan struct{})
	go func() { defer close(w.stopped); w.box.Run(ctx) }()
	w.t.Cleanup(func() { cancel(); <-w.stopped })
}

// commit makes a run's commit in the clone, and its record.
func (w *world) commit(id string, state api.RunState) api.Run {
	w.t.Helper()
	if err := writeFile(w.dir, id+".csv", id); err != nil {
		w.t.Fatal(err)
	}
	h, _, err := w.git.r.Commit(context.Background(), w.dir, "run "+id, nil)
	if err != nil {
		w.t.Fatal(err)
	}
	r := api.Run{ID: id, Tool: "crawler", Site: site, State: state, DataCommitAfter: h, CreatedAt: t0}
	if state == api.StateSucceeded {
		r.Push = &api.Push{State: api.PushPending, QueuedAt: t0}
	}
	w.rec.put(r)
	return r
}

// waitIdle waits until the worker waits on the clock (n timers).
func (w *world) waitIdle(n int) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.clock.BlockUntilContext(ctx, n); err != nil {
		w.t.Fatalf("the outbox did not wait on the clock: %v", err)
	}
}

// TestBackoffAndPushFailed: while the remote is down, a clone's pushes
// are tried after 1s, 2s, 4s, ... up to the ceiling; each failure is
// recorded (reason, count); Alerts hears once of a run whose push failed
// for longer than FailedAfter. A new run's commit is tried at once; when
// the remote is back every queued commit lands, in order, and Alerts
// hears that the failing one landed.
func TestBackoffAndPushFailed(t *testing.T) {
	w := newWorld(t, outbox.Options{RetryMin: time.Second, RetryMax: 8 * time.Second, FailedAfter: 20 * time.Second})
	w.gate.Down()
	r1 := w.commit("r1", api.StateSucceeded)
	w.box.Enqueue(r1, w.tool, r1.DataCommitAfter)
	w.start()
	if got := w.rec.next(t); got.Push.State != api.PushFailed || got.Push.Attempts != 1 || !strings.Contains(got.Push.Reason, "push to git://") {
		t.Fatalf("after the first attempt: %+v", got.Push)
	}
	w.waitIdle(1)
	for w.clock.Since(t0) < 31*time.Second {
		w.clock.Advance(time.Second)
		w.waitIdle(1)
	}
	want := []time.Duration{0, 1, 3, 7, 15, 23, 31}
	for i := range want {
		want[i] *= time.Second
	}
	if got := w.git.attempts(); !slices.Equal(got, want) {
		t.Fatalf("attempts at %v, want %v", got, want)
	}
	if got := w.rec.get("r1").Push; got.State != api.PushFailed || got.Attempts != len(want) || !got.FailedAt.Equal(t0) {
		t.Fatalf("r1's push after %d attempts: %+v", len(want), got)
	}
	if failing, _ := w.alerts.heard(); !slices.Equal(failing, []string{"r1"}) {
		t.Fatalf("alerts heard of failing pushes %v, want r1 once", failing)
	}

	for len(w.rec.changes) > 0 { // the failures recorded, while the worker waits
		<-w.rec.changes
	}
	w.gate.Up()
	r2 := w.commit("r2", api.StateSucceeded)
	w.box.Enqueue(r2, w.tool, r2.DataCommitAfter) // tried at once
	got := map[string]api.Run{}
	for len(got) < 2 {
		r := w.rec.next(t)
		got[r.ID] = r
	}
	for id, r := range got {
		if r.Push.State != api.PushPushed || r.Push.Branch != "main" || r.Push.Commit != r.DataCommitAfter || !r.Push.PushedAt.Equal(w.clock.Now()) {
			t.Errorf("%s: %+v", id, r.Push)
		}
	}
	if log, _ := w.bare.Log(t, "data", "main"); !slices.Equal(log, []string{"run r2", "run r1", "initial"}) {
		t.Errorf("main = %v", log)
	}
	if _, landed := w.alerts.heard(); !slices.Equal(landed, []string{"r1"}) {
		t.Errorf("alerts heard of landed pushes %v, want r1 (r2 never failed)", landed)
	}
	if p := w.box.Pending(); len(p) != 0 {
		t.Errorf("still pending: %v", p)
	}
}

// TestRecordWaitsForTheFinalRecord: the runner queues a commit before it
// stores the run's final record; a push that lands first, or fails first,
// is recorded once Ended says the record is stored.
func TestRecordWaitsForTheFinalRecord(t *testing.T) {
	tests := []struct {
		name  string
		down  bool
		check func(t *testing.T, p *api.Push)
	}{
		{"landed", false, func(t *testing.T, p *api.Push) {
			if p.State != api.PushPushed || p.Attempts != 0 {
				t.Errorf("after Ended: %+v, want pushed", p)
			}
		}},
		{"failed", true, func(t *testing.T, p *api.Push) {
			if p.State != api.PushFailed || p.Attempts != 1 || !strings.Contains(p.Reason, "push to git://") || !p.FailedAt.Equal(t0) {
				t.Errorf("after Ended: %+v, want failed once at t0", p)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, outbox.Options{RetryMin: time.Hour, RetryMax: time.Hour})
			if tc.down {
				w.gate.Down()
			}
			r := w.commit("r1", api.StateRunning)
			w.box.Enqueue(r, w.tool, r.DataCommitAfter)
			w.start()
			// The attempt ends (the one of the clone found at the start
			// may come first); the record is left alone while the run
			// runs.
			for {
				err := <-w.git.done
				if tc.down && err == nil || !tc.down && err != nil {
					t.Fatalf("the attempt: %v", err)
				}
				if log, _ := w.bare.Log(t, "data", "main"); tc.down || log[0] == "run r1" {
					break
				}
			}
			if p := w.rec.get("r1").Push; p != nil {
				t.Fatalf("the running run's record was changed: %+v", p)
			}
			final := r
			final.State, final.Push = api.StateSucceeded, &api.Push{State: api.PushPending, QueuedAt: t0}
			w.rec.put(final)
			w.box.Ended(final)
			got := w.rec.next(t)
			if got.Push.Commit != "" && got.Push.Commit != r.DataCommitAfter {
				t.Errorf("commit %s, want %s", got.Push.Commit, r.DataCommitAfter)
			}
			tc.check(t, got.Push)
		})
	}
}

// TestRecordWhenEtcdRefuses: a push that landed while etcd refuses the
// record's write, away or full (NOSPACE), stays in the outbox, and is
// recorded once etcd takes writes again.
func TestRecordWhenEtcdRefuses(t *testing.T) {
	for _, refuse := range []error{errs.New(errs.ErrUnavailable, "etcd is away"), errs.New(errs.ErrFull, "etcd is full")} {
		t.Run(refuse.Error(), func(t *testing.T) {
			w := newWorld(t, outbox.Options{RetryMin: time.Second, RetryMax: time.Second})
			w.rec.setRefuse(refuse)
			r := w.commit("r1", api.StateSucceeded)
			w.box.Enqueue(r, w.tool, r.DataCommitAfter)
			w.start()
			for landed := false; !landed; { // the clone found at the start may come first
				if err := <-w.git.done; err != nil {
					t.Fatalf("the attempt: %v", err)
				}
				log, _ := w.bare.Log(t, "data", "main")
				landed = log[0] == "run r1"
			}
			w.waitIdle(1) // backing off, to record it later
			if p := w.box.Pending(); !slices.Equal(p["crawler"], []string{"r1"}) {
				t.Fatalf("pending %v; want r1 kept", p)
			}
			w.rec.setRefuse(nil)
			w.clock.Advance(time.Second)
			if got := w.rec.next(t); got.Push.State != api.PushPushed || got.Push.Commit != r.DataCommitAfter {
				t.Fatalf("recorded %+v; want pushed", got.Push)
			}
		})
	}
}

// TestResume: a new life of the site pushes what the previous one left:
// the commit of a run whose record says failed, a commit whose record was
// lost, and records the push of a commit that was sent but not recorded,
// without sending it again.
func TestResume(t *testing.T) {
	w := newWorld(t, outbox.Options{})
	sent := w.commit("sent", api.StateSucceeded)
	if _, err := w.git.r.Push(context.Background(), w.dir, gitrepo.PushOptions{}); err != nil {
		t.Fatal(err)
	}
	failed := w.commit("failed", api.StateSucceeded)
	w.rec.put(func() api.Run {
		failed.Push = &api.Push{State: api.PushFailed, Reason: "down", Attempts: 3, QueuedAt: t0, FailedAt: &t0}
		return failed
	}())
	w.commit("lost", api.StateRunning) // its final record never came
	w.rec.put(api.Run{ID: "elsewhere", Tool: "crawler", Site: "lab-b", State: api.StateSucceeded,
		Push: &api.Push{State: api.PushPending}, DataCommitAfter: sent.DataCommitAfter})
	w.start()
	got := map[string]api.Run{}
	for len(got) < 2 {
		r := w.rec.next(t)
		got[r.ID] = r
	}
	if p := got["sent"].Push; p.State != api.PushPushed || p.Commit != sent.DataCommitAfter {
		t.Errorf("sent: %+v", p)
	}
	if p := got["failed"].Push; p.State != api.PushPushed || p.Attempts != 3 || p.Commit != failed.DataCommitAfter {
		t.Errorf("failed: %+v", p)
	}
	if log, _ := w.bare.Log(t, "data", "main"); !slices.Equal(log, []string{"run lost", "run failed", "run sent", "initial"}) {
		t.Errorf("main = %v", log)
	}
	if r := w.rec.get("elsewhere"); r.Push.State != api.PushPending {
		t.Errorf("another site's run was recorded: %+v", r.Push)
	}
	if _, landed := w.alerts.heard(); !slices.Equal(landed, []string{"failed"}) {
		t.Errorf("landed %v", landed)
	}
}

func writeFile(dir, name, content string) error {
	return os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644)
}
