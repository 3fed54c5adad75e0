package outbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/orchestrator/errs"
	"github.com/mao-research/mao/orchestrator/runs"
	"github.com/mao-research/mao/toolspec"
)

// PushRequest says where Git sends a clone's commits.
type PushRequest struct {
	// Branch is the remote branch; "" means the branch the clone follows.
	Branch string
	// ConflictBranch receives a commit that changed a path the remote
	// changed too; "" means such a commit goes to Branch all the same.
	ConflictBranch string
	// Want are commits whose place on the remote is asked for, besides
	// those the push sends (an earlier push may have sent them).
	Want []string
	// Wait waits before attempt n after the remote's branch moved.
	Wait func(ctx context.Context, attempt int) error
}

// Pushed is a commit of a clone and where it is on the remote.
type Pushed struct {
	Local, Remote, Branch string
	Conflict              bool // on the ConflictBranch
}

// Git pushes a clone's unpushed commits; the daemon adapts gitrepo.Repos.
type Git interface {
	Push(ctx context.Context, dir string, req PushRequest) ([]Pushed, error)
}

// Records reads and changes run records; store.Store is one.
type Records interface {
	// PushingRuns lists site's runs whose push is pending or failed.
	PushingRuns(ctx context.Context, site string) ([]api.Run, error)
	UpdateRun(ctx context.Context, id string, fn func(api.Run) (api.Run, error)) (api.Run, error)
}

// Tools looks tools up, for their push and branch.
type Tools interface {
	Tool(ctx context.Context, name string) (toolspec.Tool, error)
}

// Alerts hears of pushes that failed for too long and of those that
// landed after failures; alerts.Alerts is one. Neither call may block.
type Alerts interface {
	PushFailing(run api.Run)
	PushLanded(run api.Run)
}

// Clock tells the time and makes timers; clockwork.Clock satisfies it.
type Clock interface {
	Now() time.Time
	NewTimer(d time.Duration) clockwork.Timer
}

// Options configure an Outbox.
type Options struct {
	Site    string
	DataDir string // the clones are DataDir/repos/<tool>
	// FailedAfter is how long a run's push may fail, from its first
	// failed attempt, before Alerts hears of it; default 1h.
	FailedAfter time.Duration
	// RetryMin and RetryMax bound the waits between a failing clone's
	// attempts, which double from RetryMin; defaults 1s and 5m.
	RetryMin, RetryMax time.Duration
	Alerts             Alerts // may be nil
	Clock              Clock  // default the real clock
	Log                *slog.Logger
}

// Defaults of Options.
const (
	DefaultFailedAfter = time.Hour
	DefaultRetryMin    = time.Second
	DefaultRetryMax    = 5 * time.Minute
)

// Outbox pushes the commits of its site's successful runs and records
// where they went. Enqueue and Ended may be called before Run.
type Outbox struct {
	git   Git
	rec   Records
	tools Tools
	opts  Options

	mu     sync.Mutex // guards clones, fresh and every clone's fields
	clones map[string]*clone
	fresh  []*clone      // clones whose worker Run has not started yet
	signal chan struct{} // tells Run of fresh clones
}

// clone is one tool's clone and the runs whose commits it holds.
type clone struct {
	tool    string
	kick    chan struct{} // wakes the worker; buffered 1
	due     bool          // a push is due
	delay   time.Duration // the last wait between attempts after a failure; 0 when none failed
	next    time.Time     // when to try again after a failure; zero when no retry is set
	entries map[string]*entry
}

// entry is a run whose record does not say yet where its commit went.
type entry struct {
	commit    string
	landed    *Pushed   // where it went; the record is to be updated
	landedAt  time.Time // when it went
	failure   string    // why the last attempt failed, while the record does not say so
	failureAt time.Time // when it failed
	failed    bool      // its record says failed
	told      bool      // Alerts heard of it
}

// New returns an Outbox; Run makes it push.
func New(git Git, rec Records, tools Tools, opts Options) *Outbox {
	if opts.FailedAfter <= 0 {
		opts.FailedAfter = DefaultFailedAfter
	}
	if opts.RetryMin <= 0 {
		opts.RetryMin = DefaultRetryMin
	}
	if opts.RetryMax < opts.RetryMin {
		opts.RetryMax = max(DefaultRetryMax, opts.RetryMin)
	}
	if opts.Clock == nil {
		opts.Clock = clockwork.NewRealClock()
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	return &Outbox{git: git, rec: rec, tools: tools, opts: opts, clones: map[string]*clone{}, signal: make(chan struct{}, 1)}
}

// Enqueue queues run's commit, which its attempt has just kept in the
// clone of tool, for the tool's data repository. It never blocks.
func (o *Outbox) Enqueue(run api.Run, tool toolspec.Tool, commit string) {
	o.mu.Lock()
	c := o.clone(tool.Name)
	c.entries[run.ID] = &entry{commit: commit}
	c.due = true
	o.mu.Unlock()
	o.opts.Log.Debug("queued a run's commit for its data repository", "run", run.ID, "commit", commit)
	kick(c)
}

// Ended hears of a run's final record, once it is stored: a push that
// landed before can be recorded now. It never blocks.
func (o *Outbox) Ended(run api.Run) {
	if run.Push == nil || run.Push.State.Done() || run.Site != o.opts.Site {
		return
	}
	o.mu.Lock()
	c := o.clone(run.Tool)
	if c.entries[run.ID] == nil {
		c.entries[run.ID] = &entry{commit: run.DataCommitAfter}
		c.due = true
	}
	o.mu.Unlock()
	kick(c)
}

// clone returns the clone of tool, made (and handed to Run) if new. o.mu
// is held.
func (o *Outbox) clone(tool string) *clone {
	c := o.clones[tool]
	if c == nil {
		c = &clone{tool: tool, kick: make(chan struct{}, 1), entries: map[string]*entry{}}
		o.clones[tool] = c
		o.fresh = append(o.fresh, c)
		select {
		case o.signal <- struct{}{}:
		default:
		}
	}
	return c
}

func kick(c *clone) {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// Run pushes until ctx ends: first what a previous life left (the runs
// whose records say pending or failed, and every clone), then what is
// queued. It returns once every worker has stopped.
func (o *Outbox) Run(ctx context.Context) {
	o.scan()
	var workers sync.WaitGroup
	defer workers.Wait()
	workers.Add(1)
	go func() {
		defer workers.Done()
		o.resume(ctx)
	}()
	for {
		o.mu.Lock()
		fresh := o.fresh
		o.fresh = nil
		o.mu.Unlock()
		for _, c := range fresh {
			workers.Add(1)
			go func() {
				defer workers.Done()
				o.work(ctx, c)
			}()
		}
		select {
		case <-ctx.Done():
			return
		case <-o.signal:
		}
	}
}

// scan makes every clone's push due: a previous life of the site may have
// left unpushed commits in it, recorded or not.
func (o *Outbox) scan() {
	dirs, err := os.ReadDir(filepath.Join(o.opts.DataDir, "repos"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		o.opts.Log.Warn("list the clones to push", "err", err)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, d := range dirs {
		if name := d.Name(); d.IsDir() && toolspec.CheckName(name) == nil {
			c := o.clone(name)
			c.due = true
			kick(c)
		}
	}
}

// resume queues the runs of this site whose records say their push is
// pending or failed (a previous life left them). It lists the records
// until etcd answers.
func (o *Outbox) resume(ctx context.Context) {
	for wait := o.opts.RetryMin; ; wait = min(2*wait, o.opts.RetryMax) {
		records, err := o.rec.PushingRuns(ctx, o.opts.Site)
		if err == nil {
			o.mu.Lock()
			for _, r := range records {
				if r.Site != o.opts.Site || r.State != api.StateSucceeded || r.Push == nil || r.Push.State.Done() {
					continue
				}
				c := o.clone(r.Tool)
				if c.entries[r.ID] == nil {
					c.entries[r.ID] = &entry{commit: r.DataCommitAfter, failed: r.Push.State == api.PushFailed}
					c.due = true
					kick(c)
				}
			}
			o.mu.Unlock()
			return
		}
		o.opts.Log.Warn("list the runs whose push is not done; trying again", "err", err, "in", wait)
		if !o.sleep(ctx, wait) {
			return
		}
	}
}

// sleep waits d on the clock, or until ctx ends (false).
func (o *Outbox) sleep(ctx context.Context, d time.Duration) bool {
	t := o.opts.Clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.Chan():
		return true
	}
}

// work is the worker of one clone: it pushes when a push is due, records
// what landed, and waits for the next kick or retry. A kick that makes no
// push due (a run's record was stored) leaves the time of the retry as it
// was.
func (o *Outbox) work(ctx context.Context, c *clone) {
	for {
		o.step(ctx, c)
		o.mu.Lock()
		next := c.next
		if !next.IsZero() && !o.opts.Clock.Now().Before(next) {
			c.due, c.next = true, time.Time{}
		}
		due := c.due
		o.mu.Unlock()
		if due {
			if ctx.Err() != nil {
				return
			}
			continue
		}
		var after <-chan time.Time
		var timer clockwork.Timer
		if !next.IsZero() {
			timer = o.opts.Clock.NewTimer(next.Sub(o.opts.Clock.Now()))
			after = timer.Chan()
		}
		select {
		case <-ctx.Done():
		case <-c.kick:
		case <-after:
			o.mu.Lock()
			c.due, c.next = true, time.Time{}
			o.mu.Unlock()
		}
		if timer != nil {
			timer.Stop()
		}
		if ctx.Err() != nil {
			return
		}
	}
}

// backoff sets the clone's next attempt after a failure: 1s, 2s, 4s, ...
// after the last failure, up to RetryMax. It keeps a retry already set.
// o.mu is held.
func (o *Outbox) backoff(c *clone) time.Duration {
	c.delay = min(max(2*c.delay, o.opts.RetryMin), o.opts.RetryMax)
	if c.next.IsZero() {
		c.next = o.opts.Clock.Now().Add(c.delay)
	}
	return c.delay
}

// step makes one attempt at the clone, if one is due, and records what
// has landed.
func (o *Outbox) step(ctx context.Context, c *clone) {
	o.mu.Lock()
	due := c.due
	if due {
		c.due, c.next = false, time.Time{}
	}
	var want []string
	for _, e := range c.entries {
		if e.landed == nil && e.commit != "" {
			want = append(want, e.commit)
		}
	}
	o.mu.Unlock()
	if due {
		o.push(ctx, c, want)
	}
	if ctx.Err() == nil {
		o.record(ctx, c)
	}
}

// push pushes the clone as its tool says, and notes where each queued
// commit went, or that the attempt failed.
func (o *Outbox) push(ctx context.Context, c *clone, want []string) {
	tool, err := o.tools.Tool(ctx, c.tool)
	if errors.Is(err, errs.ErrNotFound) {
		o.opts.Log.Warn("a clone's tool is not registered: its commits stay in the clone", "tool", c.tool)
		return
	}
	if err != nil {
		o.failed(ctx, c, fmt.Sprintf("look up tool %s: %v", c.tool, err))
		return
	}
	req := PushRequest{Want: want, Wait: o.jitter}
	switch tool.PushMode() {
	case toolspec.PushOff:
		return
	case toolspec.PushSiteBranch:
		req.Branch = toolspec.SiteBranch(o.opts.Site)
	default:
		req.Branch, req.ConflictBranch = tool.Branch, toolspec.SiteBranch(o.opts.Site)
	}
	dir := filepath.Join(o.opts.DataDir, "repos", c.tool)
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return // never cloned here
	}
	pushed, err := o.git.Push(ctx, dir, req)
	if ctx.Err() != nil {
		return // shutting down: the commits stay queued
	}
	if err != nil {
		o.failed(ctx, c, err.Error())
		return
	}
	now := o.opts.Clock.Now()
	o.mu.Lock()
	c.delay = 0
	byCommit := map[string]*entry{}
	for _, e := range c.entries {
		if e.landed == nil {
			byCommit[e.commit] = e
		}
	}
	for _, p := range pushed {
		if e := byCommit[p.Local]; e != nil {
			e.landed, e.landedAt = &p, now
		}
	}
	o.mu.Unlock()
	if len(pushed) > 0 {
		o.opts.Log.Info("pushed", "tool", c.tool, "commits", len(pushed), "branch", pushed[len(pushed)-1].Branch)
	}
}

// failed notes an attempt that failed on every run of the clone whose
// commit has not landed (record stores it), and makes the clone wait
// before it tries again.
func (o *Outbox) failed(_ context.Context, c *clone, reason string) {
	now := o.opts.Clock.Now()
	o.mu.Lock()
	delay := o.backoff(c)
	n := 0
	for _, e := range c.entries {
		if e.landed == nil {
			e.failure, e.failureAt = reason, now
			n++
		}
	}
	o.mu.Unlock()
	o.opts.Log.Warn("push failed; its commits stay queued in the clone", "tool", c.tool, "runs", n, "reason", reason, "retry in", delay)
}

// record updates the records of the runs whose commits have landed, and
// of those whose last attempt failed: once each run's final record is
// stored (before, it waits for Ended). It tells Alerts of a run whose
// push has failed for too long, and of one that landed after failures.
func (o *Outbox) record(ctx context.Context, c *clone) {
	o.mu.Lock()
	todo := map[string]*entry{}
	for id, e := range c.entries {
		if e.landed != nil || e.failure != "" {
			todo[id] = e
		}
	}
	o.mu.Unlock()
	for id, e := range todo {
		o.mu.Lock()
		landed, landedAt, failure, failureAt := e.landed, e.landedAt, e.failure, e.failureAt
		o.mu.Unlock()
		var ev runs.Event
		at := landedAt
		switch {
		case landed != nil && landed.Conflict:
			ev = runs.PushConflicted{Branch: landed.Branch, Commit: landed.Remote}
		case landed != nil:
			ev = runs.Pushed{Branch: landed.Branch, Commit: landed.Remote}
		default:
			ev, at = runs.PushFailed{Reason: failure}, failureAt
		}
		run, err := o.rec.UpdateRun(ctx, id, func(r api.Run) (api.Run, error) {
			if err := o.mine(r, e.commit); err != nil {
				return r, err
			}
			return runs.Apply(r, ev, at)
		})
		switch {
		case errors.Is(err, errNotYet):
			continue // Ended kicks the clone once the final record is stored
		case errors.Is(err, errs.ErrUnavailable), errors.Is(err, errs.ErrFull):
			// etcd away or full: the entry stays, and is recorded later.
			o.mu.Lock()
			o.backoff(c)
			o.mu.Unlock()
			continue
		case err != nil:
			o.forget(c, id, err)
			continue
		}
		if landed != nil {
			o.mu.Lock()
			delete(c.entries, id)
			o.mu.Unlock()
			if e.failed && o.opts.Alerts != nil {
				o.opts.Alerts.PushLanded(run)
			}
			continue
		}
		o.mu.Lock()
		if e.failureAt.Equal(failureAt) { // no later attempt meanwhile
			e.failure = ""
		}
		e.failed = true
		tell := !e.told && run.Push.FailedAt != nil && at.Sub(*run.Push.FailedAt) >= o.opts.FailedAfter
		e.told = e.told || tell
		o.mu.Unlock()
		if tell && o.opts.Alerts != nil {
			o.opts.Alerts.PushFailing(run)
		}
	}
}

// errNotYet is a run whose final record is not stored yet.
var errNotYet = errors.New("the run's final record is not stored yet")

// mine checks that r is a run of this site whose commit is commit and
// whose push is still to be recorded: errNotYet while it has not ended,
// an error of kind errs.ErrChanged when it is not (or no longer) this
// outbox's to record.
func (o *Outbox) mine(r api.Run, commit string) error {
	switch {
	case r.Site != o.opts.Site:
		return errs.New(errs.ErrChanged, fmt.Sprintf("run %s is held by site %s", r.ID, r.Site))
	case !r.State.Terminal():
		return errNotYet
	case r.Push == nil || r.Push.State.Done():
		return errs.New(errs.ErrChanged, fmt.Sprintf("run %s has no push to record", r.ID))
	case r.DataCommitAfter != commit:
		return errs.New(errs.ErrChanged, fmt.Sprintf("run %s's commit is %s, not %s", r.ID, r.DataCommitAfter, commit))
	}
	return nil
}

// forget drops a run whose record this outbox will not update: another
// site holds it, it was pruned, or its push is recorded. Its commit, if
// in the clone, is pushed all the same.
func (o *Outbox) forget(c *clone, id string, why error) {
	o.mu.Lock()
	delete(c.entries, id)
	o.mu.Unlock()
	level := slog.LevelInfo
	if !errors.Is(why, errs.ErrChanged) && !errors.Is(why, errs.ErrNotFound) {
		level = slog.LevelWarn
	}
	o.opts.Log.Log(context.Background(), level, "not recording a run's push", "run", id, "why", why)
}

// jitter waits up to 50ms·2ⁿ at random, before attempt n after the
// remote's branch moved under a push.
func (o *Outbox) jitter(ctx context.Context, attempt int) error {
	if !o.sleep(ctx, time.Duration(rand.Int64N(int64(50*time.Millisecond)<<min(attempt, 8)))) {
		return ctx.Err()
	}
	return nil
}

// Backlog is how many runs' pushes this outbox has not recorded yet.
func (o *Outbox) Backlog() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for _, c := range o.clones {
		n += len(c.entries)
	}
	return n
}

// Pending lists the runs whose push this outbox has not recorded yet, by
// tool, sorted: for tests and logs.
func (o *Outbox) Pending() map[string][]string {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := map[string][]string{}
	for tool, c := range o.clones {
		for id := range c.entries {
			out[tool] = append(out[tool], id)
		}
	}
	for _, ids := range out {
		slices.Sort(ids)
	}
	return out
}
