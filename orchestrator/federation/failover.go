package federation

import (
	"context"
	"sync"
	"time"

	"github.com/mao-research/mao/api"
)

// Departures lists the live sites and watches them leave.
type Departures interface {
	LiveSites(ctx context.Context) ([]api.Site, int64, error)
	WatchDepartures(ctx context.Context, rev int64) <-chan []string
}

// Losses finds the runs that sites hold and settles those of gone sites.
type Losses interface {
	// HeldRuns lists the runs that sites hold and that have not ended:
	// site's, or every site's when site is "".
	HeldRuns(ctx context.Context, site string) ([]api.Run, error)
	LoseRun(ctx context.Context, id, dead string, now time.Time) (api.Run, bool, error)
}

// Failover settles the runs of sites that are gone: every site runs one, and
// the store's transaction lets one of them settle each run.
type Failover struct {
	sites  Departures
	losses Losses
	opts   Options
}

// NewFailover returns a Failover; Run starts it.
func NewFailover(sites Departures, losses Losses, opts Options) *Failover {
	opts.defaults()
	return &Failover{sites: sites, losses: losses, opts: opts}
}

// Run settles, at once, the held runs of sites that are not live, and
// then those of every site whose lease expires, until ctx ends.
func (f *Failover) Run(ctx context.Context) {
	for ctx.Err() == nil {
		live, rev, err := f.sites.LiveSites(ctx)
		if err != nil {
			f.opts.Log.Warn("list live sites; retrying", "err", err)
			sleep(ctx, f.opts.Clock, f.opts.Retry)
			continue
		}
		alive := map[string]bool{f.opts.Site: true}
		for _, s := range live {
			alive[s.Name] = true
		}
		if err := f.sweep(ctx, func(site string) bool { return !alive[site] }); err == nil {
			f.follow(ctx, rev)
		}
		sleep(ctx, f.opts.Clock, f.opts.Retry)
	}
}

// follow settles the runs of each site that leaves after rev, until the
// watch or a sweep fails; then Run lists the sites again, which sweeps
// every site that is gone.
func (f *Failover) follow(ctx context.Context, rev int64) {
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	for gone := range f.sites.WatchDepartures(wctx, rev) {
		for _, site := range gone {
			if site == f.opts.Site {
				continue // this site's lease lapsed; it registers again
			}
			f.opts.Log.Warn("site left the federation; settling its runs", "site", site)
			if err := f.sweep(ctx, func(s string) bool { return s == site }); err != nil {
				return
			}
		}
	}
}

// sweep settles the held runs of the sites gone says are gone.
func (f *Failover) sweep(ctx context.Context, gone func(site string) bool) error {
	runs, err := f.losses.HeldRuns(ctx, "")
	if err != nil {
		f.opts.Log.Warn("list held runs", "err", err)
		return err
	}
	var wg sync.WaitGroup
	for _, r := range runs {
		if !gone(r.Site) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			run, ok, err := f.losses.LoseRun(ctx, r.ID, r.Site, f.opts.Clock.Now().UTC())
			switch {
			case err != nil:
				f.opts.Log.Warn("settle a run of a gone site", "run", r.ID, "site", r.Site, "err", err)
			case ok && run.State == api.StateLost:
				f.opts.Log.Warn("run lost; no attempts left", "run", run.ID, "site", r.Site)
				if f.opts.Ended != nil {
					f.opts.Ended(run)
				}
			case ok:
				f.opts.Log.Warn("run lost; requested again", "run", run.ID, "site", r.Site, "attempt", run.Attempt, "target", run.Target.String())
			}
		}()
	}
	wg.Wait()
	return nil
}
