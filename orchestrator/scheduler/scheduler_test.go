package scheduler

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/internal/testenv"
	"github.com/mao-research/mao/orchestrator/store"
	"github.com/mao-research/mao/toolspec"
)

// t0 is a tick of every @every 10s schedule.
var t0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

type harness struct {
	t         *testing.T
	clock     *clockwork.FakeClock
	schedules *fakeSchedules
	claims    *fakeClaims
	launcher  *fakeLauncher
	tools     fakeTools
	s         *Scheduler
	armed     chan time.Time
	images    fakeImages
}

func newHarness(t *testing.T, now time.Time, scheds ...toolspec.Schedule) *harness {
	t.Helper()
	h := &harness{
		t:         t,
		clock:     clockwork.NewFakeClockAt(now),
		schedules: &fakeSchedules{list: scheds, events: make(chan []toolspec.ScheduleEvent), watching: make(chan struct{}, 10)},
		claims:    newClaims(),
		launcher:  &fakeLauncher{launched: make(chan api.Run, 100)},
		tools:     fakeTools{"t1": {Name: "t1", Image: "img", DataRepo: "file:///r"}},
		armed:     make(chan time.Time, 1000),
		images:    fakeImages{},
	}
	return h
}

// start runs the scheduler until the test ends and waits until it is ready.
func (h *harness) start(history int) {
	s, err := New(Deps{Schedules: h.schedules, Claims: h.claims, History: h.claims, Tools: h.tools, Launcher: h.launcher,
		Images: h.images}, Options{Site: "s1", Labels: map[string]string{"gpu": "true"}, History: history, Clock: h.clock,
		OnArm: func(_ string, tick time.Time) { h.armed <- tick }})
	if err != nil {
		h.t.Fatal(err)
	}
	h.s = s
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	h.t.Cleanup(func() { cancel(); <-done })
	<-h.schedules.watching // loaded, caught up and armed
}

// advanceTo moves the fake clock to at, once the scheduler has armed a tick
// at or after at, so that the tick's timer exists when the clock moves.
func (h *harness) advanceTo(at time.Time) {
	h.t.Helper()
	h.jump(at, at)
}

// jump moves the fake clock to to in one step, once the scheduler has
// armed a tick at or after at: as a process stopped (SIGSTOP) from before
// at until to sees the time when it resumes.
func (h *harness) jump(at, to time.Time) {
	h.t.Helper()
	for {
		select {
		case tick := <-h.armed:
			if !tick.Before(at) {
				h.clock.Advance(to.Sub(h.clock.Now()))
				return
			}
		case <-time.After(10 * time.Second):
			h.t.Fatalf("no tick armed at or after %s", at)
		}
	}
}

// offsets is the claims' summary of schedule id with ticks as seconds
// from t0.
func (h *harness) offsets(id string) []string {
	got := h.claims.summary(id)
	for i := range got {
		var sec int64
		var rest string
		fmt.Sscanf(got[i], "%d:%s", &sec, &rest)
		got[i] = fmt.Sprintf("%d:%s", sec-t0.Unix(), rest)
	}
	return got
}

// send hands the scheduler a batch of schedule events and returns once it
// has applied them: the empty batch after it is taken only then.
func (h *harness) send(evs ...toolspec.ScheduleEvent) {
	h.schedules.events <- evs
	h.schedules.events <- nil
}

func (h *harness) nextLaunch() api.Run {
	h.t.Helper()
	select {
	case r := <-h.launcher.launched:
		return r
	case <-time.After(10 * time.Second):
		h.t.Fatal("no run was launched")
		return api.Run{}
	}
}

func (h *harness) nextClaim() api.Run {
	h.t.Helper()
	select {
	case r := <-h.claims.claims:
		return r
	case <-time.After(10 * time.Second):
		h.t.Fatal("no tick was recorded")
		return api.Run{}
	}
}

func (h *harness) noLaunch() {
	h.t.Helper()
	select {
	case r := <-h.launcher.launched:
		h.t.Fatalf("unexpected launch of %s", r.ID)
	default:
	}
}

func every(id, period string, opts ...func(*toolspec.Schedule)) toolspec.Schedule {
	s := toolspec.Schedule{ID: id, Tool: "t1", Spec: "@every " + period, CreatedAt: t0.Add(-time.Hour), UpdatedAt: t0.Add(-time.Hour)}
	s.ApplyDefaults("UTC")
	for _, o := range opts {
		o(&s)
	}
	return s
}

func unix(t time.Time) string { return fmt.Sprint(t.Unix()) }

func TestTicksFireOnTime(t *testing.T) {
	h := newHarness(t, t0.Add(-5*time.Second), every("s", "10s", func(s *toolspec.Schedule) {
		s.UpdatedAt, s.Overlap = t0.Add(-6*time.Second), toolspec.OverlapAllow
	}))
	h.start(100)
	h.noLaunch()
	for i := range 3 {
		tick := t0.Add(time.Duration(i) * 10 * time.Second)
		h.advanceTo(tick)
		r := h.nextLaunch()
		if r.ID != "s-"+unix(tick) || !r.ScheduledTime.Equal(tick) || r.Trigger != api.TriggerSchedule || r.Site != "s1" {
			t.Fatalf("tick %d launched %+v", i, r)
		}
	}
}

func TestEditsPausesAndRemovalsTakeEffect(t *testing.T) {
	allow := func(s *toolspec.Schedule) { s.Overlap = toolspec.OverlapAllow }
	h := newHarness(t, t0.Add(-time.Second), every("s", "10s", allow, func(s *toolspec.Schedule) { s.UpdatedAt = t0.Add(-2 * time.Second) }))
	h.start(100)
	h.advanceTo(t0)
	h.nextLaunch()

	// Edit: every 30s from now on.
	edited := every("s", "30s", allow, func(s *toolspec.Schedule) { s.UpdatedAt = t0.Add(time.Second) })
	h.clock.Advance(time.Second)
	h.send(toolspec.ScheduleEvent{ID: "s", Schedule: &edited})
	next := time.Unix((t0.Unix()/30+1)*30, 0).UTC()
	h.advanceTo(next.Add(-time.Millisecond))
	h.noLaunch() // the old 10s ticks are gone
	h.clock.Advance(time.Millisecond)
	if r := h.nextLaunch(); r.ID != "s-"+unix(next) {
		t.Fatalf("after the edit, launched %s", r.ID)
	}

	// Pause: nothing fires.
	paused := edited
	paused.Paused, paused.UpdatedAt = true, next.Add(time.Second)
	h.send(toolspec.ScheduleEvent{ID: "s", Schedule: &paused})
	h.clock.Advance(5 * time.Minute)
	h.noLaunch()

	// Resume: the ticks while paused are not caught up.
	resumed := edited
	resumed.UpdatedAt = h.clock.Now()
	h.send(toolspec.ScheduleEvent{ID: "s", Schedule: &resumed})
	after := edited
	timing, _ := after.Timing()
	upcoming := timing.Next(h.clock.Now())
	h.advanceTo(upcoming)
	if r := h.nextLaunch(); r.ID != "s-"+unix(upcoming) || r.Trigger != api.TriggerSchedule {
		t.Fatalf("after resume, launched %s (%s)", r.ID, r.Trigger)
	}

	// Remove: nothing fires any more.
	h.send(toolspec.ScheduleEvent{ID: "s"})
	h.clock.Advance(time.Hour)
	h.noLaunch()
}

func TestCatchUp(t *testing.T) {
	lastTick := t0
	tests := []struct {
		name  string
		sched toolspec.Schedule
		now   time.Time
		want  []string // tick offset from t0 in s : state : trigger
	}{
		{"once: the latest miss runs, older ones are missed", every("s", "10s"), t0.Add(35 * time.Second),
			[]string{"0:succeeded:schedule", "10:missed:schedule", "20:missed:schedule", "30:pending:catchup"}},
		{"once within the deadline", every("s", "10s", func(s *toolspec.Schedule) { s.Deadline = "10s" }), t0.Add(35 * time.Second),
			[]string{"0:succeeded:schedule", "10:missed:schedule", "20:missed:schedule", "30:pending:catchup"}},
		{"past the deadline: all missed", every("s", "10s", func(s *toolspec.Schedule) { s.Deadline = "3s" }), t0.Add(35 * time.Second),
			[]string{"0:succeeded:schedule", "10:missed:schedule", "20:missed:schedule", "30:missed:schedule"}},
		{"skip: all missed", every("s", "10s", func(s *toolspec.Schedule) { s.Catchup = toolspec.CatchupSkip }), t0.Add(35 * time.Second),
			[]string{"0:succeeded:schedule", "10:missed:schedule", "20:missed:schedule", "30:missed:schedule"}},
		{"nothing missed", every("s", "10s"), t0.Add(5 * time.Second), []string{"0:succeeded:schedule"}},
		{"ticks before the last edit are not caught up", every("s", "10s", func(s *toolspec.Schedule) { s.UpdatedAt = t0.Add(25 * time.Second) }),
			t0.Add(35 * time.Second), []string{"0:succeeded:schedule", "30:pending:catchup"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.now, tc.sched)
			h.claims.set(api.Run{ID: "s-" + unix(lastTick), Schedule: "s", ScheduledTime: &lastTick, State: api.StateSucceeded, Trigger: api.TriggerSchedule})
			h.start(100)
			if got := h.offsets("s"); !slices.Equal(got, tc.want) {
				t.Fatalf("records\n got %v\nwant %v", got, tc.want)
			}
			if strings.HasSuffix(tc.want[len(tc.want)-1], "catchup") {
				if r := h.nextLaunch(); r.Trigger != api.TriggerCatchup {
					t.Fatalf("launched %+v", r)
				}
			}
		})
	}
}

func TestOverlapForbidSkips(t *testing.T) {
	h := newHarness(t, t0.Add(-time.Second), every("s", "10s", func(s *toolspec.Schedule) { s.UpdatedAt = t0.Add(-2 * time.Second) }))
	h.start(100)
	h.advanceTo(t0)
	first := h.nextLaunch() // stays pending: the fake launcher runs nothing
	h.advanceTo(t0.Add(10 * time.Second))
	h.nextClaim() // the first
	second := h.nextClaim()
	h.noLaunch()
	if second.State != api.StateSkipped || !strings.Contains(second.Reason, first.ID) {
		t.Fatalf("second tick: %s %q", second.State, second.Reason)
	}
	// The third tick sees past the skipped one to the run still going.
	h.advanceTo(t0.Add(20 * time.Second))
	third := h.nextClaim()
	h.noLaunch()
	if third.State != api.StateSkipped || !strings.Contains(third.Reason, first.ID) {
		t.Fatalf("third tick: %s %q", third.State, third.Reason)
	}
	// With overlap allowed, the next tick runs although the first is pending.
	allow := every("s", "10s", func(s *toolspec.Schedule) { s.Overlap = toolspec.OverlapAllow; s.UpdatedAt = h.clock.Now() })
	h.send(toolspec.ScheduleEvent{ID: "s", Schedule: &allow})
	h.advanceTo(t0.Add(30 * time.Second))
	if r := h.nextLaunch(); r.ID != "s-"+unix(t0.Add(30*time.Second)) {
		t.Fatalf("launched %s", r.ID)
	}
}

func TestOrphanedTicksFail(t *testing.T) {
	h := newHarness(t, t0.Add(-time.Second), every("s", "10s", func(s *toolspec.Schedule) { s.Tool = "gone"; s.UpdatedAt = t0.Add(-2 * time.Second) }))
	h.start(100)
	for i := range 3 { // the scheduler stays alive and armed
		h.advanceTo(t0.Add(time.Duration(i) * 10 * time.Second))
		r := h.nextClaim()
		if r.State != api.StateFailed || !strings.Contains(r.Reason, "orphaned: tool gone is no longer registered") {
			t.Fatalf("tick %d: %s %q", i, r.State, r.Reason)
		}
	}
	h.noLaunch()
}

func TestHistoryIsPruned(t *testing.T) {
	h := newHarness(t, t0.Add(-time.Second), every("s", "10s", func(s *toolspec.Schedule) { s.Overlap = toolspec.OverlapAllow; s.UpdatedAt = t0.Add(-2 * time.Second) }))
	h.launcher.complete = h.claims
	h.start(3)
	for i := range 5 {
		h.advanceTo(t0.Add(time.Duration(i) * 10 * time.Second))
		h.nextLaunch()
	}
	if runs := h.claims.summary("s"); len(runs) != 3 {
		t.Fatalf("kept %v", runs)
	}
	want := []string{"s-" + unix(t0), "s-" + unix(t0.Add(10*time.Second))}
	if !slices.Equal(h.claims.prunedIDs(), want) {
		t.Fatalf("pruned %v, want %v", h.claims.prunedIDs(), want)
	}
}

// TestTickFiredLateIsCaughtUp checks the promise that a site stopped past
// its ticks (SIGSTOP, a paused VM, a long pause) does not run them as on
// time when it resumes: the tick that fires late and those due since are
// caught up as after a restart, the latest once (trigger catchup), the
// older missed. While the site cannot claim (its lease expired and it has
// not registered again: its claims fail), nothing is recorded, and the
// catch-up happens once it can.
func TestTickFiredLateIsCaughtUp(t *testing.T) {
	want := []string{"0:missed:schedule", "10:missed:schedule", "20:missed:schedule", "30:pending:catchup"}
	for _, tc := range []struct {
		name        string
		failedFirst int // claims that fail after the resume
	}{
		{"live when it resumes", 0},
		{"not live yet when it resumes", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, t0.Add(-5*time.Second), every("s", "10s", func(s *toolspec.Schedule) {
				s.Overlap, s.UpdatedAt = toolspec.OverlapAllow, t0.Add(-6*time.Second)
			}))
			h.start(100)
			h.claims.mu.Lock()
			h.claims.failNext = tc.failedFirst
			h.claims.mu.Unlock()
			h.jump(t0, t0.Add(35*time.Second)) // stopped from before t0 until t0+35s
			if tc.failedFirst > 0 {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				h.clock.BlockUntilContext(ctx, 2) // the retry timer, the next tick's timer
				if got := h.offsets("s"); len(got) != 0 {
					t.Fatalf("recorded while claims fail: %v", got)
				}
				h.clock.Advance(2 * time.Second)
			}
			r := h.nextLaunch()
			if r.ID != "s-"+unix(t0.Add(30*time.Second)) || r.Trigger != api.TriggerCatchup {
				t.Fatalf("launched %s (%s), want the tick at t0+30s caught up", r.ID, r.Trigger)
			}
			if got := h.offsets("s"); !slices.Equal(got, want) {
				t.Fatalf("records\n got %v\nwant %v", got, want)
			}
		})
	}
}

func TestFailedClaimIsCaughtUpWhenEtcdReturns(t *testing.T) {
	h := newHarness(t, t0.Add(-time.Second), every("s", "10s", func(s *toolspec.Schedule) { s.UpdatedAt = t0.Add(-2 * time.Second) }))
	h.start(100)
	h.claims.mu.Lock()
	h.claims.failNext = 1
	h.claims.mu.Unlock()
	h.advanceTo(t0)
	// The tick's claim failed; the scheduler retries after Options.Retry
	// (2s) and catches the tick up, with its original scheduled time, even
	// if a later tick was recorded meanwhile.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h.clock.BlockUntilContext(ctx, 2) // the retry timer, the next tick's timer
	h.clock.Advance(2 * time.Second)
	r := h.nextLaunch()
	if r.ID != "s-"+unix(t0) || r.Trigger != api.TriggerCatchup || !r.ScheduledTime.Equal(t0) {
		t.Fatalf("caught up %+v", r)
	}
}

// TestTwoSitesOnOneEtcdClaimEachTickOnce runs two schedulers against a real
// etcd, one with its clock 3s ahead of the other, for 30 ticks: each tick
// is recorded and launched exactly once, and none is missing.
func TestTwoSitesOnOneEtcdClaimEachTickOnce(t *testing.T) {
	st := store.New(testenv.EtcdClient(t), store.Options{Prefix: "/mao/", Timeout: 5 * time.Second})
	for _, name := range []string{"s1", "s2"} { // only live sites claim
		m, err := st.Join(context.Background(), api.Site{Name: name}, 30*time.Second, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Leave(context.Background()) })
	}
	sched := every("s", "10s", func(s *toolspec.Schedule) { s.Overlap = toolspec.OverlapAllow; s.UpdatedAt = t0.Add(-2 * time.Second) })
	launched := make(chan api.Run, 100)
	type site struct {
		clock  *clockwork.FakeClock
		armed  chan time.Time
		latest time.Time // the latest tick seen armed
	}
	sites := map[string]*site{
		"s1": {clock: clockwork.NewFakeClockAt(t0.Add(-time.Second)), armed: make(chan time.Time, 100)},
		"s2": {clock: clockwork.NewFakeClockAt(t0.Add(-time.Second + 3*time.Second)), armed: make(chan time.Time, 100)}, // 3s ahead
	}
	for name, site := range sites {
		schedules := &fakeSchedules{list: []toolspec.Schedule{sched}, events: make(chan []toolspec.ScheduleEvent), watching: make(chan struct{}, 10)}
		s, err := New(Deps{Schedules: schedules,
			Claims: st, History: st, Tools: fakeTools{"t1": {Name: "t1"}}, Launcher: &fakeLauncher{launched: launched}, Images: fakeImages{}},
			Options{Site: name, Clock: site.clock, OnArm: func(_ string, tick time.Time) { site.armed <- tick }})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); s.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
		<-schedules.watching
	}
	const ticks = 30
	for i := range ticks {
		tick := t0.Add(time.Duration(i) * 10 * time.Second)
		for _, site := range sites {
			for site.latest.Before(tick) {
				site.latest = <-site.armed
			}
		}
		sites["s1"].clock.Advance(tick.Sub(sites["s1"].clock.Now()))
		sites["s2"].clock.Advance(tick.Add(3 * time.Second).Sub(sites["s2"].clock.Now()))
		r := <-launched
		if r.ID != "s-"+unix(tick) {
			t.Fatalf("tick %d launched %s", i, r.ID)
		}
	}
	runs, err := st.ScheduledRuns(context.Background(), "s")
	if err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-launched:
		t.Fatalf("launched twice: %s", r.ID)
	default:
	}
	if len(runs) != ticks {
		t.Fatalf("%d records for %d ticks", len(runs), ticks)
	}
	for i, r := range runs { // newest first
		if want := "s-" + unix(t0.Add(time.Duration(ticks-1-i)*10*time.Second)); r.ID != want {
			t.Fatalf("record %d is %s, want %s", i, r.ID, want)
		}
	}
}

func TestTargets(t *testing.T) {
	cases := []struct {
		name    string
		target  toolspec.Target
		missing bool   // the tool's image is not usable at s1
		wantID  string // "" means s1 runs nothing; "%d" is the tick
	}{
		{"any", toolspec.Target{Mode: toolspec.TargetAny}, false, "s-%d"},
		{"any with a label s1 has", toolspec.Target{Mode: toolspec.TargetAny, Labels: map[string]string{"gpu": "true"}}, false, "s-%d"},
		{"any with a label s1 lacks", toolspec.Target{Mode: toolspec.TargetAny, Labels: map[string]string{"gpu": "false"}}, false, ""},
		{"this site", toolspec.Target{Mode: toolspec.TargetSite, Site: "s1"}, false, "s-%d"},
		{"another site", toolspec.Target{Mode: toolspec.TargetSite, Site: "s2"}, false, ""},
		{"all: one run per site", toolspec.Target{Mode: toolspec.TargetAll}, false, "s-%d-s1"},
		{"image not usable here", toolspec.Target{Mode: toolspec.TargetAny}, true, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, t0.Add(-5*time.Second), every("s", "10s", func(s *toolspec.Schedule) {
				s.UpdatedAt, s.Target = t0.Add(-6*time.Second), c.target
			}))
			h.images = fakeImages{missing: map[string]bool{"img": c.missing}}
			h.start(100)
			if c.wantID == "" {
				// The site arms nothing, or arms and records nothing.
				h.clock.Advance(11 * time.Second)
				select {
				case r := <-h.claims.claims:
					t.Fatalf("recorded %+v", r)
				case r := <-h.launcher.launched:
					t.Fatalf("launched %+v", r)
				case <-time.After(200 * time.Millisecond): // a firing would be immediate on the fake clock
				}
				return
			}
			h.advanceTo(t0)
			r := h.nextLaunch()
			if want := fmt.Sprintf(c.wantID, t0.Unix()); r.ID != want || r.Target == nil || r.Target.Mode != c.target.Mode {
				t.Fatalf("launched %s with target %+v, want %s with %+v", r.ID, r.Target, want, c.target)
			}
		})
	}
}
