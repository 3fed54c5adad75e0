package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Config is the orchestrator's configuration.
type Config struct {
	Site       Site
	Etcd       Etcd
	Federation Federation
	API        API
	Docker     Docker
	Runs       Runs
	Schedules  Schedules
	Detector   Detector
	Notify     Notify
	Git        Git
	// Warnings are non-fatal notes, e.g. legacy sections that were mapped
	// or ignored. The daemon should log them at startup.
	Warnings []string
}

// Site is the [site] section: who this orchestrator is and where it keeps data.
type Site struct {
	Name        string            // default: the host name, lowercased and sanitised
	DataDir     string            // default: $XDG_DATA_HOME/mao or ~/.local/share/mao; always absolute
	HostDataDir string            // DataDir as the Docker host sees it; default DataDir
	Labels      map[string]string // "labels = gpu=true, region=eu"
	LeaseTTL    time.Duration     // key lease_ttl; default 10s, at least 2s
	// Timezone is the IANA name (e.g. Europe/Zurich) of the default time
	// zone of schedules created at this site; default "UTC". Validate has
	// checked that time.LoadLocation accepts it; callers load it themselves.
	Timezone string
}

// Etcd is the [etcd] section. An orchestrator reaches etcd in one of two
// ways: through Endpoints of an external cluster (with optional client
// TLS), or, when Endpoints is empty, through an embedded member that starts
// a new cluster or joins a running one.
type Etcd struct {
	Endpoints      []string      // external cluster; empty means run the embedded member
	Prefix         string        // key prefix; default "/mao/"
	DialTimeout    time.Duration // default 5s
	RequestTimeout time.Duration // default 5s

	// CAFile, CertFile and KeyFile (keys ca_file, cert_file, key_file) are
	// client TLS files for an external cluster, absolute paths; all are
	// optional. CAFile verifies the servers (default: the system's roots);
	// CertFile and KeyFile, set together, are the client certificate.
	// Validate has checked that each set file is readable.
	CAFile   string
	CertFile string
	KeyFile  string

	// ClientURL and PeerURL are for the embedded member only; port 0 means
	// a free port, for a one-member cluster only. The member serves mutual
	// TLS with the federation's certificates, so both are https.
	ClientURL string // default https://127.0.0.1:2379
	PeerURL   string // default https://127.0.0.1:2380
	// JoinToken (key join_token) is the one-time token, from maoctl
	// federation add-site at a site of the federation, with which this
	// site joins it and gets its certificates. Read at the first start
	// only: a site that has its certificates ignores it.
	JoinToken string
	// Gateway (key grpc_gateway) turns on etcd's HTTP/JSON gateway on the
	// embedded member's client port; default off. It is TLS with client
	// certificates like the rest of the port, and allows no cross-origin
	// requests.
	Gateway bool

	// AutoCompactionMode (key auto_compaction_mode) is how the embedded
	// member compacts its history: "periodic" (the default) keeps
	// AutoCompactionRetention of time, "revision" that many revisions.
	AutoCompactionMode string
	// AutoCompactionRetention (key auto_compaction_retention) is a
	// duration for periodic (default 1h) or a number of revisions for
	// revision (default 10000).
	AutoCompactionRetention string
	// QuotaBytes (key quota_backend_bytes) is the embedded member's
	// database quota, past which etcd raises NOSPACE and refuses writes;
	// default 2GiB (etcd's), from 16MiB to 8GiB.
	QuotaBytes int64
	// DefragFreePercent (key defrag_free_percent) is the share of the
	// embedded member's database, in percent, that must be free (left by
	// compacted history) before the site defragments it; default 50,
	// from 10 to 90.
	DefragFreePercent int
	// MaintenanceInterval (key maintenance_interval) is how often the
	// site looks at its etcd's alarms and, for the embedded member, at
	// its database's size; default 10s, at least 1s.
	MaintenanceInterval time.Duration
}

// Federation is the [federation] section: what sites offer each other.
type Federation struct {
	// Listen is where this site serves the federation API (logs of its
	// runs, joins of new sites) to other sites, over mutual TLS; port 0
	// picks a free port, which other sites read from this site's record.
	// Default 127.0.0.1:0: set an address the other sites can reach.
	Listen string
	// TokenTTL (key token_ttl) is how long a join token is good; default 1h.
	TokenTTL time.Duration
	// MaxVoters (key max_voters) is how many of the federation's etcd
	// members vote at most: an odd number, default 3. The others are
	// learners, which hold every record but do not count towards quorum.
	// Every site should have the same value: a site applies its own when
	// it decides about its member's vote.
	MaxVoters int
}

// TLS reports whether any client TLS file is set.
func (e Etcd) TLS() bool { return e.CAFile != "" || e.CertFile != "" || e.KeyFile != "" }

// The modes of etcd.auto_compaction_mode.
const (
	CompactPeriodic = "periodic"
	CompactRevision = "revision"
)

// Embedded reports whether the orchestrator runs its own etcd member.
func (e Etcd) Embedded() bool { return len(e.Endpoints) == 0 }

// API is the [api] section, and the tokens of the [tokens] section.
type API struct {
	Listen string // host:port; default 127.0.0.1:8080; port 0 means a free port
	// Tokens are the accepted bearer tokens: those of [tokens], then
	// api.tokens and api.tokens_file. Empty means no authentication, which
	// Validate allows only on a loopback Listen or with InsecureNoAuth.
	Tokens []Token
	// InsecureNoAuth (key insecure_no_auth) allows a Listen that other
	// machines can reach without tokens. Default false.
	InsecureNoAuth bool
	// OpenMetrics (key open_metrics) serves GET /metrics without a token,
	// for a scraper that sends none. Default false: a token of scope read.
	OpenMetrics bool
	// Hostnames are the names and addresses, besides the site's own (see
	// httpapi), that the Host header of a request may carry: the names
	// people and other sites reach the API by. Without them a request
	// for another name is refused (DNS rebinding).
	Hostnames []string
	// UseTLS (key tls) makes the API serve HTTPS only, with the site's
	// certificate from the federation's CA (<data_dir>/pki/site.crt),
	// unless TLSCertFile and TLSKeyFile name another. Default false.
	UseTLS bool
	// TLSCertFile and TLSKeyFile (keys tls_cert_file, tls_key_file),
	// set together, make the API serve HTTPS only, with this PEM
	// certificate and key. Validate has checked that they are readable.
	TLSCertFile string
	TLSKeyFile  string
	// MaxConnections (key max_connections) bounds the connections the
	// API holds open at once (a followed log holds one); more wait to be
	// accepted. Default 256.
	MaxConnections int
}

// TLS reports whether the API serves HTTPS.
func (a API) TLS() bool { return a.UseTLS || a.TLSCertFile != "" }

// The scopes of a token: what it may do through the API.
const (
	ScopeRead  = "read"  // every GET
	ScopeRun   = "run"   // read, and start runs and test the site's own channels
	ScopeAdmin = "admin" // everything
)

// Token is one accepted bearer token.
type Token struct {
	// Name says who uses the token, in logs and run records; it is never
	// the secret. The key of a [tokens] entry, the first field of a
	// "NAME SCOPE SECRET" line of tokens_file, or, for a token that has
	// none, generated: api.tokens[N] (the Nth of api.tokens) or
	// tokens_file:LINE.
	Name   string
	Scope  string // ScopeRead, ScopeRun or ScopeAdmin; admin for a token without a name
	Secret string
	// Key is the config key that set it, for messages: tokens.NAME,
	// api.tokens or api.tokens_file.
	Key string
}

// Docker is the [docker] section.
type Docker struct {
	Host string // "" means Docker's own default (DOCKER_HOST or the local socket)
}

// Runs is the [runs] section.
type Runs struct {
	ShutdownGrace time.Duration // key shutdown_grace; how long SIGTERM waits for running runs; default 30s
	StopGrace     time.Duration // key stop_grace; SIGTERM→SIGKILL grace when a container is stopped; default 10s
	LogDir        string        // default <data_dir>/logs; always absolute
	// PrepareTimeout (key prepare_timeout) is the longest a run may spend
	// preparing (cloning or fetching its data repository and input dataset,
	// pulling its image) before it fails; default 15m.
	PrepareTimeout time.Duration
	// PidsLimit (key pids_limit) is the most processes and threads a run's
	// container may have at once; default 4096, from 16 to 4194304. A fork
	// bomb stops there instead of exhausting the machine.
	PidsLimit int
	// DefaultMemory (key default_memory) is the memory limit in bytes of
	// the container of a tool whose spec sets no resources.memory; default
	// 4GiB, at least 6MiB. A tool's own memory wins, above it or below.
	DefaultMemory int64
	// AllowHostNetwork (key allow_host_network) lets tools with network
	// host run at this site and be registered through its API; default
	// false: such runs fail and such registrations are refused (400).
	AllowHostNetwork bool
	// MaxOutputBytes and MaxOutputFiles (keys max_output_bytes,
	// max_output_files) bound one run's output: the bytes of the files it
	// creates or changes in its data folder, and how many files, links
	// and directories it creates or changes. Beyond either the run fails,
	// naming the limit, and its output is discarded. Defaults 10GiB and
	// 100000.
	MaxOutputBytes int64
	MaxOutputFiles int
	// History (key history) is how many runs asked for by hand (manual
	// runs and replays) each tool keeps in etcd at this site; older ended
	// ones are pruned together with their log files. Default 100, from 1
	// to 100000. MaxAge (key max_age), if set, prunes such runs that ended
	// longer ago too; default 0, no age limit.
	History int
	MaxAge  time.Duration
}

// Schedules is the [schedules] section.
type Schedules struct {
	// History is how many run records each schedule keeps in etcd; older
	// ones are pruned together with their log files. Default 100, from 1
	// to 100000.
	History int
}

// Detector is the [detector] section.
type Detector struct {
	// SeriesLength (key series_length) is how many values each series
	// (one metric of one tool at one site) keeps in etcd; default 1000.
	SeriesLength int
}

// Notify is the [notify] section.
type Notify struct {
	// URLs are shoutrrr channel URLs, separated by whitespace (a URL may
	// hold commas), notified of every tool's events besides the tool's own
	// notify list. They hold secrets: never log them.
	URLs []string
	// Cooldown is how long a lasting spike or failure stays quiet after
	// it was notified; default 24h.
	Cooldown time.Duration
	// Attempts is how often a message is tried per channel; default 5.
	Attempts int
	// TitleTemplate (key title_template) and BodyTemplateFile (key
	// body_template_file) override the messages' title and body as Go
	// text/template; empty: the defaults.
	TitleTemplate    string
	BodyTemplateFile string
}

// Git is the [git] section: how this site reaches the git servers of data
// repositories and datasets, and how it signs its commits. Credentials
// live here (in the files it names), never in the shared registry; they
// are never logged.
type Git struct {
	// SSHKeyFile (key ssh_key_file) is the private key, without a
	// passphrase, for ssh:// and user@host:path repositories; without
	// one, the keys of the ssh-agent at $SSH_AUTH_SOCK are offered.
	SSHKeyFile string
	// KnownHostsFile (key known_hosts_file) lists the SSH servers' host
	// keys, as OpenSSH's known_hosts; default ~/.ssh/known_hosts. A server
	// whose key it does not list is refused.
	KnownHostsFile string
	// CheckHostKeys (key check_host_keys) is true by default; false
	// believes any SSH server that answers for a host.
	CheckHostKeys bool
	// CredentialsFile (key credentials_file) holds HTTPS passwords or
	// tokens in git's credential-store format, one
	// https://USER:PASSWORD@HOST[/PATH] per line.
	CredentialsFile string
	// CAFile (key ca_file) is a PEM bundle of the certificate authorities
	// of HTTPS git servers, besides the system's.
	CAFile string
	// AuthorName and AuthorEmail (keys author_name, author_email) sign
	// the commits of runs' output; default mao and mao@localhost.
	AuthorName  string
	AuthorEmail string
	// PushFailedAfter (key push_failed_after) is how long a run's commit
	// may fail to reach its data repository before push_failed is
	// notified; default 1h.
	PushFailedAfter time.Duration
	// PushRetryMax (key push_retry_max) is the longest wait between two
	// attempts of a failing push: the waits start at 1s and double up to
	// it; default 5m.
	PushRetryMax time.Duration
}

// Defaults that do not depend on the machine.
const (
	defaultLeaseTTL       = 10 * time.Second
	minLeaseTTL           = 2 * time.Second
	defaultTimezone       = "UTC"
	defaultPrefix         = "/mao/"
	defaultEtcdTimeout    = 5 * time.Second
	defaultClientURL      = "https://127.0.0.1:2379"
	defaultPeerURL        = "https://127.0.0.1:2380"
	defaultFederation     = "127.0.0.1:0"
	defaultTokenTTL       = time.Hour
	defaultCompaction     = CompactPeriodic
	defaultPeriodicKeep   = "1h"
	defaultRevisionKeep   = "10000"
	defaultQuotaBytes     = 2 << 30 // etcd's default
	minQuotaBytes         = 16 << 20
	maxQuotaBytes         = 8 << 30 // etcd's advice: no more
	defaultDefragFree     = 50
	defaultMaintenance    = 10 * time.Second
	defaultMaxVoters      = 3
	maxMaxVoters          = 7 // etcd's advice: more voters only slow writes down
	defaultListen         = "127.0.0.1:8080"
	defaultShutdownGrace  = 30 * time.Second
	defaultStopGrace      = 10 * time.Second
	defaultPrepareTimeout = 15 * time.Minute
	defaultPidsLimit      = 4096
	minPidsLimit          = 16
	maxPidsLimit          = 4194304 // the kernel's largest pid_max
	defaultMemory         = 4 << 30
	minMemory             = 6 << 20 // as toolspec: Docker refuses less
	maxMemory             = 1 << 50 // as toolspec
	defaultMaxConnections = 256
	maxMaxConnections     = 100000
	minTokenSecret        = 16 // shorter secrets are warned about
	defaultMaxOutputBytes = 10 << 30
	maxMaxOutputBytes     = 1 << 50
	defaultMaxOutputFiles = 100000
	maxMaxOutputFiles     = 100000000
	defaultHistory        = 100
	maxHistory            = 100000
	defaultSeriesLength   = 1000
	maxSeriesLength       = 10000 // a series is one etcd value
	defaultAttempts       = 5
	defaultCooldown       = 24 * time.Hour // as notify.DefaultCooldown; config does not depend on notify
	defaultAuthorName     = "mao"
	defaultAuthorEmail    = "mao@localhost"
	defaultPushFailed     = time.Hour
	defaultPushRetryMax   = 5 * time.Minute
)

// Default returns the configuration used when there is no config file. Its
// site name comes from the host name and its data directory from
// $XDG_DATA_HOME or $HOME; DataDir is empty when neither is known, which
// Validate reports.
func Default() Config {
	c := base()
	c.derive()
	return c
}

// base is Default without the fields derived from data_dir.
func base() Config {
	name := ""
	if h, err := os.Hostname(); err == nil {
		name = sanitizeName(h)
	}
	if name == "" {
		name = "site"
	}
	return Config{
		Site: Site{Name: name, DataDir: defaultDataDir(), LeaseTTL: defaultLeaseTTL, Timezone: defaultTimezone},
		Etcd: Etcd{
			Prefix:         defaultPrefix,
			DialTimeout:    defaultEtcdTimeout,
			RequestTimeout: defaultEtcdTimeout,
			ClientURL:      defaultClientURL,
			PeerURL:        defaultPeerURL,

			AutoCompactionMode:  defaultCompaction,
			QuotaBytes:          defaultQuotaBytes,
			DefragFreePercent:   defaultDefragFree,
			MaintenanceInterval: defaultMaintenance,
		},
		Federation: Federation{Listen: defaultFederation, TokenTTL: defaultTokenTTL, MaxVoters: defaultMaxVoters},
		API:        API{Listen: defaultListen, MaxConnections: defaultMaxConnections},
		Runs: Runs{ShutdownGrace: defaultShutdownGrace, StopGrace: defaultStopGrace, PrepareTimeout: defaultPrepareTimeout,
			PidsLimit: defaultPidsLimit, DefaultMemory: defaultMemory,
			MaxOutputBytes: defaultMaxOutputBytes, MaxOutputFiles: defaultMaxOutputFiles, History: defaultHistory},
		Schedules: Schedules{History: defaultHistory},
		Detector:  Detector{SeriesLength: defaultSeriesLength},
		Notify:    Notify{Cooldown: defaultCooldown, Attempts: defaultAttempts},
		Git: Git{CheckHostKeys: true, AuthorName: defaultAuthorName, AuthorEmail: defaultAuthorEmail,
			PushFailedAfter: defaultPushFailed, PushRetryMax: defaultPushRetryMax},
	}
}

// derive fills the fields whose defaults follow data_dir.
func (c *Config) derive() {
	if c.Etcd.AutoCompactionRetention == "" {
		c.Etcd.AutoCompactionRetention = defaultPeriodicKeep
		if c.Etcd.AutoCompactionMode == CompactRevision {
			c.Etcd.AutoCompactionRetention = defaultRevisionKeep
		}
	}
	if c.Site.HostDataDir == "" {
		c.Site.HostDataDir = c.Site.DataDir
	}
	if c.Runs.LogDir == "" && c.Site.DataDir != "" {
		c.Runs.LogDir = filepath.Join(c.Site.DataDir, "logs")
	}
}

func defaultDataDir() string {
	if x := os.Getenv("XDG_DATA_HOME"); filepath.IsAbs(x) {
		return filepath.Join(x, "mao")
	}
	if home, err := os.UserHomeDir(); err == nil && filepath.IsAbs(home) {
		return filepath.Join(home, ".local", "share", "mao")
	}
	return ""
}

// sanitizeName turns s (a host name or the predecessor's user) into a site
// name: lowercase, other characters replaced by '-', leading punctuation
// dropped, at most 63 bytes. It returns "" when nothing is left.
func sanitizeName(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	name := strings.TrimLeft(b.String(), "._-")
	if len(name) > 63 {
		name = name[:63]
	}
	return name
}

// Load reads and validates the config file at path. An empty path means no
// file: the validated Default. A path that does not exist is an error.
func Load(path string) (Config, error) {
	if path == "" {
		c := Default()
		if err := c.Validate(); err != nil {
			return Config{}, err
		}
		return c, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read config: %w", err)
	}
	return Parse(data, path)
}

// Validate reports every problem with c at once, joined with errors.Join;
// each names its key as section.key.
func (c *Config) Validate() error {
	ps := c.problems()
	errs := make([]error, len(ps))
	for i := range ps {
		errs[i] = ps[i]
	}
	return errors.Join(errs...)
}

// problem is one thing wrong with one key, located in a file when known.
type problem struct {
	file string
	line int    // 0 when unknown
	key  string // "site.name", "WORKING_ENVIRONMENT.user" or "[section]"
	err  error
}

func (p problem) Error() string {
	loc := p.file
	switch {
	case p.line > 0 && loc != "":
		loc = fmt.Sprintf("%s:%d", loc, p.line)
	case p.line > 0:
		loc = fmt.Sprintf("line %d", p.line)
	}
	if loc != "" {
		loc += ": "
	}
	return loc + p.key + ": " + p.err.Error()
}

func (p problem) Unwrap() error { return p.err }
