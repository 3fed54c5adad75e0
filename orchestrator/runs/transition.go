package runs

import (
	"fmt"
	"time"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/detector"
	"github.com/mao-research/mao/orchestrator/errs"
	"github.com/mao-research/mao/toolspec"
)

// ErrIllegal is what Apply returns (wrapped) for a transition that the
// run's state does not allow. It is of kind errs.ErrConflict (HTTP 409).
var ErrIllegal = errs.New(errs.ErrConflict, "illegal run transition")

// Event is something that happens to a run: one of the types below.
type Event interface {
	// name is the event in the words of an error: "claim", "start", ...
	name() string
	// from reports whether the event may happen to r, and why not.
	from(r api.Run) error
	// apply changes r, once from allowed it.
	apply(r *api.Run, now time.Time)
}

// Claim gives a run that waits for a site (pending, no site) to Site.
type Claim struct{ Site string }

// Start begins an attempt of a run its site holds: pending → running.
type Start struct{}

// Succeed ends an attempt whose container exited 0 and whose output was
// kept: running → succeeded.
type Succeed struct{ Outcome Outcome }

// Fail ends a run that could not start or whose attempt failed: pending or
// running → failed, with Reason.
type Fail struct {
	Reason  string
	Outcome Outcome
}

// TimeOut ends an attempt whose container ran past Limit and was stopped:
// running → timed_out.
type TimeOut struct {
	Limit   time.Duration
	Outcome Outcome
}

// RetryLater makes a failed or timed-out run with attempts left pending
// again, for its next attempt after its retry delay (default
// toolspec.DefaultRetryDelay): the ended attempt is filed in Attempts.
type RetryLater struct{}

// Lose settles a run held by Site, whose lease expired (it died, or lost
// etcd for longer than its TTL). A run that had started is lost: with
// attempts left, the lost attempt is filed and the run waits for a site
// again (see retryTarget), else it ends lost. A run that had not started
// waits for a site again as it is.
type Lose struct{ Site string }

// Skip ends a run that will not run: pending → skipped, with Reason (the
// previous tick still runs, or the image is not usable at its site).
type Skip struct{ Reason string }

// Miss ends a tick that no site ran in time: pending → missed, with Reason.
type Miss struct{ Reason string }

// Orphan ends a tick whose tool is no longer registered: pending → failed.
type Orphan struct{}

// Outcome is what an attempt learned about itself while it ran; every
// field is optional. Succeed, Fail and TimeOut copy it into the record.
type Outcome struct {
	ExitCode           *int
	ContainerStartedAt *time.Time
	ImageID            string
	ImageDigest        string
	DataCommitBefore   string
	DataCommitAfter    string
	InputDataset       string
	InputCommit        string
	// Spec is what the attempt ran, snapshotted as it was prepared, with
	// the network and data repository it ran with (the tool may have
	// changed since the record was made).
	Spec     *api.RunSpec
	Network  string
	DataRepo string
	// Replay is a replay's comparison with the original's output.
	Replay *api.Replay
	// Files the attempt added or changed, all of them: the record keeps
	// the first api.MaxRunFiles and counts them all.
	Files    []string
	Verdicts []detector.Verdict
	// Push: the attempt's commit (DataCommitAfter) is queued for the
	// tool's data repository; Succeed records its push pending.
	Push bool
}

// Apply returns r after ev at now. It returns r unchanged and an error of
// kind ErrIllegal when r's state does not allow ev.
func Apply(r api.Run, ev Event, now time.Time) (api.Run, error) {
	if err := ev.from(r); err != nil {
		return r, fmt.Errorf("run %s is %s: cannot %s it: %s: %w", r.ID, r.State, ev.name(), err, ErrIllegal)
	}
	out := r
	out.Attempt, out.MaxAttempts = max(out.Attempt, 1), max(out.MaxAttempts, 1) // records from before retries
	ev.apply(&out, now.UTC())
	return out, nil
}

// CanRetry reports whether a run that ended may be retried: it failed or
// timed out, and has attempts left.
func CanRetry(r api.Run) bool {
	return (r.State == api.StateFailed || r.State == api.StateTimedOut) && max(r.Attempt, 1) < r.MaxAttempts
}

// Waiting reports whether a run waits for a site to claim it.
func Waiting(r api.Run) bool { return r.State == api.StatePending && r.Site == "" }

// errState is the reason of a refused transition.
type errState string

func (e errState) Error() string { return string(e) }

// held allows only a run that a site holds, in one of the given states:
// a run that waits for a site is claimed first.
func held(r api.Run, states ...api.RunState) error {
	if r.Site == "" {
		return errState("no site holds it")
	}
	return in(r, states...)
}

// in allows only the given states.
func in(r api.Run, states ...api.RunState) error {
	for _, s := range states {
		if r.State == s {
			return nil
		}
	}
	return errState(fmt.Sprintf("only a run that is %v may", states))
}

func (Claim) name() string { return "claim" }
func (e Claim) from(r api.Run) error {
	switch {
	case e.Site == "":
		return errState("no site claims it")
	case !Waiting(r):
		return errState("it is not waiting for a site")
	}
	return nil
}
func (e Claim) apply(r *api.Run, _ time.Time) { r.Site = e.Site }

func (Start) name() string         { return "start" }
func (Start) from(r api.Run) error { return held(r, api.StatePending) }
func (Start) apply(r *api.Run, now time.Time) {
	r.State, r.StartedAt, r.RetryAt = api.StateRunning, &now, nil
}

func (Succeed) name() string         { return "succeed" }
func (Succeed) from(r api.Run) error { return in(r, api.StateRunning) }
func (e Succeed) apply(r *api.Run, now time.Time) {
	end(r, api.StateSucceeded, "", now)
	e.Outcome.copyTo(r)
	if e.Outcome.Push {
		r.Push = &api.Push{State: api.PushPending, QueuedAt: now}
	}
}

func (Fail) name() string         { return "fail" }
func (Fail) from(r api.Run) error { return held(r, api.StatePending, api.StateRunning) }
func (e Fail) apply(r *api.Run, now time.Time) {
	end(r, api.StateFailed, e.Reason, now)
	e.Outcome.copyTo(r)
}

func (TimeOut) name() string         { return "time out" }
func (TimeOut) from(r api.Run) error { return in(r, api.StateRunning) }
func (e TimeOut) apply(r *api.Run, now time.Time) {
	end(r, api.StateTimedOut, fmt.Sprintf("timed out after %s; the container was stopped", e.Limit), now)
	e.Outcome.copyTo(r)
}

func (RetryLater) name() string { return "retry" }
func (RetryLater) from(r api.Run) error {
	if err := in(r, api.StateFailed, api.StateTimedOut); err != nil {
		return err
	}
	if !CanRetry(r) {
		return errState(fmt.Sprintf("attempt %d of %d was its last", max(r.Attempt, 1), r.MaxAttempts))
	}
	return nil
}
func (RetryLater) apply(r *api.Run, now time.Time) {
	delay := toolspec.DefaultRetryDelay
	if d, err := time.ParseDuration(r.RetryDelay); err == nil && d > 0 {
		delay = d
	}
	retryAt := now.Add(delay)
	fileAttempt(r, r.State, r.Reason, now)
	r.RetryAt = &retryAt
}

func (Lose) name() string { return "lose" }
func (e Lose) from(r api.Run) error {
	if r.Site == "" || r.Site != e.Site {
		return errState(fmt.Sprintf("site %s does not hold it", e.Site))
	}
	return in(r, api.StatePending, api.StateRunning)
}
func (e Lose) apply(r *api.Run, now time.Time) {
	reason := fmt.Sprintf("lost: site %s stopped renewing its lease (it stopped, or lost etcd) while it held the run", e.Site)
	started := r.State == api.StateRunning
	if started && r.Attempt >= r.MaxAttempts {
		end(r, api.StateLost, reason, now)
		return
	}
	if started {
		fileAttempt(r, api.StateLost, reason, now)
	}
	target := retryTarget(*r, e.Site)
	r.Target, r.Site = &target, ""
}

func (Skip) name() string         { return "skip" }
func (Skip) from(r api.Run) error { return held(r, api.StatePending) }
func (e Skip) apply(r *api.Run, now time.Time) {
	end(r, api.StateSkipped, e.Reason, now)
	noAttempt(r)
}

func (Miss) name() string         { return "miss" }
func (Miss) from(r api.Run) error { return held(r, api.StatePending) }
func (e Miss) apply(r *api.Run, now time.Time) {
	end(r, api.StateMissed, e.Reason, now)
	noAttempt(r)
}

func (Orphan) name() string { return "orphan" }
func (Orphan) from(r api.Run) error {
	if r.Schedule == "" {
		return errState("only a schedule's tick can be orphaned")
	}
	return held(r, api.StatePending)
}
func (Orphan) apply(r *api.Run, now time.Time) {
	end(r, api.StateFailed, fmt.Sprintf("orphaned: tool %s is no longer registered; register it again, or pause or remove schedule %s",
		r.Tool, r.Schedule), now)
	noAttempt(r)
}

// end puts r in a final state.
func end(r *api.Run, state api.RunState, reason string, now time.Time) {
	r.State, r.Reason, r.FinishedAt, r.RetryAt = state, reason, &now, nil
}

// noAttempt marks a schedule's tick that ended without running (missed,
// skipped, orphaned) as having made no attempt: attempt 0. A run asked for
// by hand, or one that had an attempt already, keeps its number.
func noAttempt(r *api.Run) {
	if r.Schedule != "" && len(r.Attempts) == 0 && r.StartedAt == nil {
		r.Attempt = 0
	}
}

// fileAttempt files r's current attempt, ended in state for reason, in
// r.Attempts, and makes r pending for the next one, with what belonged to
// the ended attempt cleared.
func fileAttempt(r *api.Run, state api.RunState, reason string, now time.Time) {
	finished := now
	if r.FinishedAt != nil {
		finished = *r.FinishedAt
	}
	r.Attempts = append(r.Attempts, api.Attempt{Attempt: r.Attempt, State: state, Reason: reason,
		ExitCode: r.ExitCode, StartedAt: r.StartedAt, FinishedAt: &finished})
	r.Attempt++
	r.State, r.Reason = api.StatePending, ""
	r.ExitCode, r.StartedAt, r.ContainerStartedAt, r.FinishedAt = nil, nil, nil, nil
	r.Files, r.FilesTotal, r.Verdicts = nil, 0, nil
}

// retryTarget is where a lost run runs again: anywhere its target allows,
// except that a run meant for the site that lost it (no target, a site
// target, or one run of an --all target) waits for that site.
func retryTarget(r api.Run, lost string) toolspec.Target {
	if r.Target != nil && r.Target.EffectiveMode() == toolspec.TargetAny {
		return *r.Target
	}
	if r.Schedule != "" && r.Target == nil {
		return toolspec.Target{Mode: toolspec.TargetAny}
	}
	t := toolspec.Target{Mode: toolspec.TargetSite, Site: lost}
	if r.Target != nil {
		t.Labels = r.Target.Labels
	}
	return t
}

// copyTo sets what the outcome knows in r.
func (o Outcome) copyTo(r *api.Run) {
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	if o.ExitCode != nil {
		r.ExitCode = o.ExitCode
	}
	if o.ContainerStartedAt != nil {
		r.ContainerStartedAt = o.ContainerStartedAt
	}
	set(&r.ImageID, o.ImageID)
	set(&r.ImageDigest, o.ImageDigest)
	set(&r.DataCommitBefore, o.DataCommitBefore)
	set(&r.DataCommitAfter, o.DataCommitAfter)
	set(&r.InputDataset, o.InputDataset)
	set(&r.InputCommit, o.InputCommit)
	set(&r.Network, o.Network)
	set(&r.DataRepo, o.DataRepo)
	if o.Spec != nil {
		r.Spec = o.Spec
	}
	if o.Replay != nil {
		r.Replay = o.Replay
	}
	if len(o.Files) > 0 {
		r.FilesTotal = len(o.Files)
		r.Files = o.Files[:min(len(o.Files), api.MaxRunFiles)]
	}
	if len(o.Verdicts) > 0 {
		r.Verdicts = o.Verdicts
	}
}
