package store

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/orchestrator/errs"
	"github.com/mao-research/mao/toolspec"
)

// tickRun is the record of a tick claimed by site "here" (see joinSite).
func tickRun(sid string, tick int64, state api.RunState) api.Run {
	at := time.Unix(tick, 0).UTC()
	return api.Run{ID: fmt.Sprintf("%s-%d", sid, tick), Tool: "t", Site: "here", Schedule: sid, ScheduledTime: &at, State: state}
}

func TestClaimsHistoryAndPruning(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	joinSite(t, s, "here")
	const sid = "t-every-abcd"
	base := int64(1795300000)
	steps := []struct {
		run     api.Run
		claimed bool
	}{
		{tickRun(sid, base, api.StatePending), true},
		{tickRun(sid, base, api.StateSucceeded), false}, // a second claim of one tick
		{tickRun(sid, base+10, api.StateSkipped), true},
		{tickRun(sid, base+20, api.StateMissed), true},
		{tickRun(sid, base+30, api.StateSucceeded), true},
		{tickRun(sid, base+40, api.StateSkipped), true},
	}
	for i, st := range steps {
		claimed, err := s.ClaimRun(ctx, st.run)
		if err != nil || claimed != st.claimed {
			t.Fatalf("step %d: claimed %v (%v), want %v", i, claimed, err, st.claimed)
		}
	}
	last, err := s.LastScheduledRun(ctx, sid, "")
	if err != nil || last.ID != sid+"-"+fmt.Sprint(base+40) {
		t.Fatalf("last: %+v %v", last, err)
	}
	executed, err := s.LatestExecutedRun(ctx, sid, "")
	if err != nil || executed.ID != sid+"-"+fmt.Sprint(base+30) {
		t.Fatalf("latest executed: %+v %v", executed, err)
	}
	// Keep 2: the oldest (pending, not ended) stays; the two after it go.
	removed, err := s.PruneSchedule(ctx, sid, 2)
	if err != nil || fmt.Sprint(removed) != fmt.Sprintf("[%s-%d %s-%d]", sid, base+10, sid, base+20) {
		t.Fatalf("pruned %v %v", removed, err)
	}
	runs, _ := s.ScheduledRuns(ctx, sid)
	if len(runs) != 3 {
		t.Fatalf("left %d runs", len(runs))
	}
	// A pruned tick older than what is kept cannot be claimed again.
	s2 := "t-every-ef01"
	for _, tick := range []int64{base, base + 10, base + 20} {
		s.ClaimRun(ctx, tickRun(s2, tick, api.StateSucceeded))
	}
	if _, err := s.PruneSchedule(ctx, s2, 1); err != nil {
		t.Fatal(err)
	}
	if claimed, err := s.ClaimRun(ctx, tickRun(s2, base, api.StatePending)); claimed || err != nil {
		t.Fatalf("re-claim of a pruned tick: %v %v", claimed, err)
	}
	if claimed, _ := s.ClaimRun(ctx, tickRun(s2, base+30, api.StatePending)); !claimed {
		t.Fatal("a new tick was refused")
	}
}

func TestScheduleRecords(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	joinSite(t, s, "here")
	sch := toolspec.Schedule{ID: "t-daily-0001", Tool: "t", Spec: "daily", TZ: "UTC", Overlap: "forbid", Catchup: "once"}
	if err := s.CreateSchedule(ctx, sch); !errors.Is(err, errs.ErrNotFound) {
		t.Fatalf("schedule of an unknown tool: %v", err)
	}
	if err := s.CreateTool(ctx, tool("t", "")); err != nil {
		t.Fatal(err)
	}
	_, rev0, _ := s.Schedules(ctx)
	watchCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	events := s.WatchSchedules(watchCtx, rev0)
	from, err := s.Revision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateSchedule(ctx, sch); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateSchedule(ctx, sch); !errors.Is(err, errs.ErrExists) {
		t.Fatalf("duplicate ID: %v", err)
	}
	got, rev, err := s.ScheduleRevision(ctx, sch.ID)
	if err != nil || got.Spec != "daily" {
		t.Fatal(got, err)
	}
	got.Paused = true
	if err := s.UpdateSchedule(ctx, got, rev); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateSchedule(ctx, got, rev); !errors.Is(err, errs.ErrChanged) {
		t.Fatalf("update from a stale read: %v", err)
	}
	if err := s.DeleteSchedule(ctx, sch.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateSchedule(ctx, got, rev); !errors.Is(err, errs.ErrNotFound) {
		t.Fatalf("update of a removed schedule: %v", err)
	}
	var seen []string
	for len(seen) < 3 {
		for _, ev := range <-events {
			seen = append(seen, fmt.Sprint(ev.ID, " ", ev.Schedule != nil && ev.Schedule.Paused, " ", ev.Schedule == nil))
		}
	}
	if fmt.Sprint(seen) != "[t-daily-0001 false false t-daily-0001 true false t-daily-0001 false true]" {
		t.Fatalf("watched %v", seen)
	}
	s.ClaimRun(ctx, tickRun(sch.ID, 1795300000, api.StateSucceeded))
	s.ClaimRun(ctx, tickRun(sch.ID, 1795300010, api.StateSucceeded))
	if _, err := s.PruneSchedule(ctx, sch.ID, 1); err != nil {
		t.Fatal(err)
	}
	// A watch that starts after the deletion sees it, from the revision
	// read before; one from the deletion's own revision sees nothing more.
	ds := <-s.WatchRunDeletions(watchCtx, from)
	if len(ds) != 1 || ds[0].Run != "t-daily-0001-1795300000" || ds[0].Rev <= from {
		t.Fatalf("deleted runs seen: %+v", ds)
	}
	s.ClaimRun(ctx, tickRun(sch.ID, 1795300020, api.StateSucceeded))
	if _, err := s.PruneSchedule(ctx, sch.ID, 1); err != nil {
		t.Fatal(err)
	}
	if next := <-s.WatchRunDeletions(watchCtx, ds[0].Rev); len(next) != 1 || next[0].Run != "t-daily-0001-1795300010" {
		t.Fatalf("deleted runs seen after revision %d: %+v", ds[0].Rev, next)
	}
}
