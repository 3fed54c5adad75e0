package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/orchestrator/errs"
	"github.com/mao-research/mao/toolspec"
)

// seedRuns writes n runs through the store, one a minute from testNow:
// tools a and b in turn, sites s1, s2 and s3 in turn, every third one
// still running, the others succeeded. It returns them newest first.
func seedRuns(t *testing.T, s *Store, n int) []api.Run {
	t.Helper()
	ctx := context.Background()
	var all []api.Run
	for i := range n {
		r := api.Run{ID: fmt.Sprintf("%s-%d-00000%d", "ab"[i%2:i%2+1], 1700000000+i, i%10), Tool: "ab"[i%2 : i%2+1],
			Site: fmt.Sprintf("s%d", i%3+1), State: api.StatePending, Trigger: api.TriggerManual,
			CreatedAt: testNow.Add(time.Duration(i) * time.Minute)}
		if err := s.CreateRun(ctx, r); err != nil {
			t.Fatal(err)
		}
		r.State = api.StateRunning
		if i%3 != 0 {
			r.State = api.StateSucceeded
		}
		if err := s.SaveRun(ctx, r); err != nil {
			t.Fatal(err)
		}
		all = append(all, r)
	}
	slices.Reverse(all)
	return all
}

func ids(runs []api.Run) []string {
	out := make([]string, len(runs))
	for i, r := range runs {
		out[i] = r.ID
	}
	return out
}

// TestRunPage pages through runs by every filter and checks that the
// pages, joined, are exactly the runs the filter selects, newest first,
// whatever the page size.
func TestRunPage(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	all := seedRuns(t, s, 40)
	// A run that waits for a site, the oldest.
	waiting := requested("t-1699999999-000000", toolspec.Target{Mode: "any"})
	waiting.CreatedAt = testNow.Add(-time.Hour)
	if err := s.RequestRun(context.Background(), waiting); err != nil {
		t.Fatal(err)
	}
	all = append(all, waiting)
	since := testNow.Add(25 * time.Minute)
	tests := []struct {
		name   string
		filter api.RunFilter
		want   func(api.Run) bool
	}{
		{"all", api.RunFilter{}, func(api.Run) bool { return true }},
		{"tool", api.RunFilter{Tool: "b"}, func(r api.Run) bool { return r.Tool == "b" }},
		{"site", api.RunFilter{Site: "s2"}, func(r api.Run) bool { return r.Site == "s2" }},
		{"running", api.RunFilter{State: api.StateRunning}, func(r api.Run) bool { return r.State == api.StateRunning }},
		{"running at a site", api.RunFilter{State: api.StateRunning, Site: "s1"}, func(r api.Run) bool { return r.State == api.StateRunning && r.Site == "s1" }},
		{"succeeded", api.RunFilter{State: api.StateSucceeded}, func(r api.Run) bool { return r.State == api.StateSucceeded }},
		{"pending", api.RunFilter{State: api.StatePending}, func(r api.Run) bool { return r.State == api.StatePending }},
		{"since", api.RunFilter{Since: since}, func(r api.Run) bool { return !r.CreatedAt.Before(since) }},
		{"tool, site and since", api.RunFilter{Tool: "a", Site: "s1", Since: since},
			func(r api.Run) bool { return r.Tool == "a" && r.Site == "s1" && !r.CreatedAt.Before(since) }},
		{"no match", api.RunFilter{Tool: "zzz"}, func(api.Run) bool { return false }},
	}
	for _, tc := range tests {
		want := ids(slices.DeleteFunc(slices.Clone(all), func(r api.Run) bool { return !tc.want(r) }))
		for _, limit := range []int{1, 3, 7, 100} {
			t.Run(fmt.Sprintf("%s/limit %d", tc.name, limit), func(t *testing.T) {
				f := tc.filter
				f.Limit = limit
				var got []string
				for pages := 0; ; pages++ {
					if pages > len(all)+1 {
						t.Fatal("the pages do not end")
					}
					page, next, err := s.RunPage(context.Background(), f)
					if err != nil {
						t.Fatal(err)
					}
					if len(page) > limit {
						t.Fatalf("a page of %d runs; limit %d", len(page), limit)
					}
					got = append(got, ids(page)...)
					if next == "" {
						break
					}
					f.Continue = next
				}
				if !slices.Equal(got, want) {
					t.Errorf("got %v\nwant %v", got, want)
				}
			})
		}
	}
}

// TestRunPageRefuses checks that a page that no list could have asked for
// fails as invalid (400), before etcd is read.
func TestRunPageRefuses(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	for _, f := range []api.RunFilter{
		{Continue: "not base64!"},
		{Continue: encodeContinue("../../etc/passwd")},
		{Continue: encodeContinue("12-x")},
		{Limit: MaxRunLimit + 1},
	} {
		if _, _, err := s.RunPage(context.Background(), f); !errors.Is(err, errs.ErrInvalid) {
			t.Errorf("RunPage(%+v): %v; want invalid", f, err)
		}
	}
}

// TestRunIndexFollowsTheRecord checks the index through a run's life: it
// is held while it runs, pushing while its push is pending, and nothing
// of it is left once it is pruned. Entries written by hand that do not
// match their record are never used.
func TestRunIndexFollowsTheRecord(t *testing.T) {
	t.Parallel()
	s, c := newStore(t)
	ctx := context.Background()
	r := api.Run{ID: "t-1700000000-000001", Tool: "t", Site: "s1", State: api.StatePending, Trigger: api.TriggerManual, CreatedAt: testNow}
	if err := s.CreateRun(ctx, r); err != nil {
		t.Fatal(err)
	}
	held := func(site string) []string {
		t.Helper()
		runs, err := s.HeldRuns(ctx, site)
		if err != nil {
			t.Fatal(err)
		}
		return ids(runs)
	}
	pushing := func() []string {
		t.Helper()
		runs, err := s.PushingRuns(ctx, "s1")
		if err != nil {
			t.Fatal(err)
		}
		return ids(runs)
	}
	if got := held("s1"); !slices.Equal(got, []string{r.ID}) || len(held("s2")) != 0 {
		t.Fatalf("held at s1: %v; want the pending run, and none at s2", got)
	}
	// Entries that point at it from where it does not belong.
	for _, k := range []string{"/mao/run-index/held/s0/" + r.ID, "/mao/run-index/held/s2/" + r.ID, "/mao/run-index/push/s1/" + r.ID,
		"/mao/run-index/tool/other/" + runPos(r), "/mao/run-index/held/s1/..%2f..%2fx"} {
		if _, err := c.Put(ctx, k, `{"run":"`+r.ID+`"}`); err != nil {
			t.Fatal(err)
		}
	}
	if got := held(""); !slices.Equal(got, []string{r.ID}) {
		t.Errorf("held at every site: %v; want the run once (an entry left behind before its own must not hide it)", got)
	}
	if got := held("s2"); len(got) != 0 {
		t.Errorf("held at s2: %v; want none (the entry does not match the record)", got)
	}
	if got := pushing(); len(got) != 0 {
		t.Errorf("pushing: %v; want none", got)
	}
	if page, _, err := s.RunPage(ctx, api.RunFilter{Tool: "other"}); err != nil || len(page) != 0 {
		t.Errorf("runs of tool other: %v, %v; want none", ids(page), err)
	}

	if _, err := s.UpdateRun(ctx, r.ID, func(r api.Run) (api.Run, error) {
		r.State, r.Push = api.StateSucceeded, &api.Push{State: api.PushPending}
		return r, nil
	}); err != nil {
		t.Fatal(err)
	}
	if got := held("s1"); len(got) != 0 {
		t.Errorf("held at s1 after it ended: %v", got)
	}
	if got := pushing(); !slices.Equal(got, []string{r.ID}) {
		t.Errorf("pushing: %v; want the run", got)
	}
	removed, err := s.PruneRuns(ctx, "s1", func(all []api.Run) []string { return ids(all) })
	if err != nil || !slices.Equal(removed, []string{r.ID}) {
		t.Fatalf("PruneRuns: %v, %v", removed, err)
	}
	resp, err := c.Get(ctx, "/mao/run-index/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range resp.Kvs {
		if k := string(kv.Key); !strings.Contains(k, "/s2/") && !strings.Contains(k, "/s0/") && !strings.Contains(k, "/other/") && !strings.Contains(k, "%2f") &&
			!strings.HasPrefix(k, "/mao/run-index/push/") {
			t.Errorf("%s is left after the run was pruned", k)
		}
	}
	// The check of every record says which entries are not entries.
	if _, err := s.CheckRecords(ctx); err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(s.InvalidRecords(), func(r api.InvalidRecord) bool { return strings.HasSuffix(r.Key, "..%2f..%2fx") }) {
		t.Errorf("the hand-written entry with a bad name was not reported: %v", s.InvalidRecords())
	}
}

// TestIndexRuns checks that records written before the index existed, or
// by a site of an older version, are indexed at each site's first start
// at this version, and that later starts read only the site's mark: a
// federation upgraded one site at a time ends with every record indexed.
func TestIndexRuns(t *testing.T) {
	t.Parallel()
	s, c := newStore(t)
	ctx := context.Background()
	old := func(i int) string { // a record as a site of an older version writes it
		t.Helper()
		id := fmt.Sprintf("old-%d-000000", 1700000000+i)
		v := fmt.Sprintf(`{"id":%q,"tool":"old","site":"s1","state":"running","trigger":"manual","created_at":%q}`,
			id, testNow.Add(time.Duration(i)*time.Second).Format(time.RFC3339))
		if _, err := c.Put(ctx, "/mao/runs/"+id, v); err != nil {
			t.Fatal(err)
		}
		return id
	}
	var want []string
	for i := range 40 { // more than a batch
		want = append([]string{old(i)}, want...)
	}
	if _, err := c.Put(ctx, "/mao/runs/broken", "not json"); err != nil {
		t.Fatal(err)
	}
	if page, _, err := s.RunPage(ctx, api.RunFilter{}); err != nil || len(page) != 0 {
		t.Fatalf("before indexing: %v, %v; want none (nothing is indexed)", ids(page), err)
	}
	if n, err := s.IndexRuns(ctx, "s1"); err != nil || n != 40 {
		t.Fatalf("IndexRuns(s1) = %d, %v; want 40", n, err)
	}
	page, _, err := s.RunPage(ctx, api.RunFilter{Tool: "old"})
	if err != nil || !slices.Equal(ids(page), want) {
		t.Fatalf("after indexing: %v, %v; want %v", ids(page), err, want)
	}
	if held, err := s.HeldRuns(ctx, "s1"); err != nil || len(held) != 40 {
		t.Fatalf("held after indexing: %v, %v", ids(held), err)
	}
	if n, err := s.IndexRuns(ctx, "s1"); err != nil || n != 0 {
		t.Fatalf("IndexRuns(s1) again = %d, %v; want 0 (its mark is there)", n, err)
	}
	// A site of the older version writes on; the next site upgraded
	// indexes what it wrote.
	want = append([]string{old(40)}, want...)
	if n, err := s.IndexRuns(ctx, "s2"); err != nil || n != 41 {
		t.Fatalf("IndexRuns(s2) = %d, %v; want 41", n, err)
	}
	if page, _, err := s.RunPage(ctx, api.RunFilter{Tool: "old"}); err != nil || !slices.Equal(ids(page), want) {
		t.Fatalf("after the second site: %v, %v; want %v", ids(page), err, want)
	}
	// A site that is forgotten loses its mark: one of that name indexes
	// again (and writes only what is missing: nothing).
	if err := s.ForgetSite(ctx, "s1"); err != nil && !errors.Is(err, errs.ErrNotFound) {
		t.Fatal(err)
	}
	before, err := c.Get(ctx, "/mao/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	if n, err := s.IndexRuns(ctx, "s1"); err != nil || n != 41 {
		t.Fatalf("IndexRuns(s1) after ForgetSite = %d, %v; want 41", n, err)
	}
	after, err := c.Get(ctx, "/mao/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	if got := after.Header.Revision - before.Header.Revision; got != 1 {
		t.Errorf("indexing what was indexed took %d writes; want 1 (the mark)", got)
	}
}
