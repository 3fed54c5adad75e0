package alerts

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/detector"
	"github.com/mao-research/mao/notify"
	"github.com/mao-research/mao/toolspec"
)

// Series keeps the detector's series.
type Series interface {
	UpdateSeries(ctx context.Context, tool, site, metric string, max int, fn func(api.Series) (api.Series, error)) (api.Series, error)
}

// States keeps what has been notified, per tool and scope.
type States interface {
	UpdateNotifyState(ctx context.Context, tool, scope string, fn func(notify.State) notify.State) (before, after notify.State, err error)
}

// Tools looks tools up, for their channels.
type Tools interface {
	Tool(ctx context.Context, name string) (toolspec.Tool, error)
}

// Notifier sends messages asynchronously; notify.Notifier is one.
type Notifier interface {
	Notify(e notify.Event, channels []string)
}

// Clock tells the time.
type Clock interface {
	Now() time.Time
}

// Options configure Alerts.
type Options struct {
	Site         string
	SeriesLength int           // points kept per series; default 1000
	Cooldown     time.Duration // how long a lasting condition stays quiet; default notify.DefaultCooldown
	Channels     []string      // the site's channels, for every tool, besides the tool's own
	Clock        Clock
	Log          *slog.Logger
}

// Alerts is the detector and notifier of one site.
type Alerts struct {
	series   Series
	states   States
	tools    Tools
	notifier Notifier
	opts     Options
	ended    chan item
}

// item is a run whose notifications are to be decided: it ended, or its
// commit's push has failed for too long, or landed.
type item struct {
	run  api.Run
	push pushNews
}

// pushNews is what an item says of a run's push.
type pushNews int

const (
	runEnded    pushNews = iota // the run ended: nothing of its push
	pushFailing                 // its push has failed for longer than the site allows
	pushLanded                  // its push landed (pushed or conflict)
)

// Default option values.
const (
	DefaultSeriesLength = 1000
	endedQueue          = 1024
)

// New returns Alerts; Run makes it decide and send.
func New(series Series, states States, tools Tools, n Notifier, opts Options) *Alerts {
	if opts.SeriesLength <= 0 {
		opts.SeriesLength = DefaultSeriesLength
	}
	if opts.Cooldown <= 0 {
		opts.Cooldown = notify.DefaultCooldown
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	return &Alerts{series: series, states: states, tools: tools, notifier: n, opts: opts, ended: make(chan item, endedQueue)}
}

// Detect checks the output of a successful run, in its data folder dir,
// and appends each metric's value to its series. It returns one verdict
// per metric, or one no-data verdict saying why there is none (the run
// wrote no new file to read, or an unreadable one).
func (a *Alerts) Detect(ctx context.Context, run api.Run, tool toolspec.Tool, dir string) []detector.Verdict {
	cfg := detector.Config{}
	if tool.Detector != nil {
		cfg = *tool.Detector
	}
	cfg = cfg.WithDefaults()
	metrics, err := detector.Extract(dir, cfg)
	if err == nil {
		err = writtenBy(run, metrics)
	}
	if err != nil {
		return []detector.Verdict{detector.NoData(cfg.Metric, err, cfg)}
	}
	at := run.CreatedAt
	if run.ScheduledTime != nil {
		at = *run.ScheduledTime
	}
	verdicts := make([]detector.Verdict, 0, len(metrics))
	for _, m := range metrics {
		var v detector.Verdict
		_, err := a.series.UpdateSeries(ctx, run.Tool, a.opts.Site, m.Name, a.opts.SeriesLength, func(s api.Series) (api.Series, error) {
			history := make([]float64, 0, len(s.Points))
			for _, p := range s.Points {
				if p.Run == run.ID {
					continue // a retried record: its earlier value is replaced
				}
				history = append(history, p.Value)
			}
			v = detector.Check(history, m.Value, cfg)
			v.Metric = m.Name
			s.Points = slices.DeleteFunc(s.Points, func(p api.SeriesPoint) bool { return p.Run == run.ID })
			s.Points = append(s.Points, api.SeriesPoint{Run: run.ID, Time: at.UTC(), Value: m.Value, Spike: v.Spike})
			return s, nil
		})
		switch {
		case err != nil && v.Status == "": // the series could not be read: no verdict
			a.opts.Log.Warn("read a metric's series", "run", run.ID, "metric", m.Name, "err", err)
			v = detector.NoData(m.Name, fmt.Errorf("its series could not be read: %w", err), cfg)
		case err != nil:
			a.opts.Log.Warn("store a metric's series", "run", run.ID, "metric", m.Name, "err", err)
			v.Reason += fmt.Sprintf("; the value was not added to the series: %v", err)
		}
		verdicts = append(verdicts, v)
	}
	return verdicts
}

// writtenBy checks that the run itself wrote the files the metrics came
// from: an older run's file would count its value twice.
func writtenBy(run api.Run, metrics []detector.Metric) error {
	for _, m := range metrics {
		// Files lists at most api.MaxRunFiles; beyond that, trust the name.
		if run.FilesTotal <= len(run.Files) && !slices.Contains(run.Files, m.File) {
			return fmt.Errorf("the run wrote no new output to read: the newest %s is an earlier run's", m.File)
		}
	}
	return nil
}

// Ended queues a run that has ended for its notifications; it never
// blocks. A full queue drops the run, with a log line. A replay never
// notifies, nor changes what the tool's runs have told.
func (a *Alerts) Ended(run api.Run) {
	if run.Replay != nil {
		return
	}
	a.queue(item{run: run})
}

// PushFailing queues a run whose commit has not reached its data
// repository for longer than the site allows: push_failed is told once
// per site and tool while its pushes fail (and again after the cooldown).
// It never blocks.
func (a *Alerts) PushFailing(run api.Run) { a.queue(item{run: run, push: pushFailing}) }

// PushLanded queues a run whose commit reached its data repository, so
// that the next lasting failure of the site's pushes is told again. It
// never blocks.
func (a *Alerts) PushLanded(run api.Run) { a.queue(item{run: run, push: pushLanded}) }

func (a *Alerts) queue(it item) {
	select {
	case a.ended <- it:
	default:
		a.opts.Log.Error("notification queue full; no notifications for this run", "run", it.run.ID)
	}
}

// Run decides the notifications of ended runs until ctx ends.
func (a *Alerts) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			a.drain(ctx)
			return
		case it := <-a.ended:
			if ctx.Err() != nil { // select picks at random when both are ready
				a.drain(ctx, it)
				return
			}
			a.handle(ctx, it)
		}
	}
}

// drainFor bounds the decisions made after Run's ctx ended.
const drainFor = 10 * time.Second

// drain decides on the runs queued still, so that runs that ended during a
// shutdown are notified too.
func (a *Alerts) drain(ctx context.Context, first ...item) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), drainFor)
	defer cancel()
	for _, it := range first {
		a.handle(ctx, it)
	}
	for {
		select {
		case it := <-a.ended:
			a.handle(ctx, it)
		default:
			return
		}
	}
}

// handle decides an item's notifications.
func (a *Alerts) handle(ctx context.Context, it item) {
	if it.push == runEnded {
		a.decide(ctx, it.run)
		return
	}
	run := it.run
	channels := a.channels(ctx, run)
	if len(channels) == 0 {
		return // nobody to tell; the states stay as they were
	}
	now := a.opts.Clock.Now().UTC()
	e := notify.Event{Tool: run.Tool, Site: run.Site, RunID: run.ID, State: string(run.State),
		Logs: "maoctl run list --push failed", Time: now}
	if run.Push != nil {
		e.Reason = run.Push.Reason
	}
	a.transition(ctx, run.Tool, PushScope(run.Site), func(s notify.State) ([]string, notify.State) {
		return notify.DecidePush(s, it.push == pushFailing, now, a.opts.Cooldown)
	}, e, channels)
}

// channels are the channels told of run's tool's events: the site's and
// the tool's own.
func (a *Alerts) channels(ctx context.Context, run api.Run) []string {
	tool, err := a.tools.Tool(ctx, run.Tool)
	if err != nil {
		a.opts.Log.Warn("look up an ended run's tool for its notifications", "run", run.ID, "err", err)
	}
	return append(slices.Clone(a.opts.Channels), tool.Notify...)
}

// decide turns an ended run into events and hands them to the notifier.
func (a *Alerts) decide(ctx context.Context, run api.Run) {
	channels := a.channels(ctx, run)
	if len(channels) == 0 {
		return // nobody to tell; the states stay as they were
	}
	now := a.opts.Clock.Now().UTC()
	base := notify.Event{Tool: run.Tool, Site: run.Site, RunID: run.ID, State: string(run.State), Reason: run.Reason,
		Logs: "maoctl run logs " + run.ID, Time: now}
	a.transition(ctx, run.Tool, "runs", func(s notify.State) ([]string, notify.State) {
		return notify.DecideRun(s, runEnd(run.State), now, a.opts.Cooldown)
	}, base, channels)
	for _, v := range run.Verdicts {
		if v.Status != detector.StatusOK && v.Status != detector.StatusSpike {
			continue // no data, or warming up: nothing changes
		}
		e := base
		e.Metric, e.Value, e.Baseline, e.Score, e.Threshold, e.Method, e.Reason = v.Metric, v.Value, v.Baseline, v.Score, v.Threshold, v.Method, v.Reason
		a.transition(ctx, run.Tool, run.Site+"/"+v.Metric, func(s notify.State) ([]string, notify.State) {
			return notify.DecideSpike(s, v.Spike, now, a.opts.Cooldown)
		}, e, channels)
	}
}

// PushScope is the notify state's scope of site's pushes of a tool's
// commits: two segments after the site, so that it is never a series'
// scope (<site>/<metric>, a metric has no '/').
func PushScope(site string) string { return site + "/push/failed" }

// runEnd is how a run in state ended, for notify.DecideRun.
func runEnd(state api.RunState) notify.RunEnd {
	switch state {
	case api.StateSucceeded:
		return notify.RunSucceeded
	case api.StateFailed:
		return notify.RunFailed
	case api.StateTimedOut:
		return notify.RunTimedOut
	case api.StateLost:
		return notify.RunLost
	}
	return notify.RunNeither
}

// transition applies a decision to a scope's state in one compare-and-swap
// and notifies the events of the decision that was stored.
func (a *Alerts) transition(ctx context.Context, tool, scope string, decide func(notify.State) ([]string, notify.State),
	e notify.Event, channels []string) {
	var kinds []string
	_, stored, err := a.states.UpdateNotifyState(ctx, tool, scope, func(s notify.State) notify.State {
		var next notify.State
		kinds, next = decide(s) // the last call is the one stored
		return next
	})
	e.Failures = stored.Failures
	if err != nil {
		a.opts.Log.Warn("record a notification state; not notifying", "tool", tool, "scope", scope, "err", err)
		return
	}
	for _, k := range kinds {
		e.Kind = k
		a.notifier.Notify(e, channels)
	}
}
