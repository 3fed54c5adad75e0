package runner

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/orchestrator/runs"
)

// Recover finishes what a previous life of this site left undone. First,
// runs that were running are recorded as failed, their containers removed
// and their partial output discarded; then pending runs are started again
// (in that order, so that no cleanup touches a clone a restarted run uses).
// Call it once at start-up, before the site accepts new runs.
func (r *Runner) Recover(ctx context.Context) error {
	records, err := r.rec.HeldRuns(ctx, r.opts.Site)
	if err != nil {
		return fmt.Errorf("list runs to recover: %w", err)
	}
	var pending []api.Run
	for _, run := range records {
		if run.Site != r.opts.Site || run.State.Terminal() {
			continue
		}
		if _, err := r.rt.RemoveLabelled(ctx, LabelRun, run.ID); err != nil {
			r.opts.Log.Warn("could not remove an interrupted run's container (is Docker up?)", "run", run.ID, "err", err)
		}
		if run.State == api.StatePending {
			pending = append(pending, run)
			continue
		}
		dir := filepath.Join(r.opts.DataDir, "repos", run.Tool)
		if run.Replay != nil {
			dir = filepath.Join(r.opts.DataDir, replaysDir, run.ID) // its scratch, never the site's clone
		}
		// The container may have been running with the folder lent to
		// another user, and left files of its own.
		if err := r.chown(dir, r.owner, true); err != nil {
			r.opts.Log.Warn("take back an interrupted run's data folder", "run", run.ID, "err", err)
		}
		if run.Replay != nil {
			if err := os.RemoveAll(dir); err != nil {
				r.opts.Log.Warn("remove an interrupted replay's scratch checkouts", "run", run.ID, "err", err)
			}
		} else if _, err := r.git.Discard(ctx, dir); err != nil {
			r.opts.Log.Warn("discard an interrupted run's output", "run", run.ID, "err", err)
		}
		run = r.apply(run, runs.Fail{Reason: "interrupted: the orchestrator stopped while the run was running"})
		if !runs.CanRetry(run) {
			r.save(run)
			r.opts.Log.Warn("recorded an interrupted run as failed", "run", run.ID)
			continue
		}
		log, err := r.opts.Logs.Create(run.ID)
		if err != nil {
			return err
		}
		pending = append(pending, r.retryLater(run, log)) // attempts remain
		log.Close()
	}
	r.sweepReplays(records)
	for _, run := range pending {
		if err := r.restart(ctx, run); err != nil {
			return err
		}
	}
	return nil
}

// sweepReplays removes the scratch checkouts of replays that are not
// pending here (a pending one starts again, and starts with a clean
// scratch): those a crash left behind.
func (r *Runner) sweepReplays(records []api.Run) {
	dir := filepath.Join(r.opts.DataDir, replaysDir)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return // none
	}
	keep := map[string]bool{}
	for _, run := range records {
		if run.Replay != nil && run.Site == r.opts.Site && run.State == api.StatePending {
			keep[run.ID] = true
		}
	}
	for _, e := range entries {
		if keep[e.Name()] {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			r.opts.Log.Warn("remove a replay's scratch left by a crash", "dir", filepath.Join(dir, e.Name()), "err", err)
		}
	}
}

// restart starts a run that a previous life of the site left pending.
func (r *Runner) restart(ctx context.Context, run api.Run) error {
	tool, err := r.reg.Tool(ctx, run.Tool)
	if err != nil {
		r.save(r.apply(run, runs.Fail{Reason: fmt.Sprintf("could not start after a restart: %v", err)}))
		return nil
	}
	r.opts.Log.Info("starting a run left pending by a restart", "run", run.ID)
	return r.begin(ctx, run, tool, false)
}
