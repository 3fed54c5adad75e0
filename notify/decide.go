package notify

import "time"

// DefaultCooldown is how long a lasting condition stays quiet after it
// was notified.
const DefaultCooldown = 24 * time.Hour

// State is what was notified of a series (a tool's metric at a site), of
// a tool's runs, or of a site's pushes of a tool's commits; the caller
// stores it between decisions. A series uses the spike fields, a tool's
// runs the failure ones, pushes the push ones.
type State struct {
	Spiking       bool       `json:"spiking"`
	SpikeSentAt   *time.Time `json:"spike_sent_at,omitempty"`
	Failing       bool       `json:"failing"`
	FailureSentAt *time.Time `json:"failure_sent_at,omitempty"`
	Failures      int        `json:"failures,omitempty"` // failed runs in a row
	PushFailing   bool       `json:"push_failing,omitempty"`
	PushSentAt    *time.Time `json:"push_sent_at,omitempty"`
}

// DecideSpike decides what to notify about a series whose newest value is
// a spike or is within bounds, given what was notified before (prev):
//
//   - a new spike: KindSpike;
//   - a spike that stays: nothing, until cooldown (default 24h) has passed
//     since the last KindSpike, then KindSpike again as a reminder;
//   - back within bounds after a spike: KindSpikeResolved, once;
//   - within bounds and no spike before: nothing.
//
// A value the detector could not judge (no data, or a series still
// warming up) changes nothing: do not call DecideSpike for it. It returns
// the kinds to notify and the state to store.
func DecideSpike(prev State, spike bool, now time.Time, cooldown time.Duration) (kinds []string, next State) {
	if cooldown <= 0 {
		cooldown = DefaultCooldown
	}
	next = prev
	switch {
	case spike && (!prev.Spiking || due(prev.SpikeSentAt, now, cooldown)):
		next.Spiking, next.SpikeSentAt = true, &now
		return []string{KindSpike}, next
	case !spike && prev.Spiking:
		next.Spiking, next.SpikeSentAt = false, nil
		return []string{KindSpikeResolved}, next
	}
	return nil, next
}

// RunEnd is how a run ended, as DecideRun weighs it.
type RunEnd int

// How runs end.
const (
	RunNeither   RunEnd = iota // neither a success nor a failure: skipped, missed, not ended
	RunSucceeded               // it succeeded
	RunFailed                  // it failed
	RunTimedOut                // it ran past its timeout and was stopped
	RunLost                    // its site went away while it held the run
)

// DecideRun decides what to notify about a tool whose run ended as end,
// given what was notified before (prev):
//
//   - the first failure: KindRunFailed, KindRunTimedOut or KindRunLost;
//   - further failures: nothing (they are counted in Failures), until
//     cooldown (default 24h) has passed since the last one notified, then
//     one reminder of the newest failure's kind;
//   - a success after notified failures: KindRunRecovered, once;
//   - a success otherwise, or RunNeither: nothing.
//
// It returns the kinds to notify and the state to store.
func DecideRun(prev State, end RunEnd, now time.Time, cooldown time.Duration) (kinds []string, next State) {
	if cooldown <= 0 {
		cooldown = DefaultCooldown
	}
	next = prev
	var kind string
	switch end {
	case RunSucceeded:
		next.Failing, next.FailureSentAt, next.Failures = false, nil, 0
		if prev.Failing {
			return []string{KindRunRecovered}, next
		}
		return nil, next
	case RunFailed:
		kind = KindRunFailed
	case RunTimedOut:
		kind = KindRunTimedOut
	case RunLost:
		kind = KindRunLost
	default:
		return nil, next
	}
	next.Failures++
	if prev.Failing && !due(prev.FailureSentAt, now, cooldown) {
		return nil, next
	}
	next.Failing, next.FailureSentAt = true, &now
	return []string{kind}, next
}

// DecidePush decides what to notify about a site's pushes of a tool's
// commits to its data repository, given what was notified before (prev):
//
//   - a push that has failed for longer than the caller allows (failing):
//     KindPushFailed, once; while pushes go on failing, nothing, until
//     cooldown (default 24h) has passed since, then a reminder;
//   - a push that landed (not failing): nothing, and the state is cleared,
//     so that the next lasting failure is told again.
//
// It returns the kinds to notify and the state to store.
func DecidePush(prev State, failing bool, now time.Time, cooldown time.Duration) (kinds []string, next State) {
	if cooldown <= 0 {
		cooldown = DefaultCooldown
	}
	next = prev
	if !failing {
		next.PushFailing, next.PushSentAt = false, nil
		return nil, next
	}
	if prev.PushFailing && !due(prev.PushSentAt, now, cooldown) {
		return nil, next
	}
	next.PushFailing, next.PushSentAt = true, &now
	return []string{KindPushFailed}, next
}

// due reports whether cooldown has passed since sent (or nothing was).
func due(sent *time.Time, now time.Time, cooldown time.Duration) bool {
	return sent == nil || now.Sub(*sent) >= cooldown
}
