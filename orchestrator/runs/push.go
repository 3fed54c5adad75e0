package runs

import (
	"time"

	"github.com/mao-research/mao/api"
)

// The push of a successful run's commit to its tool's data repository is
// a state of its own (api.Push), beside the run's: pending from Succeed,
// then pushed or conflict for good, with failed between while attempts
// fail. These events change it, through Apply.

// Pushed records the commit on the remote: on Branch as Commit.
type Pushed struct {
	Branch, Commit string
}

// PushConflicted records the commit on the site's own branch, Branch
// (mao/<site>), as Commit: a path it wrote was changed on the tool's
// branch too.
type PushConflicted struct {
	Branch, Commit string
}

// PushFailed records an attempt that failed, for Reason; the push is
// tried again.
type PushFailed struct {
	Reason string
}

// pushable allows a push event on a succeeded run whose push is pending
// or failing.
func pushable(r api.Run) error {
	switch {
	case r.State != api.StateSucceeded:
		return errState("only a succeeded run's commit is pushed")
	case r.Push == nil:
		return errState("its commit is not to be pushed")
	case r.Push.State.Done():
		return errState("its commit is on the remote already (" + string(r.Push.State) + ")")
	}
	return nil
}

func (Pushed) name() string         { return "record the push of" }
func (Pushed) from(r api.Run) error { return pushable(r) }
func (e Pushed) apply(r *api.Run, now time.Time) {
	landed(r, api.PushPushed, e.Branch, e.Commit, now)
}

func (PushConflicted) name() string         { return "record the conflicting push of" }
func (PushConflicted) from(r api.Run) error { return pushable(r) }
func (e PushConflicted) apply(r *api.Run, now time.Time) {
	landed(r, api.PushConflict, e.Branch, e.Commit, now)
}

func (PushFailed) name() string { return "record a failed push of" }
func (e PushFailed) from(r api.Run) error {
	if e.Reason == "" {
		return errState("a failed push needs a reason")
	}
	return pushable(r)
}
func (e PushFailed) apply(r *api.Run, now time.Time) {
	p := *r.Push
	p.State, p.Reason = api.PushFailed, e.Reason
	p.Attempts++
	if p.FailedAt == nil {
		p.FailedAt = &now
	}
	r.Push = &p
}

// landed records the commit on the remote; the failures before stay
// counted.
func landed(r *api.Run, state api.PushState, branch, commit string, now time.Time) {
	p := *r.Push
	p.State, p.Branch, p.Commit, p.Reason, p.PushedAt = state, branch, commit, "", &now
	r.Push = &p
}
