package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// file is the name tests give Parse; relative paths resolve against /etc/mao.
const file = "/etc/mao/config.ini"

// fakeHome points $HOME at a temporary directory and unsets $XDG_DATA_HOME,
// so defaults do not depend on who runs the tests.
func fakeHome(t *testing.T) string {
	t.Helper()
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_DATA_HOME", "")
	return home
}

// located lists the problems in err as "line key", in order.
func located(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	var got []string
	for _, e := range errs {
		var p problem
		if !errors.As(e, &p) {
			t.Fatalf("%v is not a problem", e)
		}
		if !strings.Contains(e.Error(), p.key+": ") {
			t.Errorf("message %q does not name %s", e.Error(), p.key)
		}
		got = append(got, fmt.Sprintf("%d %s", p.line, p.key))
	}
	return got
}

func TestDefault(t *testing.T) {
	host, _ := os.Hostname()
	wantName := sanitizeName(host)
	if wantName == "" {
		wantName = "site"
	}
	tests := []struct {
		name, home, xdg string
		dataDir         string
		problems        []string
	}{
		{name: "home", home: "/home/ann", dataDir: "/home/ann/.local/share/mao"},
		{name: "xdg", home: "/home/ann", xdg: "/data/xdg", dataDir: "/data/xdg/mao"},
		{name: "relative xdg is ignored", home: "/home/ann", xdg: "rel", dataDir: "/home/ann/.local/share/mao"},
		{name: "no home", problems: []string{"0 site.data_dir"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("HOME", tc.home)
			t.Setenv("XDG_DATA_HOME", tc.xdg)
			c := Default()
			want := Config{
				Site: Site{Name: wantName, DataDir: tc.dataDir, HostDataDir: tc.dataDir, LeaseTTL: 10 * time.Second, Timezone: "UTC"},
				Etcd: Etcd{
					Prefix: "/mao/", DialTimeout: 5 * time.Second, RequestTimeout: 5 * time.Second,
					ClientURL: "https://127.0.0.1:2379", PeerURL: "https://127.0.0.1:2380",
					AutoCompactionMode: "periodic", AutoCompactionRetention: "1h", QuotaBytes: 2 << 30, DefragFreePercent: 50,
					MaintenanceInterval: 10 * time.Second,
				},
				Federation: Federation{Listen: "127.0.0.1:0", TokenTTL: time.Hour, MaxVoters: 3},
				API:        API{Listen: "127.0.0.1:8080", MaxConnections: 256},
				Runs: Runs{ShutdownGrace: 30 * time.Second, StopGrace: 10 * time.Second, PrepareTimeout: 15 * time.Minute,
					PidsLimit: 4096, DefaultMemory: 4 << 30, MaxOutputBytes: 10 << 30, MaxOutputFiles: 100000, History: 100},
				Schedules: Schedules{History: 100},
				Detector:  Detector{SeriesLength: 1000},
				Notify:    Notify{Cooldown: 24 * time.Hour, Attempts: 5},
				Git: Git{CheckHostKeys: true, AuthorName: "mao", AuthorEmail: "mao@localhost", PushFailedAfter: time.Hour,
					PushRetryMax: 5 * time.Minute},
			}
			if tc.dataDir != "" {
				want.Runs.LogDir = filepath.Join(tc.dataDir, "logs")
			}
			if !reflect.DeepEqual(c, want) {
				t.Fatalf("Default() =\n%+v\nwant\n%+v", c, want)
			}
			if !c.Etcd.Embedded() {
				t.Error("the default etcd is not embedded")
			}
			if got := located(t, c.Validate()); !slices.Equal(got, tc.problems) {
				t.Fatalf("Validate problems = %v, want %v", got, tc.problems)
			}
			loaded, err := Load("")
			if (err != nil) != (tc.problems != nil) {
				t.Fatalf(`Load("") error = %v`, err)
			}
			if err == nil && !reflect.DeepEqual(loaded, c) {
				t.Fatalf(`Load("") = %+v, want Default()`, loaded)
			}
		})
	}
}

func TestSanitizeName(t *testing.T) {
	tests := []struct{ in, want string }{
		{"lab-1", "lab-1"},
		{"My-Laptop.Local", "my-laptop.local"},
		{"Alice Smith", "alice-smith"},
		{"_node_", "node_"},
		{"Äb", "b"},
		{"...", ""},
		{"", ""},
		{strings.Repeat("x", 70), strings.Repeat("x", 63)},
	}
	for _, tc := range tests {
		if got := sanitizeName(tc.in); got != tc.want {
			t.Errorf("sanitizeName(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestParseKeys(t *testing.T) {
	home := fakeHome(t)
	files := t.TempDir()
	key, creds := filepath.Join(files, "id_ed25519"), filepath.Join(files, "git-credentials")
	for f, mode := range map[string]os.FileMode{key: 0o644, creds: 0o600} {
		if err := os.WriteFile(f, []byte("secret\n"), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(f, mode); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name string
		ini  string
		edit func(c *Config)
	}{
		{"empty file", "", func(*Config) {}},
		{"comments only", "# nothing\n; here\n\n", func(*Config) {}},
		{"empty sections", "[site]\n[etcd]\n[api]\n[docker]\n[runs]\n[schedules]\n", func(*Config) {}},
		{"site.name", "[site]\nname = lab-1\n", func(c *Config) { c.Site.Name = "lab-1" }},
		{"site.data_dir moves host_data_dir and log_dir", "[site]\ndata_dir = /srv/mao\n", func(c *Config) {
			c.Site.DataDir, c.Site.HostDataDir, c.Runs.LogDir = "/srv/mao", "/srv/mao", "/srv/mao/logs"
		}},
		{"relative site.data_dir", "[site]\ndata_dir = data/../mao\n", func(c *Config) {
			c.Site.DataDir, c.Site.HostDataDir, c.Runs.LogDir = "/etc/mao/mao", "/etc/mao/mao", "/etc/mao/mao/logs"
		}},
		{"site.data_dir under ~", "[site]\ndata_dir = ~/mao\n", func(c *Config) {
			d := filepath.Join(home, "mao")
			c.Site.DataDir, c.Site.HostDataDir, c.Runs.LogDir = d, d, filepath.Join(d, "logs")
		}},
		{"site.host_data_dir", "[site]\nhost_data_dir = /host/mao\n", func(c *Config) { c.Site.HostDataDir = "/host/mao" }},
		{"site.labels", "[site]\nlabels = gpu=true, region = eu ,os=linux-6.1\n", func(c *Config) {
			c.Site.Labels = map[string]string{"gpu": "true", "region": "eu", "os": "linux-6.1"}
		}},
		{"empty site.labels", "[site]\nlabels =\n", func(*Config) {}},
		{"site.lease_ttl", "[site]\nlease_ttl = 2s\n", func(c *Config) { c.Site.LeaseTTL = 2 * time.Second }},
		{"site.timezone", "[site]\ntimezone = Europe/Zurich\n", func(c *Config) { c.Site.Timezone = "Europe/Zurich" }},
		{"site.timezone UTC", "[site]\ntimezone = UTC\n", func(*Config) {}},
		{"etcd.endpoints", "[etcd]\nendpoints = http://10.0.0.1:2379, https://etcd.example.org:2379\n", func(c *Config) {
			c.Etcd.Endpoints = []string{"http://10.0.0.1:2379", "https://etcd.example.org:2379"}
		}},
		{"empty etcd.endpoints", "[etcd]\nendpoints =\n", func(*Config) {}},
		{"etcd maintenance", "[etcd]\nauto_compaction_mode = revision\nquota_backend_bytes = 64MiB\ndefrag_free_percent = 30\nmaintenance_interval = 1m\n",
			func(c *Config) {
				c.Etcd.AutoCompactionMode, c.Etcd.AutoCompactionRetention = "revision", "10000"
				c.Etcd.QuotaBytes, c.Etcd.DefragFreePercent, c.Etcd.MaintenanceInterval = 64<<20, 30, time.Minute
			}},
		{"etcd periodic compaction", "[etcd]\nauto_compaction_retention = 30m\n", func(c *Config) { c.Etcd.AutoCompactionRetention = "30m" }},
		{"etcd.prefix", "[etcd]\nprefix = /lab/mao/\n", func(c *Config) { c.Etcd.Prefix = "/lab/mao/" }},
		{"etcd timeouts", "[etcd]\ndial_timeout = 1s\nrequest_timeout = 1m30s\n", func(c *Config) {
			c.Etcd.DialTimeout, c.Etcd.RequestTimeout = time.Second, 90*time.Second
		}},
		{"etcd urls with free ports", "[etcd]\nclient_url = https://127.0.0.1:0\npeer_url = https://localhost:0/\n", func(c *Config) {
			c.Etcd.ClientURL, c.Etcd.PeerURL = "https://127.0.0.1:0", "https://localhost:0/"
		}},
		{"join a federation", "[site]\nname = lab-2\n[etcd]\npeer_url = https://10.0.0.2:2380\njoin_token = maojoin1.eyJhIjoiIn0\n",
			func(c *Config) {
				c.Site.Name, c.Etcd.PeerURL, c.Etcd.JoinToken = "lab-2", "https://10.0.0.2:2380", "maojoin1.eyJhIjoiIn0"
			}},
		{"the gateway", "[etcd]\ngrpc_gateway = true\n", func(c *Config) { c.Etcd.Gateway = true }},
		{"federation", "[federation]\nlisten = 10.0.0.2:8443\ntoken_ttl = 30m\nmax_voters = 5\n", func(c *Config) {
			c.Federation.Listen, c.Federation.TokenTTL, c.Federation.MaxVoters = "10.0.0.2:8443", 30*time.Minute, 5
		}},
		{"one voter", "[federation]\nmax_voters = 1\n", func(c *Config) { c.Federation.MaxVoters = 1 }},
		{"api.listen", "[api]\nlisten = [::1]:0\n", func(c *Config) { c.API.Listen = "[::1]:0" }},
		{"api.tls with the site's certificate", "[api]\ntls = yes\n", func(c *Config) { c.API.UseTLS = true }},
		{"api.tokens", "[api]\ntokens = s3cr#t;1, tok2\n", func(c *Config) {
			c.API.Tokens = []Token{{"api.tokens[1]", ScopeAdmin, "s3cr#t;1", "api.tokens"}, {"api.tokens[2]", ScopeAdmin, "tok2", "api.tokens"}}
			c.Warnings = []string{file + ":2: api.tokens: the secret of token api.tokens[1] is shorter than 16 characters; use a long random one (e.g. openssl rand -hex 32)",
				file + ":2: api.tokens: the secret of token api.tokens[2] is shorter than 16 characters; use a long random one (e.g. openssl rand -hex 32)",
				file + ":2: api.tokens: 2 token(s) have no name and get scope admin (named api.tokens[1], api.tokens[2] in logs and run records); " +
					"name and scope each in a [tokens] section, as NAME = SCOPE:SECRET (e.g. ci = run:SECRET), with scope read, run or admin"}
		}},
		{"[tokens]", "[tokens]\nci = run:0123456789abcdef\nAda.L = admin : 0123456789abcdef0\nwatch = read:x:y#z;0123456789\n", func(c *Config) {
			c.API.Tokens = []Token{{"ci", ScopeRun, "0123456789abcdef", "tokens.ci"}, {"ada.l", ScopeAdmin, "0123456789abcdef0", "tokens.ada.l"},
				{"watch", ScopeRead, "x:y#z;0123456789", "tokens.watch"}}
		}},
		{"api keys", "[api]\nlisten = 0.0.0.0:8443\nhostnames = mao.lab.example.org, 10.0.0.5,fd00::5\nmax_connections = 32\n" +
			"insecure_no_auth = true\ntls_cert_file = /etc/hosts\ntls_key_file = /etc/passwd\n", func(c *Config) {
			c.API.Listen, c.API.Hostnames, c.API.MaxConnections = "0.0.0.0:8443", []string{"mao.lab.example.org", "10.0.0.5", "fd00::5"}, 32
			c.API.InsecureNoAuth, c.API.TLSCertFile, c.API.TLSKeyFile = true, "/etc/hosts", "/etc/passwd"
			c.Warnings = []string{file + ":2: api.listen 0.0.0.0:8443 is reachable from other machines and no tokens are set (api.insecure_no_auth): " +
				"anyone who reaches it can use the API, and through it the site's Docker engine"}
		}},
		{"docker.host", "[docker]\nhost = tcp://127.0.0.1:2375\n", func(c *Config) { c.Docker.Host = "tcp://127.0.0.1:2375" }},
		{"runs", "[runs]\nshutdown_grace = 2m\nstop_grace = 3s\nlog_dir = logs\n", func(c *Config) {
			c.Runs.ShutdownGrace, c.Runs.StopGrace, c.Runs.LogDir = 2*time.Minute, 3*time.Second, "/etc/mao/logs"
		}},
		{"runs.prepare_timeout", "[runs]\nprepare_timeout = 1h30m\n", func(c *Config) { c.Runs.PrepareTimeout = 90 * time.Minute }},
		{"runs container limits", "[runs]\npids_limit = 64\ndefault_memory = 512MiB\n", func(c *Config) {
			c.Runs.PidsLimit, c.Runs.DefaultMemory = 64, 512<<20
		}},
		{"runs.pids_limit bounds", "[runs]\npids_limit = 16\n", func(c *Config) { c.Runs.PidsLimit = 16 }},
		{"runs.default_memory in GB", "[runs]\ndefault_memory = 8GB\n", func(c *Config) { c.Runs.DefaultMemory = 8e9 }},
		{"runs.allow_host_network", "[runs]\nallow_host_network = true\n", func(c *Config) { c.Runs.AllowHostNetwork = true }},
		{"runs.allow_host_network as configparser spells it", "[runs]\nallow_host_network = Yes\n", func(c *Config) { c.Runs.AllowHostNetwork = true }},
		{"runs.allow_host_network off", "[runs]\nallow_host_network = off\n", func(*Config) {}},
		{"runs output limits", "[runs]\nmax_output_bytes = 2GiB\nmax_output_files = 5000\n", func(c *Config) {
			c.Runs.MaxOutputBytes, c.Runs.MaxOutputFiles = 2<<30, 5000
		}},
		{"runs.max_output_bytes in decimal units", "[runs]\nmax_output_bytes = 500 MB\n", func(c *Config) { c.Runs.MaxOutputBytes = 500e6 }},
		{"runs.max_output_bytes in bytes", "[runs]\nmax_output_bytes = 1048576\n", func(c *Config) { c.Runs.MaxOutputBytes = 1 << 20 }},
		{"runs output limits at their maximum", "[runs]\nmax_output_bytes = 1PiB\nmax_output_files = 100000000\n", func(c *Config) {
			c.Runs.MaxOutputBytes, c.Runs.MaxOutputFiles = 1<<50, 100000000
		}},
		{"schedules.history", "[schedules]\nhistory = 7\n", func(c *Config) { c.Schedules.History = 7 }},
		{"runs.history and max_age", "[runs]\nhistory = 7\nmax_age = 2160h\n", func(c *Config) { c.Runs.History, c.Runs.MaxAge = 7, 2160*time.Hour }},
		{"schedules.history bounds", "[schedules]\nhistory = 1\n", func(c *Config) { c.Schedules.History = 1 }},
		{"schedules.history maximum", "[schedules]\nhistory = 100000\n", func(c *Config) { c.Schedules.History = 100000 }},
		{"git", "[git]\nssh_key_file = " + key + "\nknown_hosts_file = /etc/hosts\ncredentials_file = " + creds + "\nca_file = /etc/hosts\n" +
			"author_name = Lab A's mao\nauthor_email = mao@lab-a.example.org\npush_failed_after = 30m\npush_retry_max = 1m\n", func(c *Config) {
			c.Git = Git{SSHKeyFile: key, KnownHostsFile: "/etc/hosts", CheckHostKeys: true, CredentialsFile: creds,
				CAFile: "/etc/hosts", AuthorName: "Lab A's mao", AuthorEmail: "mao@lab-a.example.org", PushFailedAfter: 30 * time.Minute,
				PushRetryMax: time.Minute}
			c.Warnings = []string{file + ":2: git.ssh_key_file " + key + " is readable by other users (mode -rw-r--r--); chmod 600 it"}
		}},
		{"git without host key checks", "[git]\ncheck_host_keys = false\nknown_hosts_file = /etc/hosts\n", func(c *Config) {
			c.Git.CheckHostKeys, c.Git.KnownHostsFile = false, "/etc/hosts"
			c.Warnings = []string{file + ":2: git.check_host_keys is false: git.known_hosts_file is not read, and any SSH server is believed"}
		}},
		{"git without host key checks, no known_hosts", "[git]\ncheck_host_keys = false\n", func(c *Config) { c.Git.CheckHostKeys = false }},
		{"keys ignore case, like configparser", "[site]\nName = lab-1\n", func(c *Config) { c.Site.Name = "lab-1" }},
		{"colon delimiter, quotes, inline comment", "[site]\nname: \"lab-1\" # the lab\n", func(c *Config) { c.Site.Name = "lab-1" }},
		{"CRLF and BOM", "\xef\xbb\xbf[site]\r\nname = lab-1\r\n", func(c *Config) { c.Site.Name = "lab-1" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse([]byte(tc.ini), file)
			if err != nil {
				t.Fatal(err)
			}
			want := Default()
			tc.edit(&want)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("got\n%+v\nwant\n%+v", got, want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	fakeHome(t)
	tests := []struct {
		name string
		ini  string
		want []string // "line key" of each problem, in order
	}{
		{"unknown key", "[site]\nname = a\nnmae = b\n", []string{"3 site.nmae"}},
		{"unknown section", "[site]\n[sitee]\nname = a\n", []string{"2 [sitee]"}},
		{"section names are case-sensitive", "[Site]\n", []string{"1 [Site]"}},
		{"key outside any section", "name = a\n[site]\n", []string{"1 name"}},
		{"key in [DEFAULT]", "[DEFAULT]\nname = a\n", []string{"2 name"}},
		{"key set twice", "[site]\nname = a\n\n[site]\nname = b\n", []string{"5 site.name"}},
		{"unknown keys and sections together", "x = 1\n[api]\nport = 1\n[nope]\n", []string{"1 x", "3 api.port", "4 [nope]"}},
		{"many invalid values at once", `[site]
name = Bad Name
labels = Bad=x, ok=a b
lease_ttl = 1s
timezone = Mars/Olympus
[etcd]
endpoints = ftp://x:1, , http://h
prefix = mao
dial_timeout = 0s
request_timeout = -1s
[api]
listen = 8080
tokens = a b, , ok
[docker]
host = http://127.0.0.1:2375
[runs]
shutdown_grace = soon
stop_grace = 1500ms
prepare_timeout = 0s
[schedules]
history = 0
`, []string{
			"2 site.name", "3 site.labels", "4 site.lease_ttl", "5 site.timezone",
			"7 etcd.endpoints", "7 etcd.endpoints", "7 etcd.endpoints", "8 etcd.prefix",
			"9 etcd.dial_timeout", "10 etcd.request_timeout",
			"12 api.listen", "13 api.tokens", "13 api.tokens",
			"15 docker.host", "17 runs.shutdown_grace", "18 runs.stop_grace", "19 runs.prepare_timeout",
			"21 schedules.history",
		}},
		{"label syntax", "[site]\nlabels = gpu\n", []string{"2 site.labels"}},
		{"label twice", "[site]\nlabels = a=1, a=2\n", []string{"2 site.labels"}},
		{"label with empty value", "[site]\nlabels = a=\n", []string{"2 site.labels"}},
		{"empty data_dir", "[site]\ndata_dir =\n", []string{"2 site.data_dir"}},
		{"~user is not expanded", "[site]\ndata_dir = ~bob/mao\n", []string{"2 site.data_dir"}},
		{"relative host_data_dir", "[site]\nhost_data_dir = mao\n", []string{"2 site.host_data_dir"}},
		{"bad prefixes", "[etcd]\nprefix = /mao\n", []string{"2 etcd.prefix"}},
		{"prefix with a space", "[etcd]\nprefix = /a b/\n", []string{"2 etcd.prefix"}},
		{"empty prefix segment", "[etcd]\nprefix = /a//b/\n", []string{"2 etcd.prefix"}},
		{"endpoint with port 0", "[etcd]\nendpoints = http://h:0\n", []string{"2 etcd.endpoints"}},
		{"endpoint with path", "[etcd]\nendpoints = http://h:2379/v2\n", []string{"2 etcd.endpoints"}},
		{"endpoint with credentials", "[etcd]\nendpoints = http://u:p@h:2379\n", []string{"2 etcd.endpoints"}},
		{"embedded urls with endpoints", "[etcd]\nclient_url = https://127.0.0.1:1\nendpoints = http://h:2379\npeer_url = https://127.0.0.1:2\n",
			[]string{"2 etcd.client_url", "4 etcd.peer_url"}},
		{"bad embedded urls", "[etcd]\nclient_url = 127.0.0.1:2379\npeer_url = https://127.0.0.1:99999\n",
			[]string{"2 etcd.client_url", "3 etcd.peer_url"}},
		{"plaintext embedded urls", "[etcd]\nclient_url = http://127.0.0.1:2379\npeer_url = http://127.0.0.1:2380\n",
			[]string{"2 etcd.client_url", "3 etcd.peer_url"}},
		{"peer_url equals client_url", "[etcd]\nclient_url = https://127.0.0.1:2379\npeer_url = https://127.0.0.1:2379\n", []string{"3 etcd.peer_url"}},
		{"the keys of joining before join tokens", "[etcd]\ninitial_cluster = a=http://h:2380\ncluster_state = existing\n",
			[]string{"2 etcd.initial_cluster", "3 etcd.cluster_state"}},
		{"a join token in two words", "[etcd]\njoin_token = maojoin1.a b\n", []string{"2 etcd.join_token"}},
		{"gateway not a boolean", "[etcd]\ngrpc_gateway = sometimes\n", []string{"2 etcd.grpc_gateway"}},
		{"gateway with endpoints", "[etcd]\nendpoints = http://h:2379\ngrpc_gateway = true\n", []string{"3 etcd.grpc_gateway"}},
		{"bad federation keys", "[federation]\nlisten = nowhere\ntoken_ttl = 5s\n", []string{"2 federation.listen", "3 federation.token_ttl"}},
		{"max_voters not a number", "[federation]\nmax_voters = three\n", []string{"2 federation.max_voters"}},
		{"max_voters even", "[federation]\nmax_voters = 4\n", []string{"2 federation.max_voters"}},
		{"max_voters too many", "[federation]\nmax_voters = 9\n", []string{"2 federation.max_voters"}},
		{"max_voters none", "[federation]\nmax_voters = 0\n", []string{"2 federation.max_voters"}},
		{"unknown time zone", "[site]\ntimezone = Europe/Zurch\n", []string{"2 site.timezone"}},
		{"time zone with a path", "[site]\ntimezone = ../../etc/passwd\n", []string{"2 site.timezone"}},
		{"Local is not a time zone name", "[site]\ntimezone = Local\n", []string{"2 site.timezone"}},
		{"empty time zone", "[site]\ntimezone =\n", []string{"2 site.timezone"}},
		{"prepare_timeout not a duration", "[runs]\nprepare_timeout = 15\n", []string{"2 runs.prepare_timeout"}},
		{"negative prepare_timeout", "[runs]\nprepare_timeout = -1m\n", []string{"2 runs.prepare_timeout"}},
		{"pids_limit not a number", "[runs]\npids_limit = lots\n", []string{"2 runs.pids_limit"}},
		{"pids_limit too small", "[runs]\npids_limit = 15\n", []string{"2 runs.pids_limit"}},
		{"pids_limit zero", "[runs]\npids_limit = 0\n", []string{"2 runs.pids_limit"}},
		{"pids_limit too large", "[runs]\npids_limit = 4194305\n", []string{"2 runs.pids_limit"}},
		{"default_memory not a size", "[runs]\ndefault_memory = plenty\n", []string{"2 runs.default_memory"}},
		{"default_memory too small", "[runs]\ndefault_memory = 1MiB\n", []string{"2 runs.default_memory"}},
		{"default_memory empty", "[runs]\ndefault_memory =\n", []string{"2 runs.default_memory"}},
		{"allow_host_network not a boolean", "[runs]\nallow_host_network = maybe\n", []string{"2 runs.allow_host_network"}},
		{"allow_host_network empty", "[runs]\nallow_host_network =\n", []string{"2 runs.allow_host_network"}},
		{"max_output_bytes not a size", "[runs]\nmax_output_bytes = lots\n", []string{"2 runs.max_output_bytes"}},
		{"max_output_bytes with an unknown unit", "[runs]\nmax_output_bytes = 10GiBs\n", []string{"2 runs.max_output_bytes"}},
		{"negative max_output_bytes", "[runs]\nmax_output_bytes = -1\n", []string{"2 runs.max_output_bytes"}},
		{"zero max_output_bytes", "[runs]\nmax_output_bytes = 0\n", []string{"2 runs.max_output_bytes"}},
		{"max_output_bytes too large", "[runs]\nmax_output_bytes = 2PiB\n", []string{"2 runs.max_output_bytes"}},
		{"max_output_bytes beyond int64", "[runs]\nmax_output_bytes = 16EiB\n", []string{"2 runs.max_output_bytes"}},
		{"max_output_files not a number", "[runs]\nmax_output_files = 10k\n", []string{"2 runs.max_output_files"}},
		{"zero max_output_files", "[runs]\nmax_output_files = 0\n", []string{"2 runs.max_output_files"}},
		{"max_output_files too large", "[runs]\nmax_output_files = 100000001\n", []string{"2 runs.max_output_files"}},
		{"history not a number", "[schedules]\nhistory = many\n", []string{"2 schedules.history"}},
		{"history with a fraction", "[schedules]\nhistory = 1.5\n", []string{"2 schedules.history"}},
		{"history too large", "[schedules]\nhistory = 100001\n", []string{"2 schedules.history"}},
		{"negative history", "[schedules]\nhistory = -3\n", []string{"2 schedules.history"}},
		{"runs history and age", "[runs]\nhistory = 0\nmax_age = -1h\n", []string{"2 runs.history", "3 runs.max_age"}},
		{"unknown key in [schedules]", "[schedules]\nkeep = 3\n", []string{"2 schedules.keep"}},
		{"every bad [git] key", "[git]\nssh_key_file = nope\nknown_hosts_file = /\ncheck_host_keys = sometimes\ncredentials_file = nope2\n" +
			"ca_file = nope3\nauthor_name = <mao>\nauthor_email = mao at lab\npush_failed_after = 0s\npush_retry_max = 10ms\nuser = mao\n",
			[]string{"2 git.ssh_key_file", "3 git.known_hosts_file", "4 git.check_host_keys", "5 git.credentials_file", "6 git.ca_file",
				"7 git.author_name", "8 git.author_email", "9 git.push_failed_after", "10 git.push_retry_max", "11 git.user"}},
		{"empty git author", "[git]\nauthor_name =\nauthor_email =\n", []string{"2 git.author_name", "3 git.author_email"}},
		{"listen with a service name", "[api]\nlisten = :http\n", []string{"2 api.listen"}},
		{"open listen without tokens", "[api]\nlisten = 0.0.0.0:8080\n", []string{"2 api.listen"}},
		{"insecure_no_auth not a boolean", "[api]\ninsecure_no_auth = maybe\n", []string{"2 api.insecure_no_auth"}},
		{"tls not a boolean", "[api]\ntls = https\n", []string{"2 api.tls"}},
		{"insecure_no_auth with tokens", "[api]\ntokens = abcdefghijklmnopq\ninsecure_no_auth = yes\n", []string{"3 api.insecure_no_auth"}},
		{"insecure_no_auth and tokens", "[tokens]\nci = run:0123456789abcdef\n[api]\ninsecure_no_auth = true\n", []string{"4 api.insecure_no_auth"}},
		{"bad hostnames", "[api]\nhostnames = http://h, h:80, , a b, ok.example\n", []string{"2 api.hostnames", "2 api.hostnames", "2 api.hostnames", "2 api.hostnames"}},
		{"tls cert without key", "[api]\ntls_cert_file = /etc/hosts\n", []string{"2 api.tls_cert_file"}},
		{"tls files missing", "[api]\ntls_cert_file = nope.pem\ntls_key_file = nope-key.pem\n", []string{"2 api.tls_cert_file", "3 api.tls_key_file"}},
		{"max_connections", "[api]\nmax_connections = 0\n", []string{"2 api.max_connections"}},
		{"token without a scope", "[tokens]\nci = 0123456789abcdef\n", []string{"2 tokens.ci"}},
		{"token with an unknown scope", "[tokens]\nci = write:0123456789abcdef\n", []string{"2 tokens.ci"}},
		{"token with a bad name", "[tokens]\nci/x = run:0123456789abcdef\n", []string{"2 tokens.ci/x"}},
		{"token with an empty secret", "[tokens]\nci = run:\n", []string{"2 tokens.ci"}},
		{"token with a space", "[tokens]\nci = run:0123456789 abcdef\n", []string{"2 tokens.ci"}},
		{"token name twice", "[tokens]\nci = run:0123456789abcdef\nCI = read:0123456789abcdefg\n", []string{"3 tokens.ci"}},
		{"token secret twice", "[tokens]\nci = run:0123456789abcdef\nbot = read:0123456789abcdef\n[api]\ntokens = 0123456789abcdef\n",
			[]string{"3 tokens.bot", "5 api.tokens"}},
		{"docker host without a path", "[docker]\nhost = unix://\n", []string{"2 docker.host"}},
		{"legacy unknown keys", "[WORKING_ENVIRONMENT]\nhome = /x\n[ETCD]\nhost = h\nport = 1\nuser = u\n",
			[]string{"2 WORKING_ENVIRONMENT.home", "6 ETCD.user"}},
		{"legacy and new set the same field", "[site]\ndata_dir = /a\n[WORKING_ENVIRONMENT]\nimportdir = /b\n",
			[]string{"4 WORKING_ENVIRONMENT.importdir"}},
		{"new after legacy", "[WORKING_ENVIRONMENT]\nuser = lab\n[site]\nname = lab\n", []string{"4 site.name"}},
		{"legacy etcd and endpoints", "[ETCD]\nhost = h\nport = 2379\n[etcd]\nendpoints = http://h:2379\n", []string{"5 etcd.endpoints"}},
		{"legacy etcd without port", "[ETCD]\nhost = h\n", []string{"1 ETCD.port"}},
		{"legacy etcd without host", "[ETCD]\nport = 2379\n", []string{"1 ETCD.host"}},
		{"legacy etcd bad port", "[ETCD]\nhost = h\nport = http\n", []string{"3 ETCD.port"}},
		{"legacy etcd url as host", "[ETCD]\nhost = http://h\nport = 1\n", []string{"2 ETCD.host"}},
		{"invalid legacy value names its source", "[WORKING_ENVIRONMENT]\nhostdir = rel\n",
			[]string{"2 site.host_data_dir (from WORKING_ENVIRONMENT.hostdir)"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.ini), file)
			if got := located(t, err); !slices.Equal(got, tc.want) {
				t.Fatalf("problems = %q, want %q\nerror:\n%v", got, tc.want, err)
			}
			if !reflect.DeepEqual(c, Config{}) {
				t.Errorf("Parse returned %+v with an error", c)
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, file+":") {
					t.Errorf("message %q does not name the file", line)
				}
			}
		})
	}
}

func TestMalformed(t *testing.T) {
	tests := []struct {
		name, ini, want string
	}{
		{"line without =", "[site]\nname = a\n\njust words\n", file + `:4: malformed line "just words"`},
		{"unclosed section header", "# c\n[site\nname = a\n", file + `:2: malformed line "[site"`},
		{"empty section name", "[]\n", file + `:1: malformed line "[]"`},
		{"empty key", "[site]\n = a\n", file + `:2: malformed line "= a"`},
		{"unclosed quoted value", "[site]\nname = \"\"\"a\n", file + ": missing closing"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.ini), file)
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to start with %q", err, tc.want)
			}
		})
	}
}

func TestLegacy(t *testing.T) {
	fakeHome(t)
	old := `[WORKING_ENVIRONMENT]
importdir = /home/mao/data
hostdir = /srv/host/data
user = UPF Lab

[ETCD]
host = 10.1.2.3
port = 2379

[POSTGRES]
host = localhost
user = mao
password = secret

[DATA_REPOS]
gh-crawler = /home/mao/data/gh-crawler
`
	c, err := Parse([]byte(old), file)
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Site.Name = "upf-lab"
	want.Site.DataDir, want.Site.HostDataDir, want.Runs.LogDir = "/home/mao/data", "/srv/host/data", "/home/mao/data/logs"
	want.Etcd.Endpoints = []string{"http://10.1.2.3:2379"}
	wantWarnings := []string{
		file + ":2: WORKING_ENVIRONMENT.importdir is read as site.data_dir",
		file + ":3: WORKING_ENVIRONMENT.hostdir is read as site.host_data_dir",
		file + `:4: WORKING_ENVIRONMENT.user "UPF Lab" is read as site.name "upf-lab"`,
		file + ":7: ETCD.host and ETCD.port are read as etcd.endpoints = http://10.1.2.3:2379",
		file + ":10: [POSTGRES] is ignored: mao keeps schedules in etcd",
		file + ":15: [DATA_REPOS] is ignored",
	}
	if len(c.Warnings) != len(wantWarnings) {
		t.Fatalf("warnings = %q, want %d", c.Warnings, len(wantWarnings))
	}
	for i, w := range wantWarnings {
		if !strings.HasPrefix(c.Warnings[i], w) {
			t.Errorf("warning %d = %q, want it to start with %q", i, c.Warnings[i], w)
		}
	}
	want.Warnings = c.Warnings
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("got\n%+v\nwant\n%+v", c, want)
	}
	if c.Etcd.Embedded() {
		t.Error("[ETCD] did not select an external cluster")
	}
}

func TestTokensFile(t *testing.T) {
	fakeHome(t)
	tests := []struct {
		name     string
		tokens   string   // contents of the tokens file; "" means no file
		api      string   // the [api] section
		want     []string // "name scope secret"
		problems []string
		notIn    string // must not appear in the error
	}{
		{
			name:   "merged with inline tokens",
			tokens: "# team tokens\n\nfile-1\n  file-2  \n#file-3\nci  run\tfile-4\n",
			api:    "tokens_file = tokens\ntokens = inline-1",
			want: []string{"tokens_file:3 admin file-1", "tokens_file:4 admin file-2", "ci run file-4",
				"api.tokens[1] admin inline-1"},
		},
		{name: "absolute path", tokens: "t\n", api: "tokens_file = ABS", want: []string{"tokens_file:1 admin t"}},
		{name: "comments only", tokens: "# none yet\n", api: "tokens_file = tokens"},
		{name: "missing file", api: "tokens_file = missing", problems: []string{"2 api.tokens_file"}},
		{
			name:     "token with a space",
			tokens:   "good\nhunter two\n",
			api:      "tokens_file = tokens",
			problems: []string{"2 api.tokens_file"},
			notIn:    "hunter",
		},
		{
			name:     "bad scope",
			tokens:   "ci write hunter2\n",
			api:      "tokens_file = tokens",
			problems: []string{"2 api.tokens_file"},
			notIn:    "hunter",
		},
		{
			name:     "bad name",
			tokens:   "CI/1 run hunter2\n",
			api:      "tokens_file = tokens",
			problems: []string{"2 api.tokens_file"},
			notIn:    "hunter",
		},
		{
			name:     "same secret inline and in the file",
			tokens:   "ci run hunter2-0123456789\n",
			api:      "tokens_file = tokens\ntokens = hunter2-0123456789",
			problems: []string{"3 api.tokens"},
			notIn:    "hunter",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tokens := filepath.Join(dir, "tokens")
			if tc.tokens != "" {
				if err := os.WriteFile(tokens, []byte(tc.tokens), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			path := filepath.Join(dir, "config.ini")
			ini := "[api]\n" + strings.ReplaceAll(tc.api, "ABS", tokens) + "\n"
			if err := os.WriteFile(path, []byte(ini), 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := Load(path)
			if got := located(t, err); !slices.Equal(got, tc.problems) {
				t.Fatalf("problems = %q, want %q\nerror: %v", got, tc.problems, err)
			}
			if err != nil {
				if tc.notIn != "" && strings.Contains(err.Error(), tc.notIn) {
					t.Errorf("error %q reveals a token", err)
				}
				return
			}
			var got []string
			for _, tok := range c.API.Tokens {
				got = append(got, tok.Name+" "+tok.Scope+" "+tok.Secret)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("tokens = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestEtcdTLS(t *testing.T) {
	fakeHome(t)
	dir := t.TempDir()
	for _, f := range []string{"ca.pem", "cert.pem", "key.pem"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("PEM\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "certs"), 0o700); err != nil {
		t.Fatal(err)
	}
	abs := func(f string) string { return filepath.Join(dir, f) }
	const https = "endpoints = https://etcd-1:2379, https://etcd-2:2379\n"
	tests := []struct {
		name     string
		etcd     string // the [etcd] section; DIR is the directory of the files
		ca       string // wanted fields
		cert     string
		key      string
		problems []string
	}{
		{name: "all three, relative", etcd: https + "ca_file = ca.pem\ncert_file = cert.pem\nkey_file = key.pem",
			ca: abs("ca.pem"), cert: abs("cert.pem"), key: abs("key.pem")},
		{name: "CA only, absolute", etcd: https + "ca_file = DIR/ca.pem", ca: abs("ca.pem")},
		{name: "client certificate only", etcd: https + "cert_file = cert.pem\nkey_file = key.pem", cert: abs("cert.pem"), key: abs("key.pem")},
		{name: "certificate without key", etcd: https + "cert_file = cert.pem", problems: []string{"3 etcd.cert_file"}},
		{name: "key without certificate", etcd: https + "key_file = key.pem", problems: []string{"3 etcd.key_file"}},
		{name: "missing file", etcd: https + "ca_file = nope.pem", problems: []string{"3 etcd.ca_file"}},
		{name: "directory", etcd: https + "ca_file = certs", problems: []string{"3 etcd.ca_file"}},
		{name: "empty value", etcd: https + "ca_file =", problems: []string{"3 etcd.ca_file"}},
		{name: "plain http endpoint", etcd: "endpoints = https://a:2379, http://b:2379\nca_file = ca.pem", problems: []string{"2 etcd.endpoints"}},
		{name: "embedded member", etcd: "ca_file = ca.pem\ncert_file = cert.pem\nkey_file = key.pem",
			problems: []string{"2 etcd.ca_file", "3 etcd.cert_file", "4 etcd.key_file"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, "config.ini")
			ini := "[etcd]\n" + strings.ReplaceAll(tc.etcd, "DIR", dir) + "\n"
			if err := os.WriteFile(path, []byte(ini), 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := Load(path)
			if got := located(t, err); !slices.Equal(got, tc.problems) {
				t.Fatalf("problems = %q, want %q\nerror: %v", got, tc.problems, err)
			}
			if err != nil {
				return
			}
			if c.Etcd.CAFile != tc.ca || c.Etcd.CertFile != tc.cert || c.Etcd.KeyFile != tc.key {
				t.Fatalf("files = %q, %q, %q; want %q, %q, %q", c.Etcd.CAFile, c.Etcd.CertFile, c.Etcd.KeyFile, tc.ca, tc.cert, tc.key)
			}
			if !c.Etcd.TLS() {
				t.Error("TLS() is false")
			}
		})
	}
}

func TestTokensFileMissingIsNotExist(t *testing.T) {
	fakeHome(t)
	_, err := Parse([]byte("[api]\ntokens_file = /nonexistent/tokens\n"), file)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("err = %v, want fs.ErrNotExist", err)
	}
}

func TestLoadMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.ini")
	_, err := Load(path)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), path) {
		t.Fatalf("Load(missing) = %v, want a not-exist error naming %s", err, path)
	}
}

func TestValidate(t *testing.T) {
	fakeHome(t)
	tests := []struct {
		name string
		edit func(c *Config)
		want []string // keys with problems, in order
	}{
		{"defaults", func(*Config) {}, nil},
		{"name with slash", func(c *Config) { c.Site.Name = "a/b" }, []string{"site.name"}},
		{"relative dirs", func(c *Config) { c.Site.DataDir, c.Site.HostDataDir, c.Runs.LogDir = "a", "b", "c" },
			[]string{"site.data_dir", "site.host_data_dir", "runs.log_dir"}},
		{"labels", func(c *Config) {
			c.Site.Labels = map[string]string{"a": "x,y", "B": "1", "c": "tab\there", "ok": "fine"}
		},
			[]string{"site.labels", "site.labels", "site.labels"}},
		{"lease below minimum", func(c *Config) { c.Site.LeaseTTL = time.Second }, []string{"site.lease_ttl"}},
		{"etcd maintenance", func(c *Config) {
			c.Etcd.AutoCompactionMode, c.Etcd.QuotaBytes, c.Etcd.DefragFreePercent, c.Etcd.MaintenanceInterval = "always", 1<<20, 95, 0
		}, []string{"etcd.auto_compaction_mode", "etcd.quota_backend_bytes", "etcd.defrag_free_percent", "etcd.maintenance_interval"}},
		{"periodic retention", func(c *Config) { c.Etcd.AutoCompactionRetention = "10s" }, []string{"etcd.auto_compaction_retention"}},
		{"revision retention", func(c *Config) { c.Etcd.AutoCompactionMode, c.Etcd.AutoCompactionRetention = "revision", "1h" },
			[]string{"etcd.auto_compaction_retention"}},
		{"endpoints", func(c *Config) { c.Etcd.Endpoints = []string{"http://h:2379", "", "h:2379"} },
			[]string{"etcd.endpoints", "etcd.endpoints"}},
		{"tokens", func(c *Config) {
			c.API.Tokens = []Token{{"a", ScopeRun, "ok", "tokens.a"}, {"b", ScopeRun, "", "tokens.b"}, {"c", ScopeRun, "a\tb", "tokens.c"},
				{"api.tokens[1]", ScopeAdmin, "x\x00", "api.tokens"}, {"e", "all", "café", ""}, {"", ScopeRead, "fine", "tokens"},
				{"a", ScopeRead, "ok", "tokens.a"}, {"B", ScopeRead, "B", "tokens.B"}}
		}, []string{"tokens.b", "tokens.c", "api.tokens", "tokens", "tokens", "tokens", "tokens.a", "tokens.a", "tokens.B"}},
		{"open listen", func(c *Config) { c.API.Listen = "[::]:8080" }, []string{"api.listen"}},
		{"open listen, no auth", func(c *Config) { c.API.Listen, c.API.InsecureNoAuth = "[::]:8080", true }, nil},
		{"open listen with a token", func(c *Config) {
			c.API.Listen, c.API.Tokens = "[::]:8080", []Token{{"ci", ScopeRun, "0123456789abcdef", "tokens.ci"}}
		}, nil},
		{"zero durations", func(c *Config) {
			c.Site.LeaseTTL, c.Etcd.DialTimeout, c.Etcd.RequestTimeout = 0, 0, 0
			c.Runs.ShutdownGrace, c.Runs.StopGrace, c.Runs.PrepareTimeout = 0, 0, 0
		}, []string{"site.lease_ttl", "etcd.dial_timeout", "etcd.request_timeout", "runs.shutdown_grace", "runs.stop_grace", "runs.prepare_timeout"}},
		{"zero values of the new keys", func(c *Config) { c.Site.Timezone, c.Runs.PrepareTimeout, c.Schedules.History = "", 0, 0 },
			[]string{"site.timezone", "runs.prepare_timeout", "schedules.history"}},
		{"time zones", func(c *Config) { c.Site.Timezone = "America/Argentina/Buenos_Aires" }, nil},
		{"history above the maximum", func(c *Config) { c.Schedules.History = 1 << 20 }, []string{"schedules.history"}},
		{"container limits unset", func(c *Config) { c.Runs.PidsLimit, c.Runs.DefaultMemory = 0, 0 },
			[]string{"runs.pids_limit", "runs.default_memory"}},
		{"container limits out of range", func(c *Config) { c.Runs.PidsLimit, c.Runs.DefaultMemory = 1<<23, 1<<51 },
			[]string{"runs.pids_limit", "runs.default_memory"}},
		{"output limits", func(c *Config) { c.Runs.MaxOutputBytes, c.Runs.MaxOutputFiles = -1, 0 },
			[]string{"runs.max_output_bytes", "runs.max_output_files"}},
		{"output limits above the maximum", func(c *Config) { c.Runs.MaxOutputBytes, c.Runs.MaxOutputFiles = 1<<50+1, 1<<30 },
			[]string{"runs.max_output_bytes", "runs.max_output_files"}},
		{"docker hosts", func(c *Config) { c.Docker.Host = "npipe:////./pipe/docker_engine" }, nil},
		{"stop grace in whole seconds", func(c *Config) { c.Runs.StopGrace = 2 * time.Minute }, nil},
		{"TLS files with the embedded member", func(c *Config) { c.Etcd.CAFile, c.Etcd.KeyFile = "/etc/ca.pem", "/etc/key.pem" },
			[]string{"etcd.ca_file", "etcd.key_file"}},
		{"TLS files that are not there", func(c *Config) {
			c.Etcd.Endpoints = []string{"https://h:2379"}
			c.Etcd.CAFile, c.Etcd.CertFile, c.Etcd.KeyFile = "ca.pem", "/nonexistent/cert.pem", "/nonexistent/key.pem"
		}, []string{"etcd.ca_file", "etcd.cert_file", "etcd.key_file"}},
		{"plaintext member URLs", func(c *Config) { c.Etcd.ClientURL, c.Etcd.PeerURL = "http://127.0.0.1:1", "http://127.0.0.1:2" },
			[]string{"etcd.client_url", "etcd.peer_url"}},
		{"joining", func(c *Config) { c.Site.Name, c.Etcd.JoinToken = "b", "maojoin1.x" }, nil},
		{"federation keys", func(c *Config) { c.Federation.Listen, c.Federation.TokenTTL, c.Federation.MaxVoters = "", 0, 2 },
			[]string{"federation.listen", "federation.token_ttl", "federation.max_voters"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			tc.edit(&c)
			var keys []string
			for _, p := range located(t, c.Validate()) {
				keys = append(keys, strings.TrimPrefix(p, "0 "))
			}
			if !slices.Equal(keys, tc.want) {
				t.Fatalf("problems = %q, want %q\nerror:\n%v", keys, tc.want, c.Validate())
			}
		})
	}
}

func TestListenWarning(t *testing.T) {
	fakeHome(t)
	tests := []struct {
		api  string
		warn bool
	}{
		{"listen = 127.0.0.1:8080", false},
		{"listen = localhost:0", false},
		{"listen = [::1]:8080", false},
		{"listen = 0.0.0.0:8080\ninsecure_no_auth = true", true},
		{"listen = :8080\ninsecure_no_auth = true", true},
		{"listen = 127.0.0.1:8080\ninsecure_no_auth = true", false},
		{"listen = 0.0.0.0:8080\ntokens = t0123456789abcdef", false},
		{"listen = 0.0.0.0:8080\n[tokens]\nci = read:0123456789abcdef", false},
	}
	for _, tc := range tests {
		c, err := Parse([]byte("[api]\n"+tc.api+"\n"), file)
		if err != nil {
			t.Fatalf("%s: %v", tc.api, err)
		}
		var warnings []string // of the listen address; an unnamed token has its own
		for _, w := range c.Warnings {
			if !strings.Contains(w, "no name") {
				warnings = append(warnings, w)
			}
		}
		if got := len(warnings) == 1 && strings.Contains(warnings[0], "anyone"); got != tc.warn || len(warnings) > 1 {
			t.Errorf("%q: warnings %q, want a warning: %v", tc.api, c.Warnings, tc.warn)
		}
	}
}

// TestEmbeddedEtcdOnTheNetwork checks that an embedded member that listens
// beyond loopback draws no warning: it admits only clients with the
// federation's certificates.
func TestEmbeddedEtcdOnTheNetwork(t *testing.T) {
	fakeHome(t)
	for _, ini := range []string{
		"[etcd]\nclient_url = https://0.0.0.0:2379\n",
		"# lab\n[etcd]\nclient_url = https://192.168.1.5:2379\npeer_url = https://192.168.1.5:2380\n",
		"[etcd]\nclient_url = https://etcd.lab.example.org:2379\n",
	} {
		c, err := Parse([]byte(ini), file)
		if err != nil {
			t.Fatal(err)
		}
		if len(c.Warnings) != 0 {
			t.Errorf("%q: warnings %q", ini, c.Warnings)
		}
	}
	// An API open to other machines without tokens is warned about, when
	// the config says so on purpose.
	c, err := Parse([]byte("[api]\nlisten = :8080\ninsecure_no_auth = true\n"), file)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Warnings) != 1 || !strings.HasPrefix(c.Warnings[0], file+":2: api.listen :8080") {
		t.Errorf("warnings %q, want one about api.listen", c.Warnings)
	}
}

func TestTimezoneMessage(t *testing.T) {
	fakeHome(t)
	for _, tz := range []string{"Europe/Zurch", "../../etc/passwd"} {
		_, reason := time.LoadLocation(tz)
		if reason == nil {
			t.Fatalf("time.LoadLocation(%q) accepted it", tz)
		}
		_, err := Parse([]byte("[site]\ntimezone = "+tz+"\n"), file)
		if err == nil || !strings.Contains(err.Error(), reason.Error()) {
			t.Errorf("timezone %q: error %v does not carry the loader's reason %q", tz, err, reason)
		}
	}
}

const example = "../../config.ini.example"

// TestExampleShowsDefaults also checks, with $XDG_DATA_HOME set, that a
// copy of the example does not pin data_dir.
func TestExampleShowsDefaults(t *testing.T) {
	for _, xdg := range []string{"", "/data/xdg"} {
		t.Run("XDG_DATA_HOME="+xdg, func(t *testing.T) {
			fakeHome(t)
			t.Setenv("XDG_DATA_HOME", xdg)
			c, err := Load(example)
			if err != nil {
				t.Fatal(err)
			}
			if want := Default(); !reflect.DeepEqual(c, want) {
				t.Fatalf("the example's settings\n%+v\nare not the defaults\n%+v", c, want)
			}
		})
	}
}

func TestExampleDocumentsEveryKey(t *testing.T) {
	data, err := os.ReadFile(example)
	if err != nil {
		t.Fatal(err)
	}
	shown := map[string]bool{} // "section.key", set or commented out
	section := ""
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "[") {
			section = strings.Trim(line, "[]")
		} else if key, _, ok := strings.Cut(strings.TrimPrefix(line, "#"), " = "); ok && !strings.Contains(key, " ") {
			shown[section+"."+key] = true
		}
	}
	var c Config
	for key := range c.setters("") {
		if !shown[key] {
			t.Errorf("%s does not show %s", example, key)
		}
	}
}

var exampleToken = regexp.MustCompile(`^#[a-z0-9._-]+ = (read|run|admin):\S+$`)

// TestExampleTokens uncomments the example's [tokens] entries and its
// [api] listen beyond loopback: they must load as documented.
func TestExampleTokens(t *testing.T) {
	fakeHome(t)
	data, err := os.ReadFile(example)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	section := ""
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "[") {
			section = line
		}
		if section == "[tokens]" && exampleToken.MatchString(line) {
			line = strings.TrimPrefix(line, "#")
		}
		if section == "[api]" && strings.HasPrefix(line, "listen = ") {
			line = "listen = 0.0.0.0:8080"
		}
		out = append(out, line)
	}
	c, err := Parse([]byte(strings.Join(out, "\n")), file)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, tok := range c.API.Tokens {
		got = append(got, tok.Name+" "+tok.Scope)
	}
	if want := []string{"ci run", "ada admin", "dashboard read"}; !slices.Equal(got, want) || len(c.Warnings) != 0 {
		t.Fatalf("tokens %q, warnings %q; want %q and no warnings", got, c.Warnings, want)
	}
}
