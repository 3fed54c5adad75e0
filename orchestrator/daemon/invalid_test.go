package daemon

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mao-research/mao/api"
)

// TestBadRecordsBlindNothing replays what a collaborator's etcdctl put of
// values that are not records did under every directory: the registry,
// run and site lists answered "internal error", a site would not start
// with a bad run record, and with a bad schedule record its schedules
// stopped after a restart while health said ok. Now a site restarts with
// them, its good schedule keeps ticking, every list answers with the good
// records and names the bad ones, health is degraded with their count,
// and the check lists them all.
func TestBadRecordsBlindNothing(t *testing.T) {
	w := tickedThenStopped(t, "1s", "-mark")
	ctx, cfg, sch, runs, c := context.Background(), w.cfg, w.sch, w.runs, w.etcd
	// A run record that lists meet (run lists read the run index, so a
	// key without entries is met only by the check): one of the ticks'.
	var spoilt string
	for id, r := range runs.latest {
		if r.State.Terminal() {
			spoilt = id
			break
		}
	}
	bad := []string{
		"/mao/datasets/broken", "/mao/notifications/broken", "/mao/requests/broken", "/mao/runs/" + spoilt,
		"/mao/schedule-runs/broken/1", "/mao/schedules/broken", "/mao/series/marker/site-a/broken",
		"/mao/sites-seen/broken", "/mao/sites/broken", "/mao/tools/broken",
	}
	for _, k := range bad {
		if _, err := c.Put(ctx, k, "not json"); err != nil {
			t.Fatal(err)
		}
	}

	second := startSite(t, cfg) // it starts, and recovers past the bad run record
	before := ended(runs.latest)
	runs.until(30*time.Second, func(m map[string]api.Run) bool { return ended(m) >= before+2 })

	lists := []struct {
		name  string
		list  func() (int, []api.InvalidRecord, error)
		items int
		dir   string
	}{
		{"tools", func() (int, []api.InvalidRecord, error) {
			l, err := second.client.Tools(ctx)
			return len(l.Items), l.Invalid, err
		}, 1, "tools"},
		{"datasets", func() (int, []api.InvalidRecord, error) {
			l, err := second.client.Datasets(ctx)
			return len(l.Items), l.Invalid, err
		}, 0, "datasets"},
		{"schedules", func() (int, []api.InvalidRecord, error) {
			l, err := second.client.Schedules(ctx, "")
			return len(l.Items), l.Invalid, err
		}, 1, "schedules"},
		{"sites", func() (int, []api.InvalidRecord, error) {
			l, err := second.client.Sites(ctx)
			return len(l.Items), l.Invalid, err
		}, 1, "sites"},
		{"runs", func() (int, []api.InvalidRecord, error) {
			l, err := second.client.Runs(ctx, api.RunFilter{})
			return len(l.Items), l.Invalid, err
		}, -1, "runs"},
	}
	for _, l := range lists {
		n, invalid, err := l.list()
		if err != nil || (l.items >= 0 && n != l.items) || l.items < 0 && n == 0 {
			t.Errorf("%s: %d items, %v", l.name, n, err)
		}
		if !slices.ContainsFunc(invalid, func(r api.InvalidRecord) bool { return strings.HasPrefix(r.Key, "/mao/"+l.dir+"/") }) {
			t.Errorf("%s: invalid %+v, want the bad record of /mao/%s/", l.name, invalid, l.dir)
		}
	}
	if info, err := second.client.Schedule(ctx, sch.ID); err != nil || info.Paused {
		t.Fatalf("the good schedule: %+v, %v", info, err)
	}
	h, err := second.client.Health(ctx)
	if err != nil || h.Status != "degraded" || h.InvalidRecords == 0 || h.Etcd != "ok" {
		t.Fatalf("health: %+v, %v; want degraded, counting the invalid records", h, err)
	}
	check, err := second.client.Check(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, r := range check.Invalid {
		keys = append(keys, r.Key)
	}
	if strings.Join(keys, " ") != strings.Join(bad, " ") {
		t.Fatalf("check found %v, want %v", keys, bad)
	}
}
