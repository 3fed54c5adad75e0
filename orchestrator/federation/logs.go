package federation

import "context"

// RunDeletions reports run records as they are deleted (pruned).
type RunDeletions interface {
	WatchRunDeletions(ctx context.Context) <-chan []string
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
	opts Options
}

// NewPrunedLogs returns a PrunedLogs; Run starts it.
func NewPrunedLogs(runs RunDeletions, logs LogFiles, opts Options) *PrunedLogs {
	opts.defaults()
	return &PrunedLogs{runs: runs, logs: logs, opts: opts}
}

// Run removes the logs of pruned runs until ctx ends; when the watch fails
// (etcd trouble) it watches again shortly.
func (p *PrunedLogs) Run(ctx context.Context) {
	for ctx.Err() == nil {
		for ids := range p.runs.WatchRunDeletions(ctx) {
			for _, id := range ids {
				if err := p.logs.Remove(id); err != nil {
					p.opts.Log.Warn("remove a pruned run's log", "run", id, "err", err)
				}
			}
		}
		sleep(ctx, p.opts.Clock, p.opts.Retry)
	}
}
