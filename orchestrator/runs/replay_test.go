package runs

import (
	"testing"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/toolspec"
)

// TestOwnOnly checks which runs no other site may ever hold: exactly those
// that Lose makes wait for their own site again.
func TestOwnOnly(t *testing.T) {
	tool := toolspec.Tool{Name: "t", Image: "img:1", DataRepo: "file:///r"}
	schedule := func(target toolspec.Target) toolspec.Schedule {
		return toolspec.Schedule{ID: "s", Tool: "t", Target: target}
	}
	site := toolspec.Target{Mode: toolspec.TargetSite, Site: "a"}
	tests := []struct {
		name string
		run  api.Run
		want bool
	}{
		{"asked here, no target", NewManual(Manual("t", now), tool, Ask{Site: "a"}, now), true},
		{"asked for this site", func() api.Run {
			r := NewManual(Manual("t", now), tool, Ask{Target: &site, Retries: 1}, now)
			r.Site = "a"
			return r
		}(), true},
		{"asked for another site, held here", func() api.Run {
			r := NewManual(Manual("t", now), tool, Ask{Target: &toolspec.Target{Mode: toolspec.TargetSite, Site: "b"}}, now)
			r.Site = "a"
			return r
		}(), false},
		{"asked of any site", func() api.Run {
			r := NewManual(Manual("t", now), tool, Ask{Target: &toolspec.Target{Mode: toolspec.TargetAny}}, now)
			r.Site = "a"
			return r
		}(), false},
		{"waiting for this site", NewManual(Manual("t", now), tool, Ask{Target: &site}, now), false},
		{"a tick of a --site schedule", NewTick(Tick("s", t0), schedule(site), tool, "a", api.TriggerSchedule, now), true},
		{"this site's tick of an --all schedule", NewTick(Tick("s", t0).For("a"), schedule(toolspec.Target{Mode: toolspec.TargetAll}),
			tool, "a", api.TriggerSchedule, now), true},
		{"another site's tick of an --all schedule", NewTick(Tick("s", t0).For("b"), schedule(toolspec.Target{Mode: toolspec.TargetAll}),
			tool, "a", api.TriggerSchedule, now), false},
		{"a tick of an --any schedule", NewTick(Tick("s", t0), schedule(toolspec.Target{Mode: toolspec.TargetAny}), tool, "a",
			api.TriggerSchedule, now), false},
		{"a tick of a schedule from before targets", func() api.Run {
			r := NewTick(Tick("s", t0), schedule(toolspec.Target{}), tool, "a", api.TriggerSchedule, now)
			r.Target = nil
			return r
		}(), false},
	}
	for _, tc := range tests {
		if got := OwnOnly(tc.run); got != tc.want {
			t.Errorf("%s: OwnOnly = %v, want %v", tc.name, got, tc.want)
		}
		if !tc.want || tc.run.State != api.StatePending {
			continue
		}
		// The promise OwnOnly stands for: a lost own-only run waits for
		// its own site again, started or not.
		for _, start := range []bool{false, true} {
			r := tc.run
			r.MaxAttempts = 2
			if start {
				r = mustApply(t, r, Start{})
			}
			lost := mustApply(t, r, Lose{Site: "a"})
			if !Waiting(lost) || lost.Target == nil || lost.Target.EffectiveMode() != toolspec.TargetSite || lost.Target.Site != "a" {
				t.Errorf("%s, started %v: lost, it waits for %+v; want site a", tc.name, start, lost.Target)
			}
		}
	}
}

func mustApply(t *testing.T, r api.Run, ev Event) api.Run {
	t.Helper()
	out, err := Apply(r, ev, now)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestReplay checks how a journal's record of an own-only run goes into
// etcd over the record there: created when absent, replacing an earlier
// point of the run's life, left alone when etcd has it or a later one
// (replaying twice changes nothing), winning over another site's
// settlement of the attempt as lost, and never over another site's record.
func TestReplay(t *testing.T) {
	tool := toolspec.Tool{Name: "t", Image: "img:1", DataRepo: "file:///r"}
	sch := toolspec.Schedule{ID: "s", Tool: "t", Retries: 1, Target: toolspec.Target{Mode: toolspec.TargetSite, Site: "a"}}
	claimed := NewTick(Tick("s", t0), sch, tool, "a", api.TriggerSchedule, t0)
	running := mustApply(t, claimed, Start{})
	failed := mustApply(t, running, Fail{Reason: "exit code 1"})
	retrying := mustApply(t, failed, RetryLater{})
	succeeded := mustApply(t, running, Succeed{})
	lostRunning := mustApply(t, running, Lose{Site: "a"}) // waits for a, attempt 2
	lostPending := mustApply(t, claimed, Lose{Site: "a"}) // waits for a, attempt 1
	last := running
	last.MaxAttempts = 1
	lostForGood := mustApply(t, last, Lose{Site: "a"})
	elsewhere := running
	elsewhere.Site = "b"
	pending2 := retrying
	pending2.Attempts = nil                                                                                        // attempt 2, pending, as a claim of the lost run's request would make it
	lostAgain := mustApply(t, mustApply(t, mustApply(t, lostRunning, Claim{Site: "a"}), Start{}), Lose{Site: "a"}) // attempt 2 lost too
	missed := mustApply(t, claimed, Miss{Reason: "missed"})

	tests := []struct {
		name   string
		stored *api.Run
		rec    api.Run
		want   ReplayAction
	}{
		{"absent", nil, claimed, ReplayCreate},
		{"absent, a later record", nil, succeeded, ReplayCreate},
		{"pending, the journal says running", &claimed, running, ReplayUpdate},
		{"running, the journal says succeeded", &running, succeeded, ReplayUpdate},
		{"attempt 1 failed, the journal retries", &failed, retrying, ReplayUpdate},
		{"the same record", &running, running, ReplaySkip},
		{"a later record, the journal's earlier", &succeeded, running, ReplaySkip},
		{"a later attempt, the journal's earlier", &retrying, succeeded, ReplaySkip},
		{"a missed tick stored, the journal's claim", &missed, claimed, ReplaySkip},
		{"settled lost while running: waits again, attempt 2", &lostRunning, succeeded, ReplayReclaim},
		{"settled lost while running, the journal's running record", &lostRunning, running, ReplayReclaim},
		{"settled lost while running, the journal retries", &lostRunning, retrying, ReplayReclaim},
		{"settled while pending: waits again, attempt 1", &lostPending, succeeded, ReplayReclaim},
		{"settled lost for good", &lostForGood, succeeded, ReplayReclaim},
		{"reclaimed already", &succeeded, succeeded, ReplaySkip},
		{"waits again at a later attempt than the journal's", &lostAgain, succeeded, ReplaySkip},
		{"claimed again by this site, attempt 2", &pending2, succeeded, ReplaySkip},
		{"held by another site", &elsewhere, succeeded, ReplayRefuse},
	}
	for _, tc := range tests {
		if got, why := Replay(tc.stored, tc.rec); got != tc.want || why == "" {
			t.Errorf("%s: %s (%s), want %s", tc.name, got, why, tc.want)
		}
	}
}
