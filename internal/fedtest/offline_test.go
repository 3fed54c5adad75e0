package fedtest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/internal/testenv"
)

// creations counts, per key under a prefix, the times a watch saw it
// created and deleted.
type creations struct {
	mu      sync.Mutex
	created map[string]int
	deleted map[string]int
}

// countCreations watches prefix through c, from now until the test ends.
func countCreations(t *testing.T, c *clientv3.Client, prefix string) *creations {
	t.Helper()
	cr := &creations{created: map[string]int{}, deleted: map[string]int{}}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	resp, err := c.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	wc := c.Watch(ctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1))
	go func() {
		for wr := range wc {
			cr.mu.Lock()
			for _, ev := range wr.Events {
				switch {
				case ev.Type == clientv3.EventTypeDelete:
					cr.deleted[string(ev.Kv.Key)]++
				case ev.IsCreate():
					cr.created[string(ev.Kv.Key)]++
				}
			}
			cr.mu.Unlock()
		}
	}()
	return cr
}

func (cr *creations) counts(key string) (created, deleted int) {
	cr.mu.Lock()
	defer cr.mu.Unlock()
	return cr.created[key], cr.deleted[key]
}

// TestWorkWithoutQuorum checks what a site promises when etcd loses its
// quorum (two members of three stopped) for two minutes while the site has
// a schedule of its own (--site, @every 5s):
//   - every tick due in that window runs on time at the site: its
//     container starts, its output is committed once, and it succeeds;
//   - meanwhile the site says it is offline and how many records it has
//     journaled (health, maoctl health, maoctl site list), and reads of
//     those runs at the site come from its journal;
//   - once the quorum is back, every record of every tick is in etcd
//     exactly once (created once, never deleted, each tick one run with
//     its index entry), in its final state; the site is online again with
//     an empty journal, and its schedule goes on.
func TestWorkWithoutQuorum(t *testing.T) {
	t.Parallel()
	const every, outage = 5 * time.Second, 2 * time.Minute
	bins, image := Build(t), testenv.BuildTestImage(t)
	cluster := testenv.EtcdCluster(t, 3)
	etcd := fmt.Sprintf("\n[etcd]\nendpoints = %s\nrequest_timeout = 2s\n", strings.Join(cluster.Endpoints(), ", "))
	site := Start(t, bins, "q1", SiteConfig("q1", "%DIR%", "", leaseTTL, etcd))
	watched := cluster.Client(t)
	records := WatchRuns(t, watched)
	created := countCreations(t, watched, "/mao/runs/")
	ctx := context.Background()
	tool := api.Tool{Name: "ticker", Author: "fedtest", Image: image, DataRepo: testenv.GitRepo(t, nil), Network: "none",
		Command: []string{"-mark", "-control", "1"}}
	if _, err := site.Client.RegisterTool(ctx, tool); err != nil {
		t.Fatal(err)
	}
	sch, err := site.Client.CreateSchedule(ctx, api.Schedule{Tool: "ticker", Spec: "@every " + every.String(), Overlap: "allow",
		Target: api.Target{Mode: "site", Site: "q1"}})
	if err != nil {
		t.Fatal(err)
	}
	records.Until(60*time.Second, "two ticks succeeded before the outage", func(m map[string]api.Run) bool {
		return succeededTicks(m, sch.ID, 1) >= 2
	})

	cluster.Stop(1)
	cluster.Stop(2)
	lostAt := time.Now()
	// Half-way through the outage, the site says it is offline and has
	// journaled records, and reads a journaled run from its journal.
	time.Sleep(outage / 2) // the outage itself, not a wait for an event
	h, err := site.Client.Health(ctx)
	if err != nil || !h.Offline || h.Journaled == 0 || h.Status != "degraded" {
		t.Fatalf("health half-way through the outage: %+v %v; want degraded, offline, records journaled", h, err)
	}
	if out := bins.Ctl(t, site.Addr, "site", "list"); !strings.Contains(out, "offline, ") || !strings.Contains(out, " journaled") {
		t.Fatalf("maoctl site list offline:\n%s", out)
	}
	midTick := lostAt.Add(outage / 4).Truncate(every).Add(every)
	mid := fmt.Sprintf("%s-%d", sch.ID, midTick.Unix())
	if r, err := site.Client.Run(ctx, mid); err != nil || r.Site != "q1" || r.State != api.StateSucceeded {
		t.Fatalf("read of tick %s at the site offline: %+v %v", mid, r, err)
	}
	time.Sleep(time.Until(lostAt.Add(outage)))
	cluster.Start(1)
	cluster.Start(2)
	backAt := time.Now()
	t.Logf("quorum lost for %s", backAt.Sub(lostAt).Round(time.Millisecond))

	var window []int64 // the ticks due while there was no quorum
	for tick := lostAt.Truncate(every).Add(every); !tick.After(backAt); tick = tick.Add(every) {
		window = append(window, tick.Unix())
	}
	last := window[len(window)-1] + 2*int64(every/time.Second)
	runs := records.Until(90*time.Second, "every tick of the outage, and two after, recorded as ended in etcd", func(m map[string]api.Run) bool {
		for tick := window[0]; tick <= last; tick += int64(every / time.Second) {
			if r, ok := m[fmt.Sprintf("%s-%d", sch.ID, tick)]; !ok || !r.State.Terminal() {
				return false
			}
		}
		return true
	})
	Eventually(t, 30*time.Second, "the site online again, its journal empty", func() bool {
		h, err := site.Client.Health(ctx)
		return err == nil && h.Status == "ok" && !h.Offline && h.Journaled == 0
	})
	if _, err := site.Client.PauseSchedule(ctx, sch.ID); err != nil {
		t.Fatal(err)
	}
	commits := strings.Join(site.Commits("ticker"), "\n")
	for _, tick := range window {
		id := fmt.Sprintf("%s-%d", sch.ID, tick)
		r := runs[id]
		if r.State != api.StateSucceeded || r.Site != "q1" || r.Trigger != api.TriggerSchedule || r.Attempt != 1 ||
			r.ContainerStartedAt == nil || r.DataCommitAfter == "" || r.DataCommitAfter == r.DataCommitBefore {
			t.Errorf("tick %d, due without quorum: %s at %q, trigger %s, attempt %d, container started %v, commit %q: %s",
				tick, r.State, r.Site, r.Trigger, r.Attempt, r.ContainerStartedAt, r.DataCommitAfter, r.Reason)
		}
		if n := strings.Count(commits, id+" "); n != 1 {
			t.Errorf("tick %d: %d commits of its output, want 1", tick, n)
		}
		if c, d := created.counts("/mao/runs/" + id); c != 1 || d != 0 {
			t.Errorf("tick %d: its record was created %d times and deleted %d times in etcd, want once and never", tick, c, d)
		}
		resp, err := watched.Get(ctx, fmt.Sprintf("/mao/schedule-runs/%s/%d", sch.ID, tick))
		if err != nil || len(resp.Kvs) != 1 {
			t.Errorf("tick %d: no index entry (%v)", tick, err)
		}
	}
	for id, r := range runs {
		if r.Schedule == sch.ID && r.Trigger != api.TriggerSchedule {
			t.Errorf("run %s of the schedule: trigger %s, state %s (%s), want every tick on time", id, r.Trigger, r.State, r.Reason)
		}
	}
	t.Logf("%d ticks due without quorum, each run once at the site and recorded once in etcd", len(window))
}
