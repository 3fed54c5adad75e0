package notify

import (
	"slices"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

func TestDecideSpike(t *testing.T) {
	type step struct {
		at    time.Duration // after t0
		spike bool
		want  []string
	}
	tests := []struct {
		name     string
		cooldown time.Duration
		steps    []step
	}{
		{"new spike", time.Hour, []step{{0, true, []string{KindSpike}}}},
		{"ok without a spike before", time.Hour, []step{{0, false, nil}, {time.Minute, false, nil}}},
		{"stays high within cooldown", time.Hour, []step{
			{0, true, []string{KindSpike}}, {time.Minute, true, nil}, {59 * time.Minute, true, nil}}},
		{"stays high past cooldown: one reminder", time.Hour, []step{
			{0, true, []string{KindSpike}}, {30 * time.Minute, true, nil}, {time.Hour, true, []string{KindSpike}},
			{90 * time.Minute, true, nil}, {2 * time.Hour, true, []string{KindSpike}}}},
		{"resolved once", time.Hour, []step{
			{0, true, []string{KindSpike}}, {time.Minute, false, []string{KindSpikeResolved}},
			{2 * time.Minute, false, nil}, {3 * time.Minute, false, nil}}},
		{"spikes again after resolving", time.Hour, []step{
			{0, true, []string{KindSpike}}, {time.Minute, false, []string{KindSpikeResolved}},
			{2 * time.Minute, true, []string{KindSpike}}}},
		{"default cooldown is a day", 0, []step{
			{0, true, []string{KindSpike}}, {23 * time.Hour, true, nil}, {24 * time.Hour, true, []string{KindSpike}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s State
			for i, st := range tt.steps {
				var kinds []string
				kinds, s = DecideSpike(s, st.spike, t0.Add(st.at), tt.cooldown)
				if !slices.Equal(kinds, st.want) {
					t.Fatalf("step %d (spike %v at +%v): got %v, want %v", i, st.spike, st.at, kinds, st.want)
				}
				if s.Spiking != st.spike {
					t.Fatalf("step %d: Spiking %v, want %v", i, s.Spiking, st.spike)
				}
			}
		})
	}
}

func TestDecideSpikeLeavesRunState(t *testing.T) {
	sent := t0
	prev := State{Failing: true, FailureSentAt: &sent, Failures: 2}
	_, next := DecideSpike(prev, true, t0, time.Hour)
	if !next.Failing || next.FailureSentAt != &sent || next.Failures != 2 || next.SpikeSentAt == nil || !next.SpikeSentAt.Equal(t0) {
		t.Fatalf("got %+v", next)
	}
}

func TestDecideRun(t *testing.T) {
	type step struct {
		at           time.Duration // after t0
		end          RunEnd
		want         []string
		wantFailures int
	}
	tests := []struct {
		name     string
		cooldown time.Duration
		steps    []step
	}{
		{"success without failures before", time.Hour, []step{{0, RunSucceeded, nil, 0}, {time.Minute, RunSucceeded, nil, 0}}},
		{"first failure", time.Hour, []step{{0, RunFailed, []string{KindRunFailed}, 1}}},
		{"first timeout", time.Hour, []step{{0, RunTimedOut, []string{KindRunTimedOut}, 1}}},
		{"first lost run", time.Hour, []step{{0, RunLost, []string{KindRunLost}, 1}}},
		{"repeated failures: one message", time.Hour, []step{
			{0, RunFailed, []string{KindRunFailed}, 1}, {time.Minute, RunFailed, nil, 2},
			{2 * time.Minute, RunTimedOut, nil, 3}, {3 * time.Minute, RunLost, nil, 4}}},
		{"failures past cooldown: one reminder of the newest kind", time.Hour, []step{
			{0, RunFailed, []string{KindRunFailed}, 1}, {30 * time.Minute, RunFailed, nil, 2},
			{time.Hour, RunTimedOut, []string{KindRunTimedOut}, 3}, {90 * time.Minute, RunFailed, nil, 4}}},
		{"recovery: one message", time.Hour, []step{
			{0, RunFailed, []string{KindRunFailed}, 1}, {time.Minute, RunFailed, nil, 2},
			{2 * time.Minute, RunSucceeded, []string{KindRunRecovered}, 0}, {3 * time.Minute, RunSucceeded, nil, 0}}},
		{"fails again after recovering", time.Hour, []step{
			{0, RunFailed, []string{KindRunFailed}, 1}, {time.Minute, RunSucceeded, []string{KindRunRecovered}, 0},
			{2 * time.Minute, RunFailed, []string{KindRunFailed}, 1}}},
		{"other states change nothing", time.Hour, []step{
			{0, RunFailed, []string{KindRunFailed}, 1}, {time.Minute, RunNeither, nil, 1}, {2 * time.Minute, RunNeither, nil, 1},
			{3 * time.Minute, RunNeither, nil, 1}, {4 * time.Minute, RunSucceeded, []string{KindRunRecovered}, 0}}},
		{"default cooldown is a day", 0, []step{
			{0, RunFailed, []string{KindRunFailed}, 1}, {23 * time.Hour, RunFailed, nil, 2},
			{24 * time.Hour, RunFailed, []string{KindRunFailed}, 3}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s State
			for i, st := range tt.steps {
				var kinds []string
				kinds, s = DecideRun(s, st.end, t0.Add(st.at), tt.cooldown)
				if !slices.Equal(kinds, st.want) || s.Failures != st.wantFailures {
					t.Fatalf("step %d (%v at +%v): got %v with %d failures, want %v with %d",
						i, st.end, st.at, kinds, s.Failures, st.want, st.wantFailures)
				}
			}
		})
	}
}

func TestDecidePush(t *testing.T) {
	type step struct {
		at      time.Duration // after t0
		failing bool
		want    []string
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"fails: told once", []step{{0, true, []string{KindPushFailed}}, {time.Minute, true, nil}, {time.Hour, true, nil}}},
		{"pushed: nothing", []step{{0, false, nil}, {time.Minute, false, nil}}},
		{"pushed after failing, then failing again: told again", []step{
			{0, true, []string{KindPushFailed}}, {time.Minute, false, nil}, {2 * time.Minute, true, []string{KindPushFailed}}}},
		{"failing past the cooldown: a reminder", []step{
			{0, true, []string{KindPushFailed}}, {23 * time.Hour, true, nil}, {24 * time.Hour, true, []string{KindPushFailed}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sent := t0
			s := State{Failing: true, FailureSentAt: &sent, Spiking: true}
			for i, st := range tt.steps {
				var kinds []string
				kinds, s = DecidePush(s, st.failing, t0.Add(st.at), 0)
				if !slices.Equal(kinds, st.want) || s.PushFailing != st.failing {
					t.Fatalf("step %d (failing %v at +%v): got %v (%+v), want %v", i, st.failing, st.at, kinds, s, st.want)
				}
			}
			if !s.Failing || !s.Spiking || s.FailureSentAt != &sent {
				t.Errorf("the other conditions' state changed: %+v", s)
			}
		})
	}
}
