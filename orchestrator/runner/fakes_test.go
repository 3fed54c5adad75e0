package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/jonboulle/clockwork"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/detector"
	"github.com/mao-research/mao/orchestrator/container"
	"github.com/mao-research/mao/orchestrator/errs"
	"github.com/mao-research/mao/toolspec"
)

var errNotFound = errors.New("not found")

type fakeRegistry struct {
	tools    map[string]toolspec.Tool
	datasets map[string]toolspec.Dataset
}

func (f *fakeRegistry) Tool(_ context.Context, name string) (toolspec.Tool, error) {
	t, ok := f.tools[name]
	if !ok {
		return t, fmt.Errorf("tool %s: %w", name, errNotFound)
	}
	return t, nil
}

func (f *fakeRegistry) Dataset(_ context.Context, name string) (toolspec.Dataset, error) {
	d, ok := f.datasets[name]
	if !ok {
		return d, fmt.Errorf("dataset %s: %w", name, errNotFound)
	}
	return d, nil
}

// fakeRecords keeps every version of every run record.
type fakeRecords struct {
	mu      sync.Mutex
	history map[string][]api.Run
	ended   chan string // if not nil, receives the ID of each run recorded as ended
	// refuse, if set, says which records the store refuses, and why.
	refuse func(r api.Run) error
}

func (f *fakeRecords) CreateRun(_ context.Context, r api.Run) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.history == nil {
		f.history = map[string][]api.Run{}
	}
	if _, ok := f.history[r.ID]; ok {
		return errors.New("exists")
	}
	f.history[r.ID] = []api.Run{r}
	return nil
}

func (f *fakeRecords) SaveRun(_ context.Context, r api.Run) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.history == nil {
		f.history = map[string][]api.Run{}
	}
	if f.refuse != nil {
		if err := f.refuse(r); err != nil {
			return err
		}
	}
	f.history[r.ID] = append(f.history[r.ID], r)
	if f.ended != nil && r.State.Terminal() {
		f.ended <- r.ID
	}
	return nil
}

func (f *fakeRecords) HeldRuns(_ context.Context, site string) ([]api.Run, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []api.Run
	for _, h := range f.history {
		if r := h[len(h)-1]; r.Site == site && !r.State.Terminal() {
			out = append(out, r)
		}
	}
	return out, nil
}

// Runs lists every run's last record.
func (f *fakeRecords) Runs(context.Context, string) ([]api.Run, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []api.Run
	for _, h := range f.history {
		out = append(out, h[len(h)-1])
	}
	return out, nil
}

func (f *fakeRecords) last(id string) api.Run {
	f.mu.Lock()
	defer f.mu.Unlock()
	h := f.history[id]
	return h[len(h)-1]
}

func (f *fakeRecords) states(id string) []api.RunState {
	f.mu.Lock()
	defer f.mu.Unlock()
	var s []api.RunState
	for _, r := range f.history[id] {
		s = append(s, r.State)
	}
	return s
}

// fakeContainers plays a scripted exit, or blocks until ctx ends when block
// is set.
type fakeContainers struct {
	mu       sync.Mutex
	exit     container.Exit
	exits    []container.Exit // if not empty, the exits of successive runs; then exit
	output   string
	imageErr error
	block    bool
	gate     chan struct{}             // if not nil, Run waits for it to close
	started  chan struct{}             // receives once per Run, if not nil
	created  chan struct{}             // receives once per Run, before Ready, if not nil
	onRun    func(spec container.Spec) // if not nil, what the container does
	rmErr    error
	specs    []container.Spec
	removed  []string
	running  int
	maxConc  int
}

func (f *fakeContainers) EnsureImage(_ context.Context, ref string) (container.Image, error) {
	if f.imageErr != nil {
		return container.Image{}, f.imageErr
	}
	return container.Image{ID: "sha256:" + ref, Digest: ref + "@sha256:d"}, nil
}

func (f *fakeContainers) Run(ctx context.Context, spec container.Spec, w io.Writer) (container.Exit, error) {
	if f.created != nil {
		f.created <- struct{}{}
	}
	if spec.Ready != nil { // as the engine: created, removed when not ready
		if err := spec.Ready(ctx); err != nil {
			return container.Exit{}, err
		}
	}
	f.mu.Lock()
	f.specs = append(f.specs, spec)
	f.running++
	f.maxConc = max(f.maxConc, f.running)
	f.mu.Unlock()
	defer func() { f.mu.Lock(); f.running--; f.mu.Unlock() }()
	if f.started != nil {
		f.started <- struct{}{}
	}
	if f.onRun != nil {
		f.onRun(spec)
	}
	io.WriteString(w, f.output)
	if f.gate != nil {
		<-f.gate
	}
	if f.block {
		<-ctx.Done()
		return container.Exit{}, fmt.Errorf("run: %w", ctx.Err())
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.exits) > 0 {
		exit := f.exits[0]
		f.exits = f.exits[1:]
		return exit, nil
	}
	return f.exit, nil
}

func (f *fakeContainers) RemoveLabelled(_ context.Context, key, value string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.removed = append(f.removed, key+"="+value)
	return 1, f.rmErr
}

type fakeGit struct {
	mu        sync.Mutex
	syncErr   error
	note      string
	files     []string
	synced    []string // dir@url#branch
	commits   int
	discarded []string
	calls     []string // "sync DIR", "discard DIR", in order
	hang      bool     // Sync waits for its context to end
	commitErr error    // what Commit fails with, if set
	same      bool     // Commit makes no commit: it returns the first Sync's
	onSync    func()   // if set, called as Sync begins
}

func (f *fakeGit) Sync(ctx context.Context, dir, url, branch string) (string, string, error) {
	if f.onSync != nil {
		f.onSync()
	}
	if f.hang {
		<-ctx.Done()
		return "", "", fmt.Errorf("fetch %s: %w", url, ctx.Err())
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.synced = append(f.synced, dir+"@"+url+"#"+branch)
	f.calls = append(f.calls, "sync "+dir)
	return fmt.Sprintf("c%d", len(f.synced)-1), f.note, f.syncErr
}

// Commit commits the fake's files, if keep (called first, as gitrepo
// does before moving the branch) lets it.
func (f *fakeGit) Commit(_ context.Context, _, _ string, keep func() error) (string, []string, error) {
	if f.commitErr == nil && keep != nil {
		if err := keep(); err != nil {
			return "", nil, fmt.Errorf("not kept: %w", err)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.commits++
	if f.commitErr != nil {
		return "", nil, f.commitErr
	}
	if f.same {
		return "c0", f.files, nil
	}
	return fmt.Sprintf("c%d", f.commits), f.files, nil
}

func (f *fakeGit) Discard(_ context.Context, dir string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.discarded = append(f.discarded, dir)
	f.calls = append(f.calls, "discard "+dir)
	return f.files, nil
}

// Scratch and Compare are not faked: the runner's replays are tested over
// real clones (TestReplay).
func (f *fakeGit) Scratch(context.Context, string, string, string) error {
	return errors.New("fakeGit does not make scratch clones")
}

func (f *fakeGit) ScratchParent(context.Context, string, string, string) error {
	return errors.New("fakeGit does not make scratch clones")
}

func (f *fakeGit) ScratchLocal(context.Context, string, string, string) error {
	return errors.New("fakeGit does not make scratch clones")
}

func (f *fakeGit) Compare(context.Context, string, string, string) ([]container.Difference, error) {
	return nil, errors.New("fakeGit does not compare")
}

var (
	_ Registry   = (*fakeRegistry)(nil)
	_ Records    = (*fakeRecords)(nil)
	_ Containers = (*fakeContainers)(nil)
	_ Git        = (*fakeGit)(nil)
	_ Clock      = clockwork.NewFakeClock()
)

// fakeLease is the site's lease: Holds answers from a script, and Valid
// says valid unless lapsed.
type fakeLease struct {
	mu      sync.Mutex
	holds   []error   // answers of successive Holds calls; nil once used up
	asked   []api.Run // the runs Holds was asked about
	lapsed  bool
	renewed chan struct{}
	waiting chan struct{} // if not nil, receives when Valid says lapsed
}

func newFakeLease() *fakeLease { return &fakeLease{renewed: make(chan struct{})} }

func (l *fakeLease) Valid() (<-chan struct{}, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.lapsed {
		return l.renewed, nil
	}
	if l.waiting != nil {
		l.waiting <- struct{}{}
	}
	return l.renewed, errs.New(errs.ErrUnavailable, "this site's lease may have expired")
}

// renew makes the lease valid again and wakes those waiting for it.
func (l *fakeLease) renew() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lapsed = false
	close(l.renewed)
	l.renewed = make(chan struct{})
}

func (l *fakeLease) Holds(_ context.Context, run api.Run) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.asked = append(l.asked, run)
	if len(l.holds) == 0 {
		return nil
	}
	err := l.holds[0]
	l.holds = l.holds[1:]
	return err
}

func (l *fakeLease) calls() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.asked)
}

// fakeOutputs records what the detector was given and which runs ended.
type fakeOutputs struct {
	mu       sync.Mutex
	detected []string
	ended    []string
}

func (o *fakeOutputs) Detect(_ context.Context, run api.Run, _ toolspec.Tool, _ string) []detector.Verdict {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.detected = append(o.detected, run.ID)
	return []detector.Verdict{{Metric: "control", Status: detector.StatusOK}}
}

func (o *fakeOutputs) Ended(run api.Run) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.ended = append(o.ended, run.ID)
}

var (
	_ Lease   = (*fakeLease)(nil)
	_ Outputs = (*fakeOutputs)(nil)
)

// fakeOffline carries the runs it is told to, and says when that changes.
type fakeOffline struct {
	mu      sync.Mutex
	carries bool
	changed chan struct{}
}

func newFakeOffline(carries bool) *fakeOffline {
	return &fakeOffline{carries: carries, changed: make(chan struct{})}
}

func (o *fakeOffline) Carries(api.Run) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.carries
}

func (o *fakeOffline) Changed() <-chan struct{} {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.changed
}

// goOffline makes the site carry every run from now on.
func (o *fakeOffline) goOffline() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.carries = true
	close(o.changed)
	o.changed = make(chan struct{})
}

var _ Offline = (*fakeOffline)(nil)
