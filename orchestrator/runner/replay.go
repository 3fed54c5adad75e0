package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/orchestrator/container"
	"github.com/mao-research/mao/orchestrator/runs"
	"github.com/mao-research/mao/toolspec"
)

// replaysDir holds, under DataDir, each replay's scratch checkouts while
// it runs: <run-id>/data and <run-id>/input.
const replaysDir = "replays"

// replayAttempt performs a replay (run.Replay is set): the original's
// snapshot (command, env, resources, network, timeout, user) runs again in
// the original's image, pinned by digest or ID, on a scratch checkout of
// the data repository at the original's data_commit_before and, if it had
// one, of its input dataset at the commit it read. The output is committed
// in the scratch clone only, to compare it with the original's commit;
// nothing is kept: no commit in the site's clone, no push, no detector
// series, no notification. Secret env values come from current, the
// tool's record today. A replay is never retried.
func (r *Runner) replayAttempt(ctx context.Context, run api.Run, current toolspec.Tool, log io.Writer) api.Run {
	if run = r.apply(run, runs.Start{}); run.State != api.StateRunning {
		return run
	}
	if !r.saveStart(run) {
		return r.apply(run, runs.Fail{Reason: "not started: another site has taken the run over"})
	}
	tool, note, err := replayTool(run, current)
	if err != nil {
		return r.apply(run, runs.Fail{Reason: err.Error()})
	}
	if reason := r.refusal(tool); reason != "" {
		return r.apply(run, runs.Fail{Reason: reason})
	}
	fmt.Fprintf(log, "[mao] replay of run %s (site %s) in image %s\n", run.Replay.Of, run.Replay.Site, tool.Image)
	if note != "" {
		fmt.Fprintf(log, "[mao] %s\n", note)
	}
	scratch := filepath.Join(r.opts.DataDir, replaysDir, run.ID)
	defer func() {
		if err := os.RemoveAll(scratch); err != nil {
			r.opts.Log.Warn("remove a replay's scratch checkouts", "run", run.ID, "dir", scratch, "err", err)
		}
	}()
	dir := filepath.Join(scratch, "data")
	out, mounts, img, against, rebased, err := r.prepareReplay(ctx, run, tool, scratch, log)
	if rebased != "" {
		note = joinNotes(note, rebased)
	}
	if err != nil {
		return r.apply(run, runs.Fail{Reason: err.Error(), Outcome: out})
	}
	end, ran := r.runHeld(ctx, run, tool, dir, img, mounts, nil, nil, log, &out)
	if ran && end == nil {
		out, end = r.compare(ctx, run, dir, against, out, note)
	}
	if end == nil {
		return r.apply(run, runs.Succeed{Outcome: out})
	}
	return r.apply(run, withOutcome(end, out))
}

// replayTool is the tool as the original run ran it, from its snapshot,
// in the image it ran (by digest, else by ID), with the values of secret
// env keys taken from current; note says which were.
func replayTool(run api.Run, current toolspec.Tool) (toolspec.Tool, string, error) {
	s := run.Spec
	if s == nil {
		return toolspec.Tool{}, "", errors.New("the replay's record holds no snapshot of what to run")
	}
	image := run.ImageDigest
	if image == "" {
		image = run.ImageID
	}
	env := maps.Clone(s.Env)
	var secrets []string
	for _, k := range s.SecretEnv {
		if _, ok := env[k]; !ok {
			continue
		}
		v, ok := current.Env[k]
		if !ok {
			return toolspec.Tool{}, "", fmt.Errorf("the secret env %s that run %s had is no longer in tool %s's env, where a replay takes secret values from",
				k, run.Replay.Of, run.Tool)
		}
		env[k] = v
		secrets = append(secrets, k)
	}
	var res *toolspec.Resources
	if s.Resources != nil || s.Memory > 0 {
		res = &toolspec.Resources{}
		if s.Resources != nil {
			res.CPUs = s.Resources.CPUs
		}
		if s.Memory > 0 {
			res.Memory = strconv.FormatInt(s.Memory, 10)
		}
	}
	tool := toolspec.Tool{Name: run.Tool, Image: image, DataRepo: run.DataRepo, Command: slices.Clone(s.Command), Env: env,
		Timeout: s.Timeout, Resources: res, Network: run.Network, User: s.User, InputDataset: run.InputDataset}
	if err := tool.ValidateExecution("replay"); err != nil {
		return toolspec.Tool{}, "", err
	}
	note := ""
	if len(secrets) > 0 {
		note = fmt.Sprintf("the values of the secret env %s are taken from tool %s's current record, not from the original run",
			strings.Join(secrets, ", "), run.Tool)
	}
	return tool, note, nil
}

// prepareReplay checks out the data repository and the input dataset at
// the original's commits into scratch, each from the site's own clone
// first (it holds commits not pushed yet), then from the remote, and makes
// sure the pinned image is here. The image is never looked up by tag: one
// moved since is not what ran.
//
// A run whose commit was rebased when it was pushed, and is gone from the
// site's clone since, starts from the parent of its pushed copy, and is
// compared with that copy (against; rebased says so).
func (r *Runner) prepareReplay(runCtx context.Context, run api.Run, tool toolspec.Tool, scratch string, log io.Writer) (
	out runs.Outcome, mounts []container.Mount, img container.Image, against, rebased string, err error) {
	ctx, cancel := context.WithTimeout(runCtx, r.opts.PrepareTimeout)
	defer cancel()
	// What an interrupted try of this replay left (Recover starts a
	// pending replay again) goes first.
	if err := os.RemoveAll(scratch); err != nil {
		return out, nil, img, "", "", err
	}
	out.DataCommitBefore, out.InputDataset, out.InputCommit = run.DataCommitBefore, run.InputDataset, run.InputCommit
	dir := filepath.Join(scratch, "data")
	against = run.Replay.Commit
	if err := r.scratch(runCtx, ctx, dir, filepath.Join(r.opts.DataDir, "repos", run.Tool), run.DataRepo, run.DataCommitBefore, log); err != nil {
		pushed := run.Replay.PushedCommit
		if pushed == "" {
			return out, nil, img, "", "", fmt.Errorf("data repository: %w", err)
		}
		if perr := r.git.ScratchParent(ctx, dir, run.DataRepo, pushed); perr != nil {
			return out, nil, img, "", "", fmt.Errorf("data repository: %w", errors.Join(err, perr))
		}
		against = pushed
		rebased = fmt.Sprintf("the original's commit %s is in no clone any more (it was rebased when pushed): the replay started from the parent of its pushed copy %s and is compared with that copy",
			run.Replay.Commit, pushed)
		fmt.Fprintf(log, "[mao] %s\n", rebased)
	}
	mounts = []container.Mount{{Source: r.hostPath(dir), Target: toolspec.DataMount}}
	if run.InputDataset != "" {
		ds, err := r.reg.Dataset(ctx, run.InputDataset)
		if err != nil {
			return out, nil, img, "", "", fmt.Errorf("input dataset %s: %w", run.InputDataset, err)
		}
		in := filepath.Join(scratch, "input")
		if err := r.scratch(runCtx, ctx, in, filepath.Join(r.opts.DataDir, "datasets", ds.Name), ds.URL, run.InputCommit, log); err != nil {
			return out, nil, img, "", "", fmt.Errorf("input dataset %s: %w", run.InputDataset, err)
		}
		mounts = append(mounts, container.Mount{Source: r.hostPath(in), Target: toolspec.InputMount, ReadOnly: true})
	}
	img, err = r.rt.EnsureImage(ctx, tool.Image)
	if err != nil {
		return out, nil, img, "", "", fmt.Errorf("image %s, which run %s ran, is neither at site %s nor pullable: %w",
			tool.Image, run.Replay.Of, r.opts.Site, err)
	}
	out.ImageID, out.ImageDigest = img.ID, img.Digest
	return out, mounts, img, against, rebased, nil
}

// scratch checks out commit into dir from the site's clone local (read
// under its lock, which is waited for on runCtx: a run of the tool may
// hold it for as long as its container runs), else from url, without the
// lock. What a failed try left in dir is gone before the next.
func (r *Runner) scratch(runCtx, ctx context.Context, dir, local, url, commit string, log io.Writer) error {
	unlock, err := r.locks.Lock(runCtx, local)
	if err != nil {
		return err
	}
	errLocal := r.git.ScratchLocal(ctx, dir, local, commit)
	unlock()
	if errLocal == nil {
		return nil
	}
	if err := r.git.Scratch(ctx, dir, url, commit); err != nil {
		return fmt.Errorf("neither this site's clone nor %s holds commit %s: %w", toolspec.RedactURL(url), commit, errors.Join(errLocal, err))
	}
	fmt.Fprintf(log, "[mao] commit %s checked out from %s (this site's clone lacks it)\n", commit, toolspec.RedactURL(url))
	return nil
}

// compare commits the replay's output in its scratch clone and compares
// that commit with the original's (api.Replay). A replay whose output
// cannot be committed (over a limit, a .git, ...) fails as a run would.
func (r *Runner) compare(ctx context.Context, run api.Run, dir, against string, out runs.Outcome, note string) (runs.Outcome, runs.Event) {
	commit, files, err := r.git.Commit(ctx, dir, "mao: replay "+run.ID+" of run "+run.Replay.Of, nil)
	if err != nil {
		return out, runs.Fail{Reason: commitFailure(ctx, err)}
	}
	out.Files = files
	result := *run.Replay
	result.Note = note
	diffs, err := r.git.Compare(ctx, dir, against, commit)
	switch {
	case err != nil:
		result.Verdict = api.ReplayNotCompared
		result.Note = joinNotes(note, fmt.Sprintf("the output was not compared: %v", err))
	case len(diffs) == 0:
		result.Verdict = api.ReplayReproduced
	default:
		result.Verdict = api.ReplayDiffers
		result.DifferencesTotal = len(diffs)
		for _, d := range diffs[:min(len(diffs), api.MaxRunFiles)] {
			result.Differences = append(result.Differences, api.FileDifference{Path: d.Path,
				Original: fileVersion(d.A), Replay: fileVersion(d.B)})
		}
	}
	out.Replay = &result
	return out, nil
}

func fileVersion(b *container.Blob) *api.FileVersion {
	if b == nil {
		return nil
	}
	return &api.FileVersion{Size: b.Size, SHA256: b.SHA256}
}

func joinNotes(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}
