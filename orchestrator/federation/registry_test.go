package federation_test

import (
	"context"
	"log/slog"
	"testing"

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
		feeds: map[string]*feed[toolspec.RegistryEvent]{
			toolspec.KindTool: newFeed[toolspec.RegistryEvent](), toolspec.KindDataset: newFeed[toolspec.RegistryEvent](),
		},
		// The store's own answers, for lookups the cache cannot serve.
		tools:    map[string]toolspec.Tool{"t1": *tool("t1", "store:1"), "t9": *tool("t9", "store:9")},
		datasets: map[string]toolspec.Dataset{},
	}
	r := federation.NewRegistry(st, clockwork.NewFakeClock(), slog.New(slog.DiscardHandler))

	// Before the listing, lookups go to the store.
	if got, err := r.Tool(ctx, "t1"); err != nil || got.Image != "store:1" || st.lookupCount() != 1 {
		t.Fatalf("before the listing: %+v, %v, %d lookups", got, err, st.lookupCount())
	}

	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	defer func() { cancel(); <-done }()
	// Each kind is listed when its watch starts.
	tools, datasets := <-st.feeds[toolspec.KindTool].watches, <-st.feeds[toolspec.KindDataset].watches
	send := func(ch chan []toolspec.RegistryEvent, evs ...toolspec.RegistryEvent) {
		ch <- evs
		ch <- nil // returns once evs are applied
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
}
