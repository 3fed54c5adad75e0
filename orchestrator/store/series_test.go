package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/mao-research/mao/api"
)

// appendPoint appends run's value to the series t/s/m as the detector
// does (a retried run's earlier value replaced), keeping max points.
func appendPoint(t *testing.T, s *Store, run string, at time.Time, value float64, max int) api.Series {
	t.Helper()
	sr, err := s.UpdateSeries(context.Background(), "t", "s", "m", max, func(cur api.Series) (api.Series, error) {
		var pts []api.SeriesPoint
		for _, p := range cur.Points {
			if p.Run != run {
				pts = append(pts, p)
			}
		}
		cur.Points = append(pts, api.SeriesPoint{Run: run, Time: at.UTC(), Value: value})
		return cur, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return sr
}

// TestSeriesPointPerKey checks how a series is stored: a key per point,
// so that a run writes its own point (and deletes the oldest beyond the
// limit), never the whole history; a retried run keeps one point; reads
// give the points oldest first.
func TestSeriesPointPerKey(t *testing.T) {
	t.Parallel()
	s, c := newStore(t)
	ctx := context.Background()
	base := time.Unix(1700000000, 0)
	const max = 5
	for i := range 8 {
		appendPoint(t, s, fmt.Sprintf("t-%d", 1700000000+i), base.Add(time.Duration(i)*time.Minute), float64(i), max)
	}
	// The ninth run's append: what it writes is its own point and one
	// deletion, whatever the history.
	before, err := c.Get(ctx, "/mao/series-points/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	appendPoint(t, s, "t-1700000008", base.Add(8*time.Minute), 8, max)
	watchFrom := before.Header.Revision + 1
	resp, err := c.Get(ctx, "/mao/", clientv3.WithPrefix(), clientv3.WithMinModRev(watchFrom))
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 1 || !strings.HasSuffix(string(resp.Kvs[0].Key), "-t-1700000008") || len(resp.Kvs[0].Value) > 200 {
		t.Errorf("an append wrote %d keys (%v); want its own point only", len(resp.Kvs), resp.Kvs)
	}
	// A retried run: its value replaced, still one point.
	sr := appendPoint(t, s, "t-1700000008", base.Add(8*time.Minute), 80, max)
	list, err := s.SeriesOf(ctx, "t", "", "")
	if err != nil || len(list) != 1 {
		t.Fatalf("SeriesOf: %v %v", list, err)
	}
	var values []float64
	for _, p := range list[0].Points {
		values = append(values, p.Value)
	}
	if fmt.Sprint(values) != "[4 5 6 7 80]" || fmt.Sprint(sr.Points) != fmt.Sprint(list[0].Points) {
		t.Errorf("series %v (returned %v); want the newest 5, oldest first, the retried value replaced", values, sr.Points)
	}
	if n, _ := c.Get(ctx, "/mao/series-points/t/s/m/", clientv3.WithPrefix(), clientv3.WithCountOnly()); n.Count != max {
		t.Errorf("%d point keys, want %d", n.Count, max)
	}
}

// TestSeriesMovedToPoints checks a series that an older mao stored in one
// value: reads merge it with points, and the next append moves it to a key
// per point (more than one transaction's worth) and deletes the value.
func TestSeriesMovedToPoints(t *testing.T) {
	t.Parallel()
	s, c := newStore(t)
	ctx := context.Background()
	old := api.Series{Tool: "t", Site: "s", Metric: "m"}
	base := time.Unix(1700000000, 0).UTC()
	for i := range 300 {
		old.Points = append(old.Points, api.SeriesPoint{Run: fmt.Sprintf("t-%d", 1700000000+i), Time: base.Add(time.Duration(i) * time.Second), Value: float64(i)})
	}
	data, err := json.Marshal(old)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(ctx, "/mao/series/t/s/m", string(data)); err != nil {
		t.Fatal(err)
	}
	if list, err := s.SeriesOf(ctx, "t", "s", "m"); err != nil || len(list) != 1 || len(list[0].Points) != 300 {
		t.Fatalf("the old series read: %d series, %v", len(list), err)
	}
	sr := appendPoint(t, s, "t-1800000000", base.Add(time.Hour), 1, 1000)
	if len(sr.Points) != 301 || sr.Points[0].Run != "t-1700000000" || sr.Points[300].Run != "t-1800000000" {
		t.Fatalf("after the move: %d points, first %v", len(sr.Points), sr.Points[0])
	}
	if resp, _ := c.Get(ctx, "/mao/series/t/s/m"); len(resp.Kvs) != 0 {
		t.Errorf("the old value is still there")
	}
	if n, _ := c.Get(ctx, "/mao/series-points/t/s/m/", clientv3.WithPrefix(), clientv3.WithCountOnly()); n.Count != 301 {
		t.Errorf("%d point keys, want 301", n.Count)
	}
}

// TestPruneRuns checks that pruning deletes what the pick picks, with a
// tick's index entry, and never a run changed since the list it picked
// from.
func TestPruneRuns(t *testing.T) {
	t.Parallel()
	s, c := newStore(t)
	ctx := context.Background()
	tick := time.Unix(1700000000, 0).UTC()
	for _, r := range []api.Run{
		{ID: "t-1-000001", Tool: "t", Site: "s1", State: api.StateSucceeded, Trigger: api.TriggerManual},
		{ID: "t-2-000002", Tool: "t", Site: "s1", State: api.StateSucceeded, Trigger: api.TriggerManual},
		{ID: "t-daily-1700000000", Tool: "t", Site: "s1", State: api.StateSucceeded, Trigger: api.TriggerSchedule,
			Schedule: "t-daily", ScheduledTime: &tick},
	} {
		if err := s.CreateRun(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	removed, err := s.PruneRuns(ctx, "s1", func(all []api.Run) []string {
		// t-2 changes after the list was read: it stays.
		if _, err := c.Put(ctx, "/mao/runs/t-2-000002", `{"id":"t-2-000002","tool":"t","site":"s1","state":"succeeded","trigger":"manual"}`); err != nil {
			t.Fatal(err)
		}
		return []string{"t-1-000001", "t-2-000002", "t-daily-1700000000", "not-listed"}
	})
	// The schedule's run is not one asked for by hand: PruneRuns does not
	// read it, and leaves it to its schedule's history.
	if err != nil || fmt.Sprint(removed) != "[t-1-000001]" {
		t.Fatalf("PruneRuns = %v, %v", removed, err)
	}
	left, err := c.Get(ctx, "/mao/runs/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, kv := range left.Kvs {
		keys = append(keys, string(kv.Key))
	}
	if fmt.Sprint(keys) != "[/mao/runs/t-2-000002 /mao/runs/t-daily-1700000000]" {
		t.Errorf("left %v; want the run changed since and the schedule's", keys)
	}
	entries, err := c.Get(ctx, "/mao/run-index/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range entries.Kvs {
		if strings.Contains(string(kv.Key), "t-1-000001") {
			t.Errorf("%s left behind by the pruned run", kv.Key)
		}
	}
}
