package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/go-co-op/gocron/v2"
	"github.com/google/uuid"
	"github.com/jonboulle/clockwork"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/orchestrator/errs"
	"github.com/mao-research/mao/orchestrator/runner"
	"github.com/mao-research/mao/orchestrator/store"
	"github.com/mao-research/mao/toolspec"
)

// Schedules lists and watches the stored schedules.
type Schedules interface {
	Schedules(ctx context.Context) ([]toolspec.Schedule, int64, error)
	WatchSchedules(ctx context.Context, rev int64) <-chan []store.ScheduleEvent
}

// Claims records the ticks of schedules.
type Claims interface {
	ClaimRun(ctx context.Context, r api.Run) (bool, error)
	LastScheduledRun(ctx context.Context, schedule string) (*api.Run, error)
	PruneSchedule(ctx context.Context, schedule string, keep int) ([]string, error)
}

// Tools looks tools up.
type Tools interface {
	Tool(ctx context.Context, name string) (toolspec.Tool, error)
}

// Launcher executes claimed runs at this site.
type Launcher interface {
	Launch(ctx context.Context, run api.Run, tool toolspec.Tool) error
}

// Logs removes the log files of pruned runs.
type Logs interface {
	Remove(id string) error
}

// Options configure a Scheduler.
type Options struct {
	Site    string
	History int             // run records kept per schedule; default 100
	Clock   clockwork.Clock // default the real clock
	Log     *slog.Logger
	Retry   time.Duration // how soon to retry after etcd failed; default 2s
	// OnArm, if set, is called each time a schedule's next tick is armed.
	OnArm func(schedule string, tick time.Time)
}

// Scheduler fires the ticks of every schedule.
type Scheduler struct {
	schedules Schedules
	claims    Claims
	tools     Tools
	launcher  Launcher
	logs      Logs
	opts      Options
	cron      gocron.Scheduler
	ready     chan struct{}
	failed    chan struct{} // a tick could not be claimed; catch up soon

	mu      sync.Mutex // never held while calling gocron, whose tasks take it
	entries map[string]*entry
	// retry holds, per schedule, the ticks that could not be recorded
	// (etcd trouble); a zero time means its catch-up failed.
	retry map[string][]time.Time
}

// entry is a loaded schedule and its armed gocron job.
type entry struct {
	sched  toolspec.Schedule
	timing toolspec.Timing
	gen    int       // changes with every edit, so stale jobs do nothing
	job    uuid.UUID // the gocron job armed at the next tick, if any
	next   time.Time // the tick the job is armed for; zero once fired
}

// New returns a Scheduler; Run starts it.
func New(schedules Schedules, claims Claims, tools Tools, launcher Launcher, logs Logs, opts Options) (*Scheduler, error) {
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
	cron, err := gocron.NewScheduler(gocron.WithClock(opts.Clock), gocron.WithLocation(time.UTC))
	if err != nil {
		return nil, fmt.Errorf("scheduler: %w", err)
	}
	return &Scheduler{schedules: schedules, claims: claims, tools: tools, launcher: launcher, logs: logs, opts: opts,
		cron: cron, ready: make(chan struct{}), failed: make(chan struct{}, 1),
		entries: map[string]*entry{}, retry: map[string][]time.Time{}}, nil
}

// Ready is closed once the schedules are loaded, caught up and armed.
func (s *Scheduler) Ready() <-chan struct{} { return s.ready }

// Run loads and watches the schedules and fires their ticks until ctx
// ends. When the watch fails (etcd lost its leader or went away) it lists
// the schedules again, which also catches up every tick missed meanwhile.
func (s *Scheduler) Run(ctx context.Context) error {
	s.cron.Start()
	defer s.cron.Shutdown()
	var retry <-chan time.Time
	for ctx.Err() == nil {
		start := s.opts.Clock.Now()
		list, rev, err := s.schedules.Schedules(ctx)
		if err != nil {
			s.opts.Log.Warn("load schedules; retrying", "err", err)
			s.wait(ctx, s.opts.Retry)
			continue
		}
		s.load(ctx, list)
		select {
		case <-s.ready:
		default:
			close(s.ready)
			s.opts.Log.Info("scheduler ready", "schedules", len(list), "took", s.opts.Clock.Since(start).Round(time.Millisecond))
		}
		events := s.schedules.WatchSchedules(ctx, rev)
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
	if sch == nil || err != nil || sch.Paused {
		return
	}
	if err := s.catchUp(ctx, e.sched, timing); err != nil {
		s.opts.Log.Warn("catch up; will retry", "schedule", id, "err", err)
		s.markFailed(id, time.Time{})
	}
	s.arm(id, e.gen, s.opts.Clock.Now())
}

// arm sets the schedule's gocron job at its first tick after after.
func (s *Scheduler) arm(id string, gen int, after time.Time) {
	s.mu.Lock()
	e := s.entries[id]
	if e == nil || e.gen != gen || e.sched.Paused {
		s.mu.Unlock()
		return
	}
	old := e.job
	next := e.timing.Next(after)
	e.job, e.next = uuid.Nil, next
	s.mu.Unlock()

	s.dropJob(old)
	// A single run at next, or as soon as possible if next has passed by
	// the time gocron sees the job (a gocron one-time job in the past
	// would never run). fire ignores any further run.
	job, err := s.cron.NewJob(gocron.DurationJob(firingInterval), gocron.NewTask(s.fire, id, gen, next),
		gocron.WithStartAt(gocron.WithStartDateTimePast(next)), gocron.WithLimitedRuns(1), gocron.WithName(id))
	if err != nil {
		s.opts.Log.Error("arm schedule", "schedule", id, "tick", next, "err", err)
		return
	}
	s.mu.Lock()
	e = s.entries[id]
	current := e != nil && e.gen == gen
	if current {
		e.job = job.ID()
	}
	s.mu.Unlock()
	if !current { // edited or removed meanwhile
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
func (s *Scheduler) fire(id string, gen int, tick time.Time) {
	s.mu.Lock()
	e := s.entries[id]
	current := e != nil && e.gen == gen && !e.sched.Paused && e.next.Equal(tick)
	var sch toolspec.Schedule
	if current {
		sch, e.next = e.sched, time.Time{}
	}
	s.mu.Unlock()
	if !current {
		return
	}
	ctx := context.Background()
	if err := s.tick(ctx, sch, tick, api.TriggerSchedule); err != nil {
		s.opts.Log.Warn("tick not recorded; will catch up", "schedule", id, "tick", tick, "err", err)
		s.markFailed(id, tick)
	}
	s.arm(id, gen, tick)
}

// markFailed remembers a tick (zero: a catch-up) that could not be
// recorded, to retry it after Options.Retry.
func (s *Scheduler) markFailed(id string, tick time.Time) {
	s.mu.Lock()
	s.retry[id] = append(s.retry[id], tick)
	s.mu.Unlock()
	select {
	case s.failed <- struct{}{}:
	default:
	}
}

// catchUpFailed records the ticks that could not be recorded when they
// fired: the latest of a schedule runs late (catchup once, within the
// deadline), the others are recorded as missed. Then it catches the
// schedule up as at start-up.
func (s *Scheduler) catchUpFailed(ctx context.Context) {
	s.mu.Lock()
	todo := make(map[string][]time.Time, len(s.retry))
	entries := make(map[string]entry, len(s.retry))
	for id, ticks := range s.retry {
		if e := s.entries[id]; e != nil && !e.sched.Paused {
			todo[id], entries[id] = ticks, *e
		}
	}
	clear(s.retry)
	s.mu.Unlock()
	for id, ticks := range todo {
		if err := s.recordFailed(ctx, entries[id], ticks); err != nil {
			s.opts.Log.Warn("catch up; will retry", "schedule", id, "err", err)
			for _, t := range ticks {
				s.markFailed(id, t)
			}
		}
	}
}

func (s *Scheduler) recordFailed(ctx context.Context, e entry, ticks []time.Time) error {
	slices.SortFunc(ticks, time.Time.Compare)
	now := s.opts.Clock.Now()
	for i, t := range ticks {
		switch {
		case t.IsZero():
		case i == len(ticks)-1 && e.sched.Catchup == toolspec.CatchupOnce && withinDeadline(e.sched, now.Sub(t)):
			if err := s.tick(ctx, e.sched, t, api.TriggerCatchup); err != nil {
				return err
			}
		default:
			if err := s.record(ctx, e.sched, t, api.StateMissed, "missed: etcd was unreachable when the tick came"); err != nil {
				return err
			}
		}
	}
	return s.catchUp(ctx, e.sched, e.timing)
}

// catchUp runs the most recent tick missed since the schedule's last
// recorded run (catchup once, within the deadline) and records older
// misses as missed.
func (s *Scheduler) catchUp(ctx context.Context, sch toolspec.Schedule, timing toolspec.Timing) error {
	last, err := s.claims.LastScheduledRun(ctx, sch.ID)
	if err != nil {
		return err
	}
	from := sch.UpdatedAt
	if last != nil && last.ScheduledTime != nil && last.ScheduledTime.After(from) {
		from = *last.ScheduledTime
	}
	now := s.opts.Clock.Now()
	ticks, more := toolspec.Ticks(timing, from, now, s.opts.History)
	if len(ticks) == 0 {
		return nil
	}
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
		if err := s.record(ctx, sch, t, api.StateMissed, reason); err != nil {
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

// record claims a tick that does not run, in a final state.
func (s *Scheduler) record(ctx context.Context, sch toolspec.Schedule, tick time.Time, state api.RunState, reason string) error {
	run := s.newRun(sch, toolspec.Tool{Name: sch.Tool}, tick, api.TriggerSchedule)
	now := s.opts.Clock.Now().UTC()
	run.State, run.Reason, run.Attempt, run.FinishedAt = state, reason, 0, &now
	_, err := s.claims.ClaimRun(ctx, run)
	return err
}

// tick claims the run of tick T of sch and, if this site won the claim,
// launches it here.
func (s *Scheduler) tick(ctx context.Context, sch toolspec.Schedule, tick time.Time, trigger string) error {
	tool, err := s.tools.Tool(ctx, sch.Tool)
	if errors.Is(err, errs.ErrNotFound) {
		reason := fmt.Sprintf("orphaned: tool %s is no longer registered; register it again, or pause or remove schedule %s", sch.Tool, sch.ID)
		return errors.Join(s.record(ctx, sch, tick, api.StateFailed, reason), s.prune(ctx, sch.ID))
	}
	if err != nil {
		return err
	}
	run := s.newRun(sch, tool, tick, trigger)
	if sch.Overlap == toolspec.OverlapForbid {
		prev, err := s.claims.LastScheduledRun(ctx, sch.ID)
		if err != nil {
			return err
		}
		if prev != nil && prev.ID != run.ID && !prev.State.Terminal() {
			return s.record(ctx, sch, tick, api.StateSkipped,
				fmt.Sprintf("skipped: the previous run %s is still %s and the schedule forbids overlap", prev.ID, prev.State))
		}
	}
	claimed, err := s.claims.ClaimRun(ctx, run)
	if err != nil || !claimed {
		return err
	}
	err = s.prune(ctx, sch.ID)
	if lerr := s.launcher.Launch(ctx, run, tool); lerr != nil {
		// The record stays pending at this site; Recover starts it at the
		// next start-up.
		s.opts.Log.Warn("launch a claimed run", "run", run.ID, "err", lerr)
	}
	return err
}

func (s *Scheduler) newRun(sch toolspec.Schedule, tool toolspec.Tool, tick time.Time, trigger string) api.Run {
	tick = tick.UTC()
	run := runner.NewRun(fmt.Sprintf("%s-%d", sch.ID, tick.Unix()), tool, s.opts.Site, s.opts.Clock.Now().UTC())
	run.Schedule, run.ScheduledTime, run.Trigger = sch.ID, &tick, trigger
	run.Env = sch.Env
	run.MaxAttempts, run.RetryDelay = 1+sch.Retries, sch.RetryDelay
	return run
}

// prune keeps the schedule's newest History records and removes the log
// files of the others that ran here.
func (s *Scheduler) prune(ctx context.Context, id string) error {
	removed, err := s.claims.PruneSchedule(ctx, id, s.opts.History)
	for _, run := range removed {
		if err := s.logs.Remove(run); err != nil {
			s.opts.Log.Warn("remove a pruned run's log", "run", run, "err", err)
		}
	}
	return err
}
