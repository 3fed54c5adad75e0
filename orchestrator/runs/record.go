package runs

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/orchestrator/errs"
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
	if !versionRe.MatchString(s.Version) {
		return fmt.Errorf("run spec: version %q is not a version", s.Version)
	}
	if s.SpecRevision < 0 {
		return fmt.Errorf("run spec: spec_revision %d is negative", s.SpecRevision)
	}
	return nil
}

// versionRe is what an orchestrator's version looks like (shown by maoctl
// and written into commit trailers, so no control characters).
var versionRe = regexp.MustCompile(`^[0-9A-Za-z.+_-]{0,64}$`)

// CheckReplayable says why run cannot be replayed (an error of kind
// errs.ErrConflict), or nil: a replay runs its snapshot again and compares
// the output with the original's commit, so the original must have
// succeeded at a site that recorded a snapshot, and not be a replay itself.
func CheckReplayable(run api.Run) error {
	var why string
	switch {
	case run.Replay != nil:
		why = fmt.Sprintf("it is a replay of %s: replay that run instead", run.Replay.Of)
	case run.State != api.StateSucceeded:
		why = fmt.Sprintf("it is %s; only a run that succeeded has an output to compare a replay with", run.State)
	case run.Spec == nil:
		why = "its record holds no snapshot of what it ran (its site's orchestrator predates provenance)"
	case run.ImageID == "" && run.ImageDigest == "":
		why = "its record does not say which image ran"
	case checkPinned(run) != nil:
		why = checkPinned(run).Error()
	case toolspec.CheckStoredGitURL(run.DataRepo) != nil:
		why = fmt.Sprintf("its data_repo %v", toolspec.CheckStoredGitURL(run.DataRepo))
	case run.DataCommitAfter == "":
		why = "its record names no commit of its output"
	case run.DataCommitBefore == "":
		why = "it ran on an empty data repository, which a replay cannot check out (not supported yet)"
	}
	if why == "" {
		return nil
	}
	return errs.New(errs.ErrConflict, fmt.Sprintf("run %s cannot be replayed: %s", run.ID, why))
}

// NewReplay is the pending record of replay id of orig (which
// CheckReplayable accepted), asked for at now: what orig ran, pinned (its
// snapshot, its image by ID and digest, its input commit, its data commit
// before), and what its output is compared with.
func NewReplay(id ID, orig api.Run, ask Ask, now time.Time) api.Run {
	r := api.Run{
		ID: id.String(), Tool: orig.Tool, Site: ask.Site, State: api.StatePending, Trigger: api.TriggerReplay,
		Target: ask.Target, RequestedBy: ask.RequestedBy,
		Image: orig.Image, ImageID: orig.ImageID, ImageDigest: orig.ImageDigest, Network: orig.Network,
		DataRepo: orig.DataRepo, DataCommitBefore: orig.DataCommitBefore,
		InputDataset: orig.InputDataset, InputCommit: orig.InputCommit,
		Attempt: 1, MaxAttempts: 1, CreatedAt: now.UTC(),
		Replay: &api.Replay{Of: orig.ID, Site: orig.Site, ScheduledTime: Scheduled(orig).UTC(), Commit: orig.DataCommitAfter},
	}
	if orig.Push != nil && orig.Push.State.Done() && orig.Push.Commit != orig.DataCommitAfter {
		r.Replay.PushedCommit = orig.Push.Commit
	}
	if orig.Spec != nil {
		spec := *orig.Spec
		spec.Command = slices.Clone(spec.Command)
		spec.Env = maps.Clone(spec.Env)
		spec.SecretEnv = slices.Clone(spec.SecretEnv)
		if spec.Resources != nil {
			res := *spec.Resources
			spec.Resources = &res
		}
		r.Spec = &spec
	}
	return r
}

// CheckReplay reports what is wrong with a replay record's Replay (a
// record written by hand is hostile input): the replayed run's ID and
// site, and its commit.
func CheckReplay(r api.Run) error {
	p := r.Replay
	if p == nil {
		return nil
	}
	var problems []error
	if err := CheckID(p.Of); err != nil {
		problems = append(problems, fmt.Errorf("replay of: %w", err))
	}
	if p.Site != "" {
		problems = append(problems, toolspec.CheckName(p.Site))
	}
	if p.Commit != "" && !isHash(p.Commit) {
		problems = append(problems, fmt.Errorf("replay commit %q is not a commit hash", p.Commit))
	}
	if p.PushedCommit != "" && !isHash(p.PushedCommit) {
		problems = append(problems, fmt.Errorf("replay pushed_commit %q is not a commit hash", p.PushedCommit))
	}
	if err := checkPinned(r); err != nil {
		problems = append(problems, err)
	}
	if err := toolspec.CheckStoredGitURL(r.DataRepo); err != nil {
		problems = append(problems, fmt.Errorf("data_repo: %w", err))
	}
	if r.DataCommitBefore != "" && !isHash(r.DataCommitBefore) {
		problems = append(problems, fmt.Errorf("data_commit_before %q is not a commit hash", r.DataCommitBefore))
	}
	if r.InputCommit != "" && !isHash(r.InputCommit) {
		problems = append(problems, fmt.Errorf("input_commit %q is not a commit hash", r.InputCommit))
	}
	return errors.Join(problems...)
}

// pinnedID and pinnedDigest are an image ID and a repository digest: what
// a replay runs, never a tag, which may have moved.
var (
	pinnedID     = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
	pinnedDigest = regexp.MustCompile(`^[a-z0-9][a-z0-9._/:-]*@sha256:[0-9a-f]{64}$`)
)

// checkPinned reports an image_id or image_digest that does not pin an
// image.
func checkPinned(r api.Run) error {
	if r.ImageID != "" && !pinnedID.MatchString(r.ImageID) {
		return fmt.Errorf("image_id %q is not an image ID (sha256:<64 hex digits>)", r.ImageID)
	}
	if r.ImageDigest != "" && !pinnedDigest.MatchString(r.ImageDigest) {
		return fmt.Errorf("image_digest %q is not a repository digest (<repository>@sha256:<64 hex digits>)", r.ImageDigest)
	}
	return nil
}

// isHash reports whether s is a full hex SHA-1 commit hash.
func isHash(s string) bool {
	if len(s) != 40 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// ByHand reports whether a run was asked for by hand (tool run, or a
// replay) rather than by a schedule, whose history its schedule bounds.
func ByHand(r api.Run) bool {
	return r.Trigger == api.TriggerManual || r.Trigger == api.TriggerReplay
}

// Expired picks, of list, the runs asked for by hand at site that
// retention prunes: of each tool's ended ones, those beyond the newest
// keep, and, when before is not zero, those that finished before it. Runs
// that have not ended, and those whose commit has not reached its data
// repository yet (push pending or failed: the outbox still records on
// them), are never picked. It returns their IDs.
func Expired(list []api.Run, site string, keep int, before time.Time) []string {
	byTool := map[string][]api.Run{}
	for _, r := range list {
		if r.Site == site && ByHand(r) && r.State.Terminal() && (r.Push == nil || r.Push.State.Done()) {
			byTool[r.Tool] = append(byTool[r.Tool], r)
		}
	}
	var out []string
	for _, tool := range slices.Sorted(maps.Keys(byTool)) {
		ended := byTool[tool]
		slices.SortFunc(ended, func(a, b api.Run) int { // newest first
			if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
				return c
			}
			return strings.Compare(b.ID, a.ID)
		})
		for i, r := range ended {
			old := !before.IsZero() && r.FinishedAt != nil && r.FinishedAt.Before(before)
			if i >= keep || old {
				out = append(out, r.ID)
			}
		}
	}
	return out
}
