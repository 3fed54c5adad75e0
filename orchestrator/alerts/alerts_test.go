package alerts

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/detector"
	"github.com/mao-research/mao/notify"
)

var siteChannels = []string{"site://one", "site://two"}

// ended is a run of the test tool that ended in state.
func ended(id string, state api.RunState, verdicts ...detector.Verdict) api.Run {
	return api.Run{ID: id, Tool: testTool, Site: testSite, State: state, Reason: "reason of " + id,
		Verdicts: verdicts, CreatedAt: t0}
}

func spikeVerdict() detector.Verdict {
	return detector.Verdict{Metric: "control", Status: detector.StatusSpike, Spike: true, Value: ptr(100),
		Baseline: ptr(10.75), Score: ptr(60.7), Threshold: 3.5, Method: detector.MethodMAD, History: 6,
		Reason: "100 is 60.7 robust deviations above the median 10.75 of the last 6 values (threshold 3.5)"}
}

func verdict(status string) detector.Verdict {
	return detector.Verdict{Metric: "control", Status: status, Spike: status == detector.StatusSpike, Value: ptr(1),
		Threshold: 3.5, Method: detector.MethodMAD}
}

func TestDecideSpikeEvent(t *testing.T) {
	e := newEnv(t, Options{Channels: siteChannels})
	v := spikeVerdict()
	e.a.decide(context.Background(), ended("run-1", api.StateSucceeded, v))
	got := e.notifier.pending()
	if len(got) != 1 {
		t.Fatalf("%d notifications, want 1: %+v", len(got), got)
	}
	want := notify.Event{Kind: notify.KindSpike, Tool: testTool, Site: testSite, RunID: "run-1", Metric: "control",
		Value: v.Value, Baseline: v.Baseline, Score: v.Score, Threshold: 3.5, Method: detector.MethodMAD, Reason: v.Reason,
		State: "succeeded", Logs: "maoctl run logs run-1", Time: t0}
	if !reflect.DeepEqual(got[0].e, want) {
		t.Errorf("event\n%+v, want\n%+v", got[0].e, want)
	}
	wantChannels := []string{"site://one", "site://two", "tool://hook"}
	if !reflect.DeepEqual(got[0].channels, wantChannels) {
		t.Errorf("channels %v, want %v", got[0].channels, wantChannels)
	}
	if s := e.states.state(testTool, testSite+"/control"); !s.Spiking || s.SpikeSentAt == nil || !s.SpikeSentAt.Equal(t0) {
		t.Errorf("stored state %+v, want spiking since %v", s, t0)
	}
}

// step is one ended run in a sequence, after the clock moved on by advance.
type step struct {
	advance time.Duration
	run     api.Run
	want    []string // kinds notified
}

func runSteps(t *testing.T, e *env, steps []step) {
	t.Helper()
	for i, st := range steps {
		e.clock.Advance(st.advance)
		e.a.decide(context.Background(), st.run)
		got := e.notifier.kinds()
		if strings.Join(got, ",") != strings.Join(st.want, ",") {
			t.Errorf("step %d (%s, %d verdicts): notified %v, want %v", i+1, st.run.State, len(st.run.Verdicts), got, st.want)
		}
	}
}

func TestDecideSequences(t *testing.T) {
	hour := time.Hour
	tests := []struct {
		name  string
		steps []step
	}{
		{"run failures", []step{
			{0, ended("r1", api.StateFailed), []string{notify.KindRunFailed}},
			{hour, ended("r2", api.StateFailed), nil},
			{hour, ended("r3", api.StateTimedOut), nil},
			{hour, ended("r4", api.StateSucceeded), []string{notify.KindRunRecovered}},
			{hour, ended("r5", api.StateSucceeded), nil},
			{hour, ended("r6", api.StateLost), []string{notify.KindRunLost}},
			{hour, ended("r7", api.StateTimedOut), nil},
			{notify.DefaultCooldown, ended("r8", api.StateTimedOut), []string{notify.KindRunTimedOut}}, // the reminder
			{hour, ended("r9", api.StateSucceeded), []string{notify.KindRunRecovered}},
		}},
		{"states that are no ends change nothing", []step{
			{0, ended("r1", api.StateSkipped), nil},
			{0, ended("r2", api.StateMissed), nil},
			{0, ended("r3", api.StateSucceeded), nil},
		}},
		{"spikes", []step{
			{0, ended("r1", api.StateSucceeded, spikeVerdict()), []string{notify.KindSpike}},
			{hour, ended("r2", api.StateSucceeded, spikeVerdict()), nil},
			{hour, ended("r3", api.StateSucceeded, verdict(detector.StatusNoData)), nil},
			{hour, ended("r4", api.StateSucceeded, verdict(detector.StatusWarmingUp)), nil},
			{hour, ended("r5", api.StateSucceeded, verdict(detector.StatusOK)), []string{notify.KindSpikeResolved}},
			{hour, ended("r6", api.StateSucceeded, verdict(detector.StatusOK)), nil},
			{hour, ended("r7", api.StateSucceeded, spikeVerdict()), []string{notify.KindSpike}},
			{notify.DefaultCooldown, ended("r8", api.StateSucceeded, spikeVerdict()), []string{notify.KindSpike}}, // the reminder
		}},
		{"a failure and a spike in one sequence", []step{
			{0, ended("r1", api.StateFailed), []string{notify.KindRunFailed}},
			{hour, ended("r2", api.StateSucceeded, spikeVerdict()), []string{notify.KindRunRecovered, notify.KindSpike}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runSteps(t, newEnv(t, Options{Channels: siteChannels}), tt.steps)
		})
	}
}

func TestDecideCooldownOption(t *testing.T) {
	e := newEnv(t, Options{Channels: siteChannels, Cooldown: time.Hour})
	runSteps(t, e, []step{
		{0, ended("r1", api.StateFailed), []string{notify.KindRunFailed}},
		{30 * time.Minute, ended("r2", api.StateFailed), nil},
		{30 * time.Minute, ended("r3", api.StateFailed), []string{notify.KindRunFailed}},
	})
}

func TestDecideFailedEvent(t *testing.T) {
	e := newEnv(t, Options{Channels: siteChannels})
	e.clock.Advance(time.Minute)
	e.a.decide(context.Background(), ended("run-1", api.StateFailed))
	got := e.notifier.pending()
	if len(got) != 1 {
		t.Fatalf("%d notifications, want 1", len(got))
	}
	want := notify.Event{Kind: notify.KindRunFailed, Tool: testTool, Site: testSite, RunID: "run-1", State: "failed",
		Reason: "reason of run-1", Logs: "maoctl run logs run-1", Time: t0.Add(time.Minute)}
	got[0].e.Failures = 0 // TestDecideReminderCountsFailures checks it
	if !reflect.DeepEqual(got[0].e, want) {
		t.Errorf("event\n%+v, want\n%+v", got[0].e, want)
	}
	if s := e.states.state(testTool, "runs"); !s.Failing || s.Failures != 1 {
		t.Errorf("stored state %+v, want failing once", s)
	}
}

// The reminder of a lasting failure says how many runs failed in a row:
// notify.Event.Failures exists for it and the default template prints it.
// BUG: decide never sets Event.Failures, so the reminder reads like a
// first failure.
func TestDecideReminderCountsFailures(t *testing.T) {
	e := newEnv(t, Options{Channels: siteChannels})
	runSteps(t, e, []step{
		{0, ended("r1", api.StateFailed), []string{notify.KindRunFailed}},
		{time.Hour, ended("r2", api.StateFailed), nil},
	})
	e.clock.Advance(notify.DefaultCooldown)
	e.a.decide(context.Background(), ended("r3", api.StateFailed))
	got := e.notifier.pending()
	if len(got) != 1 || got[0].e.Kind != notify.KindRunFailed {
		t.Fatalf("notified %+v, want one reminder", got)
	}
	if got[0].e.Failures != 3 {
		t.Errorf("reminder's Failures = %d, want 3 (the stored state has %d)", got[0].e.Failures,
			e.states.state(testTool, "runs").Failures)
	}
}

// A decision whose compare-and-swap lost runs again on the stored state:
// only the decision stored is notified.
func TestDecideCompareAndSwapConflict(t *testing.T) {
	other := t0.Add(-time.Minute)
	tests := []struct {
		name     string
		run      api.Run
		conflict func(notify.State) notify.State
		want     []string
		fnCalls  int // twice on the scope in conflict, once on the other
	}{
		{"the state did not change", ended("r1", api.StateSucceeded, spikeVerdict()),
			func(s notify.State) notify.State { return s }, []string{notify.KindSpike}, 3},
		{"another site notified the spike", ended("r1", api.StateSucceeded, spikeVerdict()),
			func(s notify.State) notify.State { s.Spiking, s.SpikeSentAt = true, &other; return s }, nil, 3},
		{"the state did not change, a failure", ended("r1", api.StateFailed),
			func(s notify.State) notify.State { return s }, []string{notify.KindRunFailed}, 2},
		{"another site notified the failure", ended("r1", api.StateFailed),
			func(s notify.State) notify.State { s.Failing, s.FailureSentAt, s.Failures = true, &other, 1; return s }, nil, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, Options{Channels: siteChannels})
			scope := "runs"
			if len(tt.run.Verdicts) > 0 {
				scope = testSite + "/control"
			}
			e.states.conflicts[testTool+"/"+scope] = tt.conflict
			e.a.decide(context.Background(), tt.run)
			if got := e.notifier.kinds(); strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("notified %v, want %v", got, tt.want)
			}
			if len(e.states.conflicts) != 0 || e.states.fnCalls != tt.fnCalls {
				t.Errorf("fn called %d times (conflict left: %d), want %d with the conflict on %s",
					e.states.fnCalls, len(e.states.conflicts), tt.fnCalls, scope)
			}
		})
	}
}

// Verdicts without a judgement touch no series state.
func TestDecideUnjudgedVerdictsKeepState(t *testing.T) {
	e := newEnv(t, Options{Channels: siteChannels})
	e.a.decide(context.Background(), ended("r1", api.StateSucceeded,
		verdict(detector.StatusNoData), verdict(detector.StatusWarmingUp)))
	if got := e.notifier.pending(); len(got) != 0 {
		t.Errorf("notified %+v, want nothing", got)
	}
	if got, want := e.states.calls(), []string{testTool + "/runs"}; !reflect.DeepEqual(got, want) {
		t.Errorf("states updated %v, want only %v", got, want)
	}
}

func TestDecideChannels(t *testing.T) {
	tests := []struct {
		name      string
		site      []string
		tool      []string // nil: the tool is not found
		want      []string // nil: nothing notified, no state changed
		wantState bool
	}{
		{"site and tool", siteChannels, []string{"tool://hook"}, []string{"site://one", "site://two", "tool://hook"}, true},
		{"tool only", nil, []string{"tool://hook"}, []string{"tool://hook"}, true},
		{"site only", siteChannels, []string{}, siteChannels, true},
		{"tool not found: the site's", siteChannels, nil, siteChannels, true},
		{"none", nil, []string{}, nil, false},
		{"none and tool not found", nil, nil, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, Options{Channels: tt.site})
			if tt.tool == nil {
				delete(e.tools, testTool)
			} else {
				e.tools[testTool] = toolWithChannels(tt.tool)
			}
			e.a.decide(context.Background(), ended("r1", api.StateFailed, spikeVerdict()))
			got := e.notifier.pending()
			if tt.want == nil {
				if len(got) != 0 {
					t.Errorf("notified %+v, want nothing", got)
				}
			} else {
				if len(got) != 2 {
					t.Fatalf("%d notifications, want 2 (run_failed, spike): %+v", len(got), got)
				}
				for _, n := range got {
					if !reflect.DeepEqual(n.channels, tt.want) {
						t.Errorf("%s to %v, want %v", n.e.Kind, n.channels, tt.want)
					}
				}
			}
			if changed := len(e.states.calls()) > 0; changed != tt.wantState {
				t.Errorf("states updated: %v, want %v", changed, tt.wantState)
			}
			if tt.tool == nil && tt.site != nil && !strings.Contains(e.log.String(), "look up an ended run's tool") {
				t.Errorf("the failed look-up was not logged: %q", e.log.String())
			}
		})
	}
}

func TestDecideStateStoreError(t *testing.T) {
	e := newEnv(t, Options{Channels: siteChannels})
	e.states.err = errors.New("etcd unavailable")
	e.a.decide(context.Background(), ended("r1", api.StateFailed, spikeVerdict()))
	if got := e.notifier.pending(); len(got) != 0 {
		t.Errorf("notified %+v, want nothing when the state cannot be stored", got)
	}
	if got := strings.Count(e.log.String(), "record a notification state; not notifying"); got != 2 {
		t.Errorf("%d warnings, want 2 (runs and the series): %q", got, e.log.String())
	}
}

// Ended never blocks: past the queue's size, runs are dropped with a log
// line.
func TestEndedNeverBlocks(t *testing.T) {
	e := newEnv(t, Options{Channels: siteChannels})
	const extra = 3
	for i := range endedQueue + extra {
		e.a.Ended(ended(fmt.Sprintf("r%d", i), api.StateFailed))
	}
	if n := len(e.a.ended); n != endedQueue {
		t.Errorf("%d runs queued, want %d", n, endedQueue)
	}
	var dropped, want []string
	for line := range strings.Lines(e.log.String()) {
		if strings.Contains(line, "notification queue full") {
			_, run, _ := strings.Cut(strings.TrimSpace(line), " run=")
			dropped = append(dropped, run)
		}
	}
	for i := endedQueue; i < endedQueue+extra; i++ {
		want = append(want, fmt.Sprintf("r%d", i))
	}
	if !reflect.DeepEqual(dropped, want) {
		t.Errorf("logged as dropped %v, want %v", dropped, want)
	}
}

// Run decides each ended run as it comes, and returns when its ctx ends.
func TestRunDecidesEndedRuns(t *testing.T) {
	e := newEnv(t, Options{Channels: siteChannels})
	e.states.honourCtx = true
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.a.Run(ctx)
	}()
	for i, want := range []string{notify.KindRunFailed, notify.KindRunRecovered} {
		state := api.StateFailed
		if i == 1 {
			state = api.StateSucceeded
		}
		id := fmt.Sprintf("r%d", i)
		e.a.Ended(ended(id, state))
		n := <-e.notifier.calls
		if n.e.Kind != want || n.e.RunID != id {
			t.Errorf("notified %s of %s, want %s of %s", n.e.Kind, n.e.RunID, want, id)
		}
	}
	cancel()
	<-done
	if got := e.notifier.pending(); len(got) != 0 {
		t.Errorf("more notifications than expected: %+v", got)
	}
}

// Runs queued when Run's ctx ends are still decided before Run returns.
func TestRunDrainsQueuedRuns(t *testing.T) {
	e := newEnv(t, Options{Channels: siteChannels})
	tools := []string{"t1", "t2", "t3", "t4", "t5"}
	for _, name := range tools {
		e.tools[name] = toolWithChannels(nil)
		run := ended("run-of-"+name, api.StateFailed)
		run.Tool = name
		e.a.Ended(run)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	e.a.Run(ctx) // returns once the queue is drained
	got := e.notifier.pending()
	if len(got) != len(tools) {
		t.Fatalf("%d notifications, want %d: %+v", len(got), len(tools), got)
	}
	for i, n := range got {
		if n.e.Kind != notify.KindRunFailed || n.e.Tool != tools[i] {
			t.Errorf("notification %d: %s of %s, want run_failed of %s", i, n.e.Kind, n.e.Tool, tools[i])
		}
	}
	if len(e.a.ended) != 0 {
		t.Errorf("%d runs still queued", len(e.a.ended))
	}
}

// The runs queued when Run's ctx ends are decided with a live context,
// whatever select picks first: a store that fails on a ctx that has ended
// (as etcd does) must still record their states.
//
// BUG: when ctx has ended and runs are queued, Run's select picks either
// case at random; when it picks a run, decide gets the ended ctx, the
// state update fails and that run's notifications are lost. Each round
// below loses a run with probability 1/2, so 30 rounds all but surely show
// it.
func TestRunDrainUsesLiveContext(t *testing.T) {
	for round := range 30 {
		e := newEnv(t, Options{Channels: siteChannels})
		e.states.honourCtx = true
		for i := range 3 {
			run := ended(fmt.Sprintf("r%d", i), api.StateFailed)
			run.Tool = fmt.Sprintf("t%d", i)
			e.tools[run.Tool] = toolWithChannels(nil)
			e.a.Ended(run)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		e.a.Run(ctx)
		if got := e.notifier.kinds(); len(got) != 3 {
			t.Fatalf("round %d: notified %v, want 3 run_failed; log: %s", round, got, e.log.String())
		}
	}
}

// TestPushFailedOnce: a site whose pushes of a tool's commits fail for too
// long tells push_failed once, with the push's reason, whatever the number
// of failing runs; once a push lands, the next lasting failure is told
// again.
func TestPushFailedOnce(t *testing.T) {
	e := newEnv(t, Options{Channels: siteChannels})
	failing := func(id string) item {
		r := ended(id, api.StateSucceeded)
		r.Push = &api.Push{State: api.PushFailed, Reason: "push to https://h/d.git: authentication required", Attempts: 3}
		return item{run: r, push: pushFailing}
	}
	ctx := context.Background()
	e.a.handle(ctx, failing("r1"))
	e.a.handle(ctx, failing("r2"))
	got := e.notifier.pending()
	if len(got) != 1 || got[0].e.Kind != notify.KindPushFailed || got[0].e.RunID != "r1" ||
		got[0].e.Reason != "push to https://h/d.git: authentication required" || got[0].e.Logs != "maoctl run list --push failed" {
		t.Fatalf("notified %+v, want one push_failed for r1", got)
	}
	if s := e.states.state(testTool, PushScope(testSite)); !s.PushFailing {
		t.Fatalf("state %+v", s)
	}
	e.notifier.kinds() // drop what was sent
	e.a.handle(ctx, item{run: ended("r3", api.StateSucceeded), push: pushLanded})
	e.a.handle(ctx, failing("r4"))
	if got := e.notifier.kinds(); len(got) != 1 || got[0] != notify.KindPushFailed {
		t.Fatalf("after a landed push and a new failure: %v", got)
	}
}
