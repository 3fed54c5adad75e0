package runner

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/mao-research/mao/api"
)

// Recover finishes what a previous life of this site left undone: pending
// runs are started again; runs that were running are recorded as failed,
// their containers removed and their partial output discarded. Call it once
// at start-up, before the site accepts new runs.
func (r *Runner) Recover(ctx context.Context) error {
	runs, err := r.rec.Runs(ctx, "")
	if err != nil {
		return fmt.Errorf("list runs to recover: %w", err)
	}
	for _, run := range runs {
		if run.Site != r.opts.Site || run.State.Terminal() {
			continue
		}
		if _, err := r.rt.RemoveLabelled(ctx, LabelRun, run.ID); err != nil {
			return fmt.Errorf("remove the container of run %s: %w", run.ID, err)
		}
		if err := r.recoverRun(ctx, run); err != nil {
			return err
		}
	}
	return nil
}

func (r *Runner) recoverRun(ctx context.Context, run api.Run) error {
	if run.State == api.StateRunning {
		if _, err := r.git.Discard(ctx, filepath.Join(r.opts.DataDir, "repos", run.Tool)); err != nil {
			r.opts.Log.Warn("discard an interrupted run's output", "run", run.ID, "err", err)
		}
		r.save(r.fail(run, api.StateFailed, "interrupted: the orchestrator stopped while the run was running"))
		r.opts.Log.Warn("recorded an interrupted run as failed", "run", run.ID)
		return nil
	}
	tool, err := r.reg.Tool(ctx, run.Tool)
	if err != nil {
		r.save(r.fail(run, api.StateFailed, "could not start after a restart: %v", err))
		return nil
	}
	log, err := r.opts.Logs.Create(run.ID)
	if err != nil {
		return err
	}
	r.opts.Log.Info("starting a run left pending by a restart", "run", run.ID)
	return r.launch(ctx, run, tool, log, false)
}
