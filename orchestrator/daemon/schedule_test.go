package daemon

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/internal/testenv"
	"github.com/mao-research/mao/orchestrator/config"
	"github.com/mao-research/mao/orchestrator/store"
)

// runWatcher follows run records as they are written to etcd.
type runWatcher struct {
	t      *testing.T
	events clientv3.WatchChan
	latest map[string]api.Run
}

func watchRuns(t *testing.T, endpoints []string) *runWatcher {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: endpoints})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); c.Close() })
	return &runWatcher{t: t, events: c.Watch(ctx, "/mao/runs/", clientv3.WithPrefix()), latest: map[string]api.Run{}}
}

// until reads run records until done says so, or fails after timeout.
func (w *runWatcher) until(timeout time.Duration, done func(map[string]api.Run) bool) {
	w.t.Helper()
	deadline := time.After(timeout)
	for !done(w.latest) {
		select {
		case resp := <-w.events:
			for _, ev := range resp.Events {
				var r api.Run
				if ev.Type == clientv3.EventTypePut && json.Unmarshal(ev.Kv.Value, &r) == nil {
					w.latest[r.ID] = r
				}
			}
		case <-deadline:
			var states []string
			for id, r := range w.latest {
				states = append(states, id+":"+string(r.State)+":"+r.Trigger+":"+r.Site)
			}
			slices.Sort(states)
			w.t.Fatalf("timed out after %s; runs so far: %v", timeout, states)
		}
	}
}

// stoppedSite is a site stopped after its schedule ticked, its etcd and
// what a test needs to go on with it.
type stoppedSite struct {
	cfg  config.Config
	sch  api.ScheduleInfo
	runs *runWatcher
	etcd *clientv3.Client
}

// tickedThenStopped starts a site on a new etcd with a tool "marker" of
// the test image (with args) on an @every period schedule that forbids
// overlaps, waits until a tick's run has ended and stops the site.
func tickedThenStopped(t *testing.T, period string, args ...string) stoppedSite {
	t.Helper()
	image := testenv.BuildTestImage(t)
	endpoints := testenv.Etcd(t)
	w := stoppedSite{runs: watchRuns(t, endpoints), cfg: testenv.SiteConfig(t, "site-a", endpoints)}
	first := startSite(t, w.cfg)
	if _, err := first.client.RegisterTool(context.Background(), tool("marker", image, testenv.GitRepo(t, nil), args...)); err != nil {
		t.Fatal(err)
	}
	w.sch = scheduleEvery(t, first, "marker", period, "forbid")
	w.runs.until(30*time.Second, func(m map[string]api.Run) bool { return ended(m) >= 1 })
	if err := first.stop(); err != nil {
		t.Fatal(err)
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: endpoints})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	w.etcd = c
	return w
}

func ended(runs map[string]api.Run) (n int) {
	for _, r := range runs {
		if r.State.Terminal() {
			n++
		}
	}
	return n
}

func scheduleEvery(t *testing.T, s *site, tool, period string, overlap string) api.ScheduleInfo {
	t.Helper()
	info, err := s.client.CreateSchedule(context.Background(), api.Schedule{Tool: tool, Spec: "@every " + period, Overlap: overlap})
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// TestTwoSitesRunEachTickOnce runs two orchestrators on one etcd with an
// @every 1s schedule for about 30 ticks: every tick is run exactly once,
// by one site or the other, and each run sees its own scheduled time.
func TestTwoSitesRunEachTickOnce(t *testing.T) {
	image := testenv.BuildTestImage(t)
	endpoints := testenv.Etcd(t)
	runs := watchRuns(t, endpoints)
	a := startSite(t, testenv.SiteConfig(t, "site-a", endpoints))
	b := startSite(t, testenv.SiteConfig(t, "site-b", endpoints))
	ctx := context.Background()
	if _, err := a.client.RegisterTool(ctx, tool("marker", image, testenv.GitRepo(t, nil), "-mark")); err != nil {
		t.Fatal(err)
	}
	sch := scheduleEvery(t, b, "marker", "1s", "allow")
	const ticks = 30
	runs.until(90*time.Second, func(m map[string]api.Run) bool { return ended(m) >= ticks })
	if _, err := a.client.PauseSchedule(ctx, sch.ID); err != nil {
		t.Fatal(err)
	}
	// Let the runs under way end, then count what each site's clone holds.
	runs.until(30*time.Second, func(m map[string]api.Run) bool { return ended(m) == len(m) })
	a.stop()
	b.stop()

	marks := map[string]int{}
	for _, s := range []*site{a, b} {
		entries, _ := os.ReadDir(filepath.Join(s.cfg.Site.DataDir, "repos", "marker"))
		for _, e := range entries {
			if id, ok := strings.CutPrefix(e.Name(), "run-"); ok {
				marks[id]++
			}
		}
	}
	// A tick claimed just before the pause may have ended after the
	// wait above: every run that left a mark has its record.
	runs.until(30*time.Second, func(m map[string]api.Run) bool {
		for id := range marks {
			if r, ok := m[id]; !ok || !r.State.Terminal() {
				return false
			}
		}
		return true
	})
	bySite := map[string]int{}
	for id, r := range runs.latest {
		if r.Schedule != sch.ID || r.ScheduledTime == nil || id != sch.ID+"-"+strconv.FormatInt(r.ScheduledTime.Unix(), 10) {
			t.Errorf("run %s does not carry its schedule and tick: %+v", id, r)
		}
		if r.State != api.StateSucceeded {
			t.Errorf("run %s: %s %s", id, r.State, r.Reason)
			continue
		}
		bySite[r.Site]++
		if marks[id] != 1 {
			t.Errorf("run %s ran %d times", id, marks[id])
		}
	}
	if len(marks) != len(runs.latest) {
		t.Errorf("%d runs recorded, %d ran", len(runs.latest), len(marks))
	}
	// No tick was dropped: the recorded ticks follow each other second by
	// second.
	var recorded []int64
	for _, r := range runs.latest {
		recorded = append(recorded, r.ScheduledTime.Unix())
	}
	slices.Sort(recorded)
	for i := 1; i < len(recorded); i++ {
		if recorded[i] != recorded[i-1]+1 {
			t.Errorf("ticks jump from %d to %d", recorded[i-1], recorded[i])
		}
	}
	t.Logf("%d ticks, run by site: %v", len(runs.latest), bySite)
}

// TestCatchUpAfterDowntime stops a site across ticks of its schedule and
// restarts it: exactly one catch-up run exists, for the latest missed tick,
// and the older misses are recorded as missed.
func TestCatchUpAfterDowntime(t *testing.T) {
	const period = 3 * time.Second
	w := tickedThenStopped(t, "3s", "-mark", "-env")
	ctx, cfg, sch, runs, c := context.Background(), w.cfg, w.sch, w.runs, w.etcd
	last, err := store.New(c, store.Options{Prefix: "/mao/", Timeout: 5 * time.Second}).LastScheduledRun(ctx, sch.ID, "")
	if err != nil || last == nil {
		t.Fatalf("last run before the downtime: %v %v", last, err)
	}
	before := *last.ScheduledTime // the last tick recorded before the downtime
	// The site is down across three ticks: this wait is the scenario, not
	// synchronisation.
	time.Sleep(3 * period)
	second := startSite(t, cfg)
	runs.until(30*time.Second, func(m map[string]api.Run) bool {
		for _, r := range m {
			if r.Trigger == api.TriggerCatchup && r.State.Terminal() {
				return true
			}
		}
		return false
	})
	second.stop()

	var catchup *api.Run
	got := map[int64]api.RunState{} // tick → state, for the ticks after before
	for _, r := range runs.latest {
		if r.Trigger == api.TriggerCatchup {
			if catchup != nil {
				t.Fatalf("two catch-up runs: %s and %s", catchup.ID, r.ID)
			}
			catchup = &r
		}
		if r.ScheduledTime.After(before) {
			got[r.ScheduledTime.Unix()] = r.State
		}
	}
	if catchup == nil || catchup.State != api.StateSucceeded || catchup.ID != sch.ID+"-"+strconv.FormatInt(catchup.ScheduledTime.Unix(), 10) {
		t.Fatalf("catch-up run: %+v", catchup)
	}
	// Every tick of the downtime is recorded: missed, but the latest, which
	// ran late with its own scheduled time.
	for tick := before.Add(period); tick.Before(*catchup.ScheduledTime); tick = tick.Add(period) {
		if got[tick.Unix()] != api.StateMissed {
			t.Errorf("tick %s during the downtime: %q, want missed", tick, got[tick.Unix()])
		}
	}
	if catchup.ScheduledTime.Sub(before) < 2*period {
		t.Errorf("catch-up of %s, only %s after the last tick before the downtime", catchup.ScheduledTime, catchup.ScheduledTime.Sub(before))
	}
	mark, err := os.ReadFile(filepath.Join(cfg.Site.DataDir, "repos", "marker", "run-"+catchup.ID))
	if err != nil || strings.TrimSpace(string(mark)) != catchup.ScheduledTime.UTC().Format(time.RFC3339) {
		t.Errorf("the catch-up run saw MAO_SCHEDULED_TIME %q (%v), want %s", mark, err, catchup.ScheduledTime)
	}
}
