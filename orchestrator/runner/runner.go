package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/detector"
	"github.com/mao-research/mao/internal/dirlock"
	"github.com/mao-research/mao/orchestrator/container"
	"github.com/mao-research/mao/orchestrator/errs"
	"github.com/mao-research/mao/orchestrator/runlog"
	"github.com/mao-research/mao/orchestrator/runs"
	"github.com/mao-research/mao/toolspec"
)

// ErrShuttingDown means the site no longer accepts runs.
var ErrShuttingDown = errs.New(errs.ErrUnavailable, "the orchestrator is shutting down")

// Registry looks up registered tools and datasets.
type Registry interface {
	Tool(ctx context.Context, name string) (toolspec.Tool, error)
	Dataset(ctx context.Context, name string) (toolspec.Dataset, error)
}

// Records stores run records.
type Records interface {
	CreateRun(ctx context.Context, r api.Run) error
	SaveRun(ctx context.Context, r api.Run) error
	// HeldRuns lists the runs site holds that have not ended.
	HeldRuns(ctx context.Context, site string) ([]api.Run, error)
}

// Containers runs tool images.
type Containers interface {
	EnsureImage(ctx context.Context, ref string) (container.Image, error)
	Run(ctx context.Context, spec container.Spec, logw io.Writer) (container.Exit, error)
	RemoveLabelled(ctx context.Context, key, value string) (int, error)
}

// Git keeps the site's clones of data repositories and datasets.
type Git interface {
	Sync(ctx context.Context, dir, url, branch string) (commit, note string, err error)
	// Commit calls keep, when it is set, once the commit is written and
	// just before the branch moves to it: an error from keep stops the
	// commit, and the branch stays where it was.
	Commit(ctx context.Context, dir, message string, keep func() error) (commit string, files []string, err error)
	Discard(ctx context.Context, dir string) (files []string, err error)
	// Scratch makes dir a clone of url with commit checked out;
	// ScratchLocal does it from the site's own clone local, never
	// changing it.
	Scratch(ctx context.Context, dir, url, commit string) error
	ScratchLocal(ctx context.Context, dir, local, commit string) error
	// ScratchParent is Scratch at the first parent of commit.
	ScratchParent(ctx context.Context, dir, url, commit string) error
	// Compare lists the files in which commits a and b of dir's clone
	// differ.
	Compare(ctx context.Context, dir, a, b string) ([]container.Difference, error)
}

// Lease is this site's hold on its runs: its lease in etcd, which other
// sites wait out before they take its runs over; store.Membership is one.
type Lease interface {
	// Valid returns nil while the lease is valid by the site's own clock
	// (its last renewal plus its TTL), else an error saying so; the
	// channel is closed at the next renewal.
	Valid() (renewed <-chan struct{}, err error)
	// Holds checks in etcd, in one transaction, that this site, live
	// under its lease, holds run's current attempt: nil, an error of kind
	// errs.ErrChanged when it does not, or of kind errs.ErrUnavailable.
	Holds(ctx context.Context, run api.Run) error
}

// Offline tells which runs the site goes on with while etcd does not
// answer it; offline.Work is one.
type Offline interface {
	// Carries reports whether the site carries run through its journal:
	// run is one no other site may hold (runs.OwnOnly), and the site is
	// offline or journals its records already. Such a run is not fenced
	// by the lease: no other site may run it, and its journal's records
	// win over a settlement as lost when they are replayed.
	Carries(run api.Run) bool
	// Changed is closed when the site goes offline or online.
	Changed() <-chan struct{}
}

// Outputs checks the output of successful runs and hears of every run
// that has ended; alerts.Alerts is one.
type Outputs interface {
	// Detect returns the spike detector's verdicts on a successful run's
	// output in its data folder dir.
	Detect(ctx context.Context, run api.Run, tool toolspec.Tool, dir string) []detector.Verdict
	// Ended is told of each final record, once it is stored; it must not
	// block.
	Ended(run api.Run)
}

// Outbox pushes the commits that successful attempts kept to their tools'
// data repositories; outbox.Outbox is one. Enqueue must not block.
type Outbox interface {
	Enqueue(run api.Run, tool toolspec.Tool, commit string)
}

// Clock tells the time and waits; clockwork.Clock satisfies it.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

// Container labels that name a run, its attempt, its tool and its site.
// A container is named mao-<run-id>-<attempt>, so that a retried attempt
// never meets an earlier attempt's container under its name; removals go
// by LabelRun, which every attempt's container carries.
const (
	LabelRun     = "mao.run"
	LabelAttempt = "mao.attempt"
	LabelTool    = "mao.tool"
	LabelSite    = "mao.site"
)

// ContainerName is the name of the container of run's current attempt.
func ContainerName(run api.Run) string {
	return fmt.Sprintf("mao-%s-%d", run.ID, max(run.Attempt, 1))
}

// Options configure a Runner.
type Options struct {
	Site        string
	DataDir     string // clones live in DataDir/repos/<tool> and DataDir/datasets/<name>
	HostDataDir string // DataDir as the Docker host sees it; default DataDir
	Logs        *runlog.Dir
	Clock       Clock // default the real clock
	Log         *slog.Logger
	// PrepareTimeout bounds a run's preparation: syncing its data
	// repository and input dataset and pulling its image. Default 15m.
	PrepareTimeout time.Duration
	// Outputs, if set, checks successful runs' output and hears of ended
	// runs.
	Outputs Outputs
	// Started, if set, hears of each attempt whose start the site has
	// recorded (its metrics count them).
	Started func(api.Run)
	// PidsLimit is the most processes and threads a run's container may
	// have at once. Default DefaultPidsLimit.
	PidsLimit int64
	// DefaultMemory is the memory limit in bytes of the container of a
	// tool that sets none; a tool's own limit wins, above it or below.
	// Default DefaultMemory.
	DefaultMemory int64
	// AllowHostNetwork lets tools with network host run here (the
	// site's [runs] allow_host_network); CheckTool refuses them otherwise.
	AllowHostNetwork bool
	// Lease, if set, fences the runner's work: a container starts only
	// while the lease is valid by the site's clock, and an attempt's
	// output is committed and checked by the detector only after Holds
	// has said that the site still holds the attempt (see keep).
	Lease Lease
	// Outbox, if set, pushes each commit a successful attempt kept, for
	// a tool whose push is not off; the run's record says pending.
	Outbox Outbox
	// Offline, if set, says which runs the lease does not fence: those
	// the site carries on through its journal while etcd does not answer
	// it. Abandon leaves them alone too.
	Offline Offline
	// Version is the orchestrator's version, recorded in each run's
	// provenance.
	Version string
}

// Defaults of Options.
const (
	DefaultPidsLimit = 4096
	DefaultMemory    = 4 << 30
)

// Runner starts runs and owns their goroutines.
type Runner struct {
	reg    Registry
	rec    Records
	rt     Containers
	git    Git
	opts   Options
	locks  dirlock.Locks // of the clones' work trees: concurrent runs of tools that share a clone must not corrupt it
	inputs inputClones

	runCtx    context.Context // parent of every run; cancelled when the shutdown grace ends
	cancelRun context.CancelFunc

	mu      sync.Mutex // guards closing, active and wg.Add
	closing bool
	active  map[string]*execution // runs executing here
	wg      sync.WaitGroup

	// owner is the orchestrator's user, who owns the data folders between
	// runs; privileged says whether it may give files to other users
	// (it is root). chown changes owners (chownTree; tests replace it).
	owner      owner
	privileged bool
	chown      func(dir string, o owner, clearSetID bool) error
}

// New returns a Runner.
func New(reg Registry, rec Records, rt Containers, git Git, opts Options) *Runner {
	if opts.Clock == nil {
		opts.Clock = clockwork.NewRealClock()
	}
	if opts.HostDataDir == "" {
		opts.HostDataDir = opts.DataDir
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.PrepareTimeout <= 0 {
		opts.PrepareTimeout = 15 * time.Minute
	}
	if opts.PidsLimit <= 0 {
		opts.PidsLimit = DefaultPidsLimit
	}
	if opts.DefaultMemory <= 0 {
		opts.DefaultMemory = DefaultMemory
	}
	ctx, cancel := context.WithCancel(context.Background())
	o, privileged := processOwner()
	return &Runner{reg: reg, rec: rec, rt: rt, git: git, opts: opts,
		inputs: inputClones{m: map[string]*inputClone{}},
		runCtx: ctx, cancelRun: cancel, active: map[string]*execution{},
		owner: o, privileged: privileged, chown: chownTree}
}

// CheckTool applies this site's policy to a tool that is being registered
// through its API: a tool with network host is refused unless the site
// allows it. The error is a *toolspec.ValidationError naming the field.
// The registry is shared by every site, so a site that allows host
// networks may register a tool that others then refuse to run (see
// refusal).
func (r *Runner) CheckTool(t toolspec.Tool) error {
	if t.NetworkName() != "host" || r.opts.AllowHostNetwork {
		return nil
	}
	return &toolspec.ValidationError{Kind: "tool", Fields: []toolspec.FieldError{{Field: "network",
		Problem: fmt.Sprintf(`"host" is not allowed at site %s, whose [runs] allow_host_network is false: `+
			"use network none or a user-defined network, or register the tool through a site that allows host networks", r.opts.Site)}}}
}

// refusal is why this site will not run tool at all, or "": a host
// network it does not allow, or a user it cannot hand the data folder to.
func (r *Runner) refusal(tool toolspec.Tool) string {
	if tool.NetworkName() == "host" && !r.opts.AllowHostNetwork {
		return fmt.Sprintf("refused: the tool asks for network host, which site %s does not allow "+
			"(set allow_host_network = true in the [runs] section of its config.ini to allow it, "+
			"or register the tool again with network none or a user-defined network)", r.opts.Site)
	}
	if uid, _, ok := tool.UserIDs(); ok && uid != r.owner.uid && !r.privileged {
		return fmt.Sprintf("refused: the tool runs as user %s, but site %s's orchestrator runs as uid %d and is not root, "+
			"so it can neither lend the data folder to that user nor take back the files it writes "+
			"(register the tool with user %s or none, or run the orchestrator as root)", tool.User, r.opts.Site, r.owner.uid, r.owner)
	}
	return ""
}

// containerUser is who the tool's container runs as: the tool's user,
// else, when the orchestrator is not root, the orchestrator's own user,
// so that it can take back what the container writes; else the image's.
func (r *Runner) containerUser(tool toolspec.Tool) string {
	switch {
	case tool.User != "":
		return tool.User
	case !r.privileged:
		return r.owner.String()
	}
	return ""
}

// lendee is the user the data folder is lent to for a run of tool: the
// tool's user when it is not the orchestrator's. ok is false when the
// folder stays the orchestrator's.
func (r *Runner) lendee(tool toolspec.Tool) (o owner, ok bool) {
	uid, gid, ok := tool.UserIDs()
	if !ok || uid == r.owner.uid {
		return owner{}, false
	}
	return owner{uid: uid, gid: gid}, true
}

// Start records a pending run of the named tool, asked for by the API token
// named requestedBy ("" without one), and executes it in the background. It
// returns the pending record.
func (r *Runner) Start(ctx context.Context, toolName, requestedBy string) (api.Run, error) {
	tool, err := r.reg.Tool(ctx, toolName)
	if err != nil {
		return api.Run{}, err
	}
	now := r.opts.Clock.Now()
	run := runs.NewManual(runs.Manual(tool.Name, now), tool, runs.Ask{Site: r.opts.Site, RequestedBy: requestedBy}, now)
	if err := r.begin(ctx, run, tool, true); err != nil {
		return api.Run{}, err
	}
	return run, nil
}

// Create records run, a new pending run of tool held by this site (see
// runs.NewManual), and executes it in the background: a run asked for this
// site by name while etcd does not answer it, which it cannot request.
func (r *Runner) Create(ctx context.Context, run api.Run, tool toolspec.Tool) error {
	if run.Site != r.opts.Site || run.State != api.StatePending {
		return fmt.Errorf("create run %s: it is %s at site %q, not pending at this site (%s)", run.ID, run.State, run.Site, r.opts.Site)
	}
	return r.begin(ctx, run, tool, true)
}

// Launch executes a pending run whose record has already been written (a
// scheduled run, claimed by the scheduler). A run this site executes
// already is left alone. A run that cannot start is recorded as failed,
// unless the runner is shutting down: then it stays pending for Recover.
func (r *Runner) Launch(ctx context.Context, run api.Run, tool toolspec.Tool) error {
	err := r.begin(ctx, run, tool, false)
	if err != nil && !errors.Is(err, ErrShuttingDown) {
		r.save(r.apply(run, runs.Fail{Reason: fmt.Sprintf("could not start: %v", err)}))
	}
	return err
}

// begin opens the run's log, records the run (when create is set) and
// starts its goroutine, unless the runner is shutting down or executes the
// run already.
func (r *Runner) begin(ctx context.Context, run api.Run, tool toolspec.Tool, create bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for e := r.active[run.ID]; e != nil; e = r.active[run.ID] {
		if !e.abandoned {
			return nil
		}
		// An abandoned execution of the run is still stopping: this is the
		// run's next claim. Start once the old one has ended.
		r.mu.Unlock()
		<-e.done
		r.mu.Lock()
	}
	if r.closing {
		return ErrShuttingDown
	}
	log, err := r.opts.Logs.Create(run.ID)
	if err != nil {
		return err
	}
	if create {
		// Once asked, the record is written even if the caller goes away,
		// so that a created record always has a goroutine running it.
		if err := r.rec.CreateRun(context.WithoutCancel(ctx), run); err != nil {
			log.Close()
			r.opts.Logs.Remove(run.ID)
			return err
		}
	}
	runCtx, stop := context.WithCancelCause(r.runCtx)
	e := &execution{run: run, stop: stop, done: make(chan struct{})}
	r.active[run.ID] = e
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.execute(runCtx, run, tool, log)
		r.mu.Lock()
		delete(r.active, run.ID)
		r.mu.Unlock()
		stop(nil)
		close(e.done)
	}()
	return nil
}

// execution is a run's goroutine.
type execution struct {
	run       api.Run // as it was launched
	stop      context.CancelCauseFunc
	abandoned bool          // stopped by Abandon; r.mu guards it
	done      chan struct{} // closed once it has ended and left active
}

// Abandon stops every run executing here, for cause: the site lost its
// lease, so other sites may run them again, and it must not go on too.
// Each is recorded as failed with cause as its reason, unless a later
// attempt of it has been recorded since (the store refuses an older
// attempt's record). It returns once they have ended. A run claimed again
// meanwhile starts after its abandoned execution has ended. Runs the site
// carries through its journal (Options.Offline) go on: no other site may
// run them.
func (r *Runner) Abandon(cause error) {
	r.mu.Lock()
	var stopped []*execution
	for id, e := range r.active {
		if r.carried(e.run) {
			r.opts.Log.Info("not stopping a run this site carries through its journal: no other site may run it", "run", id)
			continue
		}
		r.opts.Log.Warn("stopping a run", "run", id, "cause", cause)
		e.abandoned = true
		e.stop(cause)
		stopped = append(stopped, e)
	}
	r.mu.Unlock()
	for _, e := range stopped {
		<-e.done
	}
}

// Shutdown stops accepting runs and waits for the running ones. When ctx
// ends first, it stops their containers and waits until each is recorded
// as failed.
func (r *Runner) Shutdown(ctx context.Context) {
	r.mu.Lock()
	r.closing = true
	r.mu.Unlock()
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		r.opts.Log.Warn("shutdown grace ended; stopping running containers")
		r.cancelRun()
		<-done
	}
	r.cancelRun()
}

// execute carries a run through its attempts to its end and records each
// step. Between attempts the run is pending until its RetryAt; when the
// runner shuts down meanwhile, it stays so, and Recover resumes it.
func (r *Runner) execute(ctx context.Context, run api.Run, tool toolspec.Tool, log *runlog.Log) {
	defer func() {
		if err := log.Close(); err != nil {
			r.opts.Log.Error("close run log", "run", run.ID, "err", err)
		}
	}()
	for {
		if run.RetryAt != nil {
			select {
			case <-r.opts.Clock.After(run.RetryAt.Sub(r.opts.Clock.Now())):
			case <-ctx.Done():
				return // pending, with its RetryAt, for Recover to resume
			}
		}
		var refused bool
		run, refused = r.attempt(ctx, run, tool, log)
		if refused || !runs.CanRetry(run) || ctx.Err() != nil {
			break
		}
		run = r.retryLater(run, log)
	}
	if run.State != api.StateSucceeded {
		fmt.Fprintf(log, "[mao] run %s %s: %s\n", run.ID, run.State, run.Reason)
	}
	r.save(run)
	r.opts.Log.Info("run ended", "run", run.ID, "tool", run.Tool, "state", run.State, "reason", run.Reason, "attempt", run.Attempt)
}

// retryLater files a failed attempt in the run's history and makes the
// run pending until its retry delay has passed.
func (r *Runner) retryLater(run api.Run, log io.Writer) api.Run {
	next := r.apply(run, runs.RetryLater{})
	if next.RetryAt != nil {
		fmt.Fprintf(log, "[mao] attempt %d of %d %s: %s; next attempt at %s\n",
			run.Attempt, run.MaxAttempts, run.State, run.Reason, next.RetryAt.Format(time.RFC3339))
	}
	r.save(next)
	return next
}

// attempt performs the run and returns its final record. refused reports
// a run this site will never perform (see refusal), which is not retried.
func (r *Runner) attempt(ctx context.Context, run api.Run, tool toolspec.Tool, log io.Writer) (_ api.Run, refused bool) {
	if run.Replay != nil {
		return r.replayAttempt(ctx, run, tool, log), true // never retried
	}
	if reason := r.refusal(tool); reason != "" {
		return r.apply(run, runs.Fail{Reason: reason}), true
	}
	dir := filepath.Join(r.opts.DataDir, "repos", tool.Name)
	unlock, err := r.locks.Lock(ctx, dir)
	if err != nil {
		return r.apply(run, runs.Fail{Reason: fmt.Sprintf("interrupted before it started: %v", err)}), false
	}
	defer unlock()

	if run = r.apply(run, runs.Start{}); run.State != api.StateRunning {
		return run, false
	}
	if !r.saveStart(run) {
		// Another site holds the run now (this site's lease expired
		// meanwhile): its attempt is theirs to make.
		return r.apply(run, runs.Fail{Reason: "not started: another site has taken the run over"}), true
	}

	p, err := r.prepare(ctx, tool, dir, log)
	var out runs.Outcome
	if err != nil {
		out = p.sync // the sync has ended
	}
	out.Spec, out.Network, out.DataRepo = r.snapshot(run, tool), tool.NetworkName(), tool.DataRepo
	if err != nil {
		return r.apply(run, runs.Fail{Reason: err.Error(), Outcome: out}), false
	}
	defer p.finish()
	out.ImageID, out.ImageDigest = p.img.ID, p.img.Digest

	// The container is created while the folders sync, and starts once
	// they have.
	synced := func(ctx context.Context) error {
		select {
		case <-p.synced:
			return p.err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	end, ran := r.runHeld(ctx, run, tool, dir, p.img, p.mounts, synced, p.synced, log, &out)
	<-p.synced // when no container was created, the sync may go on
	out.DataCommitBefore, out.DataCommitAfter = p.sync.DataCommitBefore, p.sync.DataCommitAfter
	out.InputDataset, out.InputCommit = p.sync.InputDataset, p.sync.InputCommit
	if p.err != nil {
		return r.apply(run, runs.Fail{Reason: p.err.Error(), Outcome: out}), false
	}
	if !ran {
		return r.apply(run, withOutcome(end, out)), false
	}
	// Committing and discarding stop when the run is stopped (the
	// shutdown grace ended, or the site lost the run): what they leave
	// undone, the next Sync of the clone discards.
	if end == nil {
		if out, end = r.keep(ctx, run, tool, dir, out); end == nil {
			return r.apply(run, runs.Succeed{Outcome: out}), false
		}
	}
	// The attempt failed: what it left in the clone goes, so that the next
	// run's commit does not take it in.
	files, err := r.git.Discard(ctx, dir)
	if err != nil {
		level := slog.LevelError
		if ctx.Err() != nil {
			level = slog.LevelWarn // stopped: expected
		}
		r.opts.Log.Log(context.Background(), level, "discard a failed run's output; the next sync of the clone discards it", "run", run.ID, "dir", dir, "err", err)
	}
	out.Files = files
	return r.apply(run, withOutcome(end, out)), false
}

// keep commits a successful attempt's output and checks it with the
// detector, each only once the site has made sure that it still holds the
// attempt (hold): just before the clone's branch moves to the commit, and
// again before the detector's series is appended to. An attempt the site
// no longer holds (it was lost and settled, and maybe retried elsewhere)
// ends with runs.Fail, its output discarded by the caller, and its record,
// the store refuses. It returns the outcome and nil when the attempt
// succeeded.
func (r *Runner) keep(ctx context.Context, run api.Run, tool toolspec.Tool, dir string, out runs.Outcome) (runs.Outcome, runs.Event) {
	var lost error
	held := func() error {
		lost = r.hold(ctx, run)
		return lost
	}
	after, files, err := r.git.Commit(ctx, dir, commitMessage(run, r.opts.Site, out), held)
	if err != nil && lost != nil {
		r.opts.Log.Warn("discarding the output of an attempt this site no longer holds", "run", run.ID, "attempt", run.Attempt, "err", lost)
		return out, runs.Fail{Reason: "output discarded: " + lost.Error()}
	}
	if err != nil {
		return out, runs.Fail{Reason: commitFailure(ctx, err)}
	}
	out.DataCommitAfter, out.Files = after, files
	if r.opts.Outbox != nil && after != "" && after != out.DataCommitBefore && tool.PushMode() != toolspec.PushOff {
		out.Push = true
		r.opts.Outbox.Enqueue(run, tool, after)
	}
	if err := held(); err != nil {
		// The commit is made; the site lost the attempt since. Its
		// record, which the store refuses now, would have said so.
		r.opts.Log.Error("the site lost the run after committing its output; its series is left alone",
			"run", run.ID, "attempt", run.Attempt, "commit", after, "err", err)
		return out, nil
	}
	// What the attempt did is recorded, whatever happens now.
	out.Verdicts = r.detect(context.WithoutCancel(ctx), run, tool, dir, out)
	return out, nil
}

// hold returns nil once this site holds run's attempt (Lease.Holds) under
// a lease that is valid by its own clock, so that no other site can have
// taken the attempt over before the lease's validity runs out; while etcd
// does not answer, it keeps asking, as save does. It returns the error
// that says the site does not hold the attempt, or ctx's cause.
func (r *Runner) hold(ctx context.Context, run api.Run) error {
	if r.opts.Lease == nil {
		return nil
	}
	for attempt := 1; ; attempt++ {
		changed := r.offlineChanged()
		if r.carried(run) {
			return nil // not fenced: see Offline
		}
		err := r.opts.Lease.Holds(ctx, run)
		if err == nil {
			if err = r.leaseValid(ctx, run); err == nil {
				return nil
			}
		}
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted: %s", stopCause(ctx, "the orchestrator shut down"))
		}
		if !errors.Is(err, errs.ErrUnavailable) || attempt == saveAttempts {
			return err
		}
		r.opts.Log.Warn("cannot tell whether the site still holds the run; asking etcd again", "run", run.ID, "err", err)
		select {
		case <-ctx.Done():
		case <-changed:
		case <-r.opts.Clock.After(saveRetry):
		}
	}
}

// leaseValid waits while the site's lease is not valid by its own clock,
// until it is renewed (nil) or ctx ends (the error says why).
func (r *Runner) leaseValid(ctx context.Context, run api.Run) error {
	if r.opts.Lease == nil {
		return nil
	}
	for {
		changed := r.offlineChanged()
		if r.carried(run) {
			return nil // not fenced: see Offline
		}
		renewed, err := r.opts.Lease.Valid()
		if err == nil {
			return nil
		}
		r.opts.Log.Warn("waiting for the site's lease to be renewed", "run", run.ID, "err", err)
		select {
		case <-renewed:
		case <-changed:
		case <-ctx.Done():
			return errors.New(stopCause(ctx, "the orchestrator shut down"))
		}
	}
}

// carried reports whether the site carries run through its journal (see
// Offline).
func (r *Runner) carried(run api.Run) bool {
	return r.opts.Offline != nil && r.opts.Offline.Carries(run)
}

// offlineChanged is closed when the site goes offline or online; nil
// without Options.Offline.
func (r *Runner) offlineChanged() <-chan struct{} {
	if r.opts.Offline == nil {
		return nil
	}
	return r.opts.Offline.Changed()
}

// errLend is the error of a run whose data folder could not be lent to
// the tool's user.
var errLend = errors.New("lend the data folder")

// runContainer runs the tool's container on the data folder dir, lent to
// the tool's user for the run when that is not the orchestrator's.
// The container, once created, starts when ready has returned nil.
func (r *Runner) runContainer(ctx context.Context, run api.Run, tool toolspec.Tool, img container.Image,
	mounts []container.Mount, ready func(context.Context) error, log io.Writer) (container.Exit, error) {
	spec := r.spec(run, tool, img, mounts)
	spec.Ready = ready
	return r.rt.Run(ctx, spec, log)
}

// runHeld runs an attempt's container on its data folder dir once the
// site's lease allows it (other sites take a run over only once this
// site's lease has expired: while it may have, no container starts), so
// the lease is checked before the container is created and again just
// before it starts. synced, if set, holds the start until the folder's
// sync, which goes on while the container is created, has ended; settled
// is closed when it has. runHeld notes the container's start and exit
// code in out, and takes the folder back for the orchestrator's user
// before anything is committed or discarded. It returns how the attempt
// ended (nil: the container exited 0 and the folder is the
// orchestrator's again; see ending), and ran false when no container
// started because the lease did not allow it or the run was stopped
// first.
func (r *Runner) runHeld(ctx context.Context, run api.Run, tool toolspec.Tool, dir string, img container.Image,
	mounts []container.Mount, synced func(context.Context) error, settled <-chan struct{}, log io.Writer, out *runs.Outcome) (end runs.Event, ran bool) {
	const notStarted = "interrupted before its container started: "
	if err := r.leaseValid(ctx, run); err != nil {
		return runs.Fail{Reason: notStarted + err.Error()}, false
	}
	// Once the container is created: the sync, the folder lent, and the
	// lease again (the sync may have taken a while), just before it
	// starts.
	var started bool
	var fenced error
	ready := func(ctx context.Context) error {
		if synced != nil {
			if err := synced(ctx); err != nil {
				return err
			}
		}
		if lendee, ok := r.lendee(tool); ok {
			if err := r.chown(dir, lendee, false); err != nil {
				return fmt.Errorf("%w to user %s: %w", errLend, lendee, err)
			}
		}
		if fenced = r.leaseValid(ctx, run); fenced != nil {
			return fenced
		}
		started = true
		return nil
	}
	exit, err := r.runContainer(ctx, run, tool, img, mounts, ready, log)
	if settled != nil {
		<-settled // nothing writes to the folder any more
	}
	switch {
	case !started && fenced != nil:
		return runs.Fail{Reason: notStarted + fenced.Error()}, false
	case !started && ctx.Err() != nil:
		return runs.Fail{Reason: notStarted + stopCause(ctx, "the orchestrator shut down")}, false
	}
	noteExit(out, exit, err)
	end = ending(ctx, exit, err, tool)
	if err := r.chown(dir, r.owner, true); err != nil {
		err = fmt.Errorf("take back the data folder for the orchestrator's user %s: %w", r.owner, err)
		r.opts.Log.Error("files left that the orchestrator does not own", "run", run.ID, "dir", dir, "err", err)
		if end == nil {
			end = runs.Fail{Reason: err.Error()}
		}
	}
	return end, true
}

// withOutcome is ev with out as its outcome, for the events that carry
// one (Fail, TimeOut).
func withOutcome(ev runs.Event, out runs.Outcome) runs.Event {
	switch e := ev.(type) {
	case runs.Fail:
		e.Outcome = out
		return e
	case runs.TimeOut:
		e.Outcome = out
		return e
	}
	return ev
}

// noteExit records in out when the container started and, if it ran,
// its exit code.
func noteExit(out *runs.Outcome, exit container.Exit, err error) {
	if !exit.StartedAt.IsZero() {
		started := exit.StartedAt.UTC()
		out.ContainerStartedAt = &started
	}
	if err == nil {
		out.ExitCode = &exit.Code
	}
}

// ending is how an attempt whose container ran (or failed to) ends: nil
// when it exited 0 (the output is then committed), else runs.Fail or
// runs.TimeOut; their outcome is filled in by the caller.
func ending(ctx context.Context, exit container.Exit, err error, tool toolspec.Tool) runs.Event {
	switch {
	case errors.Is(err, errLend):
		return runs.Fail{Reason: err.Error()}
	case err != nil && ctx.Err() != nil:
		return runs.Fail{Reason: "interrupted: " + stopCause(ctx, "the orchestrator shut down while the run was running")}
	case err != nil:
		return runs.Fail{Reason: fmt.Sprintf("container: %v", err)}
	case exit.TimedOut:
		return runs.TimeOut{Limit: tool.TimeoutDuration()}
	case exit.Code != 0:
		return runs.Fail{Reason: fmt.Sprintf("exit code %d", exit.Code)}
	}
	return nil
}

// commitFailure is why committing an attempt's output failed: the output
// refused (over a limit, a .git, ...) or, when the run was stopped while
// committing, why it was stopped.
func commitFailure(ctx context.Context, err error) string {
	if ctx.Err() != nil {
		return "interrupted while committing the run's output: " + stopCause(ctx, "the orchestrator shut down")
	}
	return fmt.Sprintf("commit the run's output: %v", err)
}

// stopCause says why a run's context ended: the cause it was stopped
// with, or shutdown when it was cancelled without one.
func stopCause(ctx context.Context, shutdown string) string {
	if c := context.Cause(ctx); !errors.Is(c, context.Canceled) {
		return c.Error()
	}
	return shutdown
}

// detect checks a successful attempt's output with the spike detector,
// which sees the record as it will be, with its files.
func (r *Runner) detect(ctx context.Context, run api.Run, tool toolspec.Tool, dir string, out runs.Outcome) []detector.Verdict {
	if r.opts.Outputs == nil {
		return nil
	}
	done := r.apply(run, runs.Succeed{Outcome: out})
	return r.opts.Outputs.Detect(ctx, done, tool, dir)
}

// preparation is an attempt's preparation: the tool's image, which the
// container's creation needs, and the sync of its data folder and input
// dataset, which only its start waits for.
type preparation struct {
	img    container.Image
	mounts []container.Mount
	synced chan struct{} // closed once the sync has ended; then:
	sync   runs.Outcome  // its commits
	err    error         // its error
	done   func()        // releases the input dataset's clone
	cancel func()        // ends the preparation's time
}

// finish waits for the sync and releases the input dataset's clone.
func (p *preparation) finish() {
	<-p.synced
	p.cancel()
	p.done()
}

// prepare checks (or pulls) the tool's image while the sync of the data
// folder dir (and of the input dataset's clone) starts, and returns once
// the image is known; the sync goes on. A folder that does not exist yet
// (a first clone) is synced first: the container's creation mounts it.
// On an error, the sync has ended and p.sync holds what it did.
func (r *Runner) prepare(ctx context.Context, tool toolspec.Tool, dir string, log io.Writer) (*preparation, error) {
	p := &preparation{synced: make(chan struct{}), done: func() {}}
	p.mounts = []container.Mount{{Source: r.hostPath(dir), Target: toolspec.DataMount}}
	inDir := ""
	if tool.InputDataset != "" {
		inDir = r.datasetDir(tool.InputDataset)
		p.mounts = append(p.mounts, container.Mount{Source: r.hostPath(inDir), Target: toolspec.InputMount, ReadOnly: true})
	}
	first := !isDir(dir) || (inDir != "" && !isDir(inDir))
	// One bound for the whole preparation, sync and image alike.
	ctx, p.cancel = context.WithTimeout(ctx, r.opts.PrepareTimeout)
	go func() {
		defer close(p.synced)
		p.sync, p.done, p.err = r.syncFolders(ctx, tool, dir, log)
	}()
	// On an error, the sync ends as it would have: the record has what
	// it did.
	fail := func(err error) (*preparation, error) {
		p.finish()
		return p, err
	}
	if first {
		if <-p.synced; p.err != nil {
			return fail(p.err)
		}
	}
	img, err := r.rt.EnsureImage(ctx, tool.Image)
	if err != nil {
		return fail(fmt.Errorf("image: %w", err))
	}
	p.img = img
	return p, nil
}

// syncFolders syncs a run's data folder dir and its input dataset's
// clone, and returns their commits and the release of the dataset's clone.
func (r *Runner) syncFolders(ctx context.Context, tool toolspec.Tool, dir string, log io.Writer) (out runs.Outcome, release func(), err error) {
	release = func() {}
	before, note, err := r.git.Sync(ctx, dir, tool.DataRepo, tool.Branch)
	if err != nil {
		return out, release, fmt.Errorf("data repository: %w", err)
	}
	if note != "" {
		fmt.Fprintf(log, "[mao] %s\n", note)
	}
	out.DataCommitBefore, out.DataCommitAfter = before, before
	if tool.InputDataset != "" {
		_, commit, done, err := r.useDataset(ctx, tool.InputDataset)
		if err != nil {
			return out, release, fmt.Errorf("input dataset %s: %w", tool.InputDataset, err)
		}
		release = done
		out.InputDataset, out.InputCommit = tool.InputDataset, commit
	}
	return out, release, nil
}

// isDir reports whether path is a directory.
func isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}

// datasetDir is the site's clone of the named dataset.
func (r *Runner) datasetDir(name string) string {
	return filepath.Join(r.opts.DataDir, "datasets", name)
}

// useDataset makes the named dataset's clone available to a run until the
// returned release is called. The clone is synced only while no run reads
// it, so a running tool never sees its input change under it; a run that
// starts while others read the clone gets the commit they read.
func (r *Runner) useDataset(ctx context.Context, name string) (dir, commit string, release func(), err error) {
	ds, err := r.reg.Dataset(ctx, name)
	if err != nil {
		return "", "", nil, err
	}
	dir = r.datasetDir(ds.Name)
	unlock, err := r.locks.Lock(ctx, dir)
	if err != nil {
		return "", "", nil, err
	}
	defer unlock()
	synced := r.inputs.idle(dir) // readers only join under the lock held here
	if synced {
		if commit, _, err = r.git.Sync(ctx, dir, ds.URL, ds.Branch); err != nil {
			return "", "", nil, err
		}
	}
	return dir, r.inputs.acquire(dir, synced, commit), func() { r.inputs.release(dir) }, nil
}

// memory is the container's memory limit: the tool's, else the site's
// default.
func (r *Runner) memory(tool toolspec.Tool) int64 {
	if m := tool.MemoryBytes(); m != 0 {
		return m
	}
	return r.opts.DefaultMemory
}

// runEnv is the env a run's container gets from its tool and its schedule,
// the schedule's winning; MAO_* variables aside.
func runEnv(run api.Run, tool toolspec.Tool) map[string]string {
	vars := maps.Clone(tool.Env)
	if vars == nil {
		vars = map[string]string{}
	}
	maps.Copy(vars, run.Env)
	return vars
}

// snapshot is what the run runs, for its record (api.RunSpec): secret
// values masked.
func (r *Runner) snapshot(run api.Run, tool toolspec.Tool) *api.RunSpec {
	env := tool.MaskSecrets(runEnv(run, tool))
	if len(env) == 0 {
		env = nil
	}
	var res *toolspec.Resources
	if tool.Resources != nil {
		c := *tool.Resources
		res = &c
	}
	return &api.RunSpec{Command: slices.Clone(tool.Command), Env: env, SecretEnv: slices.Clone(tool.SecretEnv),
		Resources: res, Memory: r.memory(tool), User: tool.User, Timeout: tool.TimeoutDuration().String(),
		SpecRevision: tool.Revision, Version: r.opts.Version}
}

// Commit trailers: git log --format='%(trailers)' in any clone of a data
// repository tells what produced each commit.
const (
	TrailerRun           = "Mao-Run"
	TrailerTool          = "Mao-Tool"
	TrailerSite          = "Mao-Site"
	TrailerScheduledTime = "Mao-Scheduled-Time"
	TrailerImage         = "Mao-Image"
	TrailerInputDataset  = "Mao-Input-Dataset"
	TrailerInputCommit   = "Mao-Input-Commit"
	TrailerSpecRevision  = "Mao-Spec-Revision"
	TrailerVersion       = "Mao-Version"
)

// commitMessage is the message of the commit of a successful attempt's
// output: a subject, and the run's provenance as git trailers. Every
// value is a validated name, a time, a hash or a version: none holds a
// line break.
func commitMessage(run api.Run, site string, out runs.Outcome) string {
	var b strings.Builder
	fmt.Fprintf(&b, "mao: run %s of %s at site %s\n\n", run.ID, run.Tool, site)
	trailer := func(key, value string) {
		if value != "" && !strings.ContainsAny(value, "\r\n") {
			fmt.Fprintf(&b, "%s: %s\n", key, value)
		}
	}
	trailer(TrailerRun, run.ID)
	trailer(TrailerTool, run.Tool)
	trailer(TrailerSite, site)
	trailer(TrailerScheduledTime, runs.Scheduled(run).UTC().Format(time.RFC3339))
	image := out.ImageDigest
	if image == "" {
		image = out.ImageID
	}
	trailer(TrailerImage, image)
	trailer(TrailerInputDataset, out.InputDataset)
	trailer(TrailerInputCommit, out.InputCommit)
	if out.Spec != nil {
		if out.Spec.SpecRevision != 0 {
			trailer(TrailerSpecRevision, strconv.FormatInt(out.Spec.SpecRevision, 10))
		}
		trailer(TrailerVersion, out.Spec.Version)
	}
	return b.String()
}

func (r *Runner) spec(run api.Run, tool toolspec.Tool, img container.Image, mounts []container.Mount) container.Spec {
	// A replay's container sees what the original's saw.
	id, site, scheduled := run.ID, run.Site, runs.Scheduled(run)
	if p := run.Replay; p != nil {
		id, site, scheduled = p.Of, p.Site, p.ScheduledTime
	}
	vars := runEnv(run, tool)
	maps.Copy(vars, map[string]string{"MAO_RUN_ID": id, "MAO_TOOL": run.Tool, "MAO_SITE": site,
		"MAO_SCHEDULED_TIME": scheduled.UTC().Format(time.RFC3339)})
	env := make([]string, 0, len(vars))
	for _, k := range slices.Sorted(maps.Keys(vars)) {
		env = append(env, k+"="+vars[k])
	}
	return container.Spec{
		Name:  ContainerName(run),
		Image: img.ID,
		Cmd:   tool.Command,
		Env:   env,
		Labels: map[string]string{LabelRun: run.ID, LabelAttempt: strconv.Itoa(max(run.Attempt, 1)),
			LabelTool: run.Tool, LabelSite: run.Site},
		Mounts:    mounts,
		NanoCPUs:  int64(tool.CPUs() * 1e9),
		Memory:    r.memory(tool),
		PidsLimit: r.opts.PidsLimit,
		User:      r.containerUser(tool),
		Network:   tool.NetworkName(),
		Timeout:   tool.TimeoutDuration(),
	}
}

// hostPath maps a path under DataDir to the same path as the Docker host
// sees it.
func (r *Runner) hostPath(p string) string {
	rel, err := filepath.Rel(r.opts.DataDir, p)
	if err != nil || strings.HasPrefix(rel, "..") {
		return p
	}
	return filepath.Join(r.opts.HostDataDir, rel)
}

// apply moves the run on by ev (see package runs). A transition that the
// run's state does not allow is a bug: it is logged, and the run stays as
// it was.
func (r *Runner) apply(run api.Run, ev runs.Event) api.Run {
	next, err := runs.Apply(run, ev, r.opts.Clock.Now())
	if err != nil {
		r.opts.Log.Error("run transition refused", "run", run.ID, "err", err)
	}
	return next
}

// saveStart saves the record of an attempt that starts (see save) and
// tells Options.Started.
func (r *Runner) saveStart(run api.Run) (held bool) {
	held = r.save(run)
	if held && r.opts.Started != nil {
		r.opts.Started(run)
	}
	return held
}

// save writes the run record. A final record must not be lost, so while
// etcd is unreachable it keeps trying for a while, whatever the run's own
// context says; an intermediate state is tried once. It returns false when
// the store refused the record because another site holds the run now.
func (r *Runner) save(run api.Run) (held bool) {
	attempts := 1
	if run.State.Terminal() {
		attempts = saveAttempts
	}
	ctx := context.Background()
	for attempt := 1; ; attempt++ {
		err := r.rec.SaveRun(ctx, run)
		if err == nil {
			if run.State.Terminal() && r.opts.Outputs != nil {
				r.opts.Outputs.Ended(run)
			}
			return true
		}
		if errors.Is(err, errs.ErrChanged) {
			// This site lost the run (its lease expired) and another
			// site has it now: its record is theirs to write.
			r.opts.Log.Error("record run: another site has taken the run over", "run", run.ID, "state", run.State, "err", err)
			return false
		}
		if attempt == attempts {
			r.opts.Log.Error("record run: giving up", "run", run.ID, "state", run.State, "err", err)
			return true
		}
		r.opts.Log.Warn("record run; retrying", "run", run.ID, "state", run.State, "err", err)
		select {
		case <-r.runCtx.Done():
			// The shutdown grace is over: the record stays as it was, and
			// Recover settles it at the next start.
			r.opts.Log.Error("record run: shutting down before etcd came back", "run", run.ID, "state", run.State, "err", err)
			return true
		case <-r.opts.Clock.After(saveRetry):
		}
	}
}

const (
	// A final record is retried for ten minutes: etcd that lost quorum
	// (members down) gets that long to come back before a record is lost.
	saveAttempts = 600
	saveRetry    = time.Second
)

// inputClones counts the runs reading each dataset clone. Runs join a clone
// (acquire) only while holding its directory lock; they leave (release) at
// any time.
type inputClones struct {
	mu sync.Mutex
	m  map[string]*inputClone
}

type inputClone struct {
	readers int    // runs that have the clone mounted
	commit  string // the commit they read
}

// idle reports whether no run reads the clone in dir.
func (c *inputClones) idle(dir string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	ic := c.m[dir]
	return ic == nil || ic.readers == 0
}

// acquire adds a reader and returns the commit it reads: synced when the
// caller has just synced the clone, else the current readers' commit.
func (c *inputClones) acquire(dir string, synced bool, commit string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	ic := c.m[dir]
	if ic == nil {
		ic = &inputClone{}
		c.m[dir] = ic
	}
	if synced {
		ic.commit = commit
	}
	ic.readers++
	return ic.commit
}

func (c *inputClones) release(dir string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m[dir].readers--
}
