package offline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/detector"
	"github.com/mao-research/mao/orchestrator/errs"
	"github.com/mao-research/mao/orchestrator/runs"
	"github.com/mao-research/mao/toolspec"
)

// Records reads and writes run records in etcd; store.Store is one.
type Records interface {
	CreateRun(ctx context.Context, r api.Run) error
	SaveRun(ctx context.Context, r api.Run) error
	Run(ctx context.Context, id string) (api.Run, error)
	HeldRuns(ctx context.Context, site string) ([]api.Run, error)
	RunPage(ctx context.Context, f api.RunFilter) ([]api.Run, string, error)
	WaitClaimed(ctx context.Context, id string) (api.Run, error)
}

// Claims records schedules' ticks and takes requested runs in etcd;
// store.Store is one.
type Claims interface {
	ClaimRun(ctx context.Context, r api.Run) (bool, error)
	PruneSchedule(ctx context.Context, schedule string, keep int) ([]string, error)
	ClaimRequest(ctx context.Context, id, site string) (api.Run, bool, error)
}

// History reads schedules' recorded ticks in etcd; store.Store is one.
type History interface {
	LastScheduledRun(ctx context.Context, schedule, site string) (*api.Run, error)
	LatestExecutedRun(ctx context.Context, schedule, site string) (*api.Run, error)
}

// Replayer writes the journal's records into etcd; store.Store is one.
type Replayer interface {
	ReplayRun(ctx context.Context, rec api.Run) (runs.ReplayAction, string, error)
	Ping(ctx context.Context) error
}

// Lease is the site's lease in etcd; store.Membership is one.
type Lease interface {
	// Valid returns nil while the lease is valid by the site's own clock
	// (so alive in etcd); the channel is closed at its next renewal.
	Valid() (renewed <-chan struct{}, err error)
}

// Outputs checks successful runs' output and hears of ended runs;
// alerts.Alerts is one.
type Outputs interface {
	Detect(ctx context.Context, run api.Run, tool toolspec.Tool, dir string) []detector.Verdict
	Ended(run api.Run)
}

// Clock tells the time and waits; clockwork.Clock is one.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

// Deps are what a Work works with.
type Deps struct {
	Records  Records
	Claims   Claims
	History  History
	Replayer Replayer
	Lease    Lease
	Outputs  Outputs
}

// Options configure a Work.
type Options struct {
	// Site is this site's record: its name, and its own row of the sites
	// list while etcd does not answer.
	Site  api.Site
	Clock Clock // default the real clock
	Log   *slog.Logger
	// Retry is how soon the replay tries again after etcd failed it, or
	// the site's lease was not valid; default 1s.
	Retry time.Duration
	// Probe is how often an online site looks whether its lease may have
	// lapsed by its own clock (its renewals got no answer): then it is
	// offline. Default 1s.
	Probe time.Duration
}

// Work is a site's work without etcd: it routes the records of the
// site's own runs (runs.OwnOnly) to the journal while etcd does not answer
// the site, answers for them meanwhile, and replays the journal into etcd
// once it answers again.
//
// The site is offline from the first request etcd did not answer
// (Unreachable: a claim, a record, a check of a lease, a health check), or
// once its lease may have lapsed by its own clock, until the journal has
// been replayed with etcd answering and the site's lease valid. A run the
// site carries (Carries) has every record journaled, in order, until it
// has ended, every record of it is in etcd and the site is online.
type Work struct {
	j    *Journal
	deps Deps
	opts Options

	mu      sync.Mutex
	offline bool
	cause   string          // why the site went offline
	runs    map[string]*own // the site's runs that have not ended, and those it carries
	ends    map[string]bool // runs whose final record was journaled: Ended comes with its replay
	changed chan struct{}   // closed and replaced when the site goes offline or online
	wake    chan struct{}   // Serve's replay has work: buffered, one pending
	since   time.Time       // when the site went offline
	began   time.Time       // when etcd first answered this spell's replay; zero before
	counts  map[string]int  // what the spell's replay did, by action
}

// own is one of the site's runs.
type own struct {
	rec     api.Run // its last record
	carried bool    // its records go to the journal
}

// New returns a Work over the journal j; Replay replays what a previous
// life left in it, and Serve keeps the site's work going.
func New(j *Journal, deps Deps, opts Options) *Work {
	if opts.Clock == nil {
		opts.Clock = clockwork.NewRealClock()
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Retry <= 0 {
		opts.Retry = time.Second
	}
	if opts.Probe <= 0 {
		opts.Probe = time.Second
	}
	return &Work{j: j, deps: deps, opts: opts, runs: map[string]*own{}, ends: map[string]bool{},
		changed: make(chan struct{}), wake: make(chan struct{}, 1), counts: map[string]int{}}
}

// mine reports whether r is one of this site's own runs, which no other
// site may hold (runs.OwnOnly).
func (w *Work) mine(r api.Run) bool { return r.Site == w.opts.Site.Name && runs.OwnOnly(r) }

// Unreachable tells w that etcd did not answer this site (err, of
// kind errs.ErrUnavailable): the site is offline from now on, until its
// journal is replayed.
func (w *Work) Unreachable(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.offline {
		return
	}
	w.offline, w.cause, w.since, w.began = true, err.Error(), w.opts.Clock.Now(), time.Time{}
	clear(w.counts)
	w.opts.Log.Warn("etcd does not answer this site (or it is not live in etcd): it goes on offline with its own runs, "+
		"whose records go to its journal; runs that another site could take wait", "err", err)
	w.changedLocked()
	w.wakeLocked()
}

// changedLocked wakes Changed's waiters; w.mu is held.
func (w *Work) changedLocked() {
	close(w.changed)
	w.changed = make(chan struct{})
}

// wakeLocked tells Serve that there is work; w.mu is held.
func (w *Work) wakeLocked() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Changed is closed when the site goes offline or comes back online.
func (w *Work) Changed() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.changed
}

// Status says whether the site is offline and how many records its
// journal holds that are not in etcd yet.
func (w *Work) Status() (offline bool, journaled int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.offline, w.j.Len()
}

// Carries reports whether the site carries run on through its journal:
// run is one of its own (runs.OwnOnly) and the site is offline, or run's
// records go to the journal already. From then on, until run has ended and
// is in etcd, every record of it is journaled, and the site's lease does
// not fence it: no other site may run it (Lose makes it wait for this
// site again), and the replay's record wins over a settlement as lost.
func (w *Work) Carries(run api.Run) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if o := w.runs[run.ID]; o != nil && o.carried {
		return true
	}
	if !w.offline || !w.mine(run) {
		return false
	}
	w.runs[run.ID] = &own{rec: run, carried: true}
	return true
}

// carried returns the last record of a run the site carries.
func (w *Work) carried(id string) (api.Run, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if o := w.runs[id]; o != nil && o.carried {
		return o.rec, true
	}
	return api.Run{}, false
}

// journal appends r's record (op) to the journal when the site carries r,
// or is offline and r is its own: done reports that it did (or failed to).
func (w *Work) journal(op string, r api.Run) (done bool, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if o := w.runs[r.ID]; (o == nil || !o.carried) && !(w.offline && w.mine(r)) {
		return false, nil
	}
	return true, w.appendLocked(op, r)
}

// appendLocked journals r and carries it; w.mu is held.
func (w *Work) appendLocked(op string, r api.Run) error {
	if _, err := w.j.Append(op, r, w.opts.Clock.Now()); err != nil {
		return err
	}
	w.runs[r.ID] = &own{rec: r, carried: true}
	if op == OpSave && r.State.Terminal() {
		w.ends[r.ID] = true
	}
	w.wakeLocked()
	return nil
}

// track remembers r, a record of this site stored in etcd: the runs that
// have not ended, for the overlap of schedules while offline.
func (w *Work) track(r api.Run) {
	if r.Site != w.opts.Site.Name {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if o := w.runs[r.ID]; o != nil && o.carried {
		return
	}
	if r.State.Terminal() {
		delete(w.runs, r.ID)
		return
	}
	w.runs[r.ID] = &own{rec: r}
}

// write stores r through store, or journals it as op when the site
// carries it or is offline and r is its own; an own run whose write etcd
// does not answer takes the site offline and is journaled.
func (w *Work) write(ctx context.Context, op string, r api.Run, store func(context.Context, api.Run) error) error {
	for {
		if done, err := w.journal(op, r); done {
			return err
		}
		err := store(ctx, r)
		if errors.Is(err, errs.ErrUnavailable) && w.mine(r) {
			w.Unreachable(err)
			continue
		}
		if err == nil || r.State.Terminal() {
			w.track(r)
		}
		return err
	}
}

// CreateRun records a new run: in etcd, or in the journal (see write).
func (w *Work) CreateRun(ctx context.Context, r api.Run) error {
	return w.write(ctx, OpCreate, r, w.deps.Records.CreateRun)
}

// SaveRun records a run's new state: in etcd, or in the journal (see
// write).
func (w *Work) SaveRun(ctx context.Context, r api.Run) error {
	return w.write(ctx, OpSave, r, w.deps.Records.SaveRun)
}

// Run returns a run's record: the last the site journaled of a run it
// carries, else etcd's.
func (w *Work) Run(ctx context.Context, id string) (api.Run, error) {
	if r, ok := w.carried(id); ok {
		return r, nil
	}
	return w.deps.Records.Run(ctx, id)
}

// HeldRuns lists from etcd the runs site holds that have not ended.
func (w *Work) HeldRuns(ctx context.Context, site string) ([]api.Run, error) {
	return w.deps.Records.HeldRuns(ctx, site)
}

// RunPage lists a page of run records from etcd.
func (w *Work) RunPage(ctx context.Context, f api.RunFilter) ([]api.Run, string, error) {
	return w.deps.Records.RunPage(ctx, f)
}

// WaitClaimed waits in etcd until a site has claimed the run.
func (w *Work) WaitClaimed(ctx context.Context, id string) (api.Run, error) {
	return w.deps.Records.WaitClaimed(ctx, id)
}

// ClaimRun claims a schedule's tick: in etcd, or, for a tick of the
// site's own (an --site schedule's, or its run of an --all schedule) while
// it is offline, in the journal, once: a tick it has claimed already in
// this offline spell (or that it carries) is not claimed again.
func (w *Work) ClaimRun(ctx context.Context, r api.Run) (bool, error) {
	for {
		if claimed, done, err := w.claimLocally(r); done {
			return claimed, err
		}
		ok, err := w.deps.Claims.ClaimRun(ctx, r)
		if errors.Is(err, errs.ErrUnavailable) && w.mine(r) {
			w.Unreachable(err) // etcd does not answer, or the site is not live in it (it registers again)
			continue
		}
		if ok {
			w.track(r)
		}
		return ok, err
	}
}

// claimLocally journals the claim of r when the site is offline and r is
// its own; done reports whether it decided.
func (w *Work) claimLocally(r api.Run) (claimed, done bool, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.offline || !w.mine(r) {
		return false, false, nil
	}
	if w.runs[r.ID] != nil {
		return false, true, nil // this site has it already
	}
	if err := w.appendLocked(OpClaim, r); err != nil {
		return false, true, err
	}
	return true, true, nil
}

// PruneSchedule prunes a schedule's history in etcd; offline it prunes
// nothing, and the next claim in etcd does.
func (w *Work) PruneSchedule(ctx context.Context, schedule string, keep int) ([]string, error) {
	if offline, _ := w.Status(); offline {
		return nil, nil
	}
	return w.deps.Claims.PruneSchedule(ctx, schedule, keep)
}

// ClaimRequest takes a requested run in etcd, unless the site carries it:
// then the run waits for this very site (another site settled it as lost
// while etcd did not answer this one), which goes on with it through its
// journal, and the replay of its records ends the request.
func (w *Work) ClaimRequest(ctx context.Context, id, site string) (api.Run, bool, error) {
	if _, ok := w.carried(id); ok {
		w.opts.Log.Info("a request for a run this site carries through its journal: its replay settles it", "run", id)
		return api.Run{}, false, nil
	}
	return w.deps.Claims.ClaimRequest(ctx, id, site)
}

// LastScheduledRun reads a schedule's latest recorded tick in etcd.
func (w *Work) LastScheduledRun(ctx context.Context, schedule, site string) (*api.Run, error) {
	return w.deps.History.LastScheduledRun(ctx, schedule, site)
}

// LatestExecutedRun returns the newest run of the schedule that was set to
// run, from etcd; while the site is offline, from the runs it knows of its
// own (those that have not ended, and those it carries), which is what a
// schedule's overlap rule needs: whether one of them still runs.
func (w *Work) LatestExecutedRun(ctx context.Context, schedule, site string) (*api.Run, error) {
	if offline, _ := w.Status(); !offline {
		r, err := w.deps.History.LatestExecutedRun(ctx, schedule, site)
		if !errors.Is(err, errs.ErrUnavailable) {
			return r, err
		}
		w.Unreachable(err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	var latest *api.Run
	for _, o := range w.runs {
		r := o.rec
		if r.Schedule != schedule || r.State == api.StateSkipped || r.State == api.StateMissed || !ofSite(r, site) {
			continue
		}
		if latest == nil || runs.Scheduled(r).After(runs.Scheduled(*latest)) {
			latest = &r
		}
	}
	return latest, nil
}

// ofSite reports whether r is one of site's runs of an --all schedule; every
// run is of site "".
func ofSite(r api.Run, site string) bool {
	if site == "" {
		return true
	}
	id, err := runs.Parse(r.ID, r.Schedule, "")
	return err == nil && id.Site == site
}

// Detect checks a successful run's output with the detector; a run the
// site carries is not checked: its series is in etcd. Its verdict says so,
// and the value stays in the output it committed.
func (w *Work) Detect(ctx context.Context, run api.Run, tool toolspec.Tool, dir string) []detector.Verdict {
	if !w.Carries(run) {
		return w.deps.Outputs.Detect(ctx, run, tool, dir)
	}
	cfg := detector.Config{}
	if tool.Detector != nil {
		cfg = *tool.Detector
	}
	cfg = cfg.WithDefaults()
	return []detector.Verdict{detector.NoData(cfg.Metric, errors.New("not checked: the run ended while etcd did not answer this site, "+
		"which keeps the detector's series; its value is in the output it committed, not in the series"), cfg)}
}

// Ended hears of a run's final record: its notifications follow now, or,
// for a record the site journaled, once the replay has written it to etcd.
func (w *Work) Ended(run api.Run) {
	w.mu.Lock()
	deferred := w.ends[run.ID]
	delete(w.ends, run.ID)
	w.mu.Unlock()
	if !deferred {
		w.deps.Outputs.Ended(run)
	}
}

// OwnSite is this site's row of the sites list from what it knows of
// itself, for when etcd does not answer: offline (not live, as far as it
// can tell), seen now, its runs that have not ended, and its journal.
func (w *Work) OwnSite() api.SiteInfo {
	w.mu.Lock()
	defer w.mu.Unlock()
	busy := 0
	for _, o := range w.runs {
		if !o.rec.State.Terminal() {
			busy++
		}
	}
	return api.SiteInfo{Site: w.opts.Site, LastSeen: w.opts.Clock.Now().UTC(), RunsInProgress: busy,
		Offline: w.offline, Journaled: w.j.Len()}
}

// Replay replays the journal into etcd until it is empty, as a site does
// at start-up with what its previous life left; it fails when etcd stops
// answering meanwhile or the site's lease is not valid.
func (w *Work) Replay(ctx context.Context) error {
	if n := w.j.Len(); n > 0 {
		w.opts.Log.Info("replaying the journal a previous life of this site left", "records", n)
	}
	return w.replay(ctx)
}

// Serve keeps the site's work going until ctx ends: while the site is
// offline, or its journal holds records, it replays them into etcd as
// soon as etcd answers and the site's lease is valid (after its lease
// expired, once it has registered again), and then takes the site online
// again; while it is online, it looks every Probe whether its lease may
// have lapsed.
func (w *Work) Serve(ctx context.Context) {
	for {
		var retry <-chan time.Time
		if err := w.replay(ctx); err != nil && ctx.Err() == nil {
			w.opts.Log.Debug("journal not replayed yet; trying again", "err", err)
			retry = w.opts.Clock.After(w.opts.Retry)
		}
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		case <-retry:
		case <-w.opts.Clock.After(w.opts.Probe):
			w.probe()
		}
	}
}

// probe takes an online site offline when its lease may have lapsed by its
// own clock: its renewals got no answer for a TTL.
func (w *Work) probe() {
	if offline, _ := w.Status(); offline {
		return
	}
	if _, err := w.deps.Lease.Valid(); err != nil {
		w.Unreachable(err)
	}
}

// errLease is why the replay waits: the site's lease is not valid.
var errLease = errors.New("the site's lease is not valid: the replay waits until it is renewed, or the site has registered again")

// replay writes the journal's entries into etcd, in order, while etcd
// answers and the site's lease is valid, and takes the site online once
// the journal is empty. It returns nil when there is nothing (more) to do.
func (w *Work) replay(ctx context.Context) error {
	for ctx.Err() == nil {
		if offline, n := w.Status(); !offline && n == 0 {
			return nil
		}
		if _, err := w.deps.Lease.Valid(); err != nil {
			return fmt.Errorf("%w (%v)", errLease, err)
		}
		e, ok := w.j.Next()
		if !ok {
			if err := w.deps.Replayer.Ping(ctx); err != nil {
				return err
			}
			w.online()
			continue
		}
		if err := w.beginReplay(ctx); err != nil {
			return err
		}
		action, why, err := w.deps.Replayer.ReplayRun(ctx, e.Run)
		if err != nil {
			return fmt.Errorf("replay run %s (journal entry %d): %w", e.Run.ID, e.Seq, err)
		}
		level := slog.LevelDebug
		switch action {
		case runs.ReplayReclaim:
			level = slog.LevelWarn
		case runs.ReplayRefuse:
			level = slog.LevelError
		}
		w.opts.Log.Log(ctx, level, "journal entry replayed", "run", e.Run.ID, "state", e.Run.State, "attempt", e.Run.Attempt,
			"action", action.String(), "why", why)
		if err := w.j.Done(e.Seq); err != nil {
			return err
		}
		w.mu.Lock()
		w.counts[action.String()]++
		w.mu.Unlock()
		if action.Writes() && e.Op == OpSave && e.Run.State.Terminal() {
			w.deps.Outputs.Ended(e.Run) // deferred by Ended
		}
	}
	return ctx.Err()
}

// beginReplay makes sure, before the spell's first replayed entry, that
// etcd answers, and notes and logs when the replay begins.
func (w *Work) beginReplay(ctx context.Context) error {
	w.mu.Lock()
	began := !w.began.IsZero()
	w.mu.Unlock()
	if began {
		return nil
	}
	if err := w.deps.Replayer.Ping(ctx); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.began.IsZero() {
		w.began = w.opts.Clock.Now()
		w.opts.Log.Info("etcd answers: replaying the journal", "records", w.j.Len())
	}
	return nil
}

// online takes the site online, if its journal is (still) empty: the runs
// it carries that have ended are in etcd, and no longer its to answer for.
func (w *Work) online() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.j.Len() > 0 {
		return // journaled meanwhile: replay that first
	}
	for id, o := range w.runs {
		if o.carried && o.rec.State.Terminal() {
			delete(w.runs, id)
		}
	}
	if !w.offline {
		return
	}
	w.offline = false
	now, replay := w.opts.Clock.Now(), time.Duration(0)
	if !w.began.IsZero() {
		replay = now.Sub(w.began)
	}
	w.opts.Log.Info("etcd answers again and the journal is replayed: the site is online", "offline_for",
		now.Sub(w.since).Round(time.Millisecond).String(), "replay_took", replay.Round(time.Millisecond).String(),
		"created", w.counts["create"], "updated", w.counts["update"], "reclaimed", w.counts["reclaim"],
		"already_there", w.counts["skip"], "refused", w.counts["refuse"], "cause", w.cause)
	w.changedLocked()
}
