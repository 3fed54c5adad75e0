package federation

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/mao-research/mao/orchestrator/errs"
	"github.com/mao-research/mao/toolspec"
)

// RegistryStore lists and watches the registries, and reads one record
// when the cache does not have it yet.
type RegistryStore interface {
	ListRegistry(ctx context.Context, kind string) ([]toolspec.RegistryEvent, int64, error)
	WatchRegistry(ctx context.Context, kind string, rev int64) <-chan []toolspec.RegistryEvent
	Tool(ctx context.Context, name string) (toolspec.Tool, error)
	Dataset(ctx context.Context, name string) (toolspec.Dataset, error)
}

// Registry is this site's copy of the tool and dataset registries, kept by
// a watch. A lookup it cannot answer (a record written a moment ago, not yet
// seen through the watch) goes to etcd.
type Registry struct {
	st    RegistryStore
	clock Clock
	log   *slog.Logger
	retry time.Duration

	mu       sync.RWMutex
	tools    map[string]toolspec.Tool
	datasets map[string]toolspec.Dataset
}

// NewRegistry returns an empty Registry; Run fills and follows it.
func NewRegistry(st RegistryStore, clock Clock, log *slog.Logger) *Registry {
	if clock == nil {
		clock = clockwork.NewRealClock()
	}
	return &Registry{st: st, clock: clock, log: log, retry: 2 * time.Second,
		tools: map[string]toolspec.Tool{}, datasets: map[string]toolspec.Dataset{}}
}

// Tool returns the named tool, or an error of kind errs.ErrNotFound.
func (r *Registry) Tool(ctx context.Context, name string) (toolspec.Tool, error) {
	r.mu.RLock()
	t, ok := r.tools[name]
	r.mu.RUnlock()
	if ok {
		return t, nil
	}
	return r.st.Tool(ctx, name)
}

// Dataset returns the named dataset, or an error of kind errs.ErrNotFound.
func (r *Registry) Dataset(ctx context.Context, name string) (toolspec.Dataset, error) {
	r.mu.RLock()
	d, ok := r.datasets[name]
	r.mu.RUnlock()
	if ok {
		return d, nil
	}
	return r.st.Dataset(ctx, name)
}

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
		r.replace(kind, list)
		for evs := range r.st.WatchRegistry(ctx, kind, rev) {
			for _, ev := range evs {
				r.apply(ev)
			}
		}
		sleep(ctx, r.clock, r.retry)
	}
}

func (r *Registry) replace(kind string, list []toolspec.RegistryEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if kind == toolspec.KindTool {
		clear(r.tools)
	} else {
		clear(r.datasets)
	}
	for _, ev := range list {
		r.set(ev)
	}
}

func (r *Registry) apply(ev toolspec.RegistryEvent) {
	r.mu.Lock()
	r.set(ev)
	r.mu.Unlock()
	// Benchmarks time propagation between sites by this message.
	r.log.Debug("registry changed", "kind", ev.Kind, "name", ev.Name, "deleted", ev.Tool == nil && ev.Dataset == nil)
}

// set applies ev; r.mu is held.
func (r *Registry) set(ev toolspec.RegistryEvent) {
	switch {
	case ev.Tool != nil:
		r.tools[ev.Name] = *ev.Tool
	case ev.Dataset != nil:
		r.datasets[ev.Name] = *ev.Dataset
	case ev.Kind == toolspec.KindTool:
		delete(r.tools, ev.Name)
	default:
		delete(r.datasets, ev.Name)
	}
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
