package runs

import (
	"fmt"
	"time"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/toolspec"
)

// Ask is a run asked for by hand: POST /api/v1/tools/<name>/runs.
type Ask struct {
	// Site is the site that runs it: the site that was asked, for a run
	// with no target. Empty for a run with a target: it waits for an
	// eligible site to claim it (see Request).
	Site   string
	Target *toolspec.Target
	// Retries are extra attempts after a failed or lost one.
	Retries int
	// RequestedBy is the name of the API token that asked for the run
	// (never its secret); empty when the API needs no token.
	RequestedBy string
}

// NewManual is the pending record of run id of tool, asked for at now.
func NewManual(id ID, tool toolspec.Tool, ask Ask, now time.Time) api.Run {
	r := newRecord(id, tool, ask.Site, now)
	r.Trigger = api.TriggerManual
	r.RequestedBy = ask.RequestedBy
	r.Target = ask.Target
	r.MaxAttempts = 1 + max(ask.Retries, 0)
	return r
}

// NewTick is the pending record of schedule sch's tick id (see Tick),
// claimed by site at now; trigger is api.TriggerSchedule for a tick on
// time or api.TriggerCatchup for one run late. Its run has the schedule's
// env, retries and target. A tick that will not run (missed, skipped,
// orphaned) is built the same way and then moved to its state by Apply.
func NewTick(id ID, sch toolspec.Schedule, tool toolspec.Tool, site, trigger string, now time.Time) api.Run {
	r := newRecord(id, tool, site, now)
	tick := id.Time
	target := sch.Target
	r.Target = &target
	r.Schedule, r.ScheduledTime, r.Trigger = sch.ID, &tick, trigger
	r.Env = sch.Env
	r.MaxAttempts, r.RetryDelay = 1+max(sch.Retries, 0), sch.RetryDelay
	return r
}

func newRecord(id ID, tool toolspec.Tool, site string, now time.Time) api.Run {
	return api.Run{
		ID:          id.String(),
		Tool:        tool.Name,
		Site:        site,
		State:       api.StatePending,
		Image:       tool.Image,
		Network:     tool.NetworkName(),
		DataRepo:    tool.DataRepo,
		Attempt:     1,
		MaxAttempts: 1,
		CreatedAt:   now.UTC(),
	}
}

// Scheduled is when the run was meant to start: its tick, or when it was
// asked for.
func Scheduled(r api.Run) time.Time {
	if r.ScheduledTime != nil {
		return *r.ScheduledTime
	}
	return r.CreatedAt
}

// CheckSpec reports what is wrong with a run's snapshot of what it ran
// (api.RunSpec), checked as the tool record it was taken from was: a
// replay runs it again, so a record written by hand must not smuggle in
// what no tool record could hold. A run without a snapshot passes.
func CheckSpec(r api.Run) error {
	s := r.Spec
	if s == nil {
		return nil
	}
	t := toolspec.Tool{Command: s.Command, Env: s.Env, SecretEnv: s.SecretEnv, Resources: s.Resources,
		Timeout: s.Timeout, User: s.User, Network: r.Network}
	if err := t.ValidateExecution("run spec"); err != nil {
		return err
	}
	if s.Memory < 0 {
		return fmt.Errorf("run spec: memory %d is negative", s.Memory)
	}
	return nil
}
