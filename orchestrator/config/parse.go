package config

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"gopkg.in/ini.v1"

	"github.com/mao-research/mao/toolspec"
)

// knownSections names the sections of the current format, for messages.
const knownSections = "[site], [etcd], [api], [tokens], [docker], [runs], [schedules], [detector], [notify] or [git]"

// legacyField maps a key of the predecessor's [WORKING_ENVIRONMENT] to the
// field it sets, or "" for an unknown key.
func legacyField(key string) string {
	switch key {
	case "importdir":
		return "site.data_dir"
	case "hostdir":
		return "site.host_data_dir"
	case "user":
		return "site.name"
	}
	return ""
}

// Parse parses, completes and validates a config file's contents. name is
// used in messages, and relative paths in the file (data_dir, log_dir,
// tokens_file and etcd's TLS files) are resolved against its directory. On error the Config is
// zero and the error joins every problem found, each naming its key and,
// when known, its line.
func Parse(data []byte, name string) (Config, error) {
	f, err := ini.LoadSources(ini.LoadOptions{
		InsensitiveKeys:          true, // as Python's configparser, which wrote the predecessor's files
		IgnoreContinuation:       true, // a value never spans lines, so scan's line numbers hold
		SpaceBeforeInlineComment: true, // "#" and ";" inside a value (a token, a URL) are not comments
	}, data)
	lines := scan(data)
	if err != nil {
		if lines.bad.n > 0 {
			return Config{}, fmt.Errorf("%s:%d: malformed line %q: want \"key = value\" or \"[section]\"", name, lines.bad.n, lines.bad.text)
		}
		return Config{}, fmt.Errorf("%s: %w", name, err)
	}
	p := &parser{name: name, lines: lines, cfg: base(), from: map[string]string{}}
	p.set = p.cfg.setters(filepath.Dir(name))
	for _, s := range f.Sections() {
		p.section(s)
	}
	p.finish()
	if len(p.problems) > 0 {
		// In file order; problems without a line (from defaults) last.
		slices.SortStableFunc(p.problems, func(a, b problem) int {
			return cmp.Compare(uint(a.line-1), uint(b.line-1))
		})
		errs := make([]error, len(p.problems))
		for i := range p.problems {
			errs[i] = p.problems[i]
		}
		return Config{}, errors.Join(errs...)
	}
	return p.cfg, nil
}

// parser applies one file's sections to a Config and collects problems.
type parser struct {
	name     string
	lines    lineIndex
	cfg      Config
	set      map[string]func(string) error // bound to cfg
	from     map[string]string             // field ("site.name") -> the key that set it ("WORKING_ENVIRONMENT.user")
	problems []problem
}

func (p *parser) add(key string, err error) {
	p.addAt(p.lines.line(key), key, err)
}

func (p *parser) addAt(line int, key string, err error) {
	p.problems = append(p.problems, problem{file: p.name, line: line, key: key, err: err})
}

func (p *parser) warn(line int, format string, args ...any) {
	p.cfg.Warnings = append(p.cfg.Warnings, fmt.Sprintf("%s:%d: ", p.name, line)+fmt.Sprintf(format, args...))
}

func (p *parser) section(s *ini.Section) {
	name := s.Name()
	header := p.lines.line("[" + name + "]")
	keys := keysOf(p.set, name)
	switch {
	case name == ini.DefaultSection:
		for _, k := range s.Keys() {
			p.addAt(p.lines.line(name+"."+k.Name()), k.Name(), errors.New("is in no section; keys belong under "+knownSections))
		}
	case len(keys) > 0:
		for _, k := range s.Keys() {
			key := name + "." + k.Name()
			if why, ok := retired[key]; ok {
				p.add(key, errors.New(why))
				continue
			}
			if _, ok := p.set[key]; !ok {
				p.add(key, fmt.Errorf("unknown key; [%s] has %s", name, strings.Join(keys, ", ")))
				continue
			}
			p.apply(key, key, k.Value())
		}
	case name == "tokens":
		p.tokens(s)
	case name == "WORKING_ENVIRONMENT":
		for _, k := range s.Keys() {
			key, field := name+"."+k.Name(), legacyField(k.Name())
			if field == "" {
				p.add(key, errors.New("unknown key; [WORKING_ENVIRONMENT] has importdir, hostdir, user"))
				continue
			}
			v := k.Value()
			if field == "site.name" && sanitizeName(v) != v {
				v = sanitizeName(v)
				p.warn(p.lines.line(key), "%s %q is read as site.name %q; set name in [site]", key, k.Value(), v)
			} else {
				p.warn(p.lines.line(key), "%s is read as %s; move it to [%s]", key, field, strings.Split(field, ".")[0])
			}
			p.apply(field, key, v)
		}
	case name == "ETCD":
		p.legacyEtcd(s, header)
	case name == "POSTGRES":
		p.warn(header, "[POSTGRES] is ignored: mao keeps schedules in etcd")
	case name == "DATA_REPOS":
		p.warn(header, "[DATA_REPOS] is ignored: mao keeps track of its dataset clones itself")
	default:
		p.addAt(header, "["+name+"]", errors.New("unknown section; want "+knownSections))
	}
}

// tokens reads the [tokens] section: NAME = SCOPE:SECRET per token.
// Messages never include a secret.
func (p *parser) tokens(s *ini.Section) {
	for _, k := range s.Keys() {
		name, key := k.Name(), "tokens."+k.Name()
		if lines := p.lines.at[key]; len(lines) > 1 {
			p.addAt(lines[1], key, fmt.Errorf("is set again (first on line %d); each token has its own name", lines[0]))
			continue
		}
		p.from[key] = key
		if err := toolspec.CheckName(name); err != nil {
			p.add(key, fmt.Errorf("the token's name %w", err))
			continue
		}
		scope, secret, ok := strings.Cut(k.Value(), ":")
		if !ok {
			p.add(key, errors.New("want SCOPE:SECRET, with scope read, run or admin"))
			continue
		}
		p.cfg.API.Tokens = append(p.cfg.API.Tokens, Token{Name: name, Scope: strings.TrimSpace(scope), Secret: strings.TrimSpace(secret), Key: key})
	}
}

// legacyEtcd maps the predecessor's [ETCD] host and port to etcd.endpoints.
func (p *parser) legacyEtcd(s *ini.Section, header int) {
	var host, port string
	for _, k := range s.Keys() {
		switch k.Name() {
		case "host":
			host = k.Value()
		case "port":
			port = k.Value()
		default:
			p.add("ETCD."+k.Name(), errors.New("unknown key; [ETCD] has host, port"))
		}
	}
	switch {
	case host == "" && port == "":
		return
	case host == "":
		p.addAt(header, "ETCD.host", errors.New("is required when [ETCD] is present"))
		return
	case port == "":
		p.addAt(header, "ETCD.port", errors.New("is required when [ETCD] is present"))
		return
	case strings.Contains(host, "/") || hasSpaceOrControl(host):
		p.add("ETCD.host", fmt.Errorf("%q: want a host name or IP address", host))
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		p.add("ETCD.port", fmt.Errorf("%q is not a port number", port))
		return
	}
	url := "http://" + net.JoinHostPort(host, port)
	p.warn(p.lines.line("ETCD.host"), "ETCD.host and ETCD.port are read as etcd.endpoints = %s; move it to [etcd]", url)
	p.apply("etcd.endpoints", "ETCD.host", url)
}

// apply sets field from the value of key, which is either the field itself
// or a legacy key that maps to it.
func (p *parser) apply(field, key, value string) {
	if lines := p.lines.at[key]; len(lines) > 1 {
		p.addAt(lines[1], key, fmt.Errorf("is set again (first on line %d)", lines[0]))
		return
	}
	if prev, ok := p.from[field]; ok {
		also := fmt.Sprintf("is also set by %s (line %d); keep one", prev, p.lines.line(prev))
		if key != field {
			also = "sets " + field + ", which " + also
		}
		p.add(key, errors.New(also))
		return
	}
	p.from[field] = key
	if err := p.set[field](value); err != nil {
		p.add(key, err)
	}
}

// finish derives defaults, checks what depends on several keys, validates,
// and names the line that set each invalid field.
func (p *parser) finish() {
	c := &p.cfg
	c.derive()
	if len(c.Etcd.Endpoints) > 0 {
		for _, field := range []string{"etcd.client_url", "etcd.peer_url", "etcd.grpc_gateway", "etcd.auto_compaction_mode",
			"etcd.auto_compaction_retention", "etcd.quota_backend_bytes", "etcd.defrag_free_percent"} {
			if key, ok := p.from[field]; ok {
				ext := p.from["etcd.endpoints"]
				p.add(key, fmt.Errorf("is for the embedded etcd only, but %s (line %d) names an external cluster", ext, p.lines.line(ext)))
			}
		}
	}
	for _, pr := range c.problems() {
		if key, ok := p.from[pr.key]; ok {
			if key != pr.key {
				pr.key += " (from " + key + ")"
			}
			pr.line = p.lines.line(key)
		}
		pr.file = p.name
		p.problems = append(p.problems, pr)
	}
	if len(c.API.Tokens) == 0 && c.API.InsecureNoAuth && !isLoopback(c.API.Listen) {
		p.warn(p.lines.line("api.listen"), "api.listen %s is reachable from other machines and no tokens are set (api.insecure_no_auth): "+
			"anyone who reaches it can use the API, and through it the site's Docker engine", c.API.Listen)
	}
	p.warnTokens()
	p.warnGit()
}

// warnGit warns of a known_hosts file that is not read, and of a
// credentials file or SSH key that other users may read.
func (p *parser) warnGit() {
	g := p.cfg.Git
	if !g.CheckHostKeys && g.KnownHostsFile != "" {
		p.warn(p.lines.line("git.check_host_keys"), "git.check_host_keys is false: git.known_hosts_file is not read, and any SSH server is believed")
	}
	for _, f := range []struct{ key, path string }{{"git.credentials_file", g.CredentialsFile}, {"git.ssh_key_file", g.SSHKeyFile}} {
		if fi, err := os.Stat(f.path); f.path != "" && err == nil && fi.Mode().Perm()&0o077 != 0 {
			p.warn(p.lines.line(f.key), "%s %s is readable by other users (mode %s); chmod 600 it", f.key, f.path, fi.Mode().Perm())
		}
	}
}

// warnTokens warns of tokens without a name (they get scope admin) and of
// short secrets.
func (p *parser) warnTokens() {
	unnamed := map[string][]string{} // key -> generated names
	for _, t := range p.cfg.API.Tokens {
		if t.Key == "api.tokens" || t.Key == "api.tokens_file" && strings.HasPrefix(t.Name, "tokens_file:") {
			unnamed[t.Key] = append(unnamed[t.Key], t.Name)
		}
		if len(t.Secret) < minTokenSecret && checkToken(t.Secret) == nil && t.Secret != "" {
			p.warn(p.lines.line(t.Key), "%s: the secret of token %s is shorter than %d characters; use a long random one (e.g. openssl rand -hex 32)",
				t.Key, t.Name, minTokenSecret)
		}
	}
	for _, key := range []string{"api.tokens", "api.tokens_file"} {
		if names := unnamed[key]; len(names) > 0 {
			how := `in a [tokens] section, as NAME = SCOPE:SECRET (e.g. ci = run:SECRET)`
			if key == "api.tokens_file" {
				how = `in the file, as NAME SCOPE SECRET lines (e.g. ci run SECRET), or in a [tokens] section`
			}
			p.warn(p.lines.line(key), "%s: %d token(s) have no name and get scope admin (named %s in logs and run records); "+
				"name and scope each %s, with scope read, run or admin", key, len(names), strings.Join(names, ", "), how)
		}
	}
}

// setters returns, for every key of the current format, a function that
// parses a value into c. Relative paths are resolved against dir.
func (c *Config) setters(dir string) map[string]func(string) error {
	str := func(p *string) func(string) error {
		return func(v string) error { *p = v; return nil }
	}
	// On error a setter leaves its field alone, so Validate does not report
	// the same key a second time.
	dur := func(p *time.Duration) func(string) error {
		return func(v string) error {
			d, err := time.ParseDuration(v)
			if err != nil {
				return fmt.Errorf("%q is not a duration (e.g. 10s, 5m): %w", v, err)
			}
			*p = d
			return nil
		}
	}
	path := func(p *string) func(string) error {
		return func(v string) error {
			abs, err := localPath(v, dir)
			if err == nil {
				*p = abs
			}
			return err
		}
	}
	return map[string]func(string) error{
		"site.name":          str(&c.Site.Name),
		"site.data_dir":      path(&c.Site.DataDir),
		"site.host_data_dir": str(&c.Site.HostDataDir),
		"site.labels": func(v string) error {
			labels, err := parseLabels(v)
			if err == nil {
				c.Site.Labels = labels
			}
			return err
		},
		"site.lease_ttl":                 dur(&c.Site.LeaseTTL),
		"site.timezone":                  str(&c.Site.Timezone),
		"etcd.endpoints":                 func(v string) error { c.Etcd.Endpoints = splitList(v); return nil },
		"etcd.prefix":                    str(&c.Etcd.Prefix),
		"etcd.dial_timeout":              dur(&c.Etcd.DialTimeout),
		"etcd.request_timeout":           dur(&c.Etcd.RequestTimeout),
		"etcd.ca_file":                   path(&c.Etcd.CAFile),
		"etcd.cert_file":                 path(&c.Etcd.CertFile),
		"etcd.key_file":                  path(&c.Etcd.KeyFile),
		"etcd.client_url":                str(&c.Etcd.ClientURL),
		"etcd.peer_url":                  str(&c.Etcd.PeerURL),
		"etcd.join_token":                str(&c.Etcd.JoinToken),
		"etcd.grpc_gateway":              boolean(&c.Etcd.Gateway),
		"etcd.auto_compaction_mode":      str(&c.Etcd.AutoCompactionMode),
		"etcd.auto_compaction_retention": str(&c.Etcd.AutoCompactionRetention),
		"etcd.quota_backend_bytes":       size(&c.Etcd.QuotaBytes),
		"etcd.defrag_free_percent":       whole(&c.Etcd.DefragFreePercent),
		"etcd.maintenance_interval":      dur(&c.Etcd.MaintenanceInterval),
		"federation.listen":              str(&c.Federation.Listen),
		"federation.token_ttl":           dur(&c.Federation.TokenTTL),
		"federation.max_voters":          whole(&c.Federation.MaxVoters),
		"api.listen":                     str(&c.API.Listen),
		// Tokens without a name get one from their place and scope admin.
		"api.tokens": func(v string) error {
			for i, secret := range splitList(v) {
				c.API.Tokens = append(c.API.Tokens, Token{Name: fmt.Sprintf("api.tokens[%d]", i+1), Scope: ScopeAdmin, Secret: secret, Key: "api.tokens"})
			}
			return nil
		},
		"api.tokens_file": func(v string) error {
			file, err := localPath(v, dir)
			if err != nil {
				return err
			}
			tokens, err := readTokens(file)
			c.API.Tokens = append(c.API.Tokens, tokens...)
			return err
		},
		"api.insecure_no_auth": boolean(&c.API.InsecureNoAuth),
		"api.open_metrics":     boolean(&c.API.OpenMetrics),
		"api.hostnames":        func(v string) error { c.API.Hostnames = splitList(v); return nil },
		"api.tls":              boolean(&c.API.UseTLS),
		"api.tls_cert_file":    path(&c.API.TLSCertFile),
		"api.tls_key_file":     path(&c.API.TLSKeyFile),
		"api.max_connections":  whole(&c.API.MaxConnections),
		"docker.host":          str(&c.Docker.Host),
		"runs.shutdown_grace":  dur(&c.Runs.ShutdownGrace),
		"runs.stop_grace":      dur(&c.Runs.StopGrace),
		"runs.prepare_timeout": dur(&c.Runs.PrepareTimeout),
		"runs.log_dir":         path(&c.Runs.LogDir),
		"runs.pids_limit":      whole(&c.Runs.PidsLimit),
		"runs.default_memory": func(v string) error {
			n, err := toolspec.ParseMemory(v)
			if err == nil {
				c.Runs.DefaultMemory = n
			}
			return err
		},
		"runs.allow_host_network":   boolean(&c.Runs.AllowHostNetwork),
		"runs.max_output_bytes":     size(&c.Runs.MaxOutputBytes),
		"runs.max_output_files":     whole(&c.Runs.MaxOutputFiles),
		"runs.history":              whole(&c.Runs.History),
		"runs.max_age":              dur(&c.Runs.MaxAge),
		"schedules.history":         whole(&c.Schedules.History),
		"detector.series_length":    whole(&c.Detector.SeriesLength),
		"notify.urls":               func(v string) error { c.Notify.URLs = strings.Fields(v); return nil },
		"notify.cooldown":           dur(&c.Notify.Cooldown),
		"notify.attempts":           whole(&c.Notify.Attempts),
		"notify.title_template":     str(&c.Notify.TitleTemplate),
		"notify.body_template_file": path(&c.Notify.BodyTemplateFile),
		"git.ssh_key_file":          path(&c.Git.SSHKeyFile),
		"git.known_hosts_file":      path(&c.Git.KnownHostsFile),
		"git.check_host_keys":       boolean(&c.Git.CheckHostKeys),
		"git.credentials_file":      path(&c.Git.CredentialsFile),
		"git.ca_file":               path(&c.Git.CAFile),
		"git.author_name":           str(&c.Git.AuthorName),
		"git.author_email":          str(&c.Git.AuthorEmail),
		"git.push_failed_after":     dur(&c.Git.PushFailedAfter),
		"git.push_retry_max":        dur(&c.Git.PushRetryMax),
	}
}

// whole returns a setter of a whole number.
func whole(p *int) func(string) error {
	return func(v string) error {
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("%q is not a whole number", v)
		}
		*p = n
		return nil
	}
}

// boolean returns a setter of a yes-or-no value, spelled as Python's
// configparser reads it (true/false, yes/no, on/off, 1/0, in any case).
func boolean(p *bool) func(string) error {
	return func(v string) error {
		switch strings.ToLower(v) {
		case "true", "yes", "on", "1":
			*p = true
		case "false", "no", "off", "0":
			*p = false
		default:
			return fmt.Errorf("%q is not true or false", v)
		}
		return nil
	}
}

// size returns a setter of a size in bytes, read as tool specs read
// memory sizes: a number with an optional unit, binary (KiB, MiB, GiB,
// TiB) or decimal (kB, MB, GB, TB), such as 10GiB or 500MB.
func size(p *int64) func(string) error {
	return func(v string) error {
		n, err := humanize.ParseBytes(v)
		if err != nil {
			return fmt.Errorf("%q is not a size in bytes (e.g. 10GiB, 500MB or 1048576)", v)
		}
		if n > math.MaxInt64 {
			return fmt.Errorf("%q is too large", v)
		}
		*p = int64(n)
		return nil
	}
}

// keysOf lists the keys of section in setters, sorted.
func keysOf(setters map[string]func(string) error, section string) []string {
	var keys []string
	for k := range setters {
		if s, key, _ := strings.Cut(k, "."); s == section {
			keys = append(keys, key)
		}
	}
	slices.Sort(keys)
	return keys
}

// splitList splits a comma-separated value; an empty value is an empty list.
// Empty entries are kept for Validate to report.
func splitList(v string) []string {
	if strings.TrimSpace(v) == "" {
		return nil
	}
	parts := strings.Split(v, ",")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts
}

// parseLabels parses "k=v, k2=v2". Validate checks the keys and values.
func parseLabels(v string) (map[string]string, error) {
	entries := splitList(v)
	if entries == nil {
		return nil, nil
	}
	labels := make(map[string]string, len(entries))
	for i, e := range entries {
		k, val, ok := strings.Cut(e, "=")
		k, val = strings.TrimSpace(k), strings.TrimSpace(val)
		switch _, dup := labels[k]; {
		case !ok:
			return nil, fmt.Errorf("entry %d %q is not key=value", i+1, e)
		case dup:
			return nil, fmt.Errorf("label %q is given twice", k)
		}
		labels[k] = val
	}
	return labels, nil
}

// localPath expands a leading "~" and makes p absolute, relative to dir.
func localPath(p, dir string) (string, error) {
	if p == "" {
		return "", errors.New("is empty; leave the key out for the default")
	}
	if p == "~" || strings.HasPrefix(p, "~/") {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("expand %q: %w", p, err)
		}
		p = filepath.Join(home, p[1:])
	} else if strings.HasPrefix(p, "~") {
		return "", fmt.Errorf("%q: only ~ and ~/ are expanded, not ~user", p)
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(dir, p)
	}
	return filepath.Abs(p)
}

// retired are keys of earlier versions, with what replaced them.
var retired = map[string]string{
	"etcd.initial_cluster": joinedWithToken,
	"etcd.cluster_state":   joinedWithToken,
}

const joinedWithToken = "is no longer used: a site joins a federation with etcd.join_token, which maoctl federation add-site prints " +
	"with the other lines the site needs; remove this key"

// readTokens reads one bearer token per line, as "NAME SCOPE SECRET" or as
// a SECRET alone (then named tokens_file:LINE, with scope admin); blank
// lines and lines starting with '#' are skipped. Messages never include a
// secret.
func readTokens(file string) ([]Token, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var tokens []Token
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		t := Token{Name: fmt.Sprintf("tokens_file:%d", i+1), Scope: ScopeAdmin, Key: "api.tokens_file"}
		switch f := strings.Fields(line); len(f) {
		case 1:
			t.Secret = f[0]
		case 3:
			if err := toolspec.CheckName(f[0]); err != nil {
				return nil, fmt.Errorf("%s:%d: the token's name %w", file, i+1, err)
			}
			t.Name, t.Scope, t.Secret = f[0], f[1], f[2]
		default:
			return nil, fmt.Errorf("%s:%d: want NAME SCOPE SECRET, or a SECRET alone; a secret has no whitespace", file, i+1)
		}
		tokens = append(tokens, t)
	}
	return tokens, nil
}

// lineIndex records on which lines each section header and key appear:
// ini.v1 does not report line numbers. It follows ini's line grammar, which
// is simple because Parse turns off continuation lines.
type lineIndex struct {
	at  map[string][]int // "[site]" or "site.name" -> lines, in order
	bad struct {         // the first line that is neither a header nor key=value
		n    int
		text string
	}
}

// line returns the first line of key or section ("[site]"), or 0.
func (l lineIndex) line(key string) int {
	if lines := l.at[key]; len(lines) > 0 {
		return lines[0]
	}
	return 0
}

func scan(data []byte) lineIndex {
	idx := lineIndex{at: map[string][]int{}}
	section := ini.DefaultSection
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		var key string
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
			continue
		case line[0] == '[':
			if end := strings.LastIndexByte(line, ']'); end > 1 {
				section = line[1:end]
				key = "[" + section + "]"
			}
		default:
			if eq := strings.IndexAny(line, "=:"); eq > 0 {
				key = section + "." + strings.ToLower(strings.TrimSpace(line[:eq]))
			}
		}
		if key == "" {
			if idx.bad.n == 0 {
				idx.bad.n, idx.bad.text = i+1, line
			}
			continue
		}
		idx.at[key] = append(idx.at[key], i+1)
	}
	return idx
}
