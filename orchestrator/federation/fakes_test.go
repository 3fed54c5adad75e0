package federation_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/orchestrator/errs"
	"github.com/mao-research/mao/orchestrator/federation"
	"github.com/mao-research/mao/orchestrator/runs"
	"github.com/mao-research/mao/toolspec"
)

// feed is a watch that the test drives. Each Watch call hands the test,
// through watches, the channel it returns; the test sends batches on it
// directly, so a send returns only once the watcher has taken the batch
// (and, the watchers being loops, has handled the one before). The
// channel is closed when the watcher's context ends.
type feed[E any] struct {
	watches chan chan E
	mu      sync.Mutex
	ends    map[chan E]func()
}

func newFeed[E any]() *feed[E] {
	return &feed[E]{watches: make(chan chan E, 8), ends: map[chan E]func(){}}
}

func (f *feed[E]) watch(ctx context.Context) <-chan E {
	ch := make(chan E)
	end := sync.OnceFunc(func() { close(ch) })
	f.mu.Lock()
	f.ends[ch] = end
	f.mu.Unlock()
	go func() { <-ctx.Done(); end() }()
	f.watches <- ch
	return ch
}

// fail ends the watch of ch, as a watch that fails does.
func (f *feed[E]) fail(ch chan E) {
	f.mu.Lock()
	end := f.ends[ch]
	f.mu.Unlock()
	end()
}

// fakeRequests is a RequestStore and Claims: Requests lists open, every
// claim wins unless its run ID is in lose, and writes are recorded.
type fakeRequests struct {
	open []runs.Request
	lose map[string]bool
	// notLive is how many claims fail as a store's do while the site is
	// not live (its lease expired).
	notLive int
	feed    *feed[[]runs.Request]
	fail    error // what RequestRun returns
	mu      sync.Mutex
	reqs    []requestCall
	claim   []string
	saved   []api.Run
}

type requestCall struct {
	run    api.Run
	fanOut bool
}

var (
	_ federation.RequestStore = (*fakeRequests)(nil)
	_ federation.Claims       = (*fakeRequests)(nil)
)

func newFakeRequests(open ...runs.Request) *fakeRequests {
	return &fakeRequests{open: open, lose: map[string]bool{}, feed: newFeed[[]runs.Request]()}
}

func (f *fakeRequests) RequestRun(_ context.Context, r api.Run) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return f.fail
	}
	req, ok := runs.RequestOf(r, r.CreatedAt)
	if !ok {
		return fmt.Errorf("run %s does not wait for a site", r.ID)
	}
	f.reqs = append(f.reqs, requestCall{r, req.FanOut})
	return nil
}

func (f *fakeRequests) Requests(context.Context) ([]runs.Request, int64, error) {
	return slices.Clone(f.open), 7, nil
}

func (f *fakeRequests) WatchRequests(ctx context.Context, _ int64) <-chan []runs.Request {
	return f.feed.watch(ctx)
}

func (f *fakeRequests) ClaimRequest(_ context.Context, id, site string) (api.Run, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.claim = append(f.claim, id)
	if f.notLive > 0 {
		f.notLive--
		return api.Run{}, false, errs.New(errs.ErrUnavailable, "this site is not live in etcd")
	}
	if f.lose[id] {
		return api.Run{}, false, nil
	}
	return api.Run{ID: id, Tool: "t", Site: site, State: api.StatePending}, true, nil
}

func (f *fakeRequests) SaveRun(_ context.Context, r api.Run) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.saved = append(f.saved, r)
	return nil
}

func (f *fakeRequests) calls() ([]requestCall, []string, []api.Run) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.reqs), slices.Clone(f.claim), slices.Clone(f.saved)
}

// fakeSites lists fixed sites.
type fakeSites []api.SiteInfo

var _ federation.Sites = fakeSites(nil)

func (f fakeSites) KnownSites(context.Context) ([]api.SiteInfo, error) { return f, nil }

// fakeTools looks tools up in a map; err, when set, is every answer.
type fakeTools struct {
	tools map[string]toolspec.Tool
	err   error
}

var _ federation.Tools = fakeTools{}

func (f fakeTools) Tool(_ context.Context, name string) (toolspec.Tool, error) {
	if f.err != nil {
		return toolspec.Tool{}, f.err
	}
	t, ok := f.tools[name]
	if !ok {
		return t, fmt.Errorf("no tool named %q: %w", name, errs.ErrNotFound)
	}
	return t, nil
}

// fakeUsable says which images are usable.
type fakeUsable map[string]bool

var _ federation.Usable = fakeUsable(nil)

func (f fakeUsable) CheckImage(_ context.Context, image string) error {
	if !f[image] {
		return fmt.Errorf("image %s is not here and its registry does not offer it", image)
	}
	return nil
}

// fakeLauncher records what it is asked to run.
type fakeLauncher struct {
	site     string
	mu       sync.Mutex
	started  []string
	launched []api.Run
	created  []api.Run
	tools    []toolspec.Tool
}

var _ federation.Launcher = (*fakeLauncher)(nil)

func (f *fakeLauncher) Start(_ context.Context, tool, requestedBy string) (api.Run, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.started = append(f.started, tool)
	return api.Run{ID: tool + "-local", Tool: tool, Site: f.site, State: api.StatePending, RequestedBy: requestedBy}, nil
}

func (f *fakeLauncher) Create(_ context.Context, run api.Run, tool toolspec.Tool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.created = append(f.created, run)
	f.tools = append(f.tools, tool)
	return nil
}

func (f *fakeLauncher) Launch(_ context.Context, run api.Run, tool toolspec.Tool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.launched = append(f.launched, run)
	f.tools = append(f.tools, tool)
	return nil
}

func (f *fakeLauncher) calls() ([]string, []api.Run, []toolspec.Tool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.started), slices.Clone(f.launched), slices.Clone(f.tools)
}

// fakeDepartures lists fixed live sites; the test drives departures.
type fakeDepartures struct {
	live []api.Site
	feed *feed[[]string]
}

var _ federation.Departures = (*fakeDepartures)(nil)

func (f *fakeDepartures) LiveSites(context.Context) ([]api.Site, int64, error) {
	return f.live, 42, nil
}

func (f *fakeDepartures) WatchDepartures(ctx context.Context, _ int64) <-chan []string {
	return f.feed.watch(ctx)
}

// fakeLosses holds fixed runs and records what LoseRun is asked.
type fakeLosses struct {
	held []api.Run
	mu   sync.Mutex
	lost []lossCall
}

type lossCall struct {
	id, dead string
	now      time.Time
}

var _ federation.Losses = (*fakeLosses)(nil)

func (f *fakeLosses) HeldRuns(_ context.Context, site string) ([]api.Run, error) {
	return slices.DeleteFunc(slices.Clone(f.held), func(r api.Run) bool { return site != "" && r.Site != site }), nil
}

func (f *fakeLosses) LoseRun(_ context.Context, id, dead string, now time.Time) (api.Run, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lost = append(f.lost, lossCall{id, dead, now})
	return api.Run{ID: id, State: api.StatePending, Target: &toolspec.Target{}}, true, nil
}

// takeLost returns the LoseRun calls so far, sorted by run ID, and forgets
// them.
func (f *fakeLosses) takeLost() []lossCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.lost
	f.lost = nil
	slices.SortFunc(out, func(a, b lossCall) int { return cmp.Compare(a.id, b.id) })
	return out
}

// fakeChecker counts the checks of each image; the images in missing are
// not usable.
type fakeChecker struct {
	missing map[string]bool
	mu      sync.Mutex
	checks  map[string]int
}

var _ federation.ImageChecker = (*fakeChecker)(nil)

var errNoImage = errors.New("no such image")

func (f *fakeChecker) CheckImage(ctx context.Context, ref string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.checks == nil {
		f.checks = map[string]int{}
	}
	f.checks[ref]++
	if _, ok := ctx.Deadline(); !ok {
		return errors.New("a check without a deadline")
	}
	if f.missing[ref] {
		return errNoImage
	}
	return nil
}

func (f *fakeChecker) count(ref string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.checks[ref]
}

// fakeRegistryStore lists fixed records, watches through feeds the test
// drives, and answers single lookups from its own maps, counting them.
type fakeRegistryStore struct {
	list     map[string][]toolspec.RegistryEvent // by kind
	feeds    map[string]*feed[toolspec.RegistryBatch]
	tools    map[string]toolspec.Tool
	datasets map[string]toolspec.Dataset
	mu       sync.Mutex
	lookups  int
	// etcd's revision; onProgress, when set, is called for each progress
	// request; pages counts the lists read from the store.
	rev        int64
	onProgress func(kind string)
	progress   int
	pages      int
}

var _ federation.RegistryStore = (*fakeRegistryStore)(nil)

func (f *fakeRegistryStore) Revision(context.Context) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rev, nil
}

func (f *fakeRegistryStore) RegistryProgress(_ context.Context, kind string) error {
	f.mu.Lock()
	f.progress++
	on := f.onProgress
	f.mu.Unlock()
	if on != nil {
		on(kind)
	}
	return nil
}

// The store's lists answer with one tool or dataset named "from-store".
func (f *fakeRegistryStore) Tools(context.Context) ([]toolspec.Tool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pages++
	return []toolspec.Tool{{Name: "from-store"}}, nil
}

func (f *fakeRegistryStore) ToolPage(context.Context, string, int) ([]toolspec.Tool, string, error) {
	tools, err := f.Tools(context.Background())
	return tools, "", err
}

func (f *fakeRegistryStore) DatasetPage(context.Context, string, int) ([]toolspec.Dataset, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pages++
	return []toolspec.Dataset{{Name: "from-store"}}, "", nil
}

// counts returns the progress requests and the store's lists so far.
func (f *fakeRegistryStore) counts() (progress, pages int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.progress, f.pages
}

func (f *fakeRegistryStore) ListRegistry(_ context.Context, kind string) ([]toolspec.RegistryEvent, int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.list[kind], 3, nil
}

func (f *fakeRegistryStore) WatchRegistry(ctx context.Context, kind string, _ int64) <-chan toolspec.RegistryBatch {
	return f.feeds[kind].watch(ctx)
}

func (f *fakeRegistryStore) Tool(_ context.Context, name string) (toolspec.Tool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lookups++
	t, ok := f.tools[name]
	if !ok {
		return t, fmt.Errorf("no tool named %q: %w", name, errs.ErrNotFound)
	}
	return t, nil
}

func (f *fakeRegistryStore) Dataset(_ context.Context, name string) (toolspec.Dataset, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lookups++
	d, ok := f.datasets[name]
	if !ok {
		return d, fmt.Errorf("no dataset named %q: %w", name, errs.ErrNotFound)
	}
	return d, nil
}

func (f *fakeRegistryStore) lookupCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lookups
}
