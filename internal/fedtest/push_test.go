package fedtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/internal/gitserver"
	"github.com/mao-research/mao/internal/testenv"
)

// The end-to-end tests of pushing: real orchestrator processes on an
// external etcd, real containers, and bare repositories served by real git
// servers (internal/gitserver: git daemon, git http-backend over HTTPS),
// each refusing non-fast-forward pushes. Failing pushes are retried after
// at most a second (push_retry_max), to keep the tests short.

// pushWorld is an etcd cluster, the built programs, the test image, and
// the records of every run.
type pushWorld struct {
	bins    Binaries
	image   string
	cluster *testenv.Cluster
	etcd    *clientv3.Client
	runs    *Runs
}

func newPushWorld(t *testing.T) *pushWorld {
	t.Helper()
	w := &pushWorld{bins: Build(t), image: testenv.BuildTestImage(t), cluster: testenv.EtcdCluster(t, 1)}
	w.etcd = w.cluster.Client(t)
	w.runs = WatchRuns(t, w.etcd)
	return w
}

// site starts an orchestrator on the cluster; join, if set, is a site
// whose join token it presents. gitConfig is its [git] section's lines.
func (w *pushWorld) site(t *testing.T, name string, join *Site, gitConfig string) *Site {
	t.Helper()
	extra := fmt.Sprintf("\n[etcd]\nendpoints = %s\nrequest_timeout = 2s\n", strings.Join(w.cluster.Endpoints(), ", "))
	if join != nil {
		extra += "join_token = " + JoinToken(t, w.bins, join.Addr, name) + "\n"
	}
	extra += "\n[git]\npush_retry_max = 1s\n" + gitConfig
	return Start(t, w.bins, name, SiteConfig(name, "%DIR%", "", leaseTTL, extra))
}

// tool registers a tool of the test image writing into dataRepo.
func (w *pushWorld) tool(t *testing.T, s *Site, name, dataRepo string, args ...string) {
	t.Helper()
	tool := api.Tool{Name: name, Author: "fedtest", Image: w.image, DataRepo: dataRepo, Network: "none", Command: args}
	if _, err := s.Client.RegisterTool(context.Background(), tool); err != nil {
		t.Fatal(err)
	}
}

// run runs tool at s, follows its log to the end and returns its final
// record, which must say succeeded.
func (w *pushWorld) run(t *testing.T, s *Site, tool string) api.Run {
	t.Helper()
	ctx := context.Background()
	started, err := s.Client.RunTool(ctx, tool, api.RunRequest{})
	if err != nil {
		t.Fatal(err)
	}
	id := started[0].ID
	if err := s.Client.RunLogs(ctx, id, api.LogOptions{Follow: true}, io.Discard); err != nil {
		t.Fatal(err)
	}
	run, err := s.Client.Run(ctx, id)
	if err != nil || run.State != api.StateSucceeded {
		t.Fatalf("run %s: %s %q (%v); want succeeded", id, run.State, run.Reason, err)
	}
	return run
}

// pushed waits until the runs ids are pushed (or conflict, with
// conflicts) and returns their records.
func (w *pushWorld) pushed(t *testing.T, d time.Duration, ids ...string) map[string]api.Run {
	t.Helper()
	return w.runs.Until(d, fmt.Sprintf("runs %v pushed", ids), func(m map[string]api.Run) bool {
		for _, id := range ids {
			if p := m[id].Push; p == nil || !p.State.Done() {
				return false
			}
		}
		return true
	})
}

// subjects maps each commit on branch of the repository data to its
// subject.
func subjects(t *testing.T, repos *gitserver.Repos, branch string) (map[string]string, []string) {
	t.Helper()
	out := strings.TrimSpace(repos.Git(t, "data", "log", "--format=%H %s", branch))
	m := map[string]string{}
	var order []string
	for _, line := range strings.Split(out, "\n") {
		h, s, _ := strings.Cut(line, " ")
		m[h] = s
		order = append(order, s)
	}
	return m, order
}

// noForcedUpdate checks, from the reflog of branch (core.logAllRefUpdates
// is set on the repository before the first push), that each update of
// the branch was a fast-forward.
func noForcedUpdate(t *testing.T, repos *gitserver.Repos, branch string) int {
	t.Helper()
	hashes := strings.Fields(repos.Git(t, "data", "reflog", "show", "--format=%H", "refs/heads/"+branch))
	for i := 0; i+1 < len(hashes); i++ { // newest first
		if hashes[i] == hashes[i+1] {
			continue
		}
		repos.Git(t, "data", "merge-base", "--is-ancestor", hashes[i+1], hashes[i]) // fails the test if not
	}
	return len(hashes)
}

// served is a bare repository "data" whose updates are logged, and the
// directory of repositories.
func served(t *testing.T, files map[string]string) *gitserver.Repos {
	t.Helper()
	repos := gitserver.New(t)
	repos.Bare(t, "data", files)
	repos.Git(t, "data", "config", "core.logAllRefUpdates", "always")
	return repos
}

// TestPushFromEverySite checks the promise that several sites writing to
// one branch lose nothing and force nothing: two sites run an --all
// schedule every second for 20 ticks into one repository served by git
// daemon; every run's commit (40 and more) is on main, each once, with
// its run's file and its trailers (Mao-Run, Mao-Site: a rebased commit
// keeps them), its record says pushed with that commit, and every update
// of main was a fast-forward.
func TestPushFromEverySite(t *testing.T) {
	w := newPushWorld(t)
	repos := served(t, nil)
	url := repos.Daemon(t) + "data.git"
	s1 := w.site(t, "p1", nil, "")
	w.site(t, "p2", s1, "")
	w.tool(t, s1, "marker", url, "-mark")
	ctx := context.Background()
	sch, err := s1.Client.CreateSchedule(ctx, api.Schedule{Tool: "marker", Spec: "@every 1s", Overlap: "allow", Target: api.Target{Mode: "all"}})
	if err != nil {
		t.Fatal(err)
	}
	ofSchedule := func(m map[string]api.Run) []api.Run {
		var out []api.Run
		for _, r := range m {
			if r.Schedule == sch.ID {
				out = append(out, r)
			}
		}
		return out
	}
	w.runs.Until(90*time.Second, "20 ticks pushed from both sites", func(m map[string]api.Run) bool {
		n := 0
		for _, rs := range ticks(m, sch.ID) {
			if len(rs) == 2 && rs[0].Push != nil && rs[0].Push.State == api.PushPushed && rs[1].Push != nil && rs[1].Push.State == api.PushPushed {
				n++
			}
		}
		return n >= 20
	})
	if _, err := s1.Client.PauseSchedule(ctx, sch.ID); err != nil {
		t.Fatal(err)
	}
	// The runs that were under way when the schedule paused end and are
	// pushed too.
	final := w.runs.Until(60*time.Second, "every run of the schedule ended and pushed", func(m map[string]api.Run) bool {
		for _, r := range ofSchedule(m) {
			if !r.State.Terminal() || (r.State == api.StateSucceeded && (r.Push == nil || !r.Push.State.Done())) {
				return false
			}
		}
		return true
	})
	onMain, _ := subjects(t, repos, "main")
	// A rebased commit keeps the run's provenance: its trailers.
	trailers := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(repos.Git(t, "data", "log",
		"--format=%H Mao-Run=%(trailers:key=Mao-Run,valueonly,separator=) Mao-Site=%(trailers:key=Mao-Site,valueonly,separator=)", "main")), "\n") {
		h, rest, _ := strings.Cut(line, " ")
		trailers[h] = rest
	}
	tree := repos.Git(t, "data", "ls-tree", "--name-only", "main")
	pushed := 0
	for _, r := range ofSchedule(final) {
		if r.State != api.StateSucceeded {
			t.Errorf("run %s %s: %s", r.ID, r.State, r.Reason)
			continue
		}
		if r.Push.State != api.PushPushed || r.Push.Branch != "main" {
			t.Errorf("run %s: push %+v, want pushed to main", r.ID, r.Push)
			continue
		}
		if subject := onMain[r.Push.Commit]; !strings.Contains(subject, "run "+r.ID+" ") {
			t.Errorf("run %s: its pushed commit %s is %q on main", r.ID, r.Push.Commit, subject)
		}
		if got, want := trailers[r.Push.Commit], "Mao-Run="+r.ID+" Mao-Site="+r.Site; got != want {
			t.Errorf("run %s: its pushed commit's trailers say %q, want %q", r.ID, got, want)
		}
		if !strings.Contains(tree, "run-"+r.ID+"\n") {
			t.Errorf("main lacks run %s's file", r.ID)
		}
		pushed++
	}
	if pushed < 40 || len(onMain) != pushed+1 { // and "initial"
		t.Errorf("%d runs pushed, main has %d commits; want at least 40, each once, and the first", pushed, len(onMain))
	}
	updates := noForcedUpdate(t, repos, "main")
	t.Logf("%d runs pushed from 2 sites in %d updates of main, each a fast-forward", pushed, updates)
}

// TestPushOutboxSurvivesDownAndRestart checks the promise of the durable
// outbox: while the remote is down (git daemon closes every connection at
// the same address) five runs succeed, their pushes failing and their
// records saying so, and the site crashes (SIGKILL) and starts again in
// between; once the remote is back, all five land, in the order they
// ran, each once, after the run that landed before.
func TestPushOutboxSurvivesDownAndRestart(t *testing.T) {
	w := newPushWorld(t)
	repos := served(t, nil)
	base, gate := repos.GatedDaemon(t)
	s := w.site(t, "durable", nil, "")
	w.tool(t, s, "marker", base+"data.git", "-mark")
	first := w.run(t, s, "marker")
	w.pushed(t, 30*time.Second, first.ID)

	gate.Down()
	var ids []string
	for i := range 5 {
		if i == 3 {
			s.Kill()
			s.Restart()
		}
		ids = append(ids, w.run(t, s, "marker").ID)
	}
	failed := w.runs.Until(30*time.Second, "the pushes failed while the remote is down", func(m map[string]api.Run) bool {
		for _, id := range ids {
			if p := m[id].Push; p == nil || p.State != api.PushFailed {
				return false
			}
		}
		return true
	})
	for _, id := range ids {
		if p := failed[id].Push; p.Attempts < 1 || !strings.Contains(p.Reason, "push to "+base+"data.git") {
			t.Errorf("run %s while down: %+v", id, p)
		}
	}
	if _, order := subjects(t, repos, "main"); len(order) != 2 {
		t.Fatalf("main while down: %v", order)
	}

	gate.Up()
	done := w.pushed(t, 30*time.Second, ids...)
	onMain, order := subjects(t, repos, "main")
	want := []string{"initial", first.ID}
	want = append(want, ids...)
	if len(order) != len(want) {
		t.Fatalf("main has %v; want the runs %v once each", order, want[1:])
	}
	for i, id := range want[1:] { // order is newest first
		if subject := order[len(order)-2-i]; !strings.Contains(subject, "run "+id+" ") {
			t.Errorf("commit %d on main is %q, want run %s's", i+1, subject, id)
		}
	}
	for _, id := range ids {
		if p := done[id].Push; p.State != api.PushPushed || !strings.Contains(onMain[p.Commit], id) || p.Attempts < 1 {
			t.Errorf("run %s after the remote is back: %+v", id, p)
		}
	}
	noForcedUpdate(t, repos, "main")
}

// webhook is a generic JSON webhook receiver on loopback: its shoutrrr
// URL, and the titles it got.
type webhook struct {
	mu     sync.Mutex
	titles []string
	got    chan struct{}
}

func newWebhook(t *testing.T) (string, *webhook) {
	t.Helper()
	h := &webhook{got: make(chan struct{}, 100)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]string
		if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
			t.Errorf("webhook body: %v", err)
		}
		h.mu.Lock()
		h.titles = append(h.titles, m["title"])
		h.mu.Unlock()
		h.got <- struct{}{}
	}))
	t.Cleanup(srv.Close)
	return "generic://" + strings.TrimPrefix(srv.URL, "http://") + "/hook?template=json&disabletls=yes", h
}

func (h *webhook) received() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.titles...)
}

// TestPushWithAWrongPassword checks the promise about credentials that
// fail: with a wrong password for a public HTTPS repository (anyone may
// fetch, only the password pushes) a run succeeds and its push fails,
// its record giving a reason that names the server and where the site's
// credentials are, without the password; maoctl run list --push failed
// lists it; push_failed goes out once, to a real webhook, after
// push_failed_after; after a restart with the right password the commit
// lands, and no second push_failed goes out.
func TestPushWithAWrongPassword(t *testing.T) {
	w := newPushWorld(t)
	repos := served(t, nil)
	const user, password, wrong = "ada", "s3cret-pw", "wr0ng-pw"
	base, caFile := repos.PublicHTTPS(t, user, password)
	host := strings.TrimSuffix(strings.TrimPrefix(base, "https://"), "/")
	creds := filepath.Join(t.TempDir(), "git-credentials")
	writeCredentials := func(pw string) {
		t.Helper()
		line := (&url.URL{Scheme: "https", User: url.UserPassword(user, pw), Host: host}).String() + "\n"
		if err := os.WriteFile(creds, []byte(line), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeCredentials(wrong)
	hookURL, hook := newWebhook(t)
	s := w.site(t, "secured", nil, fmt.Sprintf("credentials_file = %s\nca_file = %s\npush_failed_after = 2s\n\n[notify]\nurls = %s\n",
		creds, caFile, hookURL))
	w.tool(t, s, "marker", base+"data.git", "-mark")
	run := w.run(t, s, "marker")
	failed := w.runs.Until(30*time.Second, "the push failed", func(m map[string]api.Run) bool {
		p := m[run.ID].Push
		return p != nil && p.State == api.PushFailed
	})[run.ID]
	for _, want := range []string{"push to " + base + "data.git", "authentication required", "credentials_file"} {
		if !strings.Contains(failed.Push.Reason, want) {
			t.Errorf("the reason %q lacks %q", failed.Push.Reason, want)
		}
	}
	if failed.State != api.StateSucceeded || strings.Contains(failed.Push.Reason, wrong) {
		t.Errorf("run %s %s, push %+v", run.ID, failed.State, failed.Push)
	}
	if out := w.bins.Ctl(t, s.Addr, "run", "list", "--push", "failed"); !strings.Contains(out, run.ID) || !strings.Contains(out, "failed (") {
		t.Errorf("run list --push failed:\n%s", out)
	}
	select {
	case <-hook.got:
	case <-time.After(30 * time.Second):
		t.Fatal("no push_failed notification within 30s")
	}

	s.Stop()
	writeCredentials(password)
	s.Restart()
	landed := w.pushed(t, 30*time.Second, run.ID)[run.ID]
	if p := landed.Push; p.State != api.PushPushed || p.Attempts < 2 {
		t.Errorf("after the fix: %+v", p)
	}
	if _, order := subjects(t, repos, "main"); !strings.Contains(order[0], run.ID) {
		t.Errorf("main: %v", order)
	}
	// Every notification is recorded in etcd once its sending ended: one
	// for the failure, none since.
	notes, err := s.Client.Notifications(context.Background(), "marker", 100)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, n := range notes.Items {
		kinds = append(kinds, n.Kind+" "+n.Status)
	}
	if got := hook.received(); len(got) != 1 || !strings.Contains(got[0], "push of marker's results failed") ||
		len(kinds) != 1 || kinds[0] != "push_failed sent" {
		t.Errorf("the webhook got %q, the records say %v; want one push_failed", got, kinds)
	}
}

// TestPushConflictAndCredentialURL checks two promises at one site:
//   - a run that rewrote a file that was changed on the remote while it
//     ran goes to mao/<site>, with the run's content, its record says
//     conflict with that branch, main keeps the other edit, and the
//     site's next run lands on main again;
//   - a data repository URL with credentials is refused with 400 saying
//     where credentials go, and nothing of it is written to etcd.
func TestPushConflictAndCredentialURL(t *testing.T) {
	w := newPushWorld(t)
	repos := served(t, map[string]string{"summary.csv": "count\n0\n"})
	url := repos.Daemon(t) + "data.git"
	s := w.site(t, "lab", nil, "")
	ctx := context.Background()

	t.Run("conflict", func(t *testing.T) {
		w.tool(t, s, "summary", url, "-lines", "1", "-sleep", "1s", "-write", "summary.csv=count\n7\n")
		started, err := s.Client.RunTool(ctx, "summary", api.RunRequest{})
		if err != nil {
			t.Fatal(err)
		}
		id := started[0].ID
		AwaitOutput(t, s.Client, id, "line 1") // the run works on main's head; then main changes
		edit := filepath.Join(t.TempDir(), "edit")
		gitCLI(t, "", "clone", "-q", url, edit)
		if err := os.WriteFile(filepath.Join(edit, "summary.csv"), []byte("count\n5\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		gitCLI(t, edit, "-c", "user.name=ada", "-c", "user.email=ada@localhost", "commit", "-q", "-am", "ada's count")
		gitCLI(t, edit, "push", "-q", "origin", "HEAD:main")
		p := w.pushed(t, 30*time.Second, id)[id].Push
		if p.State != api.PushConflict || p.Branch != "mao/lab" {
			t.Fatalf("push %+v; want conflict on mao/lab", p)
		}
		if got := repos.Git(t, "data", "show", "mao/lab:summary.csv"); got != "count\n7\n" {
			t.Errorf("mao/lab's summary.csv = %q, the run's", got)
		}
		if got := repos.Git(t, "data", "show", p.Commit+":summary.csv"); got != "count\n7\n" {
			t.Errorf("the recorded commit's summary.csv = %q", got)
		}
		if got := repos.Git(t, "data", "show", "main:summary.csv"); got != "count\n5\n" {
			t.Errorf("main's summary.csv = %q, want ada's", got)
		}
		w.tool(t, s, "marker", url, "-mark")
		next := w.run(t, s, "marker")
		if p := w.pushed(t, 30*time.Second, next.ID)[next.ID].Push; p.State != api.PushPushed || p.Branch != "main" {
			t.Errorf("the next run's push %+v, want pushed to main", p)
		}
		noForcedUpdate(t, repos, "main")
	})

	t.Run("a URL with credentials", func(t *testing.T) {
		const secret = "t0ken-s3cret"
		for _, repo := range []string{"https://ada:" + secret + "@git.example.org/data.git", "https://" + secret + "@git.example.org/data.git"} {
			_, err := s.Client.RegisterTool(ctx, api.Tool{Name: "leaky", Author: "fedtest", Image: w.image, DataRepo: repo})
			var apiErr *api.Error
			if !errors.As(err, &apiErr) || apiErr.Status != http.StatusBadRequest || !strings.Contains(err.Error(), "[git]") ||
				strings.Contains(err.Error(), secret) {
				t.Errorf("register with %s: %v; want 400 naming the [git] section, without the secret", repo, err)
			}
		}
		resp, err := w.etcd.Get(ctx, "/mao/", clientv3.WithPrefix())
		if err != nil {
			t.Fatal(err)
		}
		for _, kv := range resp.Kvs {
			if strings.Contains(string(kv.Key), "leaky") || strings.Contains(string(kv.Value), secret) {
				t.Errorf("etcd holds %s: %s", kv.Key, kv.Value)
			}
		}
	})
}

// gitCLI runs git in dir with no configuration of the machine or the
// user.
func gitCLI(t *testing.T, dir string, args ...string) {
	t.Helper()
	if dir != "" {
		args = append([]string{"-C", dir}, args...)
	}
	cmd := exec.Command("git", args...)
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_TERMINAL_PROMPT=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}
