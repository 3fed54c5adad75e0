package maoctl

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/internal/testenv"
	"github.com/mao-research/mao/internal/testsite"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// asMaoctlEnv makes the test binary behave as maoctl, for the completion
// script test.
const asMaoctlEnv = "MAOCTL_TEST_AS_MAOCTL"

func TestMain(m *testing.M) {
	if os.Getenv(asMaoctlEnv) == "1" {
		err := Run(context.Background(), os.Args[1:], os.Stdout, os.Stderr)
		PrintError(os.Stderr, err)
		os.Exit(ExitCode(err))
	}
	// Nothing in these tests may leave this machine: every DNS lookup of
	// the process (the orchestrators' git clones and notifications
	// included) fails at once, without asking any server.
	net.DefaultResolver = &net.Resolver{PreferGo: true, Dial: func(_ context.Context, network, address string) (net.Conn, error) {
		return nil, fmt.Errorf("maoctl's tests make no DNS lookups (%s %s)", network, address)
	}}
	// The cases run in parallel and name their orchestrator with --addr;
	// the caller's environment must not choose one for them.
	os.Unsetenv("MAO_ADDR")
	os.Unsetenv("MAO_TOKEN")
	os.Exit(m.Run())
}

// secretToken must never appear in any output.
const secretToken = "s3cret-t0ken"

// cliCase is a sequence of command lines run against a real orchestrator,
// site lab-a (internal/testsite), started for the case alone: each
// command gets --addr with its address (a command's own --addr comes later
// and wins). The site's clock moves one second before each command,
// and the case waits after each one until the site has done what it was
// asked (testsite.Site.Settle). The transcript, normalised (see
// normalizer), is compared with testdata/<name>.golden.
//
// In arguments, $TMP is the case's temporary directory, $CLOSED a loopback
// address nobody listens on, other $NAMEs what the case named, and
// $RUN<n> and $SCHED<n> the n-th run and schedule ID that the
// orchestrator made in the case. The transcript shows command
// lines normalised as the output is.
//
// Commands run one at a time in the process (oneAtATime); the sites start,
// are seeded and settle in parallel.
type cliCase struct {
	name string
	// noSite: the commands never reach an orchestrator (help, usage
	// errors, the offline detector); no site is started.
	noSite bool
	// docker: the site uses the Docker engine, for cases that really run
	// containers. They seed nothing but what setup does, so that no image
	// but the locally built ones is ever looked up.
	docker bool
	bare   bool // no base seed (seedBase)
	// runnable: the base tools that cases run have file:// repositories.
	runnable bool
	realLabB bool // lab-b is a real second orchestrator, not only a record
	serial   bool // the case changes directory: it cannot run in parallel
	noSettle bool // etcd fails on purpose: the case does not wait for the site
	// options changes how the site starts.
	options func(t *testing.T, e *env, o *testsite.Options)
	atLabC  func(t *testing.T, e *env) // seeds while lab-c is live (seedBase)
	setup   func(t *testing.T, e *env)
	stdin   string // the standard input of each command
	cmds    [][]string
	exits   []int // the expected exit status of each command
	// after[i] runs after command i: something the case does that no
	// command does (another site acts) or checks. Its note, if any, goes
	// into the transcript.
	after map[int]action
}

type action struct {
	note string
	do   func(t *testing.T, e *env)
}

// env is what a case runs against.
type env struct {
	site    *testsite.Site             // lab-a, the site the commands ask
	labB    *testsite.Site             // with realLabB
	other   map[string]*testsite.Other // sites that are only records
	tmp     string
	norm    *normalizer
	docker  bool
	hook    *receiver        // siteChannels
	cluster *testenv.Cluster // etcdCluster
}

// addr registers a free loopback host:port of the case (or a URL's), which
// command lines may name as name, and returns it.
func (e *env) addr(hostport, name string) string {
	if _, rest, ok := strings.Cut(hostport, "://"); ok {
		hostport = rest
	}
	if hostport == "" {
		return ""
	}
	e.norm.addr(hostport, name)
	return hostport
}

func cmds(lines ...[]string) [][]string { return lines }

func TestCommands(t *testing.T) {
	goldenDir, err := filepath.Abs("testdata") // a case changes directory
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range commandCases() {
		t.Run(tc.name, func(t *testing.T) {
			if !tc.serial {
				t.Parallel()
			}
			runCase(t, tc, goldenDir)
		})
	}
}

// runCase starts the case's site, seeds it, runs the commands and
// compares the transcript with the golden file.
func runCase(t *testing.T, tc cliCase, goldenDir string) {
	if len(tc.exits) != len(tc.cmds) {
		t.Fatalf("case has %d commands but %d exit statuses", len(tc.cmds), len(tc.exits))
	}
	e := &env{tmp: t.TempDir(), norm: newNormalizer(), other: map[string]*testsite.Other{}, docker: tc.docker}
	e.norm.name(e.tmp, "$TMP")
	e.norm.name(filepath.Dir(e.tmp), "$TESTDIR") // the test's other temporary directories
	e.addr(testenv.ClosedPort(t), "$CLOSED")
	for _, id := range []string{run1, run2, run3, runLost, runRetried, runWaiting, runAtB, runSpike, runMixed, runNoData, runFlatHit} {
		e.norm.keepValue(id)
	}
	if !tc.noSite {
		startSites(t, tc, e)
	}

	var transcript strings.Builder
	for i, cmd := range tc.cmds {
		args := make([]string, len(cmd))
		shown := make([]string, len(cmd))
		for j, a := range cmd {
			args[j] = e.norm.expand(a)
			shown[j] = e.norm.normalize(args[j], e.docker)
		}
		if e.site != nil {
			e.site.Advance(time.Second)
			args = append([]string{"--addr", e.site.Addr}, args...)
		}
		stdout, stderr, code := runMaoctl(t, context.Background(), tc.stdin, args...)
		if e.site != nil && !tc.noSettle {
			e.site.Settle(t)
			e.randomMembers(t)
		}
		if code != tc.exits[i] {
			t.Errorf("maoctl %q: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", cmd, code, tc.exits[i], stdout, stderr)
		}
		if strings.Contains(stdout+stderr, secretToken) {
			t.Errorf("maoctl %q printed the token", cmd)
		}
		if code != 0 && code == exitUsage && strings.Contains(stdout, "USAGE") {
			t.Errorf("maoctl %q dumped usage on a usage error", cmd)
		}
		writeTranscript(&transcript, shown, e.norm.normalize(stdout, e.docker), e.norm.normalize(stderr, e.docker), code)
		if a, ok := tc.after[i]; ok {
			if a.note != "" {
				fmt.Fprintf(&transcript, "# %s\n\n", e.norm.normalize(e.norm.expand(a.note), e.docker))
			}
			a.do(t, e)
		}
	}
	checkGolden(t, filepath.Join(goldenDir, tc.name+".golden"), transcript.String())
}

// startSites starts lab-a (and a real lab-b) and seeds them.
func startSites(t *testing.T, tc cliCase, e *env) {
	t.Helper()
	opts := testsite.Options{Name: "lab-a", Labels: map[string]string{"zone": "eu", "gpu": "none"}, Timezone: "Europe/Zurich", Docker: tc.docker}
	if tc.realLabB {
		// Two real sites share an external etcd: lab-a founds the
		// federation's certificates and lab-b joins with a token.
		opts.Etcd = testenv.Etcd(t)
	}
	if tc.options != nil {
		tc.options(t, e, &opts)
	}
	e.site = testsite.Start(t, opts)
	e.addr(e.site.Addr, "$ADDR")
	e.addr(e.site.FederationAddr, "")
	for _, ep := range e.site.Endpoints {
		e.addr(ep, "")
	}
	if opts.AdvertisedPorts {
		e.addr(e.site.Config.Etcd.PeerURL, "")
		e.randomMembers(t)
	}
	e.norm.own["lab-a"] = true
	if tc.realLabB {
		e.labB = testsite.Start(t, testsite.Options{Name: "lab-b", Labels: map[string]string{"zone": "eu", "gpu": "a100"},
			Join: e.site, Clock: e.site.Clock})
		e.addr(e.labB.Addr, "$LAB_B")
		e.addr(e.labB.FederationAddr, "")
		e.norm.own["lab-b"] = true
	}
	if !tc.bare {
		seedBase(t, e, tc.runnable, tc.atLabC)
	}
	if tc.setup != nil {
		tc.setup(t, e)
	}
	if !tc.noSettle {
		e.site.Settle(t)
	}
}

// randomMembers marks the IDs of the etcd members that listen on free
// ports (the site's own, with AdvertisedPorts, and those the case's
// commands added) and of their cluster as random: they are.
func (e *env) randomMembers(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := e.site.Etcd.MemberList(ctx)
	if err != nil {
		return // etcd is down on purpose in some cases
	}
	for _, m := range resp.Members {
		if m.Name == e.site.Name && (len(m.PeerURLs) != 1 || !strings.HasSuffix(m.PeerURLs[0], ":0")) {
			e.norm.randomMember(fmt.Sprintf("%x", resp.Header.ClusterId)) // the cluster's ID is its first member's
		}
	}
	for _, m := range resp.Members {
		if len(m.PeerURLs) != 1 || !strings.HasSuffix(m.PeerURLs[0], ":0") { // a member on port 0 has the same ID on every run
			e.norm.randomMember(fmt.Sprintf("%x", m.ID))
		}
	}
}

// oneAtATime serialises maoctl's command lines: urfave/cli v2 writes to
// its global help flag (cli.HelpFlag) whenever it parses one, so two in
// one process at once are a data race. (maoctl runs one per process.)
var oneAtATime sync.Mutex

// runMaoctl runs one command line the way cmd/maoctl does, with stdin as
// its standard input.
func runMaoctl(t *testing.T, ctx context.Context, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	oneAtATime.Lock()
	defer oneAtATime.Unlock()
	var out, errOut bytes.Buffer
	err := run(ctx, args, strings.NewReader(stdin), &out, &errOut)
	PrintError(&errOut, err)
	return out.String(), errOut.String(), ExitCode(err)
}

func writeTranscript(w *strings.Builder, cmd []string, stdout, stderr string, code int) {
	quoted := make([]string, len(cmd))
	for i, a := range cmd {
		if a == "" || strings.ContainsAny(a, " \n\"'") {
			a = fmt.Sprintf("%q", a)
		}
		quoted[i] = a
	}
	fmt.Fprintln(w, strings.Join(append([]string{"$ maoctl"}, quoted...), " "))
	for _, s := range []struct{ name, text string }{{"stdout", stdout}, {"stderr", stderr}} {
		if s.text == "" {
			continue
		}
		fmt.Fprintf(w, "-- %s --\n%s", s.name, s.text)
		if !strings.HasSuffix(s.text, "\n") {
			w.WriteString("\n-- (no final newline) --\n")
		}
	}
	fmt.Fprintf(w, "-- exit %d --\n\n", code)
}

func checkGolden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (go test -update rewrites it)\n--- got:\n%s\n--- want:\n%s", path, got, want)
	}
}

// receiver is a webhook on loopback that counts the messages it gets.
type receiver struct {
	mu  sync.Mutex
	got []string
}

func newReceiver(t *testing.T) (*receiver, string) {
	t.Helper()
	r := &receiver{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, req.URL.Path+" "+string(b))
		r.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	return r, strings.TrimPrefix(srv.URL, "http://")
}

func (r *receiver) messages() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.got...)
}

// lineWriter reports the first write that completes a line.
type lineWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	first chan struct{}
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	had := bytes.Contains(w.buf.Bytes(), []byte("\n"))
	w.buf.Write(p)
	if !had && bytes.Contains(w.buf.Bytes(), []byte("\n")) {
		close(w.first)
	}
	return len(p), nil
}

func (w *lineWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// TestToolRunFollowStreams checks, against a site that really runs the
// tool's container, that --follow prints log lines while the run is still
// going, and that interrupting it leaves the run alone.
func TestToolRunFollowStreams(t *testing.T) {
	tests := []struct {
		name      string
		args      []string // the tool's: it prints its lines, then sleeps
		timeout   string
		interrupt bool
		wantExit  int
	}{
		{name: "to the end", args: []string{"-lines", "2", "-sleep", "2s"}, wantExit: 0},
		// The run goes on until its timeout.
		{name: "interrupted", args: []string{"-lines", "2", "-sleep", "60s"}, timeout: "4s", interrupt: true, wantExit: exitInterrupted},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := testsite.Start(t, testsite.Options{Docker: true})
			s.Tool(t, api.Tool{Name: "streamer", Author: "lab", Image: testenv.BuildTestImage(t), DataRepo: testenv.GitRepo(t, nil),
				Command: tc.args, Network: "none", Timeout: tc.timeout})

			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			out := &lineWriter{first: make(chan struct{})}
			var errOut bytes.Buffer
			done := make(chan error, 1)
			go func() {
				oneAtATime.Lock()
				defer oneAtATime.Unlock()
				done <- Run(ctx, []string{"--addr", s.Addr, "tool", "run", "streamer", "--follow"}, out, &errOut)
			}()

			select {
			case <-out.first:
			case err := <-done:
				t.Fatalf("Run returned %v before printing a log line; stderr %q", err, errOut.String())
			case <-time.After(time.Minute):
				t.Fatal("no log line within a minute")
			}
			runs, _, err := s.Store.RunPage(context.Background(), api.RunFilter{Tool: "streamer"})
			if err != nil || len(runs) != 1 {
				t.Fatalf("runs of streamer: %v, %v", runs, err)
			}
			run := runs[0]
			if run.State != api.StateRunning {
				t.Fatalf("the first log line came once the run was %s; want it while running", run.State)
			}
			if tc.interrupt {
				cancel()
			}
			err = <-done
			PrintError(&errOut, err)
			if got := ExitCode(err); got != tc.wantExit {
				t.Errorf("exit %d, want %d (err %v)", got, tc.wantExit, err)
			}
			if tc.interrupt {
				want := "maoctl: stopped following run " + run.ID + ", which goes on at site lab-a"
				if !strings.Contains(errOut.String(), want) {
					t.Errorf("stderr %q does not contain %q", errOut.String(), want)
				}
				if r, err := s.Store.Run(context.Background(), run.ID); err != nil || r.State != api.StateRunning {
					t.Errorf("after the interrupt the run is %s (%v); want it still running", r.State, err)
				}
				r := s.WaitRun(t, run.ID, func(r api.Run) bool { return r.State.Terminal() })
				if r.State != api.StateTimedOut {
					t.Errorf("the run ended %s (%s); want it timed out, as it would have without the follow", r.State, r.Reason)
				}
				return
			}
			var log bytes.Buffer
			if err := s.Client(t, "").RunLogs(context.Background(), run.ID, api.LogOptions{}, &log); err != nil {
				t.Fatal(err)
			}
			if out.String() != log.String() || !strings.HasPrefix(log.String(), "line 1\nline 2\n") {
				t.Errorf("stdout %q, want the whole log %q", out.String(), log.String())
			}
			if want := "run " + run.ID + " succeeded (exit 0) in 0s\n"; !strings.HasSuffix(errOut.String(), want) {
				t.Errorf("stderr %q does not end with the summary line %q", errOut.String(), want)
			}
		})
	}
}
