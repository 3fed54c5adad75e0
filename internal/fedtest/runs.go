package fedtest

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/mao-research/mao/api"
)

// Runs follows every run record in etcd, as a test's own view of the
// federation's work.
type Runs struct {
	t       testing.TB
	mu      sync.Mutex
	runs    map[string]api.Run
	changed chan struct{} // closed and replaced at every change
}

// WatchRuns follows /mao/runs/ through c until the test ends.
func WatchRuns(t testing.TB, c *clientv3.Client) *Runs {
	t.Helper()
	r := &Runs{t: t, runs: map[string]api.Run{}, changed: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	resp, err := c.Get(ctx, "/mao/runs/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range resp.Kvs {
		r.put(kv.Key, kv.Value)
	}
	wc := c.Watch(ctx, "/mao/runs/", clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1))
	go func() {
		for wr := range wc {
			for _, ev := range wr.Events {
				if ev.Type == clientv3.EventTypeDelete {
					r.mu.Lock()
					delete(r.runs, strings.TrimPrefix(string(ev.Kv.Key), "/mao/runs/"))
					r.signal()
					r.mu.Unlock()
					continue
				}
				r.put(ev.Kv.Key, ev.Kv.Value)
			}
		}
	}()
	return r
}

func (r *Runs) put(key, value []byte) {
	var run api.Run
	if json.Unmarshal(value, &run) != nil {
		return
	}
	r.mu.Lock()
	r.runs[run.ID] = run
	r.signal()
	r.mu.Unlock()
}

// signal wakes Until; r.mu is held.
func (r *Runs) signal() {
	close(r.changed)
	r.changed = make(chan struct{})
}

// Until waits, at most d, until cond holds for the runs, and returns them;
// cond is evaluated at every change. On timeout the test fails with what.
func (r *Runs) Until(d time.Duration, what string, cond func(map[string]api.Run) bool) map[string]api.Run {
	r.t.Helper()
	timeout := time.After(d)
	for {
		r.mu.Lock()
		snapshot, changed := maps.Clone(r.runs), r.changed
		r.mu.Unlock()
		if cond(snapshot) {
			return snapshot
		}
		select {
		case <-changed:
		case <-timeout:
			var b strings.Builder
			for id, run := range snapshot {
				fmt.Fprintf(&b, "  %s: site %q %s %s\n", id, run.Site, run.State, run.Reason)
			}
			r.t.Fatalf("not within %s: %s; runs:\n%s", d, what, b.String())
		}
	}
}

// Get returns the run as last seen.
func (r *Runs) Get(id string) api.Run {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.runs[id]
}
