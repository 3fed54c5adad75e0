package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/orchestrator/errs"
	"github.com/mao-research/mao/toolspec"
)

func TestSiteInfos(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newStore(t)
	log := slog.New(slog.DiscardHandler)
	before := time.Now().UTC()
	live, err := s.Join(ctx, api.Site{Name: "a", Labels: map[string]string{"gpu": "yes"}}, 10*time.Second, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { live.Leave(context.Background()) })
	for _, name := range []string{"b", "c"} {
		m, err := s.Join(ctx, api.Site{Name: name}, 10*time.Second, log)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Leave(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range []api.Run{
		held("a-pending", "a", api.StatePending),
		held("a-running", "a", api.StateRunning),
		held("a-done", "a", api.StateSucceeded),
		held("b-running", "b", api.StateRunning),
		held("b-lost", "b", api.StateLost),
	} {
		if err := s.CreateRun(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.RequestRun(ctx, requested("unclaimed", toolspec.Target{})); err != nil {
		t.Fatal(err)
	}

	heldRuns, err := s.HeldRuns(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range heldRuns {
		ids = append(ids, r.ID)
	}
	slices.Sort(ids)
	if want := []string{"a-pending", "a-running", "b-running"}; !slices.Equal(ids, want) {
		t.Fatalf("held runs %v, want %v", ids, want)
	}

	infos, err := s.SiteInfos(ctx)
	if err != nil {
		t.Fatal(err)
	}
	type info struct {
		name string
		live bool
		runs int
	}
	var got []info
	for _, i := range infos {
		got = append(got, info{i.Name, i.Live, i.RunsInProgress})
		if i.LastSeen.Before(before) || i.LastSeen.After(time.Now()) {
			t.Errorf("site %s last seen %v, want between %v and now", i.Name, i.LastSeen, before)
		}
	}
	if want := []info{{"a", true, 2}, {"b", false, 1}, {"c", false, 0}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("sites %+v, want %+v", got, want)
	}
	if infos[0].Labels["gpu"] != "yes" {
		t.Errorf("live site's labels %v", infos[0].Labels)
	}

	steps := []struct {
		name string
		do   func() error
		want error
	}{
		{"forget a live site", func() error { return s.ForgetSite(ctx, "a") }, errs.ErrInUse},
		{"forget a gone site", func() error { return s.ForgetSite(ctx, "b") }, nil},
		{"forget it again", func() error { return s.ForgetSite(ctx, "b") }, errs.ErrNotFound},
		{"forget an unknown site", func() error { return s.ForgetSite(ctx, "zz") }, errs.ErrNotFound},
		// c has no etcd member (it used the cluster as a client): removing
		// the site removes its record.
		{"remove a gone site", func() error { return s.RemoveSite(ctx, "c") }, nil},
		{"remove it again", func() error { return s.RemoveSite(ctx, "c") }, errs.ErrNotFound},
	}
	for _, st := range steps {
		if err := st.do(); !errors.Is(err, st.want) || (st.want == nil && err != nil) {
			t.Fatalf("%s: %v, want %v", st.name, err, st.want)
		}
	}
	infos, err = s.SiteInfos(ctx)
	if err != nil || len(infos) != 1 || infos[0].Name != "a" {
		t.Fatalf("sites after forgetting b and c: %+v, %v", infos, err)
	}
}

func TestScheduledRunsOfSite(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newStore(t)
	joinSite(t, s, "here")
	const sid = "t-every-abcd"
	t1, t2 := int64(1795300000), int64(1795300060)
	perSite := func(tick int64, site string, state api.RunState) api.Run {
		r := tickRun(sid, tick, state)
		r.ID += "-" + site
		return r
	}
	for _, r := range []api.Run{
		perSite(t1, "b", api.StateSucceeded),
		perSite(t1, "a-b", api.StateFailed),
		perSite(t2, "b", api.StateSkipped),
		perSite(t2, "a-b", api.StatePending),
		perSite(t2, "a", api.StateMissed),
	} {
		if claimed, err := s.ClaimRun(ctx, r); !claimed || err != nil {
			t.Fatalf("claim %s: %v %v", r.ID, claimed, err)
		}
	}
	id := func(tick int64, site string) string { return fmt.Sprintf("%s-%d-%s", sid, tick, site) }
	tests := []struct {
		site         string
		last, latest string // "" for none
	}{
		{site: "b", last: id(t2, "b"), latest: id(t1, "b")},
		{site: "a-b", last: id(t2, "a-b"), latest: id(t2, "a-b")},
		{site: "a", last: id(t2, "a")},
		{site: "c"},
	}
	idOf := func(r *api.Run) string {
		if r == nil {
			return ""
		}
		return r.ID
	}
	for _, tc := range tests {
		last, err := s.LastScheduledRun(ctx, sid, tc.site)
		if err != nil || idOf(last) != tc.last {
			t.Errorf("LastScheduledRun(%q) = %q, %v; want %q", tc.site, idOf(last), err, tc.last)
		}
		latest, err := s.LatestExecutedRun(ctx, sid, tc.site)
		if err != nil || idOf(latest) != tc.latest {
			t.Errorf("LatestExecutedRun(%q) = %q, %v; want %q", tc.site, idOf(latest), err, tc.latest)
		}
	}
	// Without a site, every site's runs count.
	if last, err := s.LastScheduledRun(ctx, sid, ""); err != nil || last == nil || tickOf(sid, last.ID).Unix() != t2 {
		t.Errorf("LastScheduledRun(all sites) = %q, %v; want a run of tick %d", idOf(last), err, t2)
	}
}
