package fedtest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/internal/testenv"
)

// Binaries are the built orchestrator and maoctl programs.
type Binaries struct {
	Orchestrator, Maoctl string
}

// Build builds both programs into a temporary directory.
func Build(t testing.TB) Binaries {
	t.Helper()
	dir := t.TempDir()
	b := Binaries{Orchestrator: filepath.Join(dir, "orchestrator"), Maoctl: filepath.Join(dir, "maoctl")}
	for out, pkg := range map[string]string{b.Orchestrator: "./cmd/orchestrator", b.Maoctl: "./cmd/maoctl"} {
		cmd := exec.Command("go", "build", "-o", out, pkg)
		cmd.Dir = testenv.RepoRoot()
		if msg, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, msg)
		}
	}
	return b
}

// Ctl runs maoctl against addr and returns its stdout; a non-zero exit
// fails the test.
func (b Binaries) Ctl(t testing.TB, addr string, args ...string) string {
	t.Helper()
	stdout, stderr, code := b.CtlExit(t, addr, args...)
	if code != 0 {
		t.Fatalf("maoctl %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, stdout, stderr)
	}
	return stdout
}

// CtlExit runs maoctl against addr and returns its stdout, stderr and
// exit code, for commands that may fail.
func (b Binaries) CtlExit(t testing.TB, addr string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := exec.Command(b.Maoctl, append([]string{"--addr", addr}, args...)...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("maoctl %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errOut.String(), cmd.ProcessState.ExitCode()
}

// JoinToken asks the site at addr for a join token for site name, one that
// uses the federation's external etcd (maoctl federation add-site), and
// returns the token.
func JoinToken(t testing.TB, bins Binaries, addr, name string) string {
	t.Helper()
	config := bins.Ctl(t, addr, "federation", "add-site", name)
	for _, line := range strings.Split(config, "\n") {
		if tok, ok := strings.CutPrefix(line, "join_token = "); ok {
			return tok
		}
	}
	t.Fatalf("add-site printed no join token:\n%s", config)
	return ""
}

// Record is one JSON log record of an orchestrator.
type Record struct {
	Time  time.Time
	Msg   string
	Attrs map[string]any
}

// Site is a running orchestrator process.
type Site struct {
	Name   string
	Dir    string // its data directory, holding config.ini and orchestrator.log
	Addr   string // API base URL
	Client *api.Client
	// Started is when the current process was started: the origin of its
	// start-up times.
	Started time.Time

	t       testing.TB
	bins    Binaries
	config  string
	args    []string // the orchestrator's flags besides -config and the log's
	witness bool     // started with -witness: no API; ready when its member is
	cmd     *exec.Cmd
	down    bool // killed or stopped, and not started again
	frozen  bool // stopped with SIGSTOP, not continued yet
	exited  chan struct{}
	records chan Record // every log record, for Await; oldest dropped when full
}

// SiteConfig is the config.ini of a site named name with data in dir: the
// [site] and [api] sections, free ports, a short lease. extra is appended
// (an [etcd] section, for instance).
func SiteConfig(name, dir string, labels string, leaseTTL time.Duration, extra string) string {
	return fmt.Sprintf(`[site]
name = %s
data_dir = %s
labels = %s
lease_ttl = %s

[api]
listen = 127.0.0.1:0

[runs]
shutdown_grace = 5s
stop_grace = 1s
%s`, name, dir, labels, leaseTTL, extra)
}

// Start writes config to a new data directory's config.ini and starts an
// orchestrator with it, and with args (such as -witness); it returns once
// the API answers (a witness's member: it has no API). The process is
// stopped when the test ends. config may use %DIR% for the data directory.
func Start(t testing.TB, bins Binaries, name, config string, args ...string) *Site {
	t.Helper()
	dir := t.TempDir()
	s := &Site{Name: name, Dir: dir, t: t, bins: bins, config: filepath.Join(dir, "config.ini"), args: args,
		witness: slices.Contains(args, "-witness")}
	if err := os.WriteFile(s.config, []byte(strings.ReplaceAll(config, "%DIR%", dir)), 0o644); err != nil {
		t.Fatal(err)
	}
	s.start()
	t.Cleanup(s.cleanup)
	return s
}

// StartFails writes config to a new data directory and starts an
// orchestrator with it that must exit at start-up; it returns its log.
func StartFails(t testing.TB, bins Binaries, config string) string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "config.ini")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(config, "%DIR%", dir)), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bins.Orchestrator, "-config", path).CombinedOutput()
	if err == nil || ctx.Err() != nil {
		t.Fatalf("the orchestrator did not fail at start-up (%v):\n%s", err, out)
	}
	return string(out)
}

// start starts the process and waits for "orchestrator ready".
func (s *Site) start() {
	s.t.Helper()
	logFile, err := os.OpenFile(filepath.Join(s.Dir, "orchestrator.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		s.t.Fatal(err)
	}
	s.down, s.frozen = false, false
	s.cmd = exec.Command(s.bins.Orchestrator, append([]string{"-config", s.config, "-log-json", "-debug"}, s.args...)...)
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		s.t.Fatal(err)
	}
	s.Started = time.Now()
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.exited, s.records = make(chan struct{}), make(chan Record, 100000)
	ready := make(chan string, 1)
	go s.read(io.TeeReader(stderr, logFile), ready)
	go func() { s.cmd.Wait(); logFile.Close(); close(s.exited) }()
	select {
	case addr := <-ready:
		s.Addr = addr
	case <-s.exited:
		s.t.Fatalf("orchestrator %s exited at start-up:\n%s", s.Name, s.Log())
	case <-time.After(60 * time.Second):
		s.t.Fatalf("orchestrator %s not ready after 60s:\n%s", s.Name, s.Log())
	}
	if s.witness {
		return
	}
	c, err := api.NewClient(s.Addr, "", nil)
	if err != nil {
		s.t.Fatal(err)
	}
	s.Client = c
}

// read parses the process's log records until it exits.
func (s *Site) read(r io.Reader, ready chan<- string) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) != nil {
			continue
		}
		rec := Record{Attrs: m}
		rec.Msg, _ = m["msg"].(string)
		if ts, ok := m["time"].(string); ok {
			rec.Time, _ = time.Parse(time.RFC3339Nano, ts)
		}
		switch rec.Msg {
		case "orchestrator ready":
			addr, _ := m["api"].(string)
			ready <- addr
		case "witness ready":
			ready <- ""
		}
		select {
		case s.records <- rec:
		default: // nobody reads them: drop
		}
	}
	io.Copy(io.Discard, r)
}

// Await returns the next log record that match accepts, waiting at most d.
func (s *Site) Await(d time.Duration, match func(Record) bool) (Record, error) {
	timeout := time.After(d)
	for {
		select {
		case rec := <-s.records:
			if match(rec) {
				return rec, nil
			}
		case <-timeout:
			return Record{}, fmt.Errorf("site %s: no matching log record within %s", s.Name, d)
		}
	}
}

// Drain forgets the log records read so far.
func (s *Site) Drain() {
	for {
		select {
		case <-s.records:
		default:
			return
		}
	}
}

// Log is the orchestrator's log so far, for failure messages.
func (s *Site) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "orchestrator.log"))
	if len(b) > 8000 {
		b = b[len(b)-8000:]
	}
	return string(b)
}

// Kill kills the process with SIGKILL, as a crash, and returns when it
// is gone (frozen or not). Its containers go on until they exit.
func (s *Site) Kill() time.Time {
	s.t.Helper()
	at := time.Now()
	s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.exited
	s.down, s.frozen = true, false
	return at
}

// Freeze stops the process with SIGSTOP, as a paused VM, a long pause or
// a partition would look to the others: it keeps its connections, its
// containers go on, and it does nothing until Thaw. It returns when the
// kernel has stopped the process.
func (s *Site) Freeze() time.Time { return s.stopped(syscall.SIGSTOP, true) }

// Thaw continues a frozen process with SIGCONT and returns when it runs.
func (s *Site) Thaw() time.Time { return s.stopped(syscall.SIGCONT, false) }

// stopped sends sig to the process and waits until the kernel has
// stopped it (stop is true) or continued it; it returns when it sent sig.
func (s *Site) stopped(sig syscall.Signal, stop bool) time.Time {
	s.t.Helper()
	at := time.Now()
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatal(err)
	}
	s.frozen = stop
	s.awaitState("T", stop)
	return at
}

// awaitState waits until the process's state in /proc/PID/stat is state
// (is is true) or is not.
func (s *Site) awaitState(state string, is bool) {
	s.t.Helper()
	stat := fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid)
	Eventually(s.t, 5*time.Second, "process "+s.Name+" in state "+state, func() bool {
		b, err := os.ReadFile(stat)
		if err != nil {
			return false
		}
		// pid (comm) state ...: comm may hold spaces, not ')'.
		_, rest, _ := strings.Cut(string(b), ") ")
		return strings.HasPrefix(rest, state+" ") == is
	})
}

// StartTimes are the times of one start of a site, from its log.
type StartTimes struct {
	// Etcd is from the process's start until its embedded etcd member
	// served: etcd's own start-up, with the process's.
	Etcd time.Duration
	// Ready is from the process's start until "orchestrator ready".
	Ready time.Duration
	// Revoked says that the site revoked its previous life's lease;
	// Waited that it waited for another record's lease to expire.
	Revoked, Waited bool
}

// Beyond is how long the start took beyond etcd's own start-up.
func (st StartTimes) Beyond() time.Duration { return st.Ready - st.Etcd }

// AwaitStart reads the log records of the site's current life up to
// "orchestrator ready" and returns the start's times. Call it once after
// Start or Restart, before anything else reads the records.
func (s *Site) AwaitStart() StartTimes {
	s.t.Helper()
	var st StartTimes
	_, err := s.Await(30*time.Second, func(r Record) bool {
		switch r.Msg {
		case "embedded etcd started":
			st.Etcd = r.Time.Sub(s.Started)
		case "the site's record is its previous life's (same instance): revoking that life's lease":
			st.Revoked = true
		case "site name held by another orchestrator's record; waiting for its lease to expire":
			st.Waited = true
		case "orchestrator ready":
			st.Ready = r.Time.Sub(s.Started)
			return true
		}
		return false
	})
	if err != nil {
		s.t.Fatal(err)
	}
	return st
}

// Commits lists the subjects of the commits in the site's clone of tool's
// data repository, newest first.
func (s *Site) Commits(tool string) []string {
	s.t.Helper()
	gitDir := filepath.Join(s.Dir, "repos", "."+tool+".git")
	out, err := exec.Command("git", "--git-dir", gitDir, "log", "--format=%s").Output()
	if err != nil {
		s.t.Fatalf("git log in %s: %v", gitDir, err)
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n")
}

// Up reports whether the process runs (it was not killed or stopped).
func (s *Site) Up() bool { return !s.down }

// Restart starts the process again with the same config and data, and
// with args instead of those it had (besides -witness, which stays).
func (s *Site) Restart(args ...string) {
	s.t.Helper()
	s.args = args
	if s.witness {
		s.args = append(s.args, "-witness")
	}
	s.start()
}

// Exited waits at most d for the process to exit by itself (a site that
// leaves the federation does) and returns its exit code.
func (s *Site) Exited(d time.Duration) (int, error) {
	select {
	case <-s.exited:
		s.down = true
		return s.cmd.ProcessState.ExitCode(), nil
	case <-time.After(d):
		return 0, fmt.Errorf("site %s still runs after %s", s.Name, d)
	}
}

// Run runs the orchestrator once with the site's config and data and args
// (such as -leave), while the site is stopped, and returns its output and
// exit code.
func (s *Site) Run(args ...string) (string, int) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, s.bins.Orchestrator, append([]string{"-config", s.config}, args...)...).CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &exit) && ctx.Err() == nil:
		return string(out), exit.ExitCode()
	}
	s.t.Fatalf("orchestrator %s: %v\n%s", strings.Join(args, " "), err, out)
	return "", 0
}

// Stop stops the process with SIGTERM and waits for it.
func (s *Site) Stop() {
	select {
	case <-s.exited:
		return
	default:
	}
	s.down = true
	s.cmd.Process.Signal(syscall.SIGTERM)
	if s.frozen { // a stopped process hears SIGTERM once it continues
		s.cmd.Process.Signal(syscall.SIGCONT)
		s.frozen = false
	}
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		s.cmd.Process.Signal(syscall.SIGKILL)
		<-s.exited
	}
}

// cleanup stops the process and removes its containers.
func (s *Site) cleanup() {
	s.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, "docker", "ps", "-aq", "--filter", "label=mao.site="+s.Name).Output()
	if ids := strings.Fields(string(out)); len(ids) > 0 {
		exec.CommandContext(ctx, "docker", append([]string{"rm", "-f"}, ids...)...).Run()
	}
	if s.t.Failed() {
		s.t.Logf("log of site %s:\n%s", s.Name, s.Log())
	}
}

// Eventually polls cond every 50ms until it holds or d passes, then fails
// the test with what. It is for states reached through several processes
// and etcd, where there is no single event to wait on.
func Eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Parallel runs f for each item at once and waits for all.
func Parallel[T any](items []T, f func(T)) {
	var wg sync.WaitGroup
	for _, it := range items {
		wg.Add(1)
		go func() { defer wg.Done(); f(it) }()
	}
	wg.Wait()
}

// waitContainerGone waits until the named container has exited and been
// removed (runs' containers are removed automatically).
func waitContainerGone(t testing.TB, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// docker wait returns when the container exits; an error means it is
	// gone already.
	exec.CommandContext(ctx, "docker", "wait", name).Run()
	if ctx.Err() != nil {
		t.Fatalf("container %s still runs", name)
	}
}

// AwaitOutput follows a run's log, through c, until it holds want.
func AwaitOutput(t testing.TB, c *api.Client, id, want string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var got bytes.Buffer
	err := c.RunLogs(ctx, id, api.LogOptions{Follow: true}, writerFunc(func(p []byte) (int, error) {
		got.Write(p)
		if strings.Contains(got.String(), want) {
			cancel()
		}
		return len(p), nil
	}))
	if !strings.Contains(got.String(), want) {
		t.Fatalf("log of %s lacks %q (%v):\n%s", id, want, err, got.String())
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
