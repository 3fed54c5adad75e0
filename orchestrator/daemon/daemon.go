package daemon

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
	"golang.org/x/net/netutil"
	"google.golang.org/grpc"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/internal/version"
	"github.com/mao-research/mao/notify"
	"github.com/mao-research/mao/orchestrator/alerts"
	"github.com/mao-research/mao/orchestrator/config"
	"github.com/mao-research/mao/orchestrator/dockerrt"
	"github.com/mao-research/mao/orchestrator/federation"
	"github.com/mao-research/mao/orchestrator/gitrepo"
	"github.com/mao-research/mao/orchestrator/httpapi"
	"github.com/mao-research/mao/orchestrator/metrics"
	"github.com/mao-research/mao/orchestrator/offline"
	"github.com/mao-research/mao/orchestrator/outbox"
	"github.com/mao-research/mao/orchestrator/peer"
	"github.com/mao-research/mao/orchestrator/pki"
	"github.com/mao-research/mao/orchestrator/runlog"
	"github.com/mao-research/mao/orchestrator/runner"
	"github.com/mao-research/mao/orchestrator/scheduler"
	"github.com/mao-research/mao/orchestrator/store"
	"github.com/mao-research/mao/orchestrator/upkeep"
	"github.com/mao-research/mao/orchestrator/voters"
)

// AddrFile is the file in the data directory where a running orchestrator
// writes its API address, so scripts can find a daemon that listens on a
// free port.
const AddrFile = "api.addr"

// JournalDir is the directory in the data directory that holds the
// site's journal (package offline).
const JournalDir = "journal"

// Daemon is a started orchestrator.
type Daemon struct {
	serve func(context.Context) error
	done  chan struct{}
	err   error // set before done is closed
}

// Options are what Start takes besides the config.
type Options struct {
	Log *slog.Logger // default: discard
	// Clock tells the time to every part of the site (runs' times,
	// schedules' ticks, records' stamps, join tokens' expiry) and times its
	// waits (retries, retry delays, relists); default the real clock. A
	// test may pass one whose Now is fixed, for output that does not
	// change from run to run, but its timers must still fire, or the
	// site's retries stall. Certificates are signed at the real time
	// whatever the clock says: TLS checks them against it.
	Clock clockwork.Clock
	// Witness runs the site as a witness: its embedded etcd member and
	// nothing else (no Docker, no API, no runs), which votes for the
	// federation's quorum (see startWitness).
	Witness bool
	// ForceNewCluster starts the embedded member as a new cluster of
	// itself alone, with its data: for the last site of a federation whose
	// others are gone for good. For one start only.
	ForceNewCluster bool
}

// Wait blocks until the orchestrator has stopped and returns why it stopped:
// nil after a clean shutdown when the Start context ended.
func (d *Daemon) Wait() error {
	<-d.done
	return d.err
}

// Start brings the orchestrator up and serves the API until ctx ends; then
// it shuts down cleanly (see Wait). It returns an error if the orchestrator
// cannot start.
func Start(ctx context.Context, cfg config.Config, opts Options) (*Daemon, error) {
	opts = withDefaults(opts)
	log := opts.Log
	for _, w := range cfg.Warnings {
		log.Warn("config: " + w)
	}
	if err := checkChannels(cfg.Notify.URLs); err != nil {
		return nil, err
	}
	var stack cleanup // undone in reverse order when Start fails or the daemon stops
	begin := start
	if opts.Witness {
		begin = startWitness
	}
	d, err := begin(ctx, cfg, opts, &stack)
	if err != nil {
		stack.run()
		return nil, err
	}
	go func() {
		defer close(d.done)
		defer stack.run()
		d.err = d.serve(ctx)
	}()
	return d, nil
}

// withDefaults fills in opts' defaults.
func withDefaults(opts Options) Options {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Clock == nil {
		opts.Clock = clockwork.NewRealClock()
	}
	return opts
}

// checkChannels refuses [notify] urls that name no service notify can
// send to: config checks only their shape, and a site whose alerts can
// never leave should not start as if they could.
func checkChannels(urls []string) error {
	var problems []error
	for i, u := range urls {
		if err := notify.CheckURL(u); err != nil {
			problems = append(problems, fmt.Errorf("notify.urls: entry %d %w", i+1, err))
		}
	}
	return errors.Join(problems...)
}

// cleanup is a stack of functions to run in reverse order.
type cleanup []func()

func (c *cleanup) push(f func()) { *c = append(*c, f) }

func (c *cleanup) run() {
	for i := len(*c) - 1; i >= 0; i-- {
		(*c)[i]()
	}
	*c = nil
}

// running is what serve needs of a started daemon.
type running struct {
	cfg     config.Config
	log     *slog.Logger
	srv     *http.Server
	served  chan error
	etcdErr <-chan error
	runner  *runner.Runner
	workers []func(context.Context) // the scheduler and the federation's loops, stopped before the runner
	late    []func(context.Context) // stopped after the runner, in order: the offline keeper, alerts, then the notifier
	member  *store.Membership
	leaving *leaving // the site leaves the federation once it has stopped, if asked to
	// rejoined is called when the site has registered again after its
	// lease expired: the requests it could not claim meanwhile are looked
	// at again at once.
	rejoined func()
}

func start(ctx context.Context, cfg config.Config, opts Options, stack *cleanup) (*Daemon, error) {
	log, clock := opts.Log, opts.Clock
	if err := os.MkdirAll(cfg.Site.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	if err := lockDataDir(cfg.Site.DataDir, stack); err != nil {
		return nil, err
	}
	instance, err := siteInstance(cfg.Site.DataDir)
	if err != nil {
		return nil, err
	}
	// The records of the site's own runs that a previous life journaled
	// while etcd did not answer it: replayed once the site has joined.
	journal, torn, err := offline.Open(filepath.Join(cfg.Site.DataDir, JournalDir))
	if err != nil {
		return nil, err
	}
	stack.push(func() { journal.Close() })
	if torn > 0 {
		log.Warn("the journal's last line was cut short by a crash and is dropped: its run went no further than the line before",
			"bytes", torn)
	}
	// The site's metrics: etcd's requests are timed from the first.
	mx := metrics.New(cfg.Site.Name)
	acc, st, err := connect(ctx, cfg, opts, stack, grpc.WithChainUnaryInterceptor(mx.EtcdInterceptor()))
	if err != nil {
		return nil, err
	}
	keeper := newKeeper(cfg, acc, st, clock, log)

	docker, err := dockerrt.New(dockerrt.Options{Host: cfg.Docker.Host, StopGrace: cfg.Runs.StopGrace, Clock: clock})
	if err != nil {
		return nil, err
	}
	stack.push(func() { docker.Close() })
	logs, err := runlog.Open(cfg.Runs.LogDir)
	if err != nil {
		return nil, err
	}
	registry := federation.NewRegistry(st, clock, log)
	registry.OnToolRemoved(mx.ForgetTool)
	templates, err := loadTemplates(cfg.Notify)
	if err != nil {
		return nil, err
	}
	sender := notify.NewShoutrrrSender()
	recorder := countedRecorder{st, mx} // notifications' outcomes, tests' too
	notifier := notify.New(sender, templates, notify.Options{Attempts: cfg.Notify.Attempts, Clock: clock, Log: log,
		Record: func(ctx context.Context, o notify.Outcome) {
			if _, err := recorder.RecordNotification(ctx, alerts.Outcome(o), alerts.KeepNotifications); err != nil {
				log.Warn("record a notification's outcome", "kind", o.Kind, "channel", o.Channel, "status", o.Status, "err", err)
			}
		}})
	checks := alerts.New(st, st, registry, notifier, alerts.Options{Site: cfg.Site.Name, SeriesLength: cfg.Detector.SeriesLength,
		Cooldown: cfg.Notify.Cooldown, Channels: cfg.Notify.URLs, Clock: clock, Log: log})
	auth, err := gitrepo.LoadAuth(gitrepo.AuthConfig{SSHKeyFile: cfg.Git.SSHKeyFile, KnownHostsFile: cfg.Git.KnownHostsFile,
		InsecureIgnoreHostKey: !cfg.Git.CheckHostKeys, CredentialsFile: cfg.Git.CredentialsFile, CAFile: cfg.Git.CAFile})
	if err != nil {
		return nil, fmt.Errorf("[git]: %w", err)
	}
	repos := gitrepo.New(gitrepo.Options{Now: clock.Now, MaxOutputBytes: cfg.Runs.MaxOutputBytes, MaxOutputFiles: cfg.Runs.MaxOutputFiles,
		AuthorName: cfg.Git.AuthorName, AuthorEmail: cfg.Git.AuthorEmail, Auth: auth})
	box := outbox.New(pushes{repos}, st, registry, outbox.Options{Site: cfg.Site.Name, DataDir: cfg.Site.DataDir,
		FailedAfter: cfg.Git.PushFailedAfter, RetryMax: cfg.Git.PushRetryMax, Alerts: checks, Clock: clock, Log: log})

	tokens, err := apiTokens(cfg.API.Tokens)
	if err != nil {
		return nil, err
	}
	tlsConfig, err := apiTLS(cfg.API, acc.pki)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.API.Listen)
	if err != nil {
		return nil, fmt.Errorf("api listen: %w", err)
	}
	stack.push(func() { ln.Close() })
	addr := "http://" + ln.Addr().String()
	if tlsConfig != nil {
		addr = "https://" + ln.Addr().String()
	}
	fed, err := listenFederation(cfg, acc.pki, stack)
	if err != nil {
		return nil, err
	}
	record := siteRecord(ctx, cfg, addr, docker, clock, log)
	record.FederationAddr, record.Instance = fed.addr, instance
	// Join before Recover: while this site is not live, other sites
	// settle the runs it held as lost.
	member, err := st.Join(ctx, record, cfg.Site.LeaseTTL, log)
	if err != nil {
		return nil, err
	}
	leave := &leaving{site: cfg.Site.Name, keeper: keeper, store: st, member: member, asked: make(chan struct{}), log: log}
	stack.push(func() {
		if leave.left {
			return // its lease was revoked as it left the federation
		}
		if err := member.Leave(context.Background()); err != nil {
			log.Warn("leave", "err", err)
		}
	})
	// While etcd does not answer the site, it goes on with its own runs
	// through its journal (ownWork): their records, claims and reads go
	// through it.
	ownWork := offline.New(journal, offline.Deps{Records: st, Claims: st, History: st, Replayer: st, Lease: member, Outputs: outputs{checks, box, mx}},
		offline.Options{Site: record, Clock: clock, Log: log})
	// The runner acts for runs only while the site holds them under its
	// lease (member), but for those ownWork carries; it is stopped
	// before the site leaves.
	run := runner.New(registry, ownWork, docker, repos, runner.Options{
		Site: cfg.Site.Name, DataDir: cfg.Site.DataDir, HostDataDir: cfg.Site.HostDataDir, Logs: logs, Log: log,
		PrepareTimeout: cfg.Runs.PrepareTimeout, Clock: clock, Outputs: ownWork, Started: mx.RunStarted, Version: version.Version, Lease: member, Offline: ownWork, Outbox: box,
		PidsLimit: int64(cfg.Runs.PidsLimit), DefaultMemory: cfg.Runs.DefaultMemory, AllowHostNetwork: cfg.Runs.AllowHostNetwork,
	})
	stack.push(func() { // stops runs that Recover started if Start fails later
		grace, cancel := context.WithTimeout(context.Background(), cfg.Runs.ShutdownGrace)
		defer cancel()
		run.Shutdown(grace)
	})
	// Pruned runs' logs go from here on, however late their watch starts.
	pruneFrom, err := st.Revision(ctx)
	if err != nil {
		return nil, err
	}
	// The run index covers the records of older versions (at this site's
	// first start at this version): Recover, the outbox and failover read
	// it.
	if n, err := st.IndexRuns(ctx, cfg.Site.Name); err != nil {
		return nil, err
	} else if n > 0 {
		log.Info("indexed the run records written before the run index", "runs", n)
	}
	// What the previous life journaled goes into etcd first: Recover
	// finds those runs there.
	if err := ownWork.Replay(ctx); err != nil {
		return nil, fmt.Errorf("replay the journal: %w", err)
	}
	if err := run.Recover(ctx); err != nil {
		return nil, err
	}
	images := federation.NewImages(docker, clock, log)
	// Runs that failover settles as lost here are counted here: their
	// own site is gone.
	settled := func(run api.Run) { mx.RunEnded(run); checks.Ended(run) }
	fedOpts := federation.Options{Site: cfg.Site.Name, Labels: cfg.Site.Labels, Clock: clock, Log: log, Ended: settled}
	dispatcher := federation.NewDispatcher(federation.DispatcherDeps{Requests: st, Claims: countedClaims{ownWork, mx}, Sites: st,
		Tools: registry, Images: images, Launcher: run}, fedOpts)
	sched, err := scheduler.New(scheduler.Deps{Schedules: st, Claims: countedClaims{ownWork, mx}, History: ownWork, Tools: registry, Launcher: run,
		Images: images}, scheduler.Options{
		Site: cfg.Site.Name, Labels: cfg.Site.Labels, History: cfg.Schedules.History, Clock: clock, Log: log})
	if err != nil {
		return nil, err
	}
	mx.Backlog("mao_push_backlog", "Runs whose commit waits in the outbox for its push to be recorded.",
		func() float64 { return float64(box.Backlog()) })
	mx.Backlog("mao_offline_journal_entries", "Run records journaled while etcd did not answer this site, not replayed yet.",
		func() float64 { _, n := ownWork.Status(); return float64(n) })
	siteHealth := &health{site: cfg.Site.Name, store: st, docker: docker, offline: ownWork}
	reads := registryReads{Store: st, copy: registry}
	deps := httpapi.Deps{Tools: reads, ToolEdits: st, Datasets: reads, DatasetEdits: st, Runs: ownWork, Offline: ownWork,
		Sites: st, Federation: federationAPI{Store: st, keeper: keeper, managed: acc.managed}, Leaver: leave, Series: st, Notifications: st, NotifyTester: &alerts.Tester{Sender: sender, Templates: templates,
			Recorder: recorder, Site: cfg.Site.Name, Channels: cfg.Notify.URLs, Clock: clock}, Schedules: st, ScheduleEdits: st, ScheduleEditor: st, ScheduleRuns: st,
		Launcher: dispatcher, Logs: logs, Health: siteHealth, Invalid: st, Metrics: mx.Handler()}
	if acc.pki != "" {
		deps.Issuer = &peer.Issuer{Grants: st, Sites: st, Voters: voterPolicy(acc, keeper), PKI: acc.pki, Site: cfg.Site.Name, Addr: fed.addr, Prefix: cfg.Etcd.Prefix,
			Endpoints: acc.client.Endpoints, Clock: clock, TokenTTL: cfg.Federation.TokenTTL}
		if deps.LogProxy, err = peer.NewClient(cfg.Site.Name, acc.pki); err != nil {
			return nil, err
		}
	}
	handler := httpapi.New(deps, httpapi.Options{Site: cfg.Site.Name, Tokens: tokens, OpenMetrics: cfg.API.OpenMetrics, Hosts: httpapi.Hosts(cfg.API.Listen, cfg.API.Hostnames),
		Timezone: cfg.Site.Timezone, Now: clock.Now, Log: log, CheckTool: run.CheckTool})
	if fed.ln != nil {
		// No write timeout: a log a site follows streams for as long as
		// its run lasts.
		fed.srv = &http.Server{ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute,
			Handler: peer.NewServer(st, st, acc.pki, peer.ServerOptions{Prefix: cfg.Etcd.Prefix, Etcd: cfg.Etcd.Embedded(),
				Clock: clock, Log: log, Logs: handler.LocalLogs(), ErrorBody: httpapi.ErrorBody})}
		go func() {
			if err := fed.srv.Serve(fed.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("federation API", "err", err)
			}
		}()
		stack.push(func() { fed.srv.Close() })
	}
	// etcd's bounds: alarms (health, one notification), and the own
	// member's defragmentation and recovery from NOSPACE.
	upkeeper := upkeep.New(st, member, notifier, upkeep.Options{Site: cfg.Site.Name, Endpoint: acc.endpoint,
		Quota: cfg.Etcd.QuotaBytes, FreePercent: cfg.Etcd.DefragFreePercent, Interval: cfg.Etcd.MaintenanceInterval,
		Channels: cfg.Notify.URLs, Clock: clock, Log: log})
	siteHealth.upkeep = upkeeper
	workers := []func(context.Context){upkeeper.Run, registry.Run, dispatcher.Run, federation.NewFailover(st, st, fedOpts).Run,
		federation.NewPrunedLogs(st, logs, pruneFrom, fedOpts).Run,
		federation.NewRetention(st, cfg.Runs.History, cfg.Runs.MaxAge, fedOpts).Run, func(ctx context.Context) { sched.Run(ctx) }}
	if acc.self != "" {
		workers = append(workers, keeper.Run)
	}
	// The notifications of runs that end during the shutdown still go out:
	// these stop after the runner, in order: the outbox (its commits stay
	// queued in the clones), ownWork (the records the runner journaled
	// last are replayed while etcd answers), which hands the replayed
	// runs' ends to checks and the outbox, checks, which hands its last
	// events to the notifier, and the notifier.
	late := []func(context.Context){box.Run, ownWork.Serve, checks.Run, notifier.Run}
	r := &running{cfg: cfg, log: log, etcdErr: acc.errs, runner: run, workers: workers, late: late, member: member,
		leaving: leave, rejoined: dispatcher.Relist, srv: handler.HTTPServer(), served: make(chan error, 1)}
	limited := netutil.LimitListener(ln, cfg.API.MaxConnections)
	if tlsConfig != nil {
		r.srv.TLSConfig = tlsConfig
		go func() { r.served <- r.srv.ServeTLS(limited, "", "") }()
	} else {
		go func() { r.served <- r.srv.Serve(limited) }()
	}

	addrFile := filepath.Join(cfg.Site.DataDir, AddrFile)
	if err := os.WriteFile(addrFile, []byte(addr+"\n"), 0o644); err != nil {
		log.Warn("write the API address file", "err", err)
	}
	stack.push(func() { os.Remove(addrFile) })
	log.Info("orchestrator ready", "site", cfg.Site.Name, "api", addr, "federation", fed.addr, "auth", len(tokens) > 0, "tokens", tokenNames(tokens))
	return &Daemon{serve: r.serve, done: make(chan struct{})}, nil
}

// apiTokens are the config's tokens as the API takes them.
func apiTokens(list []config.Token) ([]httpapi.Token, error) {
	out := make([]httpapi.Token, len(list))
	for i, t := range list {
		scope, err := httpapi.ParseScope(t.Scope)
		if err != nil {
			return nil, fmt.Errorf("%s: token %s: %w", t.Key, t.Name, err)
		}
		out[i] = httpapi.Token{Name: t.Name, Scope: scope, Secret: t.Secret}
	}
	return out, nil
}

// tokenNames lists the tokens as name:scope, for the log.
func tokenNames(tokens []httpapi.Token) []string {
	out := make([]string, len(tokens))
	for i, t := range tokens {
		out[i] = t.Name + ":" + t.Scope.String()
	}
	return out
}

// apiTLS is the API's TLS configuration, nil when it serves plain HTTP:
// the configured certificate, or else the site's own (dir).
func apiTLS(a config.API, dir pki.Dir) (*tls.Config, error) {
	var cert tls.Certificate
	var err error
	switch {
	case !a.TLS():
		return nil, nil
	case a.TLSCertFile != "":
		if cert, err = tls.LoadX509KeyPair(a.TLSCertFile, a.TLSKeyFile); err != nil {
			return nil, fmt.Errorf("api.tls_cert_file and api.tls_key_file: %w", err)
		}
	case dir == "":
		return nil, errors.New("api.tls: this site has no certificate of the federation's to serve the API with; set api.tls_cert_file and api.tls_key_file")
	default:
		if cert, err = dir.Pair(pki.SiteCertFile, pki.SiteKeyFile); err != nil {
			return nil, fmt.Errorf("api.tls: the site's certificate: %w", err)
		}
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// serve runs until ctx ends or a server fails, then shuts down in order.
func (r *running) serve(ctx context.Context) (err error) {
	keepCtx, stopKeep := context.WithCancel(context.Background())
	kept := make(chan struct{})
	go func() { defer close(kept); r.member.Keep(keepCtx, time.Second, r.leaseLost, r.rejoined) }()
	lateStops := make([]func(), len(r.late))
	for i, work := range r.late {
		ctx, stop := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); work(ctx) }()
		lateStops[i] = func() { stop(); <-done }
	}
	workCtx, stopWork := context.WithCancel(context.Background())
	var working sync.WaitGroup
	for _, work := range r.workers {
		working.Add(1)
		go func() { defer working.Done(); work(workCtx) }()
	}
	leave := false
	select {
	case <-ctx.Done():
		r.log.Info("shutting down")
	case <-r.leaving.asked:
		r.log.Info("shutting down to leave the federation")
		leave = true
	case err = <-r.served:
		err = fmt.Errorf("api server: %w", err)
	case err = <-r.etcdErr:
		err = fmt.Errorf("embedded etcd: %w", err)
	}
	stopWork() // no new ticks or claims; one being made finishes first
	working.Wait()
	shutdown(r.srv, r.runner, r.cfg.Runs.ShutdownGrace, r.log)
	for _, stop := range lateStops {
		stop()
	}
	stopKeep()
	<-kept
	if leave {
		err = r.leaving.leave()
	}
	r.log.Info("stopped") // the cleanup stack revokes the site's lease, unless it left
	return err
}

// loadTemplates reads the [notify] templates.
func loadTemplates(n config.Notify) (*notify.Templates, error) {
	body := ""
	if n.BodyTemplateFile != "" {
		b, err := os.ReadFile(n.BodyTemplateFile)
		if err != nil {
			return nil, fmt.Errorf("notify.body_template_file: %w", err)
		}
		body = string(b)
	}
	t, err := notify.NewTemplates(n.TitleTemplate, body)
	if err != nil {
		return nil, fmt.Errorf("notify templates: %w", err)
	}
	return t, nil
}

// errLeaseLost is why runs stop when the site's lease expired.
var errLeaseLost = errors.New("this site's lease in etcd expired (etcd was unreachable from here for longer than lease_ttl), " +
	"so other sites may run the run again")

// leaseLost stops the runs executing here: other sites have settled them
// as lost and may be running them again.
func (r *running) leaseLost() { r.runner.Abandon(errLeaseLost) }

// shutdown stops accepting requests, lets running runs finish within grace
// (then stops and records them), and waits for open requests, such as
// followed logs, to end.
func shutdown(srv *http.Server, run *runner.Runner, grace time.Duration, log *slog.Logger) {
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		ctx, cancel := context.WithTimeout(context.Background(), grace+10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			log.Warn("api shutdown", "err", err)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	run.Shutdown(ctx)
	<-closed
	srv.Close()
}

// siteRecord gathers the facts a site publishes about itself.
func siteRecord(ctx context.Context, cfg config.Config, addr string, docker *dockerrt.Runtime, clock clockwork.Clock, log *slog.Logger) api.Site {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	dockerVersion, err := docker.Version(ctx)
	if err != nil {
		log.Warn("docker is not reachable; runs will fail until it is", "err", err)
		dockerVersion = "unavailable"
	}
	return api.Site{
		Name:          cfg.Site.Name,
		APIAddr:       addr,
		Version:       version.Version,
		OS:            runtime.GOOS,
		Arch:          runtime.GOARCH,
		CPUs:          runtime.NumCPU(),
		MemoryBytes:   totalMemory(),
		DockerVersion: dockerVersion,
		Labels:        cfg.Site.Labels,
		StartedAt:     clock.Now().UTC(),
	}
}

// health checks etcd and Docker for GET /api/v1/health.
type health struct {
	site    string
	store   *store.Store
	docker  *dockerrt.Runtime
	offline *offline.Work
	upkeep  *upkeep.Keeper
}

func (h *health) Check(ctx context.Context) api.Health {
	out := api.Health{Status: "ok", Site: h.site, Etcd: "ok", Docker: "ok"}
	if err := h.store.Ping(ctx); err != nil {
		out.Status, out.Etcd = "degraded", err.Error()
		if errors.Is(err, store.ErrUnavailable) {
			h.offline.Unreachable(err)
		}
	}
	if alarms := h.upkeep.Alarms(); len(alarms) > 0 {
		out.Status = "degraded"
		if out.Etcd == "ok" {
			out.Etcd = strings.Join(alarms, "; ")
		} else {
			out.Etcd += "; " + strings.Join(alarms, "; ")
		}
	}
	out.Offline, out.Journaled = h.offline.Status()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := h.docker.Version(ctx); err != nil {
		out.Status, out.Docker = "degraded", err.Error()
	}
	// A record someone wrote to etcd by hand that mao cannot use: the
	// site works, but what the record was meant to do does not happen.
	if out.InvalidRecords = len(h.store.InvalidRecords()); out.InvalidRecords > 0 {
		out.Status = "degraded"
	}
	return out
}

// outputs hands a successful run's output to the detector, and every
// ended run to alerts and to the outbox (which records a push that landed
// before the run's final record was stored).
type outputs struct {
	*alerts.Alerts
	box *outbox.Outbox
	mx  *metrics.Metrics
}

func (o outputs) Ended(run api.Run) {
	o.mx.RunEnded(run)
	o.Alerts.Ended(run)
	o.box.Ended(run)
}

// countedRecorder records notifications' outcomes, counted in the site's
// metrics.
type countedRecorder struct {
	*store.Store
	mx *metrics.Metrics
}

func (c countedRecorder) RecordNotification(ctx context.Context, n api.Notification, keep int) (api.Notification, error) {
	c.mx.Notified(n)
	return c.Store.RecordNotification(ctx, n, keep)
}

// countedClaims is ownWork's claims, counted in the site's metrics, with
// the runs the scheduler and the dispatcher end without the runner: a
// tick claimed to be recorded missed, skipped or orphaned, a request that
// could not start.
type countedClaims struct {
	*offline.Work
	mx *metrics.Metrics
}

func (c countedClaims) ClaimRun(ctx context.Context, r api.Run) (bool, error) {
	won, err := c.Work.ClaimRun(ctx, r)
	if err == nil {
		c.mx.Claimed("tick", won)
		if won && r.State.Terminal() {
			c.mx.RunEnded(r)
		}
	}
	return won, err
}

func (c countedClaims) SaveRun(ctx context.Context, r api.Run) error {
	err := c.Work.SaveRun(ctx, r)
	// A record journaled while etcd is away is counted when it is
	// replayed (outputs.Ended).
	if err == nil && r.State.Terminal() && !c.Work.Carries(r) {
		c.mx.RunEnded(r)
	}
	return err
}

func (c countedClaims) ClaimRequest(ctx context.Context, id, site string) (api.Run, bool, error) {
	r, won, err := c.Work.ClaimRequest(ctx, id, site)
	if err == nil {
		c.mx.Claimed("request", won)
	}
	return r, won, err
}

// pushes pushes clones for the outbox, with gitrepo.
type pushes struct{ repos *gitrepo.Repos }

func (p pushes) Push(ctx context.Context, dir string, req outbox.PushRequest) ([]outbox.Pushed, error) {
	res, err := p.repos.Push(ctx, dir, gitrepo.PushOptions{Branch: req.Branch, ConflictBranch: req.ConflictBranch, Want: req.Want, Wait: req.Wait})
	out := make([]outbox.Pushed, len(res.Commits))
	for i, c := range res.Commits {
		out[i] = outbox.Pushed{Local: c.Local, Remote: c.Remote, Branch: c.Branch, Conflict: c.Conflict}
	}
	return out, err
}

// The adapters the daemon wires into the consumers' interfaces.
var (
	_ runner.Registry          = (*federation.Registry)(nil)
	_ runner.Records           = (*store.Store)(nil)
	_ runner.Records           = (*offline.Work)(nil)
	_ runner.Outputs           = (*offline.Work)(nil)
	_ runner.Offline           = (*offline.Work)(nil)
	_ offline.Records          = (*store.Store)(nil)
	_ offline.Claims           = (*store.Store)(nil)
	_ offline.History          = (*store.Store)(nil)
	_ offline.Replayer         = (*store.Store)(nil)
	_ offline.Lease            = (*store.Membership)(nil)
	_ offline.Outputs          = outputs{}
	_ scheduler.Claims         = (*offline.Work)(nil)
	_ scheduler.History        = (*offline.Work)(nil)
	_ federation.Claims        = (*offline.Work)(nil)
	_ httpapi.Runs             = (*offline.Work)(nil)
	_ httpapi.Offline          = (*offline.Work)(nil)
	_ runner.Containers        = (*dockerrt.Runtime)(nil)
	_ runner.Git               = (*gitrepo.Repos)(nil)
	_ runner.Lease             = (*store.Membership)(nil)
	_ httpapi.ToolReader       = (*store.Store)(nil)
	_ httpapi.ToolWriter       = (*store.Store)(nil)
	_ httpapi.DatasetReader    = (*store.Store)(nil)
	_ httpapi.DatasetWriter    = (*store.Store)(nil)
	_ httpapi.Runs             = (*store.Store)(nil)
	_ httpapi.Launcher         = (*federation.Dispatcher)(nil)
	_ httpapi.Sites            = (*store.Store)(nil)
	_ httpapi.Invalid          = (*store.Store)(nil)
	_ httpapi.Issuer           = (*peer.Issuer)(nil)
	_ httpapi.LogProxy         = (*peer.Client)(nil)
	_ peer.Grants              = (*store.Store)(nil)
	_ peer.Sites               = (*store.Store)(nil)
	_ peer.Voters              = (*voters.Keeper)(nil)
	_ httpapi.Federation       = federationAPI{}
	_ httpapi.Leaver           = (*leaving)(nil)
	_ voters.Cluster           = (*store.Store)(nil)
	_ federation.RequestStore  = (*store.Store)(nil)
	_ federation.Claims        = (*store.Store)(nil)
	_ federation.Sites         = (*store.Store)(nil)
	_ federation.Tools         = (*federation.Registry)(nil)
	_ federation.Usable        = (*federation.Images)(nil)
	_ federation.Launcher      = (*runner.Runner)(nil)
	_ federation.ImageChecker  = (*dockerrt.Runtime)(nil)
	_ federation.Departures    = (*store.Store)(nil)
	_ federation.Losses        = (*store.Store)(nil)
	_ federation.RunPruner     = (*store.Store)(nil)
	_ federation.RegistryStore = (*store.Store)(nil)
	_ scheduler.Images         = (*federation.Images)(nil)
	_ runner.Outbox            = (*outbox.Outbox)(nil)
	_ outbox.Git               = pushes{}
	_ outbox.Records           = (*store.Store)(nil)
	_ outbox.Tools             = (*federation.Registry)(nil)
	_ outbox.Alerts            = (*alerts.Alerts)(nil)
	_ alerts.Series            = (*store.Store)(nil)
	_ alerts.States            = (*store.Store)(nil)
	_ alerts.Tools             = (*federation.Registry)(nil)
	_ alerts.Notifier          = (*notify.Notifier)(nil)
	_ alerts.Recorder          = (*store.Store)(nil)
	_ httpapi.SeriesReader     = (*store.Store)(nil)
	_ httpapi.Notifications    = (*store.Store)(nil)
	_ httpapi.NotifyTester     = (*alerts.Tester)(nil)
	_ httpapi.Logs             = (*runlog.Dir)(nil)
	_ httpapi.Health           = (*health)(nil)
	_ httpapi.ScheduleReader   = (*store.Store)(nil)
	_ httpapi.ScheduleWriter   = (*store.Store)(nil)
	_ httpapi.ScheduleRuns     = (*store.Store)(nil)
	_ httpapi.ScheduleEditor   = (*store.Store)(nil)
	_ scheduler.History        = (*store.Store)(nil)
	_ scheduler.Schedules      = (*store.Store)(nil)
	_ scheduler.Claims         = (*store.Store)(nil)
	_ scheduler.Tools          = (*federation.Registry)(nil)
	_ scheduler.Launcher       = (*runner.Runner)(nil)
	_ federation.RunDeletions  = (*store.Store)(nil)
	_ federation.LogFiles      = (*runlog.Dir)(nil)
	_ upkeep.Etcd              = (*store.Store)(nil)
	_ upkeep.Lease             = (*store.Membership)(nil)
	_ upkeep.Notifier          = (*notify.Notifier)(nil)
)
