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
	Site      Site
	Etcd      Etcd
	API       API
	Docker    Docker
	Runs      Runs
	Schedules Schedules
	Detector  Detector
	Notify    Notify
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
	// a free port, for a one-member cluster only.
	ClientURL string // default http://127.0.0.1:2379
	PeerURL   string // default http://127.0.0.1:2380
	// InitialCluster (key initial_cluster) lists every member of the
	// embedded member's cluster as "name=peerURL,name2=peerURL2" (etcd's
	// format); it includes this site, whose member name is Site.Name, with
	// PeerURL. Empty (the default) means a new cluster of this site alone.
	InitialCluster string
	// ClusterState (key cluster_state) is ClusterNew (the default), to
	// start a new cluster, or ClusterExisting, to join a running one
	// (which needs InitialCluster). etcd reads both only when the member's
	// data directory is empty; a restarted member ignores them.
	ClusterState string
}

// Values of Etcd.ClusterState.
const (
	ClusterNew      = "new"
	ClusterExisting = "existing"
)

// TLS reports whether any client TLS file is set.
func (e Etcd) TLS() bool { return e.CAFile != "" || e.CertFile != "" || e.KeyFile != "" }

// Embedded reports whether the orchestrator runs its own etcd member.
func (e Etcd) Embedded() bool { return len(e.Endpoints) == 0 }

// API is the [api] section.
type API struct {
	Listen string   // host:port; default 127.0.0.1:8080; port 0 means a free port
	Tokens []string // accepted bearer tokens (tokens and tokens_file); empty means no auth
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
	// MaxOutputBytes and MaxOutputFiles (keys max_output_bytes,
	// max_output_files) bound one run's output: the bytes of the files it
	// creates or changes in its data folder, and how many files, links
	// and directories it creates or changes. Beyond either the run fails,
	// naming the limit, and its output is discarded. Defaults 10GiB and
	// 100000.
	MaxOutputBytes int64
	MaxOutputFiles int
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

// Defaults that do not depend on the machine.
const (
	defaultLeaseTTL       = 10 * time.Second
	minLeaseTTL           = 2 * time.Second
	defaultTimezone       = "UTC"
	defaultPrefix         = "/mao/"
	defaultEtcdTimeout    = 5 * time.Second
	defaultClientURL      = "http://127.0.0.1:2379"
	defaultPeerURL        = "http://127.0.0.1:2380"
	defaultListen         = "127.0.0.1:8080"
	defaultShutdownGrace  = 30 * time.Second
	defaultStopGrace      = 10 * time.Second
	defaultPrepareTimeout = 15 * time.Minute
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
			ClusterState:   ClusterNew,
		},
		API: API{Listen: defaultListen},
		Runs: Runs{ShutdownGrace: defaultShutdownGrace, StopGrace: defaultStopGrace, PrepareTimeout: defaultPrepareTimeout,
			MaxOutputBytes: defaultMaxOutputBytes, MaxOutputFiles: defaultMaxOutputFiles},
		Schedules: Schedules{History: defaultHistory},
		Detector:  Detector{SeriesLength: defaultSeriesLength},
		Notify:    Notify{Cooldown: defaultCooldown, Attempts: defaultAttempts},
	}
}

// derive fills the fields whose defaults follow data_dir.
func (c *Config) derive() {
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
