package testsite

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/internal/testenv"
	"github.com/mao-research/mao/orchestrator/config"
	"github.com/mao-research/mao/orchestrator/daemon"
	"github.com/mao-research/mao/orchestrator/etcdclient"
	"github.com/mao-research/mao/orchestrator/pki"
	"github.com/mao-research/mao/orchestrator/store"
)

// Epoch is where a site's clock starts unless Options.Now says otherwise:
// 2025-03-14T12:26:00Z.
var Epoch = time.Date(2025, 3, 14, 12, 26, 0, 0, time.UTC)

// Options say what kind of site to start.
type Options struct {
	Name     string            // the site's name; default "lab-a"
	Labels   map[string]string // [site] labels
	Timezone string            // [site] timezone, the default of new schedules; default UTC
	// Tokens are the API's named, scoped tokens ([tokens] NAME =
	// SCOPE:SECRET); none: no authentication, every caller an admin.
	Tokens     []config.Token
	NotifyURLs []string // [notify] urls, the site's channels
	// APITLS makes the API serve HTTPS with a certificate of a throwaway
	// authority (testenv.TLSFiles), whose certificate is Site.APICAFile.
	APITLS bool
	// Docker makes the site use the local Docker engine, for tests that
	// really run containers: the test fails without one when
	// MAO_REQUIRE_DOCKER=1, and skips otherwise. By default the site's
	// Docker host is a unix socket that does not exist, so nothing
	// reaches Docker: runs fail at their image, health says degraded, and
	// no image is usable for a requested run.
	Docker bool
	// Etcd, when set, are the endpoints of an external etcd cluster the
	// site uses instead of its embedded member (a cluster a test stops, or
	// one that two real sites share, see Join). The first site on it
	// founds the federation's certificates and publishes its CA there.
	Etcd []string
	// Join, when set, is a site of the federation this one joins, as a
	// new site does: Join issues a join token (federation add-site, with
	// its admin token) and this site starts with it ([etcd] join_token),
	// on Join's etcd, which must be external (Etcd): it gets the
	// federation's certificates, so that each site reads the logs of the
	// other's runs over mutual TLS.
	Join *Site
	// RequestTimeout bounds each etcd request ([etcd] request_timeout);
	// default the config's.
	RequestTimeout time.Duration
	// AdvertisedPorts makes the embedded etcd member listen on free ports
	// that it advertises, as a member of a real federation does. By
	// default it listens on port 0 and advertises that: its ID is the
	// same on every run, but asking it for its status at its advertised
	// URL (federation status) waits for the request timeout.
	AdvertisedPorts bool
	// MaxVoters is [federation] max_voters; default the config's.
	MaxVoters int
	// Clock is the site's clock; default a new Clock at Now. Sites of one
	// federation share one.
	Clock *Clock
	Now   time.Time // where a new clock starts; default Epoch
}

// Site is a started orchestrator, stopped when the test ends.
type Site struct {
	Name      string
	Addr      string // the API's base URL, http://127.0.0.1:PORT (https:// with APITLS)
	APICAFile string // with APITLS: the certificate of the authority that signed the API's
	Config    config.Config
	Clock     *Clock
	Endpoints []string // etcd client endpoints
	// FederationAddr is where other sites reach this one (https://host:port,
	// from its record), "" for a site without the federation's
	// certificates.
	FederationAddr string
	// Etcd is a client of the site's etcd as the site itself: with the
	// site's certificate (etcd user site:NAME) for its embedded member, as
	// the site connects for an external cluster.
	Etcd *clientv3.Client
	// Store is the real store over Etcd, with the site's prefix and
	// clock: seeding goes through it.
	Store *store.Store
	// PKI is the site's certificates (<data_dir>/pki), "" for a site that
	// has none.
	PKI pki.Dir

	admin  string // the secret of an admin token of the API, "" without authentication
	docker bool
	mu     sync.Mutex
	seeded map[string]bool // IDs of the runs the test put in place
	stop   func() error
}

// Start starts a site and waits until its API answers.
func Start(t testing.TB, opts Options) *Site {
	t.Helper()
	if opts.Name == "" {
		opts.Name = "lab-a"
	}
	if opts.Docker {
		testenv.Docker(t) // fails or skips without an engine
	}
	clock := opts.Clock
	if clock == nil {
		now := opts.Now
		if now.IsZero() {
			now = Epoch
		}
		clock = NewClock(now)
	}
	for attempt := 1; ; attempt++ {
		s, err := start(t, opts, clock)
		// A free port can be taken by another process before the member
		// binds it; then the site starts again on other ports.
		if err != nil && opts.AdvertisedPorts && attempt < 3 && strings.Contains(err.Error(), "address already in use") {
			t.Logf("start site %s: %v; starting again on other ports", opts.Name, err)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
}

// start starts a site or says why it cannot.
func start(t testing.TB, opts Options, clock *Clock) (*Site, error) {
	t.Helper()
	etcd := opts.Etcd
	if opts.Join != nil {
		if len(etcd) == 0 {
			etcd = opts.Join.Config.Etcd.Endpoints
		}
		if len(etcd) == 0 {
			t.Fatalf("site %s joins %s, whose etcd is its embedded member: start %s on an external etcd (Options.Etcd)",
				opts.Name, opts.Join.Name, opts.Join.Name)
		}
	}
	cfg := testenv.SiteConfig(t, opts.Name, etcd)
	if opts.AdvertisedPorts && len(etcd) == 0 {
		// The embedded member serves mutual TLS only.
		cfg.Etcd.ClientURL, cfg.Etcd.PeerURL = "https://"+testenv.ClosedPort(t), "https://"+testenv.ClosedPort(t)
	}
	// Tests of clients do not wait for this site's lease to expire; a
	// short one expires when a busy machine keeps etcd from answering for
	// a moment, and the site then abandons its runs.
	cfg.Site.LeaseTTL = 10 * time.Second
	// A container stopped at its timeout exits on SIGTERM: give it the
	// time to, so that its exit code is its own and not SIGKILL's.
	cfg.Runs.StopGrace = 10 * time.Second
	cfg.Site.Labels = opts.Labels
	if opts.Timezone != "" {
		cfg.Site.Timezone = opts.Timezone
	}
	cfg.API.Tokens = opts.Tokens
	admin := ""
	for _, tok := range opts.Tokens {
		if tok.Scope == config.ScopeAdmin {
			admin = tok.Secret
			break
		}
	}
	if len(opts.Tokens) > 0 && admin == "" {
		t.Fatalf("site %s: give it an admin token too, for the test's own calls", opts.Name)
	}
	var apiCA string
	if opts.APITLS {
		apiCA, cfg.API.TLSCertFile, cfg.API.TLSKeyFile = testenv.TLSFiles(t)
	}
	if opts.Join != nil {
		res, err := opts.Join.Client(t, opts.Join.admin).AddSite(context.Background(), api.AddSiteRequest{Name: opts.Name})
		if err != nil {
			return nil, fmt.Errorf("site %s: a join token from %s: %w", opts.Name, opts.Join.Name, err)
		}
		cfg.Etcd.JoinToken = res.Token
	}
	cfg.Notify.URLs = opts.NotifyURLs
	if opts.RequestTimeout > 0 {
		cfg.Etcd.RequestTimeout = opts.RequestTimeout
	}
	if opts.MaxVoters > 0 {
		cfg.Federation.MaxVoters = opts.MaxVoters
	}
	if !opts.Docker {
		cfg.Docker.Host = "unix://" + filepath.Join(cfg.Site.DataDir, "no-docker.sock")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}

	logs := &logCapture{}
	ctx, cancel := context.WithCancel(context.Background())
	d, err := daemon.Start(ctx, cfg, daemon.Options{Log: slog.New(logs.handler()), Clock: clock})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("start site %s: %w\n%s", opts.Name, err, logs.text())
	}
	stopped := false
	var stopErr error
	stop := func() error {
		if !stopped {
			stopped = true
			cancel()
			stopErr = d.Wait()
		}
		return stopErr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("site %s stopped with: %v", opts.Name, err)
		}
		if t.Failed() {
			t.Logf("log of site %s:\n%s", opts.Name, logs.text())
		}
	})

	addr, err := os.ReadFile(filepath.Join(cfg.Site.DataDir, daemon.AddrFile))
	if err != nil {
		t.Fatal(err)
	}
	endpoints := cfg.Etcd.Endpoints
	if len(endpoints) == 0 {
		if endpoints = logs.endpoints(); len(endpoints) == 0 {
			t.Fatalf("site %s did not log its embedded etcd's endpoints", opts.Name)
		}
	}
	// A client as the site's own: with the site's certificate, which its
	// embedded member requires (and whose etcd user may write the prefix),
	// or as configured for an external cluster; as the daemon connects.
	etcdCfg, err := etcdclient.Config(cfg.Etcd, endpoints)
	if err != nil {
		t.Fatal(err)
	}
	dir := pki.Dir(filepath.Join(cfg.Site.DataDir, "pki"))
	if !dir.Exists() {
		dir = ""
	}
	if cfg.Etcd.Embedded() {
		if etcdCfg.TLS, err = dir.ClientTLS(pki.SiteCertFile, pki.SiteKeyFile); err != nil {
			t.Fatal(err)
		}
	}
	c, err := clientv3.New(etcdCfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() }) // before the site stops: cleanups run last first
	st := store.New(c, store.Options{Prefix: cfg.Etcd.Prefix, Timeout: cfg.Etcd.RequestTimeout, Clock: clock})
	sites, err := st.Sites(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var fedAddr string
	for _, r := range sites {
		if r.Name == opts.Name {
			fedAddr = r.FederationAddr
		}
	}
	return &Site{
		Name:           opts.Name,
		FederationAddr: fedAddr,
		Addr:           strings.TrimSpace(string(addr)),
		APICAFile:      apiCA,
		Config:         cfg,
		Clock:          clock,
		Endpoints:      endpoints,
		Etcd:           c,
		Store:          st,
		PKI:            dir,
		admin:          admin,
		docker:         opts.Docker,
		seeded:         map[string]bool{},
		stop:           stop,
	}, nil
}

// Stop shuts the site down cleanly, as SIGTERM does, and returns why it
// stopped (nil after a clean shutdown).
func (s *Site) Stop() error { return s.stop() }

// Client is an API client of the site with token ("" for none).
func (s *Site) Client(t testing.TB, token string) *api.Client {
	t.Helper()
	var hc *http.Client
	if s.APICAFile != "" {
		pem, err := os.ReadFile(s.APICAFile)
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			t.Fatalf("%s holds no certificate", s.APICAFile)
		}
		hc = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	}
	c, err := api.NewClient(s.Addr, token, hc)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// AdminClient is an API client of the site with an admin token (none for
// a site without authentication).
func (s *Site) AdminClient(t testing.TB) *api.Client { return s.Client(t, s.admin) }

// Advance moves the site's clock forward by d. It fires no timer: the
// site's waits take real time (see Clock).
func (s *Site) Advance(d time.Duration) { s.Clock.Advance(d) }

// Now is the site's time.
func (s *Site) Now() time.Time { return s.Clock.Now().UTC() }

// logCapture keeps the site's log records, for a failed test, and the
// endpoints of its embedded etcd member, which the site logs once it has
// started it.
type logCapture struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	urls []string
}

func (l *logCapture) handler() slog.Handler { return &logHandler{l: l} }

func (l *logCapture) text() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logCapture) endpoints() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.urls
}

// logHandler writes records as text into its logCapture.
type logHandler struct {
	l     *logCapture
	attrs []slog.Attr
	group string
}

func (h *logHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *logHandler) Handle(ctx context.Context, r slog.Record) error {
	h.l.mu.Lock()
	defer h.l.mu.Unlock()
	if r.Message == "embedded etcd started" {
		r.Attrs(func(a slog.Attr) bool {
			if urls, ok := a.Value.Any().([]string); ok && a.Key == "endpoints" {
				h.l.urls = urls
			}
			return true
		})
	}
	var out slog.Handler = slog.NewTextHandler(&h.l.buf, &slog.HandlerOptions{Level: slog.LevelDebug}).WithAttrs(h.attrs)
	if h.group != "" {
		out = out.WithGroup(h.group)
	}
	return out.Handle(ctx, r)
}

func (h *logHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &logHandler{l: h.l, attrs: append(append([]slog.Attr{}, h.attrs...), attrs...), group: h.group}
}

func (h *logHandler) WithGroup(name string) slog.Handler {
	return &logHandler{l: h.l, attrs: h.attrs, group: name}
}

// must fails the test on err.
func must(t testing.TB, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func (s *Site) markSeeded(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seeded[id] = true
}

func (s *Site) isSeeded(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seeded[id]
}

func (s *Site) ctx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}
