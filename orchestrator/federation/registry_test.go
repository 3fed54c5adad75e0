package federation_test

import (
	"context"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/mao-research/mao/orchestrator/federation"
	"github.com/mao-research/mao/toolspec"
)

func TestRegistry(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	tool := func(name, image string) *toolspec.Tool { return &toolspec.Tool{Name: name, Image: image} }
	st := &fakeRegistryStore{
		list: map[string][]toolspec.RegistryEvent{
			toolspec.KindTool:    {{Kind: toolspec.KindTool, Name: "t1", Tool: tool("t1", "cached:1")}},
			toolspec.KindDataset: {{Kind: toolspec.KindDataset, Name: "d1", Dataset: &toolspec.Dataset{Name: "d1", URL: "file:///d1"}}},
		},
		feeds: map[string]*feed[toolspec.RegistryBatch]{
			toolspec.KindTool: newFeed[toolspec.RegistryBatch](), toolspec.KindDataset: newFeed[toolspec.RegistryBatch](),
		},
		// The store's own answers, for lookups the cache cannot serve.
		tools:    map[string]toolspec.Tool{"t1": *tool("t1", "store:1"), "t9": *tool("t9", "store:9")},
		datasets: map[string]toolspec.Dataset{},
	}
	clock := clockwork.NewFakeClock()
	r := federation.NewRegistry(st, clock, slog.New(slog.DiscardHandler))
	var removed []string
	r.OnToolRemoved(func(tool string) { removed = append(removed, tool) })

	// Before the listing, lookups go to the store.
	if got, err := r.Tool(ctx, "t1"); err != nil || got.Image != "store:1" || st.lookupCount() != 1 {
		t.Fatalf("before the listing: %+v, %v, %d lookups", got, err, st.lookupCount())
	}

	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	defer func() { cancel(); <-done }()
	// Each kind is listed when its watch starts.
	tools, datasets := <-st.feeds[toolspec.KindTool].watches, <-st.feeds[toolspec.KindDataset].watches
	send := func(ch chan toolspec.RegistryBatch, evs ...toolspec.RegistryEvent) {
		ch <- toolspec.RegistryBatch{Rev: 4, Events: evs}
		ch <- toolspec.RegistryBatch{Rev: 4} // returns once evs are applied
	}

	type lookup struct {
		kind, name string
		image      string // the tool's image; "" for a dataset, or not found
		found      bool
		store      bool // served by the store, not the cache
	}
	steps := []struct {
		name    string
		do      func()
		lookups []lookup
	}{
		{
			name: "listed",
			lookups: []lookup{
				{kind: toolspec.KindTool, name: "t1", image: "cached:1", found: true},
				{kind: toolspec.KindDataset, name: "d1", found: true},
				{kind: toolspec.KindTool, name: "t9", image: "store:9", found: true, store: true},
				{kind: toolspec.KindDataset, name: "d9", store: true},
			},
		},
		{
			name: "tools added and changed",
			do: func() {
				send(tools, toolspec.RegistryEvent{Kind: toolspec.KindTool, Name: "t2", Tool: tool("t2", "new:2")},
					toolspec.RegistryEvent{Kind: toolspec.KindTool, Name: "t1", Tool: tool("t1", "cached:2")})
			},
			lookups: []lookup{
				{kind: toolspec.KindTool, name: "t1", image: "cached:2", found: true},
				{kind: toolspec.KindTool, name: "t2", image: "new:2", found: true},
			},
		},
		{
			name: "a tool and a dataset removed",
			do: func() {
				delete(st.tools, "t1") // before the events, as etcd has it
				send(tools, toolspec.RegistryEvent{Kind: toolspec.KindTool, Name: "t1"})
				send(datasets, toolspec.RegistryEvent{Kind: toolspec.KindDataset, Name: "d1"})
			},
			lookups: []lookup{
				{kind: toolspec.KindTool, name: "t1", store: true},
				{kind: toolspec.KindDataset, name: "d1", store: true},
				{kind: toolspec.KindTool, name: "t2", image: "new:2", found: true},
			},
		},
	}
	for _, s := range steps {
		if s.do != nil {
			s.do()
		}
		for _, l := range s.lookups {
			before := st.lookupCount()
			var err error
			image := ""
			if l.kind == toolspec.KindTool {
				var got toolspec.Tool
				got, err = r.Tool(ctx, l.name)
				image = got.Image
			} else {
				_, err = r.Dataset(ctx, l.name)
			}
			switch {
			case l.found && (err != nil || image != l.image):
				t.Errorf("%s: %s %s = %q, %v; want %q", s.name, l.kind, l.name, image, err, l.image)
			case !l.found && !isNotFound(err):
				t.Errorf("%s: %s %s: %v, want not found", s.name, l.kind, l.name, err)
			}
			if asked := st.lookupCount() > before; asked != l.store {
				t.Errorf("%s: %s %s went to the store: %v, want %v", s.name, l.kind, l.name, asked, l.store)
			}
		}
	}
	// The watch told of the tool removed (the dataset is not a tool).
	if !slices.Equal(removed, []string{"t1"}) {
		t.Errorf("tools removed, as told: %v; want [t1]", removed)
	}
	// The watch fails while t2 goes: the listing after it tells of t2.
	st.mu.Lock()
	st.list[toolspec.KindTool] = nil
	st.mu.Unlock()
	st.feeds[toolspec.KindTool].fail(tools)
	if err := clock.BlockUntilContext(ctx, 1); err != nil { // the wait before listing again
		t.Fatal(err)
	}
	clock.Advance(time.Minute)
	<-st.feeds[toolspec.KindTool].watches // listed, and watching again
	if !slices.Equal(removed, []string{"t1", "t2"}) {
		t.Errorf("tools removed, as told after the outage: %v; want [t1 t2]", removed)
	}
}

// TestRegistryLists checks the promise of the copy's lists: they hold
// every change etcd had when they were asked for. The copy answers when
// its watch has reached etcd's revision, asking etcd for the watch's
// progress when it has not; when no progress comes within the wait, or
// before the copy is listed, the store answers.
func TestRegistryLists(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	tool := func(name string) toolspec.RegistryEvent {
		return toolspec.RegistryEvent{Kind: toolspec.KindTool, Name: name, Tool: &toolspec.Tool{Name: name}}
	}
	st := &fakeRegistryStore{
		list: map[string][]toolspec.RegistryEvent{toolspec.KindTool: {tool("t2"), tool("t1")},
			toolspec.KindDataset: {{Kind: toolspec.KindDataset, Name: "d1", Dataset: &toolspec.Dataset{Name: "d1"}}}},
		feeds: map[string]*feed[toolspec.RegistryBatch]{
			toolspec.KindTool: newFeed[toolspec.RegistryBatch](), toolspec.KindDataset: newFeed[toolspec.RegistryBatch](),
		},
		rev: 3, // the listing's
	}
	clock := clockwork.NewFakeClock()
	r := federation.NewRegistry(st, clock, slog.New(slog.DiscardHandler))

	names := func(tools []toolspec.Tool) []string {
		var out []string
		for _, t := range tools {
			out = append(out, t.Name)
		}
		return out
	}
	// Before the copy is listed, the store answers.
	if got, _, err := r.ToolPage(ctx, "", 10); err != nil || !slices.Equal(names(got), []string{"from-store"}) {
		t.Fatalf("before the listing: %v, %v", names(got), err)
	}
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	defer func() { cancel(); <-done }()
	tools, datasets := <-st.feeds[toolspec.KindTool].watches, <-st.feeds[toolspec.KindDataset].watches

	steps := []struct {
		name       string
		etcd       int64                                // etcd's revision when the list is asked for
		onProgress func(ch chan toolspec.RegistryBatch) // what the watch says when asked
		timeout    bool                                 // no progress comes: the wait ends
		after      string
		limit      int
		want       []string
		next       string
		progress   int // progress requests made
		fromStore  bool
	}{
		{name: "copy current", etcd: 3, limit: 10, want: []string{"t1", "t2"}},
		{name: "a page", etcd: 3, limit: 1, want: []string{"t1"}, next: "t1"},
		{name: "the next page", etcd: 3, after: "t1", limit: 1, want: []string{"t2"}},
		{name: "after a name that is gone", etcd: 3, after: "t15", limit: 5, want: []string{"t2"}},
		{name: "etcd moved on elsewhere: progress", etcd: 9, limit: 10, want: []string{"t1", "t2"}, progress: 1,
			onProgress: func(ch chan toolspec.RegistryBatch) { ch <- toolspec.RegistryBatch{Rev: 9} }},
		{name: "a change arrives before the progress", etcd: 12, limit: 10, want: []string{"t1", "t2", "t3"}, progress: 1,
			onProgress: func(ch chan toolspec.RegistryBatch) {
				ch <- toolspec.RegistryBatch{Rev: 11, Events: []toolspec.RegistryEvent{tool("t3")}}
				ch <- toolspec.RegistryBatch{Rev: 12}
			}},
		{name: "a deletion", etcd: 13, limit: 10, want: []string{"t2", "t3"}, progress: 1,
			onProgress: func(ch chan toolspec.RegistryBatch) {
				ch <- toolspec.RegistryBatch{Rev: 13, Events: []toolspec.RegistryEvent{{Kind: toolspec.KindTool, Name: "t1"}}}
			}},
		{name: "no progress comes", etcd: 20, limit: 10, timeout: true, want: []string{"from-store"}, progress: 1, fromStore: true},
	}
	for _, s := range steps {
		st.mu.Lock()
		st.rev = s.etcd
		st.onProgress = func(string) {
			if s.onProgress != nil {
				go s.onProgress(tools)
			}
		}
		st.mu.Unlock()
		progress, pages := st.counts()
		if s.timeout {
			go func() {
				// Its wait and its timer to ask again: timers of the
				// steps before are stopped.
				if err := clock.BlockUntilContext(ctx, 2); err == nil {
					clock.Advance(time.Hour)
				}
			}()
		}
		got, next, err := r.ToolPage(ctx, s.after, s.limit)
		if err != nil || !slices.Equal(names(got), s.want) || next != s.next {
			t.Errorf("%s: page %v, next %q, %v; want %v, %q", s.name, names(got), next, err, s.want, s.next)
		}
		p, l := st.counts()
		asked := p - progress
		if s.timeout && asked >= 1 {
			asked = s.progress // it may have asked again before the wait ended
		}
		if asked != s.progress || (l > pages) != s.fromStore {
			t.Errorf("%s: %d progress requests, read the store: %v; want %d, %v", s.name, p-progress, l > pages, s.progress, s.fromStore)
		}
	}
	// Tools and DatasetPage answer from the same copy.
	st.mu.Lock()
	st.rev = 13
	st.onProgress = func(kind string) { // each kind has a watch of its own
		if kind == toolspec.KindDataset {
			go func() { datasets <- toolspec.RegistryBatch{Rev: 13} }()
		}
	}
	st.mu.Unlock()
	if all, err := r.Tools(ctx); err != nil || !slices.Equal(names(all), []string{"t2", "t3"}) {
		t.Errorf("Tools: %v, %v", names(all), err)
	}
	if ds, next, err := r.DatasetPage(ctx, "", 10); err != nil || len(ds) != 1 || ds[0].Name != "d1" || next != "" {
		t.Errorf("DatasetPage: %+v, %q, %v", ds, next, err)
	}
}
