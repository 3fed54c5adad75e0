package federation

import (
	"context"
	"time"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/orchestrator/runs"
)

// RunPruner deletes the run records a pick picks of those asked for by
// hand at a site, each only if unchanged since it was read; store.Store is
// one.
type RunPruner interface {
	PruneRuns(ctx context.Context, site string, pick func([]api.Run) []string) ([]string, error)
}

// RetentionEvery is how often Retention prunes.
const RetentionEvery = time.Hour

// Retention bounds the runs this site was asked for by hand (manual runs
// and replays), which no schedule's history bounds: of each tool's ended
// ones, it keeps the newest Keep and, with MaxAge, none that ended longer
// ago (runs.Expired). Their logs go with them (PrunedLogs). Each site
// prunes its own runs only.
type Retention struct {
	runs   RunPruner
	keep   int
	maxAge time.Duration
	opts   Options
}

// NewRetention returns a Retention; Run starts it.
func NewRetention(runs RunPruner, keep int, maxAge time.Duration, opts Options) *Retention {
	opts.defaults()
	return &Retention{runs: runs, keep: keep, maxAge: maxAge, opts: opts}
}

// Run prunes at once, then every RetentionEvery, until ctx ends.
func (r *Retention) Run(ctx context.Context) {
	for ctx.Err() == nil {
		r.Prune(ctx)
		sleep(ctx, r.opts.Clock, RetentionEvery)
	}
}

// Prune prunes once; a failure is logged, and the next pass tries again.
func (r *Retention) Prune(ctx context.Context) {
	var before time.Time
	if r.maxAge > 0 {
		before = r.opts.Clock.Now().Add(-r.maxAge)
	}
	removed, err := r.runs.PruneRuns(ctx, r.opts.Site, func(all []api.Run) []string {
		return runs.Expired(all, r.opts.Site, r.keep, before)
	})
	if len(removed) > 0 {
		r.opts.Log.Info("pruned runs asked for by hand", "runs", len(removed), "keep", r.keep, "max_age", r.maxAge)
	}
	if err != nil && ctx.Err() == nil {
		r.opts.Log.Warn("prune runs asked for by hand; trying again later", "err", err)
	}
}
