package runs

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/detector"
	"github.com/mao-research/mao/orchestrator/errs"
	"github.com/mao-research/mao/toolspec"
)

var (
	t0  = time.Date(2026, 12, 2, 6, 0, 0, 0, time.UTC)
	now = t0.Add(time.Hour)
)

func ptr[T any](v T) *T { return &v }

// record is a run at site "a" of the given state, one of two attempts.
func record(state api.RunState, site string) api.Run {
	r := api.Run{ID: "t-1796191200-abcdef", Tool: "t", Site: site, State: state, Trigger: api.TriggerManual,
		Attempt: 1, MaxAttempts: 2, CreatedAt: t0, Target: &toolspec.Target{Mode: toolspec.TargetAny}}
	switch state {
	case api.StatePending:
	case api.StateRunning:
		r.StartedAt = ptr(t0.Add(time.Minute))
	default:
		r.StartedAt, r.FinishedAt, r.Reason = ptr(t0.Add(time.Minute)), ptr(t0.Add(2*time.Minute)), "earlier"
	}
	return r
}

// TestLegality tries every event on a run in every state, and checks that
// exactly the legal ones are allowed; an illegal one leaves the record as
// it was.
func TestLegality(t *testing.T) {
	events := []Event{Claim{Site: "b"}, Start{}, Succeed{}, Fail{Reason: "x"}, TimeOut{Limit: time.Minute}, RetryLater{},
		Lose{Site: "a"}, Skip{Reason: "x"}, Miss{Reason: "x"}, Orphan{}}
	type variant struct {
		name  string
		run   api.Run
		legal []string // event names
	}
	tick := record(api.StatePending, "a")
	tick.Schedule = "s"
	lastAttempt := record(api.StateFailed, "a")
	lastAttempt.Attempt = 2
	variants := []variant{
		{"pending, waiting for a site", record(api.StatePending, ""), []string{"claim"}},
		{"a tick waiting for a site", func() api.Run { r := record(api.StatePending, ""); r.Schedule = "s"; return r }(), []string{"claim"}},
		{"pending at a site", record(api.StatePending, "a"), []string{"start", "fail", "lose", "skip", "miss"}},
		{"a pending tick", tick, []string{"start", "fail", "lose", "skip", "miss", "orphan"}},
		{"running", record(api.StateRunning, "a"), []string{"succeed", "fail", "time out", "lose"}},
		{"failed, with attempts left", record(api.StateFailed, "a"), []string{"retry"}},
		{"timed out, with attempts left", record(api.StateTimedOut, "a"), []string{"retry"}},
		{"failed, its last attempt", lastAttempt, nil},
		{"succeeded", record(api.StateSucceeded, "a"), nil},
		{"missed", record(api.StateMissed, "a"), nil},
		{"skipped", record(api.StateSkipped, "a"), nil},
		{"lost", record(api.StateLost, "a"), nil},
	}
	for _, v := range variants {
		for _, ev := range events {
			t.Run(v.name+"/"+ev.name(), func(t *testing.T) {
				legal := false
				for _, n := range v.legal {
					legal = legal || n == ev.name()
				}
				got, err := Apply(v.run, ev, now)
				switch {
				case legal && err != nil:
					t.Fatalf("refused: %v", err)
				case !legal && (!errors.Is(err, ErrIllegal) || !errors.Is(err, errs.ErrConflict)):
					t.Fatalf("allowed (or not ErrIllegal): %+v, %v", got, err)
				case !legal && !reflect.DeepEqual(got, v.run):
					t.Fatalf("a refused event changed the record:\n%+v\nwas\n%+v", got, v.run)
				case !legal && !strings.Contains(err.Error(), "cannot "+ev.name()):
					t.Fatalf("error %q does not name the event", err)
				}
			})
		}
	}
	// Events whose own fields make them illegal.
	for _, tc := range []struct {
		run api.Run
		ev  Event
	}{
		{record(api.StatePending, ""), Claim{}},
		{record(api.StateRunning, "a"), Lose{Site: "b"}},
		{record(api.StatePending, "a"), Lose{Site: ""}},
	} {
		if _, err := Apply(tc.run, tc.ev, now); !errors.Is(err, ErrIllegal) {
			t.Errorf("%T%+v on %s at %q: %v, want ErrIllegal", tc.ev, tc.ev, tc.run.State, tc.run.Site, err)
		}
	}
}

// TestTransitions checks what each legal transition makes of a record.
func TestTransitions(t *testing.T) {
	out := Outcome{ExitCode: ptr(0), ContainerStartedAt: ptr(t0.Add(90 * time.Second)), ImageID: "sha256:1", ImageDigest: "img@sha256:2",
		DataCommitBefore: "c1", DataCommitAfter: "c2", InputDataset: "ds", InputCommit: "c3", Files: []string{"a", "b"},
		Verdicts: []detector.Verdict{{Metric: "control", Status: detector.StatusOK}}}
	many := make([]string, api.MaxRunFiles+5)
	for i := range many {
		many[i] = fmt.Sprintf("f%d", i)
	}
	withRetryAt := record(api.StatePending, "a")
	withRetryAt.RetryAt, withRetryAt.Attempt = ptr(now.Add(time.Minute)), 2
	withRetryAt.Attempts = []api.Attempt{{Attempt: 1, State: api.StateFailed}}
	scheduled := record(api.StateRunning, "a")
	scheduled.Schedule, scheduled.Target = "s", nil
	allRun := record(api.StateRunning, "a")
	allRun.Target = &toolspec.Target{Mode: toolspec.TargetSite, Site: "a", Labels: map[string]string{"zone": "eu"}}
	noRetries := record(api.StateRunning, "a")
	noRetries.MaxAttempts = 1
	oldRecord := record(api.StatePending, "a")
	oldRecord.Attempt, oldRecord.MaxAttempts = 0, 0
	tick := record(api.StatePending, "a")
	tick.Schedule = "s"

	tests := []struct {
		name string
		run  api.Run
		ev   Event
		want func(r *api.Run) // from the input record
	}{
		{"claim", record(api.StatePending, ""), Claim{Site: "b"}, func(r *api.Run) { r.Site = "b" }},
		{"start", withRetryAt, Start{}, func(r *api.Run) { r.State, r.StartedAt, r.RetryAt = api.StateRunning, &now, nil }},
		{"start a record from before retries", oldRecord, Start{}, func(r *api.Run) {
			r.State, r.StartedAt, r.Attempt, r.MaxAttempts = api.StateRunning, &now, 1, 1
		}},
		{"succeed", record(api.StateRunning, "a"), Succeed{Outcome: out}, func(r *api.Run) {
			r.State, r.FinishedAt, r.ExitCode, r.ContainerStartedAt = api.StateSucceeded, &now, out.ExitCode, out.ContainerStartedAt
			r.ImageID, r.ImageDigest, r.DataCommitBefore, r.DataCommitAfter = "sha256:1", "img@sha256:2", "c1", "c2"
			r.InputDataset, r.InputCommit, r.Files, r.FilesTotal, r.Verdicts = "ds", "c3", out.Files, 2, out.Verdicts
		}},
		{"succeed with more files than a record keeps", record(api.StateRunning, "a"), Succeed{Outcome: Outcome{Files: many}}, func(r *api.Run) {
			r.State, r.FinishedAt, r.Files, r.FilesTotal = api.StateSucceeded, &now, many[:api.MaxRunFiles], len(many)
		}},
		{"fail before starting", record(api.StatePending, "a"), Fail{Reason: "could not start"}, func(r *api.Run) {
			r.State, r.Reason, r.FinishedAt = api.StateFailed, "could not start", &now
		}},
		{"fail with an exit code", record(api.StateRunning, "a"), Fail{Reason: "exit code 3", Outcome: Outcome{ExitCode: ptr(3)}}, func(r *api.Run) {
			r.State, r.Reason, r.FinishedAt, r.ExitCode = api.StateFailed, "exit code 3", &now, ptr(3)
		}},
		{"time out", record(api.StateRunning, "a"), TimeOut{Limit: time.Minute, Outcome: Outcome{ExitCode: ptr(137)}}, func(r *api.Run) {
			r.State, r.FinishedAt, r.ExitCode = api.StateTimedOut, &now, ptr(137)
			r.Reason = "timed out after 1m0s; the container was stopped"
		}},
		{"retry after the default delay", func() api.Run {
			r := record(api.StateFailed, "a")
			r.ExitCode, r.ContainerStartedAt, r.Files, r.FilesTotal = ptr(3), ptr(t0), []string{"x"}, 1
			return r
		}(), RetryLater{}, func(r *api.Run) {
			r.Attempts = []api.Attempt{{Attempt: 1, State: api.StateFailed, Reason: "earlier", ExitCode: ptr(3),
				StartedAt: r.StartedAt, FinishedAt: r.FinishedAt}}
			r.Attempt, r.State, r.Reason, r.RetryAt = 2, api.StatePending, "", ptr(now.Add(toolspec.DefaultRetryDelay))
			r.ExitCode, r.StartedAt, r.ContainerStartedAt, r.FinishedAt, r.Files, r.FilesTotal = nil, nil, nil, nil, nil, 0
		}},
		{"retry a timeout after its delay", func() api.Run {
			r := record(api.StateTimedOut, "a")
			r.RetryDelay = "5m"
			return r
		}(), RetryLater{}, func(r *api.Run) {
			r.Attempts = []api.Attempt{{Attempt: 1, State: api.StateTimedOut, Reason: "earlier", StartedAt: r.StartedAt, FinishedAt: r.FinishedAt}}
			r.Attempt, r.State, r.Reason, r.RetryAt = 2, api.StatePending, "", ptr(now.Add(5*time.Minute))
			r.StartedAt, r.FinishedAt = nil, nil
		}},
		{"lose a running any-site run with attempts left", record(api.StateRunning, "a"), Lose{Site: "a"}, func(r *api.Run) {
			r.Attempts = []api.Attempt{{Attempt: 1, State: api.StateLost, StartedAt: r.StartedAt, FinishedAt: &now,
				Reason: "lost: site a stopped renewing its lease (it stopped, or lost etcd) while it held the run"}}
			r.State, r.Attempt, r.Site, r.StartedAt = api.StatePending, 2, "", nil
		}},
		{"lose a run on its last attempt", noRetries, Lose{Site: "a"}, func(r *api.Run) {
			r.State, r.FinishedAt = api.StateLost, &now
			r.Reason = "lost: site a stopped renewing its lease (it stopped, or lost etcd) while it held the run"
		}},
		{"lose a tick with no target: any site runs it again", scheduled, Lose{Site: "a"}, func(r *api.Run) {
			r.Attempts = []api.Attempt{{Attempt: 1, State: api.StateLost, StartedAt: r.StartedAt, FinishedAt: &now,
				Reason: "lost: site a stopped renewing its lease (it stopped, or lost etcd) while it held the run"}}
			r.State, r.Attempt, r.Site, r.StartedAt, r.Target = api.StatePending, 2, "", nil, &toolspec.Target{Mode: toolspec.TargetAny}
		}},
		{"lose a run meant for its site: it waits for that site", allRun, Lose{Site: "a"}, func(r *api.Run) {
			r.Attempts = []api.Attempt{{Attempt: 1, State: api.StateLost, StartedAt: r.StartedAt, FinishedAt: &now,
				Reason: "lost: site a stopped renewing its lease (it stopped, or lost etcd) while it held the run"}}
			r.State, r.Attempt, r.Site, r.StartedAt = api.StatePending, 2, "", nil
			r.Target = &toolspec.Target{Mode: toolspec.TargetSite, Site: "a", Labels: map[string]string{"zone": "eu"}}
		}},
		{"lose a run that had not started: it keeps its retry delay", withRetryAt, Lose{Site: "a"}, func(r *api.Run) { r.Site = "" }},
		{"lose a manual run with no target: it waits for its site", func() api.Run {
			r := record(api.StatePending, "a")
			r.Target = nil
			return r
		}(), Lose{Site: "a"}, func(r *api.Run) {
			r.Site, r.Target = "", &toolspec.Target{Mode: toolspec.TargetSite, Site: "a"}
		}},
		{"skip a run asked for by hand: it keeps its attempt", record(api.StatePending, "a"), Skip{Reason: "busy"}, func(r *api.Run) {
			r.State, r.Reason, r.FinishedAt = api.StateSkipped, "busy", &now
		}},
		{"skip a tick: attempt 0", tick, Skip{Reason: "busy"}, func(r *api.Run) {
			r.State, r.Reason, r.FinishedAt, r.Attempt = api.StateSkipped, "busy", &now, 0
		}},
		{"skip a run that had an attempt", withRetryAt, Skip{Reason: "busy"}, func(r *api.Run) {
			r.State, r.Reason, r.FinishedAt, r.RetryAt = api.StateSkipped, "busy", &now, nil
		}},
		{"miss", tick, Miss{Reason: "late"}, func(r *api.Run) {
			r.State, r.Reason, r.FinishedAt, r.Attempt = api.StateMissed, "late", &now, 0
		}},
		{"orphan", tick, Orphan{}, func(r *api.Run) {
			r.State, r.FinishedAt, r.Attempt = api.StateFailed, &now, 0
			r.Reason = "orphaned: tool t is no longer registered; register it again, or pause or remove schedule s"
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.run
			want := tc.run
			tc.want(&want)
			got, err := Apply(tc.run, tc.ev, now)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("got\n%+v\nwant\n%+v", got, want)
			}
			if !reflect.DeepEqual(in, tc.run) {
				t.Fatal("Apply changed its input")
			}
		})
	}
}

func TestRequestOf(t *testing.T) {
	fanOut := record(api.StatePending, "")
	fanOut.ID, fanOut.Target = "t-1796191200-abcdef-lab-b", &toolspec.Target{Mode: toolspec.TargetSite, Site: "lab-b"}
	tests := []struct {
		name string
		run  api.Run
		want *Request
	}{
		{"an any-site run", record(api.StatePending, ""), &Request{Run: "t-1796191200-abcdef", Tool: "t",
			Target: toolspec.Target{Mode: toolspec.TargetAny}, CreatedAt: now}},
		{"one run of --all", fanOut, &Request{Run: fanOut.ID, Tool: "t", Target: *fanOut.Target, FanOut: true, CreatedAt: now}},
		{"a held run", record(api.StatePending, "a"), nil},
		{"a running run", record(api.StateRunning, "a"), nil},
	}
	for _, tc := range tests {
		got, ok := RequestOf(tc.run, now)
		if ok != (tc.want != nil) || (ok && !reflect.DeepEqual(got, *tc.want)) {
			t.Errorf("%s: %+v, %v; want %+v", tc.name, got, ok, tc.want)
		}
	}
}

func TestConstructors(t *testing.T) {
	tool := toolspec.Tool{Name: "t", Image: "img:1", DataRepo: "file:///r", Network: "none"}
	target := toolspec.Target{Mode: toolspec.TargetAny}
	m := NewManual(Manual("t", now), tool, Ask{Target: &target, Retries: 2, RequestedBy: "ci"}, now)
	if m.State != api.StatePending || m.Site != "" || m.Trigger != api.TriggerManual || m.MaxAttempts != 3 || m.Attempt != 1 || m.RequestedBy != "ci" ||
		m.Image != "img:1" || m.Network != "none" || m.DataRepo != "file:///r" || !m.CreatedAt.Equal(now) || m.Target != &target {
		t.Errorf("NewManual: %+v", m)
	}
	sch := toolspec.Schedule{ID: "s", Tool: "t", Retries: 1, RetryDelay: "5m", Env: map[string]string{"K": "V"},
		Target: toolspec.Target{Mode: toolspec.TargetAll}}
	tick := NewTick(Tick("s", t0).For("a"), sch, tool, "a", api.TriggerCatchup, now)
	if tick.ID != "s-1796191200-a" || tick.Site != "a" || tick.Schedule != "s" || !tick.ScheduledTime.Equal(t0) ||
		tick.Trigger != api.TriggerCatchup || tick.MaxAttempts != 2 || tick.RetryDelay != "5m" || tick.Env["K"] != "V" ||
		tick.Target == nil || tick.Target.Mode != toolspec.TargetAll || !Scheduled(tick).Equal(t0) || !Scheduled(m).Equal(now) ||
		tick.RequestedBy != "" {
		t.Errorf("NewTick: %+v", tick)
	}
}

// TestPush follows a run's commit to its data repository: Succeed with a
// commit to push makes it pending; failures count and keep the first
// failure's time; pushed and conflict are for good; a run that is not
// succeeded, or has nothing to push, takes no push event.
func TestPush(t *testing.T) {
	running := record(api.StateRunning, "a")
	done, err := Apply(running, Succeed{Outcome: Outcome{DataCommitAfter: "c1", Push: true}}, t0)
	if err != nil || done.Push == nil || *done.Push != (api.Push{State: api.PushPending, QueuedAt: t0}) {
		t.Fatalf("Succeed with a commit to push: %+v, %v", done.Push, err)
	}
	if quiet, _ := Apply(running, Succeed{Outcome: Outcome{DataCommitAfter: "c1"}}, t0); quiet.Push != nil {
		t.Fatalf("Succeed with nothing to push: %+v", quiet.Push)
	}
	failed, err := Apply(done, PushFailed{Reason: "remote down"}, t0.Add(time.Minute))
	if err == nil {
		failed, err = Apply(failed, PushFailed{Reason: "still down"}, t0.Add(2*time.Minute))
	}
	want := api.Push{State: api.PushFailed, Reason: "still down", Attempts: 2, QueuedAt: t0, FailedAt: ptr(t0.Add(time.Minute))}
	if err != nil || !reflect.DeepEqual(*failed.Push, want) || done.Push.State != api.PushPending {
		t.Fatalf("two failures: %+v, %v (the first record: %+v)", failed.Push, err, done.Push)
	}
	tests := []struct {
		name  string
		ev    Event
		state api.PushState
	}{
		{"pushed", Pushed{Branch: "main", Commit: "c2"}, api.PushPushed},
		{"conflict", PushConflicted{Branch: "mao/a", Commit: "c3"}, api.PushConflict},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, from := range []api.Run{done, failed} {
				got, err := Apply(from, tc.ev, now)
				if err != nil || got.Push.State != tc.state || got.Push.PushedAt == nil || !got.Push.PushedAt.Equal(now) ||
					got.Push.Reason != "" || got.Push.Attempts != from.Push.Attempts || got.Push.Branch == "" || got.Push.Commit == "" {
					t.Fatalf("from %s: %+v, %v", from.Push.State, got.Push, err)
				}
				// Landed is for good.
				for _, again := range []Event{Pushed{Branch: "main", Commit: "c4"}, PushFailed{Reason: "x"}} {
					if again, err := Apply(got, again, now); !errors.Is(err, ErrIllegal) || !reflect.DeepEqual(again, got) {
						t.Errorf("after %s: %v", tc.state, err)
					}
				}
			}
		})
	}
	for _, r := range []api.Run{running, record(api.StateFailed, "a"), func() api.Run { r := done; r.Push = nil; return r }()} {
		if _, err := Apply(r, Pushed{Branch: "main", Commit: "c"}, now); !errors.Is(err, ErrIllegal) {
			t.Errorf("a push on a %s run (push %v): %v", r.State, r.Push, err)
		}
	}
	if _, err := Apply(done, PushFailed{}, now); !errors.Is(err, ErrIllegal) {
		t.Errorf("a failure without a reason: %v", err)
	}
}
