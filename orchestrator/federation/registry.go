package federation

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/mao-research/mao/orchestrator/errs"
	"github.com/mao-research/mao/toolspec"
)

// RegistryStore lists and watches the registries, and reads them when the
// cache cannot answer: a record written a moment ago and not yet seen
// through the watch, or a list while the watch is behind.
type RegistryStore interface {
	ListRegistry(ctx context.Context, kind string) ([]toolspec.RegistryEvent, int64, error)
	WatchRegistry(ctx context.Context, kind string, rev int64) <-chan toolspec.RegistryBatch
	RegistryProgress(ctx context.Context, kind string) error
	Revision(ctx context.Context) (int64, error)
	Tool(ctx context.Context, name string) (toolspec.Tool, error)
	Dataset(ctx context.Context, name string) (toolspec.Dataset, error)
	Tools(ctx context.Context) ([]toolspec.Tool, error)
	ToolPage(ctx context.Context, after string, limit int) ([]toolspec.Tool, string, error)
	DatasetPage(ctx context.Context, after string, limit int) ([]toolspec.Dataset, string, error)
}

// Registry is this site's copy of the tool and dataset registries, kept by
// a watch. A lookup it cannot answer (a record written a moment ago, not yet
// seen through the watch) goes to etcd.
//
// Its lists (Tools, ToolPage, DatasetPage) read your writes, and anyone's
// written before the list was asked for, as a read of etcd would: they
// answer from the copy once its watch has reached etcd's current revision
// (a progress request brings the news when nothing changed in the
// registry), and read etcd when it does not within freshWait.
type Registry struct {
	st        RegistryStore
	clock     Clock
	log       *slog.Logger
	retry     time.Duration
	freshWait time.Duration

	mu      sync.RWMutex
	kinds   map[string]*registryCopy
	removed func(tool string) // see OnToolRemoved
}

// registryCopy is one kind's copy; Registry.mu guards it.
type registryCopy struct {
	tools    map[string]toolspec.Tool
	datasets map[string]toolspec.Dataset
	names    []string      // the names in order; nil when to sort again
	synced   bool          // listed, and the watch since then goes on
	rev      int64         // the revision the copy has every change up to
	moved    chan struct{} // closed, and replaced, when rev moves
}

// NewRegistry returns an empty Registry; Run fills and follows it.
func NewRegistry(st RegistryStore, clock Clock, log *slog.Logger) *Registry {
	if clock == nil {
		clock = clockwork.NewRealClock()
	}
	return &Registry{st: st, clock: clock, log: log, retry: 2 * time.Second, freshWait: time.Second,
		kinds: map[string]*registryCopy{
			toolspec.KindTool:    {tools: map[string]toolspec.Tool{}, moved: make(chan struct{})},
			toolspec.KindDataset: {datasets: map[string]toolspec.Dataset{}, moved: make(chan struct{})},
		}}
}

// OnToolRemoved has f told of each tool whose record the watch sees go
// (deleted, or made invalid), after the copy has forgotten it. Call it
// before Run.
func (r *Registry) OnToolRemoved(f func(tool string)) { r.removed = f }

// Tool returns the named tool, or an error of kind errs.ErrNotFound.
func (r *Registry) Tool(ctx context.Context, name string) (toolspec.Tool, error) {
	r.mu.RLock()
	t, ok := r.kinds[toolspec.KindTool].tools[name]
	r.mu.RUnlock()
	if ok {
		return t, nil
	}
	return r.st.Tool(ctx, name)
}

// Dataset returns the named dataset, or an error of kind errs.ErrNotFound.
func (r *Registry) Dataset(ctx context.Context, name string) (toolspec.Dataset, error) {
	r.mu.RLock()
	d, ok := r.kinds[toolspec.KindDataset].datasets[name]
	r.mu.RUnlock()
	if ok {
		return d, nil
	}
	return r.st.Dataset(ctx, name)
}

// Tools lists every valid tool, in name order.
func (r *Registry) Tools(ctx context.Context) ([]toolspec.Tool, error) {
	if !r.fresh(ctx, toolspec.KindTool) {
		return r.st.Tools(ctx)
	}
	tools, _ := page(r, toolspec.KindTool, "", -1, func(c *registryCopy, name string) toolspec.Tool { return c.tools[name] })
	return tools, nil
}

// ToolPage lists at most limit valid tools whose names sort after after,
// in name order, and the name to list on after ("" after the last).
func (r *Registry) ToolPage(ctx context.Context, after string, limit int) ([]toolspec.Tool, string, error) {
	if !r.fresh(ctx, toolspec.KindTool) {
		return r.st.ToolPage(ctx, after, limit)
	}
	tools, next := page(r, toolspec.KindTool, after, limit, func(c *registryCopy, name string) toolspec.Tool { return c.tools[name] })
	return tools, next, nil
}

// DatasetPage is ToolPage for datasets.
func (r *Registry) DatasetPage(ctx context.Context, after string, limit int) ([]toolspec.Dataset, string, error) {
	if !r.fresh(ctx, toolspec.KindDataset) {
		return r.st.DatasetPage(ctx, after, limit)
	}
	ds, next := page(r, toolspec.KindDataset, after, limit, func(c *registryCopy, name string) toolspec.Dataset { return c.datasets[name] })
	return ds, next, nil
}

// page copies at most limit (-1: all) records of kind whose names sort
// after after, and the last name copied when more follow.
func page[T any](r *Registry, kind, after string, limit int, get func(*registryCopy, string) T) ([]T, string) {
	r.mu.Lock() // the names may be sorted again
	defer r.mu.Unlock()
	c := r.kinds[kind]
	if c.names == nil {
		c.names = make([]string, 0, len(c.tools)+len(c.datasets))
		c.names = append(slices.AppendSeq(c.names, maps.Keys(c.tools)), slices.Collect(maps.Keys(c.datasets))...)
		slices.Sort(c.names)
	}
	from, _ := slices.BinarySearch(c.names, after)
	if after != "" && from < len(c.names) && c.names[from] == after {
		from++
	}
	names := c.names[from:]
	more := limit >= 0 && len(names) > limit
	if more {
		names = names[:limit]
	}
	out := make([]T, len(names))
	for i, name := range names {
		out[i] = get(c, name)
	}
	if !more || len(names) == 0 {
		return out, ""
	}
	return out, names[len(names)-1]
}

// fresh reports whether kind's copy has every change made before now:
// it has seen etcd's current revision, or sees it within r.freshWait.
// It asks etcd for the watch's progress, and asks again every
// progressRetry while the copy is behind: etcd drops a request that comes
// while the watch is catching up or its stream reconnecting.
func (r *Registry) fresh(ctx context.Context, kind string) bool {
	want, err := r.st.Revision(ctx)
	if err != nil {
		return false // etcd's own read reports the problem
	}
	deadline := r.clock.NewTimer(r.freshWait)
	defer deadline.Stop()
	ask := true
	var retry clockwork.Timer
	defer func() {
		if retry != nil {
			retry.Stop()
		}
	}()
	for {
		r.mu.RLock()
		c := r.kinds[kind]
		synced, rev, moved := c.synced, c.rev, c.moved
		r.mu.RUnlock()
		switch {
		case !synced:
			return false
		case rev >= want:
			return true
		}
		if ask {
			// Nothing of kind may have changed since rev: etcd says how
			// far the watch has come.
			pctx, cancel := context.WithTimeout(ctx, progressRetry)
			err := r.st.RegistryProgress(pctx, kind)
			cancel()
			if err != nil && ctx.Err() != nil {
				return false
			}
			ask = false
			if retry != nil {
				retry.Stop()
			}
			retry = r.clock.NewTimer(progressRetry)
		}
		select {
		case <-moved:
		case <-retry.Chan():
			ask = true
		case <-deadline.Chan():
			r.log.Debug("the registry's copy is behind etcd; reading etcd", "kind", kind, "copy", rev, "etcd", want)
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// progressRetry is how long fresh waits for a progress report before it
// asks again.
const progressRetry = 100 * time.Millisecond

// Run follows both registries until ctx ends.
func (r *Registry) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, kind := range []string{toolspec.KindTool, toolspec.KindDataset} {
		wg.Add(1)
		go func() { defer wg.Done(); r.follow(ctx, kind) }()
	}
	wg.Wait()
}

// follow lists one kind, then applies its watch; when the watch fails it
// lists again.
func (r *Registry) follow(ctx context.Context, kind string) {
	for ctx.Err() == nil {
		list, rev, err := r.st.ListRegistry(ctx, kind)
		if err != nil {
			r.log.Warn("list the registry; retrying", "kind", kind, "err", err)
			sleep(ctx, r.clock, r.retry)
			continue
		}
		r.replace(kind, list, rev)
		for b := range r.st.WatchRegistry(ctx, kind, rev) {
			r.apply(kind, b)
		}
		r.mu.Lock()
		r.kinds[kind].synced = false
		r.mu.Unlock()
		sleep(ctx, r.clock, r.retry)
	}
}

func (r *Registry) replace(kind string, list []toolspec.RegistryEvent, rev int64) {
	r.mu.Lock()
	c := r.kinds[kind]
	// The tools gone while the watch was down are removed too.
	var gone []string
	if kind == toolspec.KindTool && r.removed != nil {
		listed := map[string]bool{}
		for _, ev := range list {
			listed[ev.Name] = true
		}
		for name := range c.tools {
			if !listed[name] {
				gone = append(gone, name)
			}
		}
	}
	defer func() {
		r.mu.Unlock()
		for _, name := range gone {
			r.removed(name)
		}
	}()
	clear(c.tools)
	clear(c.datasets)
	for _, ev := range list {
		c.set(ev)
	}
	c.synced = true
	c.advance(rev)
}

func (r *Registry) apply(kind string, b toolspec.RegistryBatch) {
	r.mu.Lock()
	c := r.kinds[kind]
	for _, ev := range b.Events {
		c.set(ev)
	}
	c.advance(b.Rev)
	r.mu.Unlock()
	for _, ev := range b.Events {
		// Benchmarks time propagation between sites by this message.
		r.log.Debug("registry changed", "kind", ev.Kind, "name", ev.Name, "deleted", ev.Tool == nil && ev.Dataset == nil)
		if ev.Kind == toolspec.KindTool && ev.Tool == nil && r.removed != nil && !r.has(ev.Name) {
			r.removed(ev.Name) // unless a later event of the batch put it back
		}
	}
}

// has reports whether the copy holds the named tool.
func (r *Registry) has(tool string) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	_, ok := r.kinds[toolspec.KindTool].tools[tool]
	return ok
}

// set applies ev; Registry.mu is held.
func (c *registryCopy) set(ev toolspec.RegistryEvent) {
	switch {
	case ev.Tool != nil:
		if _, ok := c.tools[ev.Name]; !ok {
			c.names = nil
		}
		c.tools[ev.Name] = *ev.Tool
	case ev.Dataset != nil:
		if _, ok := c.datasets[ev.Name]; !ok {
			c.names = nil
		}
		c.datasets[ev.Name] = *ev.Dataset
	case ev.Kind == toolspec.KindTool:
		delete(c.tools, ev.Name)
		c.names = nil
	default:
		delete(c.datasets, ev.Name)
		c.names = nil
	}
}

// advance moves the copy's revision to rev, waking who waits for it;
// Registry.mu is held.
func (c *registryCopy) advance(rev int64) {
	if rev <= c.rev {
		return
	}
	c.rev = rev
	close(c.moved)
	c.moved = make(chan struct{})
}

// sleep waits d on clock, or until ctx ends.
func sleep(ctx context.Context, clock Clock, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-clock.After(d):
	}
}

// isNotFound reports whether err is of kind errs.ErrNotFound.
func isNotFound(err error) bool { return errors.Is(err, errs.ErrNotFound) }
