package federation

import (
	"context"

	"github.com/mao-research/mao/orchestrator/runs"
)

// RunDeletions reports run records as they are deleted (pruned), after a
// store revision.
type RunDeletions interface {
	WatchRunDeletions(ctx context.Context, rev int64) <-chan []runs.Deletion
}

// LogFiles removes the log file a site keeps of a run; runlog.Dir is one.
type LogFiles interface {
	Remove(id string) error
}

// PrunedLogs removes the log files this site keeps of runs whose records
// were pruned, whichever site pruned them: a run's log lives at the site
// that ran it, and goes with its record.
type PrunedLogs struct {
	runs RunDeletions
	logs LogFiles
	from int64
	opts Options
}

// NewPrunedLogs returns a PrunedLogs that sees the deletions after store
// revision from (0: from when it runs); Run starts it.
func NewPrunedLogs(runs RunDeletions, logs LogFiles, from int64, opts Options) *PrunedLogs {
	opts.defaults()
	return &PrunedLogs{runs: runs, logs: logs, from: from, opts: opts}
}

// Run removes the logs of pruned runs until ctx ends. When the watch fails
// (etcd trouble) it watches again shortly, from the last deletion it saw,
// so that none is missed; if that fails again without a deletion (the
// revision may be compacted away), it goes on from then.
func (p *PrunedLogs) Run(ctx context.Context) {
	rev, stuck := p.from, false
	for ctx.Err() == nil {
		progressed := false
		for batch := range p.runs.WatchRunDeletions(ctx, rev) {
			for _, d := range batch {
				if err := p.logs.Remove(d.Run); err != nil {
					p.opts.Log.Warn("remove a pruned run's log", "run", d.Run, "err", err)
				}
				rev, progressed = max(rev, d.Rev), true
			}
		}
		if !progressed && stuck {
			rev = 0
		}
		stuck = !progressed
		sleep(ctx, p.opts.Clock, p.opts.Retry)
	}
}
