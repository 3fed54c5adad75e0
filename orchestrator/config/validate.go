package config

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/mao-research/mao/toolspec"
)

// problems lists everything wrong with c, in the order of the file format.
func (c *Config) problems() []problem {
	var ps []problem
	check := func(key string, err error) {
		if err != nil {
			ps = append(ps, problem{key: key, err: err})
		}
	}

	check("site.name", toolspec.CheckName(c.Site.Name))
	// host_data_dir and log_dir default to data_dir and a folder in it, so
	// when data_dir is missing only data_dir is reported.
	dataDir := c.Site.DataDir != ""
	if !dataDir {
		check("site.data_dir", errors.New("is required: neither $XDG_DATA_HOME nor $HOME gives a default"))
	} else {
		check("site.data_dir", checkAbs(c.Site.DataDir))
		check("site.host_data_dir", checkAbs(c.Site.HostDataDir))
	}
	for _, k := range slices.Sorted(maps.Keys(c.Site.Labels)) {
		check("site.labels", checkLabel(k, c.Site.Labels[k]))
	}
	check("site.lease_ttl", checkDuration(c.Site.LeaseTTL, minLeaseTTL))
	check("site.timezone", checkTimezone(c.Site.Timezone))

	for i, e := range c.Etcd.Endpoints {
		check("etcd.endpoints", checkEntry(i, e, func(s string) error { return checkEndpoint(s, c.Etcd.TLS()) }))
	}
	for _, f := range []struct{ key, path string }{
		{"etcd.ca_file", c.Etcd.CAFile}, {"etcd.cert_file", c.Etcd.CertFile}, {"etcd.key_file", c.Etcd.KeyFile},
	} {
		switch {
		case f.path == "":
		case c.Etcd.Embedded():
			check(f.key, errors.New("is for an external cluster only, but etcd.endpoints is empty (the embedded member)"))
		default:
			check(f.key, checkReadable(f.path))
		}
	}
	if !c.Etcd.Embedded() {
		switch {
		case c.Etcd.CertFile != "" && c.Etcd.KeyFile == "":
			check("etcd.cert_file", errors.New("is set without etcd.key_file; set both or neither"))
		case c.Etcd.CertFile == "" && c.Etcd.KeyFile != "":
			check("etcd.key_file", errors.New("is set without etcd.cert_file; set both or neither"))
		}
	}
	check("etcd.prefix", checkPrefix(c.Etcd.Prefix))
	check("etcd.dial_timeout", checkDuration(c.Etcd.DialTimeout, 0))
	check("etcd.request_timeout", checkDuration(c.Etcd.RequestTimeout, 0))
	check("etcd.client_url", checkMemberURL(c.Etcd.ClientURL))
	check("etcd.peer_url", checkMemberURL(c.Etcd.PeerURL))
	if c.Etcd.PeerURL == c.Etcd.ClientURL && !strings.HasSuffix(c.Etcd.PeerURL, ":0") {
		check("etcd.peer_url", errors.New("is the same address as etcd.client_url"))
	}
	if c.Etcd.JoinToken != "" && hasSpaceOrControl(c.Etcd.JoinToken) {
		check("etcd.join_token", errors.New("must be one word, as maoctl federation add-site printed it"))
	}
	check("etcd.auto_compaction_retention", checkCompaction(c.Etcd.AutoCompactionMode, c.Etcd.AutoCompactionRetention))
	if m := c.Etcd.AutoCompactionMode; m != CompactPeriodic && m != CompactRevision {
		check("etcd.auto_compaction_mode", fmt.Errorf("%q is not %s or %s", m, CompactPeriodic, CompactRevision))
	}
	if q := c.Etcd.QuotaBytes; q < minQuotaBytes || q > maxQuotaBytes {
		check("etcd.quota_backend_bytes", fmt.Errorf("%d bytes is not from 16MiB to 8GiB", q))
	}
	if p := c.Etcd.DefragFreePercent; p < 10 || p > 90 {
		check("etcd.defrag_free_percent", fmt.Errorf("%d is not from 10 to 90", p))
	}
	check("etcd.maintenance_interval", checkDuration(c.Etcd.MaintenanceInterval, time.Second))
	check("federation.listen", checkListen(c.Federation.Listen))
	check("federation.token_ttl", checkDuration(c.Federation.TokenTTL, time.Minute))
	if n := c.Federation.MaxVoters; n < 1 || n > maxMaxVoters || n%2 == 0 {
		check("federation.max_voters", fmt.Errorf("%d is not an odd number from 1 to %d: an even number of voters is no safer "+
			"than one fewer, and needs one more of them up for a quorum", n, maxMaxVoters))
	}

	check("api.listen", checkListen(c.API.Listen))
	switch {
	case len(c.API.Tokens) == 0 && !c.API.InsecureNoAuth && checkListen(c.API.Listen) == nil && !isLoopback(c.API.Listen):
		check("api.listen", fmt.Errorf("%s is reachable from other machines, but no tokens are set: anyone who reaches it could use "+
			"the API, and through it the site's Docker engine. Add tokens in a [tokens] section (NAME = SCOPE:SECRET), "+
			"listen on 127.0.0.1, or set api.insecure_no_auth = true on a network you trust", c.API.Listen))
	case len(c.API.Tokens) > 0 && c.API.InsecureNoAuth:
		check("api.insecure_no_auth", errors.New("is true, but tokens are set and are required; remove one of them"))
	}
	ps = append(ps, tokenProblems(c.API.Tokens)...)
	for i, h := range c.API.Hostnames {
		check("api.hostnames", checkEntry(i, h, checkHostname))
	}
	switch {
	case c.API.TLSCertFile != "" && c.API.TLSKeyFile == "":
		check("api.tls_cert_file", errors.New("is set without api.tls_key_file; set both or neither"))
	case c.API.TLSCertFile == "" && c.API.TLSKeyFile != "":
		check("api.tls_key_file", errors.New("is set without api.tls_cert_file; set both or neither"))
	}
	if c.API.TLSCertFile != "" {
		check("api.tls_cert_file", checkReadable(c.API.TLSCertFile))
	}
	if c.API.TLSKeyFile != "" {
		check("api.tls_key_file", checkReadable(c.API.TLSKeyFile))
	}
	if n := c.API.MaxConnections; n < 1 || n > maxMaxConnections {
		check("api.max_connections", fmt.Errorf("%d is not from 1 to %d", n, maxMaxConnections))
	}

	check("docker.host", checkDockerHost(c.Docker.Host))

	check("runs.shutdown_grace", checkDuration(c.Runs.ShutdownGrace, 0))
	check("runs.stop_grace", checkDuration(c.Runs.StopGrace, 0))
	if c.Runs.StopGrace > 0 && c.Runs.StopGrace%time.Second != 0 {
		check("runs.stop_grace", fmt.Errorf("%s must be whole seconds: Docker's stop timeout counts seconds", c.Runs.StopGrace))
	}
	check("runs.prepare_timeout", checkDuration(c.Runs.PrepareTimeout, 0))
	if n := c.Runs.PidsLimit; n < minPidsLimit || n > maxPidsLimit {
		check("runs.pids_limit", fmt.Errorf("%d is not from %d to %d", n, minPidsLimit, maxPidsLimit))
	}
	if m := c.Runs.DefaultMemory; m < minMemory || m > maxMemory {
		check("runs.default_memory", fmt.Errorf("%d bytes is not from 6MiB to 1PiB", m))
	}
	if dataDir {
		check("runs.log_dir", checkAbs(c.Runs.LogDir))
	}
	if n := c.Runs.MaxOutputBytes; n < 1 || n > maxMaxOutputBytes {
		check("runs.max_output_bytes", fmt.Errorf("%d bytes is not from 1 byte to 1PiB", n))
	}
	if n := c.Runs.MaxOutputFiles; n < 1 || n > maxMaxOutputFiles {
		check("runs.max_output_files", fmt.Errorf("%d is not from 1 to %d", n, maxMaxOutputFiles))
	}

	if h := c.Runs.History; h < 1 || h > maxHistory {
		check("runs.history", fmt.Errorf("%d is not from 1 to %d", h, maxHistory))
	}
	if c.Runs.MaxAge < 0 {
		check("runs.max_age", fmt.Errorf("%s must not be negative (0: no age limit)", c.Runs.MaxAge))
	}
	if h := c.Schedules.History; h < 1 || h > maxHistory {
		check("schedules.history", fmt.Errorf("%d is not from 1 to %d", h, maxHistory))
	}
	if n := c.Detector.SeriesLength; n < 3 || n > maxSeriesLength {
		check("detector.series_length", fmt.Errorf("%d is not from 3 to %d", n, maxSeriesLength))
	}
	for i, u := range c.Notify.URLs {
		if err := toolspec.CheckChannelURL(u); err != nil {
			check("notify.urls", fmt.Errorf("entry %d %w", i+1, err))
		}
	}
	check("notify.cooldown", checkDuration(c.Notify.Cooldown, 0))
	if a := c.Notify.Attempts; a < 1 || a > 100 {
		check("notify.attempts", fmt.Errorf("%d is not from 1 to 100", a))
	}
	if f := c.Notify.BodyTemplateFile; f != "" {
		if _, err := os.Stat(f); err != nil {
			check("notify.body_template_file", err)
		}
	}
	for _, f := range []struct{ key, path string }{
		{"git.ssh_key_file", c.Git.SSHKeyFile}, {"git.known_hosts_file", c.Git.KnownHostsFile},
		{"git.credentials_file", c.Git.CredentialsFile}, {"git.ca_file", c.Git.CAFile},
	} {
		if f.path != "" {
			check(f.key, checkReadable(f.path))
		}
	}
	check("git.author_name", checkAuthor(c.Git.AuthorName, false))
	check("git.author_email", checkAuthor(c.Git.AuthorEmail, true))
	check("git.push_failed_after", checkDuration(c.Git.PushFailedAfter, 0))
	check("git.push_retry_max", checkDuration(c.Git.PushRetryMax, time.Second))
	return ps
}

// checkAuthor accepts a commit author's name, or e-mail address: one line
// of printable text without '<' and '>', which git's signature uses; an
// address has an '@' and no spaces.
func checkAuthor(s string, email bool) error {
	switch {
	case strings.TrimSpace(s) == "":
		return errors.New("is empty")
	case len(s) > 256:
		return fmt.Errorf("is %d bytes long; the limit is 256", len(s))
	case strings.ContainsAny(s, "<>") || strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0:
		return fmt.Errorf("%q must be printable, without '<' or '>'", s)
	case email && (!strings.Contains(s, "@") || strings.ContainsAny(s, " \t")):
		return fmt.Errorf("%q is not an e-mail address", s)
	}
	return nil
}

// tokenProblems checks each token's name, scope and secret, and that no two
// share a name or a secret. Messages name tokens, never their secrets.
func tokenProblems(tokens []Token) []problem {
	var ps []problem
	names := map[string]string{}   // name -> key
	secrets := map[string]string{} // secret -> name
	for _, t := range tokens {
		key := cmp.Or(t.Key, "tokens")
		add := func(format string, args ...any) {
			ps = append(ps, problem{key: key, err: fmt.Errorf("token %s: "+format, append([]any{t.Name}, args...)...)})
		}
		switch {
		case t.Name == "":
			ps = append(ps, problem{key: key, err: errors.New("a token has no name")})
		case strings.HasPrefix(key, "tokens."):
			if err := toolspec.CheckName(t.Name); err != nil {
				add("the name %v", err)
			}
		}
		switch t.Scope {
		case ScopeRead, ScopeRun, ScopeAdmin:
		default:
			add("scope %q is not read, run or admin", t.Scope)
		}
		switch err := checkToken(t.Secret); {
		case t.Secret == "":
			add("the secret is empty")
		case err != nil:
			add("the secret %v", err)
		}
		if other, ok := names[t.Name]; ok && t.Name != "" {
			add("the name is also given by %s; each token needs its own name", other)
		}
		if other, ok := secrets[t.Secret]; ok && t.Secret != "" {
			add("has the same secret as token %s; each token needs its own secret", other)
		}
		names[t.Name], secrets[t.Secret] = key, t.Name
	}
	return ps
}

// checkHostname accepts a DNS name or an IP address, without a port: a
// name the Host header of an API request may carry.
func checkHostname(h string) error {
	if net.ParseIP(h) != nil {
		return nil
	}
	if len(h) > 253 || !hostnameRe.MatchString(h) {
		return fmt.Errorf("%q is not a host name or IP address (no scheme, port or path)", h)
	}
	return nil
}

var hostnameRe = regexp.MustCompile(`^(?i)[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*\.?$`)

// checkTimezone accepts an IANA time zone name that time.LoadLocation
// loads. It refuses "", which LoadLocation reads as UTC, and "Local", which
// means the zone of whichever machine loads it, not one zone.
func checkTimezone(name string) error {
	switch name {
	case "":
		return fmt.Errorf("is empty; leave the key out for the default (%s)", defaultTimezone)
	case "Local":
		return errors.New(`"Local" is not an IANA time zone name; name the zone, e.g. Europe/Zurich`)
	}
	if _, err := time.LoadLocation(name); err != nil {
		return fmt.Errorf("%q is not a time zone this machine knows (want an IANA name such as Europe/Zurich): %w", name, err)
	}
	return nil
}

// checkEntry checks entry i of a comma-separated list with check.
func checkEntry(i int, s string, check func(string) error) error {
	if s == "" {
		return fmt.Errorf("entry %d is empty", i+1)
	}
	if err := check(s); err != nil {
		return fmt.Errorf("entry %d: %w", i+1, err)
	}
	return nil
}

func checkAbs(p string) error {
	if !filepath.IsAbs(p) {
		return fmt.Errorf("%q must be an absolute path", p)
	}
	return nil
}

// checkCompaction checks auto_compaction_retention for its mode: a
// duration of at least a minute (periodic), or a whole number of at
// least 1000 revisions (revision). An unknown mode is reported apart.
func checkCompaction(mode, keep string) error {
	switch mode {
	case CompactPeriodic:
		d, err := time.ParseDuration(keep)
		if err != nil {
			return fmt.Errorf("%q is not a duration such as 1h (auto_compaction_mode is %s)", keep, mode)
		}
		return checkDuration(d, time.Minute)
	case CompactRevision:
		n, err := strconv.ParseInt(keep, 10, 64)
		if err != nil || n < 1000 {
			return fmt.Errorf("%q is not a whole number of at least 1000 revisions (auto_compaction_mode is %s)", keep, mode)
		}
	}
	return nil
}

// checkDuration requires d > 0 and d >= least.
func checkDuration(d, least time.Duration) error {
	switch {
	case d <= 0:
		return fmt.Errorf("%s must be positive", d)
	case d < least:
		return fmt.Errorf("%s is below the minimum of %s", d, least)
	}
	return nil
}

// checkLabel accepts a key shaped like a name and a non-empty printable
// value without commas.
func checkLabel(k, v string) error {
	if err := toolspec.CheckName(k); err != nil {
		return fmt.Errorf("label key %w", err)
	}
	if v == "" {
		return fmt.Errorf("label %s has an empty value", k)
	}
	for _, r := range v {
		if r == ',' || !unicode.IsPrint(r) {
			return fmt.Errorf("label %s: value %q must be printable and have no commas", k, v)
		}
	}
	return nil
}

// checkURL accepts http(s)://host:port with nothing after the port. Port 0
// (a free port) is allowed only for addresses the orchestrator listens on.
func checkURL(s string, listen bool) error {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Hostname() == "" {
		return fmt.Errorf("%q: want http://host:port or https://host:port", s)
	}
	if u.User != nil || u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%q: want only scheme, host and port", s)
	}
	return checkPort(u.Port(), listen)
}

// checkEndpoint checks an external etcd endpoint; with client TLS files
// set it must be https.
func checkEndpoint(s string, tls bool) error {
	if err := checkURL(s, false); err != nil {
		return err
	}
	if tls && strings.HasPrefix(s, "http://") {
		return fmt.Errorf("%q is plain http, but etcd.ca_file, cert_file or key_file is set: use https://", s)
	}
	return nil
}

// checkMemberURL checks an embedded member's URL: https (the member
// serves mutual TLS only), a host and a port.
func checkMemberURL(s string) error {
	if err := checkURL(s, true); err != nil {
		return err
	}
	if u, _ := url.Parse(s); u.Scheme != "https" {
		return fmt.Errorf("%q: the embedded etcd serves mutual TLS only: use https://", s)
	}
	return nil
}

// checkReadable requires p to be an absolute path of a regular file that
// can be opened for reading.
func checkReadable(p string) error {
	if err := checkAbs(p); err != nil {
		return err
	}
	st, err := os.Stat(p)
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", p)
	}
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	return f.Close()
}

func checkPort(port string, listen bool) error {
	n, err := strconv.Atoi(port)
	switch {
	case port == "":
		return errors.New("the port is missing")
	case err != nil || n < 0 || n > 65535:
		return fmt.Errorf("port %q is not a number from 0 to 65535", port)
	case n == 0 && !listen:
		return errors.New("port 0 is only allowed for addresses mao listens on")
	}
	return nil
}

func checkListen(s string) error {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not host:port: %w", s, err)
	}
	return checkPort(port, true)
}

// checkPrefix accepts an etcd key prefix such as "/mao/".
func checkPrefix(s string) error {
	if !strings.HasPrefix(s, "/") || !strings.HasSuffix(s, "/") || strings.Contains(s, "//") {
		return fmt.Errorf("%q must start and end with '/' and have no empty segment, e.g. /mao/", s)
	}
	if hasSpaceOrControl(s) {
		return fmt.Errorf("%q must not contain spaces or control characters", s)
	}
	return nil
}

// checkToken requires a bearer token to be usable as is in an HTTP
// Authorization header: visible ASCII only. Its messages never include the
// token.
func checkToken(s string) error {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return errors.New("must be visible ASCII characters, without whitespace")
		}
	}
	return nil
}

func hasSpaceOrControl(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) || unicode.IsSpace(r) }) >= 0
}

func checkDockerHost(s string) error {
	if s == "" {
		return nil
	}
	for _, scheme := range []string{"unix://", "tcp://", "npipe://"} {
		if rest, ok := strings.CutPrefix(s, scheme); ok && rest != "" {
			return nil
		}
	}
	return fmt.Errorf("%q: want unix://PATH, tcp://HOST:PORT or npipe://PATH", s)
}

// isLoopback reports whether the host of a host:port address is loopback.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	return err == nil && isLoopbackHost(host)
}

// isLoopbackHost reports whether host is "localhost" or a loopback IP.
func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
