package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
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
					ClientURL: "http://127.0.0.1:2379", PeerURL: "http://127.0.0.1:2380", ClusterState: "new",
				},
				API: API{Listen: "127.0.0.1:8080"},
				Runs: Runs{ShutdownGrace: 30 * time.Second, StopGrace: 10 * time.Second, PrepareTimeout: 15 * time.Minute,
					MaxOutputBytes: 10 << 30, MaxOutputFiles: 100000},
				Schedules: Schedules{History: 100},
				Detector:  Detector{SeriesLength: 1000},
				Notify:    Notify{Cooldown: 24 * time.Hour, Attempts: 5},
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
		{"etcd.prefix", "[etcd]\nprefix = /lab/mao/\n", func(c *Config) { c.Etcd.Prefix = "/lab/mao/" }},
		{"etcd timeouts", "[etcd]\ndial_timeout = 1s\nrequest_timeout = 1m30s\n", func(c *Config) {
			c.Etcd.DialTimeout, c.Etcd.RequestTimeout = time.Second, 90*time.Second
		}},
		{"etcd urls with free ports", "[etcd]\nclient_url = http://127.0.0.1:0\npeer_url = https://localhost:0/\n", func(c *Config) {
			c.Etcd.ClientURL, c.Etcd.PeerURL = "http://127.0.0.1:0", "https://localhost:0/"
		}},
		{"join a cluster", "[site]\nname = lab-2\n[etcd]\npeer_url = http://10.0.0.2:2380\n" +
			"initial_cluster = lab-1=http://10.0.0.1:2380,lab-2=http://10.0.0.2:2380,lab-3=https://[fd00::3]:2380\ncluster_state = existing\n",
			func(c *Config) {
				c.Site.Name, c.Etcd.PeerURL = "lab-2", "http://10.0.0.2:2380"
				c.Etcd.InitialCluster = "lab-1=http://10.0.0.1:2380,lab-2=http://10.0.0.2:2380,lab-3=https://[fd00::3]:2380"
				c.Etcd.ClusterState = "existing"
			}},
		{"start a cluster of one", "[site]\nname = lab-1\n[etcd]\ninitial_cluster = lab-1=http://127.0.0.1:2380\ncluster_state = new\n",
			func(c *Config) { c.Site.Name, c.Etcd.InitialCluster = "lab-1", "lab-1=http://127.0.0.1:2380" }},
		{"api.listen", "[api]\nlisten = [::1]:0\n", func(c *Config) { c.API.Listen = "[::1]:0" }},
		{"api.tokens", "[api]\ntokens = s3cr#t;1, tok2\n", func(c *Config) { c.API.Tokens = []string{"s3cr#t;1", "tok2"} }},
		{"docker.host", "[docker]\nhost = tcp://127.0.0.1:2375\n", func(c *Config) { c.Docker.Host = "tcp://127.0.0.1:2375" }},
		{"runs", "[runs]\nshutdown_grace = 2m\nstop_grace = 3s\nlog_dir = logs\n", func(c *Config) {
			c.Runs.ShutdownGrace, c.Runs.StopGrace, c.Runs.LogDir = 2*time.Minute, 3*time.Second, "/etc/mao/logs"
		}},
		{"runs.prepare_timeout", "[runs]\nprepare_timeout = 1h30m\n", func(c *Config) { c.Runs.PrepareTimeout = 90 * time.Minute }},
		{"runs output limits", "[runs]\nmax_output_bytes = 2GiB\nmax_output_files = 5000\n", func(c *Config) {
			c.Runs.MaxOutputBytes, c.Runs.MaxOutputFiles = 2<<30, 5000
		}},
		{"runs.max_output_bytes in decimal units", "[runs]\nmax_output_bytes = 500 MB\n", func(c *Config) { c.Runs.MaxOutputBytes = 500e6 }},
		{"runs.max_output_bytes in bytes", "[runs]\nmax_output_bytes = 1048576\n", func(c *Config) { c.Runs.MaxOutputBytes = 1 << 20 }},
		{"runs output limits at their maximum", "[runs]\nmax_output_bytes = 1PiB\nmax_output_files = 100000000\n", func(c *Config) {
			c.Runs.MaxOutputBytes, c.Runs.MaxOutputFiles = 1<<50, 100000000
		}},
		{"schedules.history", "[schedules]\nhistory = 7\n", func(c *Config) { c.Schedules.History = 7 }},
		{"schedules.history bounds", "[schedules]\nhistory = 1\n", func(c *Config) { c.Schedules.History = 1 }},
		{"schedules.history maximum", "[schedules]\nhistory = 100000\n", func(c *Config) { c.Schedules.History = 100000 }},
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
		{"embedded urls with endpoints", "[etcd]\nclient_url = http://127.0.0.1:1\nendpoints = http://h:2379\npeer_url = http://127.0.0.1:2\n",
			[]string{"2 etcd.client_url", "4 etcd.peer_url"}},
		{"bad embedded urls", "[etcd]\nclient_url = 127.0.0.1:2379\npeer_url = http://127.0.0.1:99999\n",
			[]string{"2 etcd.client_url", "3 etcd.peer_url"}},
		{"peer_url equals client_url", "[etcd]\nclient_url = http://127.0.0.1:2379\npeer_url = http://127.0.0.1:2379\n", []string{"3 etcd.peer_url"}},
		{"initial_cluster without this site", "[site]\nname = lab-2\n[etcd]\ninitial_cluster = lab-1=http://10.0.0.1:2380\n",
			[]string{"4 etcd.initial_cluster"}},
		{"initial_cluster with another peer_url", "[site]\nname = lab-1\n[etcd]\ninitial_cluster = lab-1=http://10.0.0.1:2380\n",
			[]string{"4 etcd.initial_cluster"}},
		{"initial_cluster with this site twice", "[site]\nname = lab-1\n[etcd]\ninitial_cluster = lab-1=http://127.0.0.1:2380,lab-1=http://10.0.0.1:2380\n",
			[]string{"4 etcd.initial_cluster"}},
		{"initial_cluster with a space", "[site]\nname = a\n[etcd]\ninitial_cluster = a=http://127.0.0.1:2380, b=http://h:2380\n",
			[]string{"4 etcd.initial_cluster"}},
		{"initial_cluster entry without a name", "[site]\nname = a\n[etcd]\ninitial_cluster = a=http://127.0.0.1:2380,http://h:2380\n",
			[]string{"4 etcd.initial_cluster"}},
		{"initial_cluster empty entry", "[site]\nname = a\n[etcd]\ninitial_cluster = a=http://127.0.0.1:2380,,b=http://h:2380\n",
			[]string{"4 etcd.initial_cluster"}},
		{"initial_cluster URL with a path", "[site]\nname = a\n[etcd]\npeer_url = http://127.0.0.1:2380/\ninitial_cluster = a=http://127.0.0.1:2380/\n",
			[]string{"5 etcd.initial_cluster"}},
		{"initial_cluster URL twice", "[site]\nname = a\n[etcd]\ninitial_cluster = a=http://127.0.0.1:2380,b=http://127.0.0.1:2380\n",
			[]string{"4 etcd.initial_cluster"}},
		{"initial_cluster with port 0", "[site]\nname = a\n[etcd]\npeer_url = http://127.0.0.1:0\ninitial_cluster = a=http://127.0.0.1:0\n",
			[]string{"5 etcd.initial_cluster"}},
		{"unknown cluster_state", "[etcd]\ncluster_state = join\n", []string{"2 etcd.cluster_state"}},
		{"existing cluster_state without initial_cluster", "[etcd]\ncluster_state = existing\n", []string{"2 etcd.cluster_state"}},
		{"join keys with endpoints", "[etcd]\nendpoints = http://h:2379\ninitial_cluster = a=http://h:2380\ncluster_state = new\n",
			[]string{"3 etcd.initial_cluster", "4 etcd.cluster_state"}},
		{"unknown time zone", "[site]\ntimezone = Europe/Zurch\n", []string{"2 site.timezone"}},
		{"time zone with a path", "[site]\ntimezone = ../../etc/passwd\n", []string{"2 site.timezone"}},
		{"Local is not a time zone name", "[site]\ntimezone = Local\n", []string{"2 site.timezone"}},
		{"empty time zone", "[site]\ntimezone =\n", []string{"2 site.timezone"}},
		{"prepare_timeout not a duration", "[runs]\nprepare_timeout = 15\n", []string{"2 runs.prepare_timeout"}},
		{"negative prepare_timeout", "[runs]\nprepare_timeout = -1m\n", []string{"2 runs.prepare_timeout"}},
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
		{"unknown key in [schedules]", "[schedules]\nkeep = 3\n", []string{"2 schedules.keep"}},
		{"listen with a service name", "[api]\nlisten = :http\n", []string{"2 api.listen"}},
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
		tokens   string // contents of the tokens file; "" means no file
		api      string // the [api] section
		want     []string
		problems []string
		notIn    string // must not appear in the error
	}{
		{
			name:   "merged after inline tokens",
			tokens: "# team tokens\n\nfile-1\n  file-2  \n#file-3\n",
			api:    "tokens_file = tokens\ntokens = inline-1",
			want:   []string{"inline-1", "file-1", "file-2"},
		},
		{name: "absolute path", tokens: "t\n", api: "tokens_file = ABS", want: []string{"t"}},
		{name: "comments only", tokens: "# none yet\n", api: "tokens_file = tokens"},
		{name: "missing file", api: "tokens_file = missing", problems: []string{"2 api.tokens_file"}},
		{
			name:     "token with a space",
			tokens:   "good\nhunter two\n",
			api:      "tokens_file = tokens",
			problems: []string{"2 api.tokens_file"},
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
			if !slices.Equal(c.API.Tokens, tc.want) {
				t.Fatalf("tokens = %q, want %q", c.API.Tokens, tc.want)
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
		{"endpoints", func(c *Config) { c.Etcd.Endpoints = []string{"http://h:2379", "", "h:2379"} },
			[]string{"etcd.endpoints", "etcd.endpoints"}},
		{"tokens", func(c *Config) { c.API.Tokens = []string{"ok", "", "a\tb", "x\x00", "café"} },
			[]string{"api.tokens", "api.tokens", "api.tokens", "api.tokens"}},
		{"zero durations", func(c *Config) {
			c.Site.LeaseTTL, c.Etcd.DialTimeout, c.Etcd.RequestTimeout = 0, 0, 0
			c.Runs.ShutdownGrace, c.Runs.StopGrace, c.Runs.PrepareTimeout = 0, 0, 0
		}, []string{"site.lease_ttl", "etcd.dial_timeout", "etcd.request_timeout", "runs.shutdown_grace", "runs.stop_grace", "runs.prepare_timeout"}},
		{"zero values of the new keys", func(c *Config) { c.Site.Timezone, c.Runs.PrepareTimeout, c.Schedules.History = "", 0, 0 },
			[]string{"site.timezone", "runs.prepare_timeout", "schedules.history"}},
		{"time zones", func(c *Config) { c.Site.Timezone = "America/Argentina/Buenos_Aires" }, nil},
		{"history above the maximum", func(c *Config) { c.Schedules.History = 1 << 20 }, []string{"schedules.history"}},
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
		{"initial cluster", func(c *Config) { c.Etcd.InitialCluster = "other=http://127.0.0.1:2381" }, []string{"etcd.initial_cluster"}},
		{"joining", func(c *Config) {
			c.Site.Name, c.Etcd.InitialCluster, c.Etcd.ClusterState = "b", "a=http://10.0.0.1:2380,b=http://127.0.0.1:2380", "existing"
		}, nil},
		{"joining without initial cluster", func(c *Config) { c.Etcd.ClusterState = "existing" }, []string{"etcd.cluster_state"}},
		{"empty cluster state", func(c *Config) { c.Etcd.ClusterState = "" }, []string{"etcd.cluster_state"}},
		{"external cluster ignores the embedded member's keys", func(c *Config) {
			c.Etcd.Endpoints, c.Etcd.InitialCluster, c.Etcd.ClusterState = []string{"http://h:2379"}, "x", "existing"
		}, nil},
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
		{"listen = 0.0.0.0:8080", true},
		{"listen = :8080", true},
		{"listen = 0.0.0.0:8080\ntokens = t", false},
	}
	for _, tc := range tests {
		c, err := Parse([]byte("[api]\n"+tc.api+"\n"), file)
		if err != nil {
			t.Fatalf("%s: %v", tc.api, err)
		}
		if got := len(c.Warnings) == 1 && strings.Contains(c.Warnings[0], "anyone"); got != tc.warn || len(c.Warnings) > 1 {
			t.Errorf("%q: warnings %q, want a warning: %v", tc.api, c.Warnings, tc.warn)
		}
	}
}

func TestEtcdClientURLWarning(t *testing.T) {
	fakeHome(t)
	const etcdWarning = "embedded etcd has no authentication"
	tests := []struct {
		name string
		ini  string
		want []string // prefixes of the warnings, in order
	}{
		{name: "default", ini: ""},
		{name: "localhost", ini: "[etcd]\nclient_url = http://localhost:2379\n"},
		{name: "IPv6 loopback", ini: "[etcd]\nclient_url = http://[::1]:0\n"},
		{name: "other loopback address", ini: "[etcd]\nclient_url = https://127.0.0.2:2379\n"},
		{name: "external cluster", ini: "[etcd]\nendpoints = http://10.0.0.1:2379\n"},
		{name: "all interfaces", ini: "[etcd]\nclient_url = http://0.0.0.0:2379\n",
			want: []string{file + ":2: etcd.client_url http://0.0.0.0:2379"}},
		{name: "LAN address", ini: "# lab\n[etcd]\nclient_url = http://192.168.1.5:2379\n",
			want: []string{file + ":3: etcd.client_url http://192.168.1.5:2379"}},
		{name: "host name", ini: "[etcd]\nclient_url = http://etcd.lab.example.org:2379\n",
			want: []string{file + ":2: etcd.client_url http://etcd.lab.example.org:2379"}},
		{name: "with an open api.listen", ini: "[etcd]\nclient_url = http://[::]:2379\n[api]\nlisten = :8080\n",
			want: []string{file + ":4: api.listen :8080", file + ":2: etcd.client_url http://[::]:2379"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.ini), file)
			if err != nil {
				t.Fatal(err)
			}
			if len(c.Warnings) != len(tc.want) {
				t.Fatalf("warnings = %q, want %d", c.Warnings, len(tc.want))
			}
			for i, w := range tc.want {
				if !strings.HasPrefix(c.Warnings[i], w) {
					t.Errorf("warning %d = %q, want it to start with %q", i, c.Warnings[i], w)
				}
				if strings.Contains(w, "etcd.client_url") && !strings.Contains(c.Warnings[i], etcdWarning) {
					t.Errorf("warning %q does not say %q", c.Warnings[i], etcdWarning)
				}
			}
		})
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
