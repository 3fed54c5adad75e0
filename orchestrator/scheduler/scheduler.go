package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/go-co-op/gocron/v2"
	"github.com/google/uuid"
	"github.com/jonboulle/clockwork"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/orchestrator/errs"
	"github.com/mao-research/mao/orchestrator/runs"
	"github.com/mao-research/mao/toolspec"
)

// Schedules lists and watches the stored schedules.
type Schedules interface {
	Schedules(ctx context.Context) ([]toolspec.Schedule, int64, error)
	WatchSchedules(ctx context.Context, rev int64) <-chan []toolspec.ScheduleEvent
}

// Claims records the ticks of schedules.
type Claims interface {
	ClaimRun(ctx context.Context, r api.Run) (bool, error)
	PruneSchedule(ctx context.Context, schedule string, keep int) ([]string, error)
}

// History reads the recorded ticks of schedules.
type History interface {
	Run(ctx context.Context, id string) (api.Run, error)
	// LastScheduledRun and LatestExecutedRun look at the runs of one
	// site (an --all schedule's) or, with site "", of every site.
	LastScheduledRun(ctx context.Context, schedule, site string) (*api.Run, error)
	LatestExecutedRun(ctx context.Context, schedule, site string) (*api.Run, error)
}

// Tools looks tools up.
type Tools interface {
	Tool(ctx context.Context, name string) (toolspec.Tool, error)
}

// Launcher executes claimed runs at this site. Launching a run it already
// executes does nothing.
type Launcher interface {
	Launch(ctx context.Context, run api.Run, tool toolspec.Tool) error
}

// Images tells whether this site can run an image (nil: it has it, or
// can pull it), or why not.
type Images interface {
	CheckImage(ctx context.Context, image string) error
}

// Deps are what a Scheduler works with.
type Deps struct {
	Schedules Schedules
	Claims    Claims
	History   History
	Tools     Tools
	Launcher  Launcher
	Images    Images
}

// Options configure a Scheduler.
type Options struct {
	Site    string
	Labels  map[string]string // this site's labels, which schedules' targets may ask for
	History int               // run records kept per schedule; default 100
	Clock   clockwork.Clock   // default the real clock
	Log     *slog.Logger
	Retry   time.Duration // how soon to retry after etcd failed; default 2s
	// SkewGrace is how far behind now a catch-up stops: ticks this recent
	// are fired as on-time ticks, so that a site whose clock is a little
	// ahead does not record as missed what other sites are about to run.
	// Default 2s.
	SkewGrace time.Duration
	// OnArm, if set, is called each time a schedule's next tick is armed.
	OnArm func(schedule string, tick time.Time)
}

// Scheduler fires the ticks of every schedule.
type Scheduler struct {
	deps   Deps
	opts   Options
	cron   gocron.Scheduler
	failed chan struct{} // a tick or catch-up failed; retry soon
	runCtx context.Context

	mu      sync.Mutex // never held while calling gocron, whose tasks take it
	entries map[string]*entry
	// retry holds, per schedule, the earliest point after which ticks may
	// be unrecorded because etcd failed; the retry catches up from there.
	retry map[string]time.Time
}

// entry is a loaded schedule and its armed gocron job.
type entry struct {
	sched  toolspec.Schedule
	timing toolspec.Timing
	gen    int       // changes with every edit, so stale jobs do nothing
	job    uuid.UUID // the gocron job armed at the next tick, if any
	next   time.Time // the tick the job is armed for; zero once fired
	armed  time.Time // when the job was armed
}

// New returns a Scheduler; Run starts it.
func New(deps Deps, opts Options) (*Scheduler, error) {
	if opts.History <= 0 {
		opts.History = 100
	}
	if opts.Clock == nil {
		opts.Clock = clockwork.NewRealClock()
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Retry <= 0 {
		opts.Retry = 2 * time.Second
	}
	if opts.SkewGrace <= 0 {
		opts.SkewGrace = 2 * time.Second
	}
	cron, err := gocron.NewScheduler(gocron.WithClock(opts.Clock), gocron.WithLocation(time.UTC))
	if err != nil {
		return nil, fmt.Errorf("scheduler: %w", err)
	}
	return &Scheduler{deps: deps, opts: opts, cron: cron, failed: make(chan struct{}, 1),
		runCtx: context.Background(), entries: map[string]*entry{}, retry: map[string]time.Time{}}, nil
}

// Run loads and watches the schedules and fires their ticks until ctx
// ends. When the watch fails (etcd lost its leader, or the watch was
// compacted) it lists the schedules again, which also catches up every
// tick missed meanwhile.
func (s *Scheduler) Run(ctx context.Context) error {
	s.runCtx = ctx // set before any job exists, read by fire
	s.cron.Start()
	defer func() {
		if err := s.cron.Shutdown(); err != nil {
			s.opts.Log.Warn("scheduler shutdown", "err", err)
		}
	}()
	var retry <-chan time.Time
	loaded := false
	for ctx.Err() == nil {
		start := s.opts.Clock.Now()
		list, rev, err := s.deps.Schedules.Schedules(ctx)
		if err != nil {
			s.opts.Log.Warn("load schedules; retrying", "err", err)
			s.wait(ctx, s.opts.Retry)
			continue
		}
		s.load(ctx, list)
		if !loaded {
			loaded = true
			s.opts.Log.Info("scheduler ready", "schedules", len(list), "took", s.opts.Clock.Since(start).Round(time.Millisecond))
		}
		events := s.deps.Schedules.WatchSchedules(ctx, rev)
	watch:
		for {
			select {
			case evs, ok := <-events:
				if !ok {
					break watch
				}
				for _, ev := range evs {
					s.apply(ctx, ev.ID, ev.Schedule)
				}
			case <-s.failed:
				retry = s.opts.Clock.After(s.opts.Retry)
			case <-retry:
				retry = nil
				s.catchUpFailed(ctx)
			case <-ctx.Done():
				return nil
			}
		}
		if ctx.Err() == nil {
			s.opts.Log.Warn("schedule watch ended; loading the schedules again")
			s.wait(ctx, s.opts.Retry)
		}
	}
	return nil
}

func (s *Scheduler) wait(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-s.opts.Clock.After(d):
	}
}

// load makes the loaded schedules exactly list and catches each one up.
func (s *Scheduler) load(ctx context.Context, list []toolspec.Schedule) {
	keep := make(map[string]bool, len(list))
	for _, sch := range list {
		keep[sch.ID] = true
	}
	s.mu.Lock()
	var gone []string
	for id := range s.entries {
		if !keep[id] {
			gone = append(gone, id)
		}
	}
	s.mu.Unlock()
	for _, id := range gone {
		s.apply(ctx, id, nil)
	}
	// Catch-ups read etcd once or twice per schedule: do several at once.
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for i := range list {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			s.apply(ctx, list[i].ID, &list[i])
		}()
	}
	wg.Wait()
}

// apply installs a new or edited schedule (sch nil: removes it), catches it
// up and arms its next tick.
func (s *Scheduler) apply(ctx context.Context, id string, sch *toolspec.Schedule) {
	e := &entry{}
	if sch != nil {
		e.sched = *sch
	}
	timing, err := e.sched.Timing()
	s.mu.Lock()
	old := s.entries[id]
	var oldJob uuid.UUID
	if old != nil {
		e.gen, oldJob = old.gen+1, old.job
	}
	if sch == nil || err != nil {
		delete(s.entries, id)
		delete(s.retry, id)
	} else {
		e.timing = timing
		s.entries[id] = e
	}
	s.mu.Unlock()
	s.dropJob(oldJob)
	if sch != nil && err != nil {
		s.opts.Log.Error("schedule cannot be followed", "schedule", id, "err", err)
	}
	if sch == nil || err != nil || sch.Paused || !sch.Target.Allows(s.opts.Site, s.opts.Labels) {
		return // another site's schedule, by its target
	}
	last, err := s.deps.History.LastScheduledRun(ctx, id, s.ownSite(*sch))
	from := sch.UpdatedAt
	if err == nil && last != nil && last.ScheduledTime != nil && last.ScheduledTime.After(from) {
		from = *last.ScheduledTime
	}
	until := s.opts.Clock.Now().Add(-s.opts.SkewGrace)
	if err == nil {
		err = s.catchUp(ctx, e.sched, timing, from, until)
	}
	if err != nil {
		s.opts.Log.Warn("catch up; will retry", "schedule", id, "err", err)
		s.markFailed(id, from)
	}
	if from.After(until) {
		until = from // nothing at or before the last recorded tick or edit fires again
	}
	s.arm(id, e.gen, until) // the ticks after the catch-up, on time
}

// arm sets the schedule's gocron job at its first tick after after.
func (s *Scheduler) arm(id string, gen int, after time.Time) {
	s.mu.Lock()
	e := s.entries[id]
	if e == nil || e.gen != gen || e.sched.Paused || !e.sched.Target.Allows(s.opts.Site, s.opts.Labels) {
		s.mu.Unlock()
		return
	}
	old := e.job
	next := e.timing.Next(after)
	e.job, e.next, e.armed = uuid.Nil, next, s.opts.Clock.Now()
	s.mu.Unlock()

	s.dropJob(old)
	if next.IsZero() {
		return // a timing with no further tick
	}
	// A single run at next, or as soon as possible if next has passed by
	// the time gocron sees the job (a gocron one-time job in the past
	// would never run). fire drops the job on its first run.
	job, err := s.cron.NewJob(gocron.DurationJob(firingInterval), gocron.NewTask(s.fire, id, gen, next),
		gocron.WithStartAt(gocron.WithStartDateTimePast(next)), gocron.WithLimitedRuns(1), gocron.WithName(id))
	if err != nil {
		s.opts.Log.Error("arm schedule", "schedule", id, "tick", next, "err", err)
		return
	}
	s.mu.Lock()
	e = s.entries[id]
	current := e != nil && e.gen == gen && e.next.Equal(next)
	if current {
		e.job = job.ID()
	}
	s.mu.Unlock()
	if !current { // edited, removed or already fired meanwhile
		s.dropJob(job.ID())
		return
	}
	if s.opts.OnArm != nil {
		s.opts.OnArm(id, next)
	}
}

// firingInterval is the interval of the job that fires a tick; only its
// first run counts, and it is this late at most when gocron sees the job
// after its tick.
const firingInterval = 50 * time.Millisecond

// dropJob removes an armed gocron job, if any; s.mu must not be held.
func (s *Scheduler) dropJob(id uuid.UUID) {
	if id != uuid.Nil {
		_ = s.cron.RemoveJob(id) // gone already once it has run
	}
}

// fire is the gocron task of tick T of schedule id.
//
// A tick that fires later than SkewGrace after it was due (its time, or
// when it was armed if that was later) is not run as on time: the site was
// stopped or starved past it (SIGSTOP, a paused VM, a long pause), and
// meanwhile its lease may have expired and other sites may have recorded
// or run its ticks. It is caught up instead, with the ticks after it that
// are due, as a restart would: the latest runs once, late, the older are
// missed.
func (s *Scheduler) fire(id string, gen int, tick time.Time) {
	s.mu.Lock()
	e := s.entries[id]
	current := e != nil && e.gen == gen && !e.sched.Paused && e.next.Equal(tick)
	var sch toolspec.Schedule
	var timing toolspec.Timing
	var job uuid.UUID
	due := tick
	if current {
		sch, timing, job, e.next, e.job = e.sched, e.timing, e.job, time.Time{}, uuid.Nil
		if e.armed.After(due) {
			due = e.armed
		}
	}
	s.mu.Unlock()
	if !current {
		return
	}
	s.dropJob(job)
	now := s.opts.Clock.Now()
	if late := now.Sub(due); late > s.opts.SkewGrace {
		until := now.Add(-s.opts.SkewGrace)
		if until.Before(tick) {
			until = tick
		}
		s.opts.Log.Warn("tick fired late (the site was stopped or starved); catching up instead of running it as on time",
			"schedule", id, "tick", tick, "late", late.Round(time.Millisecond))
		from := tick.Add(-time.Nanosecond)
		if err := s.catchUp(s.runCtx, sch, timing, from, until); err != nil {
			s.opts.Log.Warn("catch up; will retry", "schedule", id, "err", err)
			s.markFailed(id, from)
		}
		s.arm(id, gen, until)
		return
	}
	if err := s.tick(s.runCtx, sch, tick, api.TriggerSchedule); err != nil {
		s.opts.Log.Warn("tick not recorded; will catch up", "schedule", id, "tick", tick, "err", err)
		s.markFailed(id, tick.Add(-time.Nanosecond))
	}
	s.arm(id, gen, tick)
}

// markFailed remembers that ticks after from may be unrecorded, to catch
// them up after Options.Retry.
func (s *Scheduler) markFailed(id string, from time.Time) {
	s.mu.Lock()
	if old, ok := s.retry[id]; !ok || from.Before(old) {
		s.retry[id] = from
	}
	s.mu.Unlock()
	select {
	case s.failed <- struct{}{}:
	default:
	}
}

// catchUpFailed catches up the schedules whose ticks or catch-ups failed,
// from the earliest point that may be unrecorded (but never before their
// last edit).
func (s *Scheduler) catchUpFailed(ctx context.Context) {
	type job struct {
		e    entry
		from time.Time
	}
	s.mu.Lock()
	var todo []job
	for id, from := range s.retry {
		if e := s.entries[id]; e != nil && !e.sched.Paused && e.sched.Target.Allows(s.opts.Site, s.opts.Labels) {
			if e.sched.UpdatedAt.After(from) {
				from = e.sched.UpdatedAt
			}
			todo = append(todo, job{*e, from})
		}
	}
	clear(s.retry)
	s.mu.Unlock()
	for _, j := range todo {
		// A tick that fired is due, however recent: cover it.
		until := s.opts.Clock.Now().Add(-s.opts.SkewGrace)
		if next := j.from.Add(time.Nanosecond); until.Before(next) {
			until = next
		}
		if err := s.catchUp(ctx, j.e.sched, j.e.timing, j.from, until); err != nil {
			s.opts.Log.Warn("catch up; will retry", "schedule", j.e.sched.ID, "err", err)
			s.markFailed(j.e.sched.ID, j.from)
		}
	}
}

// catchUp records the ticks in (from, until]: the latest runs late
// (catchup once, within the deadline), the others are recorded as missed.
// Ticks recorded already keep their record: claims never overwrite.
func (s *Scheduler) catchUp(ctx context.Context, sch toolspec.Schedule, timing toolspec.Timing, from, until time.Time) error {
	ticks, more := toolspec.Ticks(timing, from, until, s.opts.History)
	if len(ticks) == 0 {
		return nil
	}
	now := s.opts.Clock.Now()
	latest := ticks[len(ticks)-1]
	missed, runLatest := ticks, false
	if sch.Catchup == toolspec.CatchupOnce && withinDeadline(sch, now.Sub(latest)) {
		missed, runLatest = ticks[:len(ticks)-1], true
	}
	for i, t := range missed {
		reason := "missed: no orchestrator recorded this tick on time (down, or etcd unreachable)"
		if sch.Catchup == toolspec.CatchupSkip {
			reason += "; the schedule's catchup is skip"
		} else if t.Equal(latest) {
			reason += "; too late to catch up: past the schedule's deadline of " + sch.Deadline
		}
		if i == 0 && more {
			reason += "; earlier ticks were missed too and are not recorded one by one"
		}
		if err := s.record(ctx, sch, t, runs.Miss{Reason: reason}); err != nil {
			return err
		}
	}
	if runLatest {
		return s.tick(ctx, sch, latest, api.TriggerCatchup)
	}
	return s.prune(ctx, sch.ID)
}

func withinDeadline(sch toolspec.Schedule, late time.Duration) bool {
	if sch.Deadline == "" {
		return true
	}
	d, err := time.ParseDuration(sch.Deadline)
	return err != nil || late <= d
}

// record claims a tick that does not run, ended by ev (runs.Miss, Skip or
// Orphan).
func (s *Scheduler) record(ctx context.Context, sch toolspec.Schedule, tick time.Time, ev runs.Event) error {
	now := s.opts.Clock.Now()
	run, err := runs.Apply(s.newRun(sch, toolspec.Tool{Name: sch.Tool}, tick, api.TriggerSchedule), ev, now)
	if err != nil {
		return err
	}
	_, err = s.deps.Claims.ClaimRun(ctx, run)
	return err
}

// tick claims the run of tick T of sch and, if this site holds the claim,
// launches it here.
func (s *Scheduler) tick(ctx context.Context, sch toolspec.Schedule, tick time.Time, trigger string) error {
	tool, err := s.deps.Tools.Tool(ctx, sch.Tool)
	if errors.Is(err, errs.ErrNotFound) {
		return errors.Join(s.record(ctx, sch, tick, runs.Orphan{}), s.prune(ctx, sch.ID))
	}
	if err != nil {
		return err
	}
	if err := s.deps.Images.CheckImage(ctx, tool.Image); err != nil {
		// Not eligible: sites that have the image run it. An --all
		// schedule's run for this site is not recorded.
		s.opts.Log.Debug("tick left to other sites: the image is not usable here", "schedule", sch.ID, "image", tool.Image, "err", err)
		return nil
	}
	run := s.newRun(sch, tool, tick, trigger)
	if sch.Overlap == toolspec.OverlapForbid {
		prev, err := s.deps.History.LatestExecutedRun(ctx, sch.ID, s.ownSite(sch))
		if err != nil {
			return err
		}
		if prev != nil && prev.ID != run.ID && !prev.State.Terminal() {
			return s.record(ctx, sch, tick, runs.Skip{
				Reason: fmt.Sprintf("skipped: the previous run %s is still %s and the schedule forbids overlap", prev.ID, prev.State)})
		}
	}
	claimed, err := s.deps.Claims.ClaimRun(ctx, run)
	if err != nil {
		return err
	}
	if !claimed {
		// Another site, or this one before a timeout hid the answer, has
		// the claim. If it is this site's and still pending, run it.
		held, err := s.deps.History.Run(ctx, run.ID)
		if err != nil || held.Site != s.opts.Site || held.State != api.StatePending {
			return nil
		}
		run = held
	}
	err = s.prune(ctx, sch.ID)
	if lerr := s.deps.Launcher.Launch(ctx, run, tool); lerr != nil {
		// Shutting down: the record stays pending at this site, and
		// Recover starts it at the next start-up.
		s.opts.Log.Warn("launch a claimed run", "run", run.ID, "err", lerr)
	}
	return err
}

// ownSite is the site whose records a schedule's catch-up and overlap
// rule look at: this site's for an --all schedule, every site's else.
func (s *Scheduler) ownSite(sch toolspec.Schedule) string {
	if sch.Target.EffectiveMode() == toolspec.TargetAll {
		return s.opts.Site
	}
	return ""
}

// newRun is the record of tick T of sch, claimed by this site; an --all
// schedule runs once per site, so its run IDs name the site.
func (s *Scheduler) newRun(sch toolspec.Schedule, tool toolspec.Tool, tick time.Time, trigger string) api.Run {
	id := runs.Tick(sch.ID, tick)
	if site := s.ownSite(sch); site != "" {
		id = id.For(site)
	}
	return runs.NewTick(id, sch, tool, s.opts.Site, trigger, s.opts.Clock.Now())
}

// prune keeps the schedule's newest History records. Every site removes
// the logs it holds of pruned runs when it sees their records go.
func (s *Scheduler) prune(ctx context.Context, id string) error {
	_, err := s.deps.Claims.PruneSchedule(ctx, id, s.opts.History)
	return err
}
