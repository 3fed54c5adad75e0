package federation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/orchestrator/errs"
	"github.com/mao-research/mao/orchestrator/runs"
	"github.com/mao-research/mao/toolspec"
)

// RequestStore writes, lists and watches run requests.
type RequestStore interface {
	RequestRun(ctx context.Context, r api.Run) error
	Requests(ctx context.Context) ([]runs.Request, int64, error)
	WatchRequests(ctx context.Context, rev int64) <-chan []runs.Request
}

// Claims takes requested runs for this site and records those it does not
// launch.
type Claims interface {
	ClaimRequest(ctx context.Context, id, site string) (api.Run, bool, error)
	SaveRun(ctx context.Context, r api.Run) error
}

// Sites lists the sites of the federation (without their runs).
type Sites interface {
	KnownSites(ctx context.Context) ([]api.SiteInfo, error)
}

// Tools looks tools up; Registry is one.
type Tools interface {
	Tool(ctx context.Context, name string) (toolspec.Tool, error)
}

// Usable tells whether an image can run here (nil), or why not; Images
// is one.
type Usable interface {
	CheckImage(ctx context.Context, image string) error
}

// Launcher runs runs at this site; runner.Runner is one.
type Launcher interface {
	Start(ctx context.Context, tool, requestedBy string) (api.Run, error)
	// Create records a new run held by this site and runs it.
	Create(ctx context.Context, run api.Run, tool toolspec.Tool) error
	Launch(ctx context.Context, run api.Run, tool toolspec.Tool) error
}

// DispatcherDeps are what a Dispatcher works with.
type DispatcherDeps struct {
	Requests RequestStore
	Claims   Claims
	Sites    Sites
	Tools    Tools
	Images   Usable
	Launcher Launcher
}

// Options configure a Dispatcher and a Failover.
type Options struct {
	Site   string
	Labels map[string]string
	Clock  Clock
	Log    *slog.Logger
	// Relist is how often waiting requests are looked at again, for a
	// site that has become eligible since (an image was built). Default 1m.
	Relist time.Duration
	Retry  time.Duration // how soon to list again after etcd failed; default 2s
	// Ended, if set, hears of runs that Failover settled as lost for good,
	// for their notifications; it must not block.
	Ended func(api.Run)
}

func (o *Options) defaults() {
	if o.Clock == nil {
		o.Clock = clockwork.NewRealClock()
	}
	if o.Relist <= 0 {
		o.Relist = time.Minute
	}
	if o.Retry <= 0 {
		o.Retry = 2 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
}

// Dispatcher starts runs where their target says.
type Dispatcher struct {
	deps   DispatcherDeps
	opts   Options
	relist chan struct{} // Relist asks Run to list the requests again
}

// NewDispatcher returns a Dispatcher; Run makes it take requests.
func NewDispatcher(deps DispatcherDeps, opts Options) *Dispatcher {
	opts.defaults()
	return &Dispatcher{deps: deps, opts: opts, relist: make(chan struct{}, 1)}
}

// Relist makes Run list the waiting requests again at once, as it does
// every Options.Relist: for a site that has registered again after its
// lease expired, whose claims failed meanwhile. It does not block.
func (d *Dispatcher) Relist() {
	select {
	case d.relist <- struct{}{}:
	default: // one is pending already
	}
}

// MaxRetries bounds RunRequest.Retries, as a schedule's retries.
const MaxRetries = 100

// Request starts runs of the named tool as req asks, for the API token
// named requestedBy ("" when the API needs none), which each run records.
// With no target and no
// retries the run starts here at once. Otherwise each run is recorded
// pending with a request in etcd, which the eligible site claims: one run
// for a site or any-site target, one per live matching site for --all
// (run IDs end in -<site>). A site target may name a site that is down: the
// run waits for it.
//
// While etcd does not answer (no request can be written), a run for this
// very site (a target that names it, or retries with no target) is
// recorded held by this site and runs here at once, as a claimed request
// would (see package offline); any other target fails.
func (d *Dispatcher) Request(ctx context.Context, name string, req api.RunRequest, requestedBy string) ([]api.Run, error) {
	tool, err := d.deps.Tools.Tool(ctx, name)
	if err != nil {
		return nil, err
	}
	if req.Retries < 0 || req.Retries > MaxRetries {
		return nil, &toolspec.ValidationError{Kind: "run request", Fields: []toolspec.FieldError{{
			Field: "retries", Problem: fmt.Sprintf("%d must be between 0 and %d", req.Retries, MaxRetries)}}}
	}
	if req.Target == nil && req.Retries == 0 {
		run, err := d.deps.Launcher.Start(ctx, name, requestedBy)
		return []api.Run{run}, err
	}
	target := toolspec.Target{Mode: toolspec.TargetSite, Site: d.opts.Site}
	if req.Target != nil {
		target = *req.Target
		target.Mode = target.EffectiveMode()
	}
	if err := target.Validate(); err != nil {
		return nil, err
	}
	now := d.opts.Clock.Now()
	id := runs.Manual(tool.Name, now)
	newRun := func(id runs.ID, t toolspec.Target) api.Run {
		return runs.NewManual(id, tool, runs.Ask{Target: &t, Retries: req.Retries, RequestedBy: requestedBy}, now)
	}
	here := target.Mode == toolspec.TargetSite && target.Site == d.opts.Site
	sites, err := d.targetSites(ctx, target)
	if here && errors.Is(err, errs.ErrUnavailable) {
		return d.runHere(ctx, newRun(id, target), tool, err)
	}
	if err != nil {
		return nil, err
	}
	if target.Mode != toolspec.TargetAll {
		run := newRun(id, target)
		err := d.deps.Requests.RequestRun(ctx, run)
		if here && errors.Is(err, errs.ErrUnavailable) {
			// The request may have reached etcd all the same: the run
			// keeps its ID, and its replay ends the request.
			return d.runHere(ctx, run, tool, err)
		}
		if err != nil {
			return nil, err
		}
		return []api.Run{run}, nil
	}
	var out []api.Run
	for _, site := range sites {
		run := newRun(id.For(site), toolspec.Target{Mode: toolspec.TargetSite, Site: site, Labels: target.Labels})
		if err := d.deps.Requests.RequestRun(ctx, run); err != nil {
			return out, err
		}
		out = append(out, run)
	}
	return out, nil
}

// Replay runs orig again, exactly (see runs.NewReplay and the runner), at
// req's site, by default the site that ran orig (its clone holds the
// commits, even those not pushed): here, it starts at once; elsewhere,
// through a request for that site, which claims it. The tool
// must still be registered: the replay takes secret env values from its
// record, and a secret that is no longer there is refused here (409).
func (d *Dispatcher) Replay(ctx context.Context, orig api.Run, req api.ReplayRequest, requestedBy string) (api.Run, error) {
	if err := runs.CheckReplayable(orig); err != nil {
		return api.Run{}, err
	}
	tool, err := d.deps.Tools.Tool(ctx, orig.Tool)
	if err != nil {
		return api.Run{}, fmt.Errorf("replay run %s: %w", orig.ID, err)
	}
	for _, k := range orig.Spec.SecretEnv {
		if _, had := orig.Spec.Env[k]; !had {
			continue
		}
		if _, ok := tool.Env[k]; !ok {
			return api.Run{}, errs.New(errs.ErrConflict, fmt.Sprintf(
				"run %s cannot be replayed: its secret env %s is no longer in tool %s's env, where a replay takes secret values from", orig.ID, k, tool.Name))
		}
	}
	now := d.opts.Clock.Now()
	id := runs.Manual(tool.Name, now)
	if req.Site == "" {
		req.Site = orig.Site
	}
	if req.Site == d.opts.Site {
		run := runs.NewReplay(id, orig, runs.Ask{Site: d.opts.Site, RequestedBy: requestedBy}, now)
		return run, d.deps.Launcher.Create(ctx, run, tool)
	}
	target := toolspec.Target{Mode: toolspec.TargetSite, Site: req.Site}
	if err := target.Validate(); err != nil {
		return api.Run{}, err
	}
	if _, err := d.targetSites(ctx, target); err != nil {
		return api.Run{}, err
	}
	run := runs.NewReplay(id, orig, runs.Ask{Target: &target, RequestedBy: requestedBy}, now)
	return run, d.deps.Requests.RequestRun(ctx, run)
}

// runHere records run, asked for this site while etcd does not answer
// (unavailable), as claimed by this site, if the site carries the target's
// labels, and runs it.
func (d *Dispatcher) runHere(ctx context.Context, run api.Run, tool toolspec.Tool, unavailable error) ([]api.Run, error) {
	if !run.Target.Matches(d.opts.Labels) {
		return nil, errs.New(errs.ErrConflict, fmt.Sprintf("site %s does not carry the labels of target %s (its labels: %s)",
			d.opts.Site, run.Target, labelText(d.opts.Labels)))
	}
	d.opts.Log.Warn("etcd does not answer: the run asked for this site runs here without a request", "run", run.ID, "err", unavailable)
	run, err := runs.Apply(run, runs.Claim{Site: d.opts.Site}, d.opts.Clock.Now())
	if err != nil {
		return nil, err
	}
	if err := d.deps.Launcher.Create(ctx, run, tool); err != nil {
		return nil, err
	}
	return []api.Run{run}, nil
}

// targetSites checks that target can be met, and refuses one that cannot
// (ErrConflict): a named site must have joined once and carry the target's
// labels (a site that is down may come back: the run waits for it); --all
// returns the live sites that match its labels, and needs one.
func (d *Dispatcher) targetSites(ctx context.Context, target toolspec.Target) ([]string, error) {
	if target.Mode == toolspec.TargetAny {
		return nil, nil // waits, if need be, for an eligible site
	}
	infos, err := d.deps.Sites.KnownSites(ctx)
	if err != nil {
		return nil, err
	}
	var sites []string
	for _, info := range infos {
		switch {
		case target.Mode == toolspec.TargetSite && info.Name == target.Site && !target.Matches(info.Labels):
			return nil, errs.New(errs.ErrConflict, fmt.Sprintf("site %s does not carry the labels of target %s (its labels: %s)",
				info.Name, target, labelText(info.Labels)))
		case target.Mode == toolspec.TargetSite && info.Name == target.Site:
			return []string{info.Name}, nil
		case target.Mode == toolspec.TargetAll && info.Live && target.Matches(info.Labels):
			sites = append(sites, info.Name)
		}
	}
	if target.Mode == toolspec.TargetSite {
		return nil, errs.New(errs.ErrNotFound, fmt.Sprintf("no site named %q has joined the federation", target.Site))
	}
	if len(sites) == 0 {
		return nil, errs.New(errs.ErrConflict, fmt.Sprintf("no live site matches the target (%s)", target))
	}
	return sites, nil
}

// labelText is labels as k=v pairs, or "none".
func labelText(labels map[string]string) string {
	if len(labels) == 0 {
		return "none"
	}
	pairs := make([]string, 0, len(labels))
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		pairs = append(pairs, k+"="+labels[k])
	}
	return strings.Join(pairs, " ")
}

// Run claims and launches the requests this site is eligible for, until
// ctx ends.
func (d *Dispatcher) Run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	handle := func(reqs []runs.Request) {
		for _, req := range reqs {
			wg.Add(1)
			go func() { defer wg.Done(); d.handle(ctx, req) }()
		}
	}
	for ctx.Err() == nil {
		reqs, rev, err := d.deps.Requests.Requests(ctx)
		if err != nil {
			d.opts.Log.Warn("list run requests; retrying", "err", err)
			sleep(ctx, d.opts.Clock, d.opts.Retry)
			continue
		}
		handle(reqs)
		d.follow(ctx, rev, handle)
	}
}

// follow handles the requests made after rev until the watch fails or it
// is time to list them again.
func (d *Dispatcher) follow(ctx context.Context, rev int64, handle func([]runs.Request)) {
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	events := d.deps.Requests.WatchRequests(wctx, rev)
	relist := d.opts.Clock.After(d.opts.Relist)
	for {
		select {
		case reqs, ok := <-events:
			if !ok {
				if ctx.Err() == nil {
					sleep(ctx, d.opts.Clock, d.opts.Retry) // etcd trouble; list again shortly
				}
				return
			}
			handle(reqs)
		case <-relist:
			return
		case <-d.relist:
			d.opts.Log.Info("listing run requests again")
			return
		case <-ctx.Done():
			return
		}
	}
}

// handle claims one request if this site is eligible, and runs it.
func (d *Dispatcher) handle(ctx context.Context, req runs.Request) {
	if !req.Target.Allows(d.opts.Site, d.opts.Labels) {
		return
	}
	tool, err := d.deps.Tools.Tool(ctx, req.Tool)
	if err != nil && !isNotFound(err) {
		d.opts.Log.Warn("look up a requested run's tool", "run", req.Run, "err", err)
		return
	}
	named := req.Target.EffectiveMode() == toolspec.TargetSite && !req.FanOut
	var unusable error
	if err == nil && !named {
		unusable = d.deps.Images.CheckImage(ctx, tool.Image)
	}
	usable := err == nil && unusable == nil
	if err == nil && !usable && !req.FanOut {
		return // not eligible: a site that has the image takes it
	}
	run, ok, cerr := d.deps.Claims.ClaimRequest(ctx, req.Run, d.opts.Site)
	if cerr != nil {
		// This site is not live (its lease expired): once it has
		// registered again, Relist looks at the request again.
		d.opts.Log.Warn("claim a requested run", "run", req.Run, "err", cerr)
		return
	}
	if !ok {
		return // another site was first
	}
	d.opts.Log.Info("claimed a requested run", "run", run.ID, "tool", run.Tool, "target", req.Target.String())
	switch {
	case err != nil:
		d.end(run, runs.Fail{Reason: fmt.Sprintf("could not start: tool %s is no longer registered", req.Tool)})
	case !usable:
		d.end(run, runs.Skip{Reason: fmt.Sprintf("skipped: the image cannot run at site %s: %v", d.opts.Site, unusable)})
	default:
		if err := d.deps.Launcher.Launch(ctx, run, tool); err != nil {
			d.opts.Log.Warn("launch a requested run", "run", run.ID, "err", err)
		}
	}
}

// end records a claimed run that does not run, ended by ev.
func (d *Dispatcher) end(run api.Run, ev runs.Event) {
	run, err := runs.Apply(run, ev, d.opts.Clock.Now())
	if err == nil {
		err = d.deps.Claims.SaveRun(context.Background(), run)
	}
	if err != nil {
		d.opts.Log.Error("record a requested run", "run", run.ID, "err", err)
	}
}
