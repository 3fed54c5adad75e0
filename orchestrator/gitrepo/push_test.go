package gitrepo_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5/plumbing"

	"github.com/mao-research/mao/internal/gitserver"
	"github.com/mao-research/mao/orchestrator/gitrepo"
)

// site is one site's clone of a remote: its Repos (author Name) and
// directory.
type site struct {
	t    *testing.T
	r    *gitrepo.Repos
	dir  string
	url  string
	name string
}

func newSite(t *testing.T, name, url string, auth *gitrepo.Auth) *site {
	t.Helper()
	s := &site{t: t, r: gitrepo.New(gitrepo.Options{AuthorName: name, Auth: auth}), dir: filepath.Join(t.TempDir(), "data"), url: url, name: name}
	sync(t, s.r, s.dir, url, "")
	return s
}

// run writes files into the clone and commits them, as a run does.
func (s *site) run(msg string, files map[string]string) string {
	s.t.Helper()
	for name, content := range files {
		writeFile(s.t, s.dir, name, content)
	}
	h, _ := commit(s.t, s.r, s.dir, msg)
	return h
}

func (s *site) push(opts gitrepo.PushOptions) gitrepo.PushResult {
	s.t.Helper()
	res, err := s.r.Push(context.Background(), s.dir, opts)
	if err != nil {
		s.t.Fatalf("%s: Push: %v", s.name, err)
	}
	return res
}

func (s *site) sync() string {
	s.t.Helper()
	h, _ := sync(s.t, s.r, s.dir, s.url, "")
	return h
}

// served is a bare repository "data" holding files, served by git daemon:
// the repositories and its URL.
func served(t *testing.T, files map[string]string) (*gitserver.Repos, string) {
	t.Helper()
	repos := gitserver.New(t)
	repos.Bare(t, "data", files)
	return repos, repos.Daemon(t) + "data.git"
}

// remoteFile is a file's content on a branch of a bare repository.
func remoteFile(t *testing.T, repos *gitserver.Repos, branch, path string) string {
	t.Helper()
	return repos.Git(t, "data", "show", branch+":"+path)
}

// TestPushRebasesOntoOtherSites: two sites commit new files on the same
// head; the first push lands as it is, the second is rebased onto it (in
// the clone's git directory only), both keep their messages, and the
// next Sync of each clone moves it to the remote's head, the other site's
// file included.
func TestPushRebasesOntoOtherSites(t *testing.T) {
	t.Parallel()
	repos, url := served(t, nil)
	a, b := newSite(t, "site-a", url, nil), newSite(t, "site-b", url, nil)

	la := a.run("run 1 at a", map[string]string{"a/1.csv": "1"})
	lb := b.run("run 1 at b", map[string]string{"b/1.csv": "1"})
	ra := a.push(gitrepo.PushOptions{ConflictBranch: "mao/site-a"})
	if len(ra.Commits) != 1 || ra.Commits[0] != (gitrepo.Pushed{Local: la, Remote: la, Branch: "main"}) || ra.Sent != 1 || ra.Attempts != 1 {
		t.Fatalf("site-a pushed %+v, want its commit as it is", ra)
	}
	rb := b.push(gitrepo.PushOptions{ConflictBranch: "mao/site-b"})
	if len(rb.Commits) != 1 || rb.Commits[0].Local != lb || rb.Commits[0].Remote == lb || rb.Commits[0].Branch != "main" || rb.Commits[0].Conflict {
		t.Fatalf("site-b pushed %+v, want its commit rebased onto main", rb)
	}
	if log, _ := repos.Log(t, "data", "main"); !slices.Equal(log, []string{"run 1 at b", "run 1 at a", "initial"}) {
		t.Fatalf("main = %v", log)
	}
	if got := strings.TrimSpace(repos.Git(t, "data", "rev-parse", "main^")); got != la {
		t.Errorf("main^ = %s, want site-a's commit %s", got, la)
	}
	// The push touched neither the work tree nor the index of site-b.
	if exists(t, b.dir, "a/1.csv") || !isClean(t, b.dir) {
		t.Error("the push changed site-b's work tree")
	}
	// The next Sync moves each clone to the remote's head.
	for _, s := range []*site{a, b} {
		if got := s.sync(); got != rb.Commits[0].Remote {
			t.Errorf("%s synced to %s, want the remote's head %s", s.name, got, rb.Commits[0].Remote)
		}
		if readFile(t, s.dir, "a/1.csv") != "1" || readFile(t, s.dir, "b/1.csv") != "1" || !isClean(t, s.dir) {
			t.Errorf("%s's clone does not hold both sites' files, clean", s.name)
		}
	}
	// Nothing is left to push.
	if res := b.push(gitrepo.PushOptions{ConflictBranch: "mao/site-b"}); res.Sent != 0 || res.Attempts != 0 {
		t.Errorf("a second push sent %+v", res)
	}
}

// TestPushConflictGoesToTheSiteBranch: a run that rewrites a file another
// site changed on the remote goes to mao/<site>, its content intact
// there, and main keeps the other site's; the clone then follows main
// again, and the next run's commit goes to main.
func TestPushConflictGoesToTheSiteBranch(t *testing.T) {
	t.Parallel()
	repos, url := served(t, map[string]string{"summary.csv": "0\n"})
	a, b := newSite(t, "site-a", url, nil), newSite(t, "site-b", url, nil)

	a.run("a rewrites the summary", map[string]string{"summary.csv": "from a\n"})
	a.push(gitrepo.PushOptions{ConflictBranch: "mao/site-a"})
	lb := b.run("b rewrites the summary", map[string]string{"summary.csv": "from b\n", "b/new.csv": "2"})
	rb := b.push(gitrepo.PushOptions{ConflictBranch: "mao/site-b"})
	if len(rb.Commits) != 1 || rb.Commits[0].Local != lb || !rb.Commits[0].Conflict || rb.Commits[0].Branch != "mao/site-b" {
		t.Fatalf("site-b pushed %+v, want a conflict on mao/site-b", rb)
	}
	if got := remoteFile(t, repos, "mao/site-b", "summary.csv"); got != "from b\n" {
		t.Errorf("summary.csv on mao/site-b = %q", got)
	}
	if got := remoteFile(t, repos, "mao/site-b", "b/new.csv"); got != "2" {
		t.Errorf("b/new.csv on mao/site-b = %q", got)
	}
	if got := remoteFile(t, repos, "main", "summary.csv"); got != "from a\n" {
		t.Errorf("summary.csv on main = %q", got)
	}
	if got := strings.TrimSpace(repos.Git(t, "data", "rev-parse", "mao/site-b^")); got != strings.TrimSpace(repos.Git(t, "data", "rev-parse", "main")) {
		t.Errorf("mao/site-b does not start at main's head")
	}
	// site-b follows main again, and its next run goes there.
	b.sync()
	if readFile(t, b.dir, "summary.csv") != "from a\n" {
		t.Error("site-b's clone did not move to main")
	}
	b.run("b writes a new file", map[string]string{"b/next.csv": "3"})
	if rb := b.push(gitrepo.PushOptions{ConflictBranch: "mao/site-b"}); len(rb.Commits) != 1 || rb.Commits[0].Branch != "main" || rb.Commits[0].Conflict {
		t.Fatalf("site-b's next push %+v, want main", rb)
	}
	// A second conflict goes on top of the first on mao/site-b.
	a.sync()
	a.run("a again", map[string]string{"summary.csv": "from a, again\n"})
	a.push(gitrepo.PushOptions{ConflictBranch: "mao/site-a"})
	b.run("b again", map[string]string{"summary.csv": "from b, again\n"})
	if rb := b.push(gitrepo.PushOptions{ConflictBranch: "mao/site-b"}); len(rb.Commits) != 1 || !rb.Commits[0].Conflict {
		t.Fatalf("site-b's second conflict %+v", rb)
	}
	if log, _ := repos.Log(t, "data", "mao/site-b"); len(log) < 2 || log[0] != "b again" || log[1] != "b rewrites the summary" {
		t.Errorf("mao/site-b = %v", log)
	}
	if got := remoteFile(t, repos, "mao/site-b", "summary.csv"); got != "from b, again\n" {
		t.Errorf("summary.csv on mao/site-b = %q", got)
	}
}

// TestPushBacklogWhileDown: commits made while the remote is down (Sync
// works on the clone as it is) are all sent by the first push after it is
// back, in one connection, in order.
func TestPushBacklogWhileDown(t *testing.T) {
	t.Parallel()
	repos := gitserver.New(t)
	repos.Bare(t, "data", nil)
	base, gate := repos.GatedDaemon(t)
	s := newSite(t, "site-a", base+"data.git", nil)
	gate.Down()
	const n = 100
	var want []string
	for i := range n {
		if _, note := sync(t, s.r, s.dir, s.url, ""); !strings.Contains(note, "could not fetch") {
			t.Fatalf("Sync while down: note %q", note)
		}
		msg := fmt.Sprintf("run %d", i)
		s.run(msg, map[string]string{fmt.Sprintf("out/%03d.csv", i): fmt.Sprint(i)})
		want = append([]string{msg}, want...)
		if i == 0 {
			if _, err := s.r.Push(context.Background(), s.dir, gitrepo.PushOptions{}); err == nil {
				t.Fatal("Push to a remote that is down succeeded")
			}
		}
	}
	gate.Up()
	before := gate.Connections()
	res := s.push(gitrepo.PushOptions{})
	if res.Sent != n || len(res.Commits) != n || res.Attempts != 1 || gate.Connections()-before != 1 {
		t.Fatalf("flushed %d commits (%d results) in %d attempts over %d connections; want %d in one", res.Sent, len(res.Commits),
			res.Attempts, gate.Connections()-before, n)
	}
	if log, _ := repos.Log(t, "data", "main"); !slices.Equal(log[:n], want) {
		t.Fatalf("main = %v", log)
	}
}

// TestPushNothingQueued: a clone with nothing after its pushed mark (a
// fresh clone, one just pushed, one synced since) is not pushed, and its
// remote is not contacted, unless a commit is wanted: a site's start looks
// at every clone.
func TestPushNothingQueued(t *testing.T) {
	t.Parallel()
	repos := gitserver.New(t)
	repos.Bare(t, "data", nil)
	base, gate := repos.GatedDaemon(t)
	s := newSite(t, "site-a", base+"data.git", nil)
	quiet := func(when string) {
		t.Helper()
		before := gate.Connections()
		if res := s.push(gitrepo.PushOptions{}); res.Sent != 0 || len(res.Commits) != 0 || gate.Connections() != before {
			t.Fatalf("%s: %+v over %d connections; want nothing, and no connection", when, res, gate.Connections()-before)
		}
	}
	quiet("a fresh clone")
	h := s.run("run", map[string]string{"out.csv": "1"})
	if res := s.push(gitrepo.PushOptions{}); res.Sent != 1 {
		t.Fatalf("the run's commit: %+v", res)
	}
	quiet("after the push")
	s.sync()
	quiet("after a sync")
	before := gate.Connections()
	if res := s.push(gitrepo.PushOptions{Want: []string{h}}); len(res.Commits) != 1 || gate.Connections() == before {
		t.Fatalf("a wanted commit: %+v over %d connections; want it found on the remote", res, gate.Connections()-before)
	}
}

// TestPushNotTwice: a push that landed but was cut short before it marked
// the clone (the process died) is found on the remote by the next Push,
// itself or rebased, and not sent again.
func TestPushNotTwice(t *testing.T) {
	t.Parallel()
	repos, url := served(t, nil)
	a, b := newSite(t, "site-a", url, nil), newSite(t, "site-b", url, nil)
	mark := func(s *site) string {
		return strings.TrimSpace(gitCLI(t, s.dir, "rev-parse", "refs/mao/pushed/main"))
	}
	a.run("a", map[string]string{"a.csv": "1"})
	a.push(gitrepo.PushOptions{})
	lb := b.run("b", map[string]string{"b.csv": "1"})
	before := mark(b)
	first := b.push(gitrepo.PushOptions{})
	// Undo the mark, as if the process had died just after the push.
	gitCLI(t, b.dir, "update-ref", "refs/mao/pushed/main", before)
	again := b.push(gitrepo.PushOptions{})
	if again.Sent != 0 || len(again.Commits) != 1 || again.Commits[0] != first.Commits[0] {
		t.Fatalf("the second push %+v, want %+v found and nothing sent", again, first)
	}
	if log, _ := repos.Log(t, "data", "main"); !slices.Equal(log, []string{"b", "a", "initial"}) {
		t.Fatalf("main = %v", log)
	}
	// After a Sync, a wanted commit is still found on the remote.
	b.sync()
	found := b.push(gitrepo.PushOptions{Want: []string{lb}})
	if found.Sent != 0 || len(found.Commits) != 1 || found.Commits[0] != first.Commits[0] {
		t.Fatalf("looking for %s: %+v", lb, found)
	}
}

// TestPushRetriesWhenTheRemoteMoved: a push refused because the branch
// moved just before it landed (another site pushed first) is tried again
// after a wait, rebased onto the new head; a remote that keeps moving
// gets ErrRemoteMoved after the attempts allowed, and the commit stays
// for the next Push.
func TestPushRetriesWhenTheRemoteMoved(t *testing.T) {
	t.Parallel()
	repos, url := served(t, nil)
	s := newSite(t, "site-a", url, nil)
	var waits []int
	wait := func(_ context.Context, attempt int) error { waits = append(waits, attempt); return nil }

	repos.Race(t, "data", 1)
	s.run("run 1", map[string]string{"1.csv": "1"})
	res := s.push(gitrepo.PushOptions{Wait: wait})
	if res.Attempts != 2 || res.Sent != 1 || !slices.Equal(waits, []int{2}) {
		t.Fatalf("push %+v after waits %v; want it landed at the second attempt", res, waits)
	}
	if log, _ := repos.Log(t, "data", "main"); !slices.Equal(log, []string{"run 1", "raced", "initial"}) {
		t.Fatalf("main = %v", log)
	}

	waits = nil
	repos.Race(t, "data", 3)
	s.run("run 2", map[string]string{"2.csv": "2"})
	_, err := s.r.Push(context.Background(), s.dir, gitrepo.PushOptions{Wait: wait, Attempts: 3})
	if !errors.Is(err, gitrepo.ErrRemoteMoved) || !slices.Equal(waits, []int{2, 3}) {
		t.Fatalf("Push = %v after waits %v; want ErrRemoteMoved after 3 attempts", err, waits)
	}
	if res := s.push(gitrepo.PushOptions{}); res.Sent != 1 || res.Commits[0].Branch != "main" {
		t.Fatalf("the next push %+v", res)
	}
	if log, _ := repos.Log(t, "data", "main"); log[0] != "run 2" || strings.Count(strings.Join(log, ","), "run 2") != 1 {
		t.Fatalf("main = %v", log)
	}
}

// TestPushToTheSiteBranch: with the branch the site's own (push:
// site-branch), the first push makes it, later ones go on top, and a
// path changed on it before is taken from the run.
func TestPushToTheSiteBranch(t *testing.T) {
	t.Parallel()
	repos, url := served(t, nil)
	s := newSite(t, "site-a", url, nil)
	opts := gitrepo.PushOptions{Branch: "mao/site-a"}
	s.run("run 1", map[string]string{"latest.csv": "1"})
	if res := s.push(opts); res.Sent != 1 || res.Commits[0].Branch != "mao/site-a" {
		t.Fatalf("first push %+v", res)
	}
	s.sync() // follows main, which has not moved
	s.run("run 2", map[string]string{"latest.csv": "2"})
	if res := s.push(opts); res.Sent != 1 || res.Commits[0].Conflict {
		t.Fatalf("second push %+v", res)
	}
	if log, _ := repos.Log(t, "data", "mao/site-a"); !slices.Equal(log, []string{"run 2", "run 1", "initial"}) {
		t.Fatalf("mao/site-a = %v", log)
	}
	if got := remoteFile(t, repos, "mao/site-a", "latest.csv"); got != "2" {
		t.Errorf("latest.csv = %q", got)
	}
	if log, _ := repos.Log(t, "data", "main"); len(log) != 1 {
		t.Errorf("main = %v, want it untouched", log)
	}
}

// TestPushTransports pushes over each way of reaching a remote, with the
// site's credentials from its files: git://, https with a credential-store
// file and the server's CA, ssh with a key and known_hosts. A wrong
// password, a host key that known_hosts does not list and no credentials
// are refused, with errors that name no secret.
func TestPushTransports(t *testing.T) {
	t.Parallel()
	repos := gitserver.New(t)
	repos.Bare(t, "data", nil)
	const user, password, wrong = "ada", "s3cret-pw", "wr0ng-pw"
	httpsBase, caFile := repos.HTTPS(t, user, password)
	ssh := repos.SSH(t)
	dir := t.TempDir()
	credsFile := func(name, pw string) string {
		f := filepath.Join(dir, name)
		line := strings.Replace(httpsBase, "https://", "https://"+user+":"+pw+"@", 1) + "\n"
		if err := os.WriteFile(f, []byte("# test\n"+line), 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	otherHosts := filepath.Join(dir, "other_known_hosts")
	other := gitserver.New(t).SSH(t)
	known, err := os.ReadFile(other.KnownHosts)
	if err != nil {
		t.Fatal(err)
	}
	// The other server's key, under this server's address.
	line := strings.SplitN(string(known), " ", 2)
	if err := os.WriteFile(otherHosts, []byte(strings.SplitN(readFileAbs(t, ssh.KnownHosts), " ", 2)[0]+" "+line[1]), 0o600); err != nil {
		t.Fatal(err)
	}
	load := func(cfg gitrepo.AuthConfig) *gitrepo.Auth {
		a, err := gitrepo.LoadAuth(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	tests := []struct {
		name    string
		url     string
		auth    *gitrepo.Auth
		badAuth *gitrepo.Auth
		badErr  string
	}{
		{name: "git", url: repos.Daemon(t) + "data.git"},
		{name: "https", url: httpsBase + "data.git",
			auth:    load(gitrepo.AuthConfig{CredentialsFile: credsFile("good", password), CAFile: caFile}),
			badAuth: load(gitrepo.AuthConfig{CredentialsFile: credsFile("bad", wrong), CAFile: caFile}),
			badErr:  "authentication required"},
		{name: "https without credentials", url: httpsBase + "data.git",
			auth:    load(gitrepo.AuthConfig{CredentialsFile: credsFile("good2", password), CAFile: caFile}),
			badAuth: load(gitrepo.AuthConfig{CAFile: caFile}),
			badErr:  "authentication required"},
		{name: "ssh", url: ssh.Base + "data.git",
			auth:    load(gitrepo.AuthConfig{SSHKeyFile: ssh.KeyFile, KnownHostsFile: ssh.KnownHosts}),
			badAuth: load(gitrepo.AuthConfig{SSHKeyFile: ssh.KeyFile, KnownHostsFile: otherHosts}),
			badErr:  "key mismatch"},
		{name: "ssh with an unknown host", url: ssh.Base + "data.git",
			auth:    load(gitrepo.AuthConfig{SSHKeyFile: ssh.KeyFile, KnownHostsFile: ssh.KnownHosts}),
			badAuth: load(gitrepo.AuthConfig{SSHKeyFile: ssh.KeyFile, KnownHostsFile: other.KnownHosts}),
			badErr:  "key is unknown"},
		{name: "ssh with host keys unchecked", url: ssh.Base + "data.git",
			auth:    load(gitrepo.AuthConfig{SSHKeyFile: ssh.KeyFile, KnownHostsFile: otherHosts, InsecureIgnoreHostKey: true}),
			badAuth: load(gitrepo.AuthConfig{SSHKeyFile: other.KeyFile, KnownHostsFile: ssh.KnownHosts}),
			badErr:  "unable to authenticate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newSite(t, "site-"+strings.ReplaceAll(tc.name, " ", "-"), tc.url, tc.auth)
			l := s.run("over "+tc.name, map[string]string{tc.name + ".csv": "1"})
			res := s.push(gitrepo.PushOptions{})
			if len(res.Commits) != 1 || res.Commits[0].Local != l {
				t.Fatalf("push %+v", res)
			}
			if tc.badAuth == nil {
				return
			}
			bad := gitrepo.New(gitrepo.Options{Auth: tc.badAuth})
			s.run("refused "+tc.name, map[string]string{tc.name + "-2.csv": "2"})
			_, err := bad.Push(context.Background(), s.dir, gitrepo.PushOptions{})
			if err == nil || !strings.Contains(err.Error(), tc.badErr) {
				t.Fatalf("push with bad credentials: %v; want %q", err, tc.badErr)
			}
			if !strings.Contains(err.Error(), "[git]") {
				t.Errorf("the error does not say where the site's credentials are: %v", err)
			}
			t.Logf("refused: %v", err)
			for _, secret := range []string{password, wrong} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("the error shows a password: %v", err)
				}
			}
			// Sync with them works on the clone as it is.
			if _, note, err := bad.Sync(context.Background(), s.dir, tc.url, ""); err != nil || !strings.Contains(note, "could not fetch") ||
				strings.Contains(note, password) || strings.Contains(note, wrong) {
				t.Errorf("Sync with bad credentials: %q, %v", note, err)
			}
		})
	}
}

func readFileAbs(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestLoadAuth refuses files it cannot use, naming the file and line and
// never a secret.
func TestLoadAuth(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name string
		cfg  gitrepo.AuthConfig
		want []string
	}{
		{"credentials not https", gitrepo.AuthConfig{CredentialsFile: write("c1", "ftp://u:topsecret@h\n")}, []string{"line 1", "not an https"}},
		{"credentials without user", gitrepo.AuthConfig{CredentialsFile: write("c2", "\nhttps://h.example.org\n")}, []string{"line 2", "no user"}},
		{"credentials not a URL", gitrepo.AuthConfig{CredentialsFile: write("c3", "https://u:top%zzsecret@h\n")}, []string{"line 1", "not a URL"}},
		{"missing credentials", gitrepo.AuthConfig{CredentialsFile: filepath.Join(dir, "none")}, []string{"credentials file"}},
		{"not a key", gitrepo.AuthConfig{SSHKeyFile: write("k", "topsecret\n")}, []string{"ssh key " + filepath.Join(dir, "k")}},
		{"not a CA", gitrepo.AuthConfig{CAFile: write("ca", "topsecret\n")}, []string{"holds no PEM certificate"}},
		{"two problems", gitrepo.AuthConfig{CAFile: write("ca2", "x"), CredentialsFile: write("c4", "https://h\n")},
			[]string{"holds no PEM", "no user"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := gitrepo.LoadAuth(tc.cfg)
			if err == nil {
				t.Fatal("LoadAuth accepted it")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "topsecret") {
				t.Errorf("error %q shows the file's secret", err)
			}
		})
	}
}

// TestPushToAFileRemoteStopped: a push to a file:// remote whose context
// ends while its pack flows returns (go-git, cancelled there, would kill
// git-receive-pack and wait for ever on its child), and what it sent is
// sent whole or not at all: the next Push leaves the remote with the
// commit once.
func TestPushToAFileRemoteStopped(t *testing.T) {
	t.Parallel()
	repos := gitserver.New(t)
	bare := repos.Bare(t, "data", nil)
	s := newSite(t, "site-a", "file://"+bare, nil)
	big := make([]byte, 32<<20)
	rand.NewChaCha8([32]byte{1}).Read(big)
	writeFile(t, s.dir, "big.bin", string(big))
	commit(t, s.r, s.dir, "run big")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := s.r.Push(ctx, s.dir, gitrepo.PushOptions{})
		done <- err
	}()
	// Stop it once git-receive-pack takes the pack in (its quarantine
	// directory appears), or once it has returned.
	for receiving := false; !receiving; {
		select {
		case err := <-done:
			done <- err
			receiving = true
		default:
			entries, _ := os.ReadDir(filepath.Join(bare, "objects"))
			receiving = slices.ContainsFunc(entries, func(e os.DirEntry) bool { return strings.Contains(e.Name(), "incoming") })
		}
	}
	t0 := time.Now()
	cancel()
	select {
	case err := <-done:
		t.Logf("the stopped push returned %v after %v", err, time.Since(t0))
	case <-time.After(60 * time.Second):
		t.Fatal("a push to a file:// remote, stopped while its pack flowed, did not return within 60s")
	}
	s.push(gitrepo.PushOptions{})
	if log, _ := repos.Log(t, "data", "main"); !slices.Equal(log, []string{"run big", "initial"}) {
		t.Errorf("main = %v", log)
	}
}

// TestPushRebasesEveryKindOfChange: a commit rebased onto another
// site's lands with exactly its changes on top of the other site's: the
// remote's tree is the clone's plus the other site's file, whatever the
// kind of change (a file modified, a directory removed, a directory where
// a file was, a file where a directory was, a deep new directory); where
// the other site changed what the commit replaced, it goes to
// mao/<site> and main keeps the other site's.
func TestPushRebasesEveryKindOfChange(t *testing.T) {
	t.Parallel()
	base := map[string]string{"m.csv": "1", "old/a.csv": "a", "old/sub/b.csv": "b", "x": "file", "keep/k.csv": "k"}
	tests := []struct {
		name   string
		remove []string
		write  map[string]string
		// other is what the other site changed first (b.csv when nil);
		// conflict, that the change no longer applies to it.
		other    map[string]string
		conflict bool
	}{
		{"modify", nil, map[string]string{"m.csv": "2"}, nil, false},
		{"remove a directory", []string{"old"}, nil, nil, false},
		{"a directory where a file was", []string{"x"}, map[string]string{"x/y.csv": "y"}, nil, false},
		{"a file where a directory was", []string{"old"}, map[string]string{"old": "now a file"}, nil, false},
		{"a deep new directory", nil, map[string]string{"n/deep/f.csv": "f"}, nil, false},
		{"all at once", []string{"old", "x"}, map[string]string{"m.csv": "2", "x/y.csv": "y", "n/deep/f.csv": "f"}, nil, false},
		{"a directory where a file was, which the other site changed", []string{"x"}, map[string]string{"x/y.csv": "y"},
			map[string]string{"x": "changed"}, true},
		{"a file where a directory was, in which the other site changed a file", []string{"old"}, map[string]string{"old": "now a file"},
			map[string]string{"old/sub/b.csv": "changed"}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			repos, url := served(t, base)
			a, b := newSite(t, "site-a", url, nil), newSite(t, "site-b", url, nil)
			other := tc.other
			if other == nil {
				other = map[string]string{"b.csv": "b"}
			}
			b.run("run at b", other)
			b.push(gitrepo.PushOptions{})
			onMain := maps.Clone(base) // what main holds after the other site's push
			maps.Copy(onMain, other)
			want := maps.Clone(onMain)
			for _, p := range tc.remove {
				if err := os.RemoveAll(filepath.Join(a.dir, p)); err != nil {
					t.Fatal(err)
				}
				for path := range want {
					if path == p || strings.HasPrefix(path, p+"/") {
						delete(want, path)
					}
				}
			}
			maps.Copy(want, tc.write)
			a.run("run at a", tc.write)
			res := a.push(gitrepo.PushOptions{ConflictBranch: "mao/site-a"})
			if res.Sent != 1 || res.Commits[0].Conflict != tc.conflict {
				t.Fatalf("push %+v, want conflict %v", res, tc.conflict)
			}
			if tc.conflict {
				want = onMain
			}
			got := strings.Fields(repos.Git(t, "data", "ls-tree", "-r", "--format=%(path)=%(objectname)", "main"))
			var wantList []string
			for path, content := range want {
				wantList = append(wantList, path+"="+blobHash(content))
			}
			slices.Sort(got)
			slices.Sort(wantList)
			if !slices.Equal(got, wantList) {
				t.Errorf("main holds %v, want %v", got, wantList)
			}
			repos.Git(t, "data", "fsck", "--strict")
		})
	}
}

func blobHash(content string) string {
	return plumbing.ComputeHash(plumbing.BlobObject, []byte(content)).String()
}
