package federation_test

import (
	"context"
	"reflect"
	"testing"

	"github.com/jonboulle/clockwork"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/orchestrator/federation"
)

func TestFailover(t *testing.T) {
	clock := clockwork.NewFakeClockAt(start)
	sites := &fakeDepartures{live: []api.Site{{Name: "b"}, {Name: "c"}}, feed: newFeed[[]string]()}
	losses := &fakeLosses{held: []api.Run{
		{ID: "r-here", Site: "here", State: api.StateRunning}, // this site, though it is not listed live
		{ID: "r-b", Site: "b", State: api.StateRunning},
		{ID: "r-c", Site: "c", State: api.StatePending},
		{ID: "r-gone1", Site: "gone1", State: api.StateRunning},
		{ID: "r-gone2", Site: "gone2", State: api.StatePending},
		{ID: "r-gone2b", Site: "gone2", State: api.StateRunning},
	}}
	f := federation.NewFailover(sites, losses, federation.Options{Site: "here", Clock: clock})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.Run(ctx) }()
	defer func() { cancel(); <-done }()

	lost := func(id, dead string) lossCall { return lossCall{id, dead, start} }
	// The sweep at start is over when Run watches.
	departures := <-sites.feed.watches
	steps := []struct {
		name string
		gone []string
		want []lossCall
	}{
		{name: "at start", want: []lossCall{lost("r-gone1", "gone1"), lost("r-gone2", "gone2"), lost("r-gone2b", "gone2")}},
		{name: "b leaves", gone: []string{"b"}, want: []lossCall{lost("r-b", "b")}},
		{name: "this site's lease lapses", gone: []string{"here"}},
		{name: "a site without runs leaves", gone: []string{"idle"}},
		{name: "c leaves", gone: []string{"c"}, want: []lossCall{lost("r-c", "c")}},
	}
	for _, st := range steps {
		if st.gone != nil {
			departures <- st.gone
			// The next send returns once the departure is handled.
			departures <- []string{}
		}
		if got := losses.takeLost(); !reflect.DeepEqual(got, st.want) {
			t.Errorf("%s: settled %+v, want %+v", st.name, got, st.want)
		}
	}
}
