package gitrepo_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage/filesystem"

	"github.com/mao-research/mao/orchestrator/gitrepo"
)

// upstream is a non-bare repository that tests clone over file:// and commit
// to directly, standing in for a remote that others push to.
type upstream struct {
	t    *testing.T
	dir  string
	repo *git.Repository
}

func newUpstream(t *testing.T) *upstream {
	t.Helper()
	dir := t.TempDir()
	repo, err := git.PlainInit(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	return &upstream{t: t, dir: dir, repo: repo}
}

func (u *upstream) url() string { return "file://" + u.dir }

// commit writes files (path -> content) and commits them, returning the hash.
func (u *upstream) commit(files map[string]string) string {
	u.t.Helper()
	w, err := u.repo.Worktree()
	if err != nil {
		u.t.Fatal(err)
	}
	for name, content := range files {
		writeFile(u.t, u.dir, name, content)
		if _, err := w.Add(name); err != nil {
			u.t.Fatal(err)
		}
	}
	sig := &object.Signature{Name: "upstream", Email: "up@example.org", When: time.Now()}
	h, err := w.Commit("upstream change", &git.CommitOptions{Author: sig})
	if err != nil {
		u.t.Fatal(err)
	}
	return h.String()
}

func writeFile(t *testing.T, dir, name, content string) {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func exists(t *testing.T, dir, name string) bool {
	t.Helper()
	_, err := os.Lstat(filepath.Join(dir, filepath.FromSlash(name)))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return err == nil
}

// openRepo opens the clone in dir: a work tree with its git directory
// outside (gitrepo.GitDir), or an ordinary clone (a kept one).
func openRepo(t *testing.T, dir string) *git.Repository {
	t.Helper()
	if _, err := os.Stat(gitrepo.GitDir(dir)); err != nil {
		repo, err := git.PlainOpen(dir)
		if err != nil {
			t.Fatal(err)
		}
		return repo
	}
	storage := filesystem.NewStorage(osfs.New(gitrepo.GitDir(dir)), cache.NewObjectLRUDefault())
	repo, err := git.Open(storage, osfs.New(dir))
	if err != nil {
		t.Fatal(err)
	}
	return repo
}

// clonedHead is the hash HEAD of the clone in dir resolves to ("" if unborn).
func clonedHead(t *testing.T, dir string) string {
	t.Helper()
	repo := openRepo(t, dir)
	head, err := repo.Head()
	if errors.Is(err, plumbing.ErrReferenceNotFound) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return head.Hash().String()
}

func headCommit(t *testing.T, dir string) *object.Commit {
	t.Helper()
	repo := openRepo(t, dir)
	head, err := repo.Head()
	if err != nil {
		t.Fatal(err)
	}
	c, err := repo.CommitObject(head.Hash())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func isClean(t *testing.T, dir string) bool {
	t.Helper()
	repo := openRepo(t, dir)
	w, err := repo.Worktree()
	if err != nil {
		t.Fatal(err)
	}
	st, err := w.Status()
	if err != nil {
		t.Fatal(err)
	}
	return st.IsClean()
}

// closedPort returns a 127.0.0.1 port that nothing listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return port
}

func sync(t *testing.T, r *gitrepo.Repos, dir, url, branch string) (commit, note string) {
	t.Helper()
	commit, note, err := r.Sync(context.Background(), dir, url, branch)
	if err != nil {
		t.Fatalf("Sync(%s): %v", url, err)
	}
	return commit, note
}

func commit(t *testing.T, r *gitrepo.Repos, dir, msg string) (string, []string) {
	t.Helper()
	h, files, err := r.Commit(context.Background(), dir, msg, nil)
	if err != nil {
		t.Fatalf("Commit: %v", err)
	}
	return h, files
}

func TestSyncClone(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		setup    func(u *upstream) (want string) // commits upstream, returns the expected commit
		branch   string
		mkdir    bool // the target exists as an empty directory
		wantFile string
	}{
		{
			name:     "default branch",
			setup:    func(u *upstream) string { return u.commit(map[string]string{"a.txt": "A"}) },
			wantFile: "a.txt",
		},
		{
			name:     "into an existing empty directory",
			setup:    func(u *upstream) string { return u.commit(map[string]string{"a.txt": "A"}) },
			mkdir:    true,
			wantFile: "a.txt",
		},
		{
			name: "named branch",
			setup: func(u *upstream) string {
				u.commit(map[string]string{"a.txt": "A"})
				w, err := u.repo.Worktree()
				if err != nil {
					u.t.Fatal(err)
				}
				if err := w.Checkout(&git.CheckoutOptions{Branch: plumbing.NewBranchReferenceName("data"), Create: true}); err != nil {
					u.t.Fatal(err)
				}
				want := u.commit(map[string]string{"b.txt": "B"})
				if err := w.Checkout(&git.CheckoutOptions{Branch: plumbing.Master}); err != nil {
					u.t.Fatal(err)
				}
				return want
			},
			branch:   "data",
			wantFile: "b.txt",
		},
		{
			name:  "empty remote",
			setup: func(*upstream) string { return "" },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			u := newUpstream(t)
			want := tt.setup(u)
			dir := filepath.Join(t.TempDir(), "clone")
			if tt.mkdir {
				if err := os.Mkdir(dir, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			r := gitrepo.New(gitrepo.Options{})
			got, note := sync(t, r, dir, u.url(), tt.branch)
			if got != want || note != "" {
				t.Fatalf("Sync = %q, %q; want %q, no note", got, note, want)
			}
			if got := clonedHead(t, dir); got != want {
				t.Errorf("HEAD of clone = %q, want %q", got, want)
			}
			if tt.wantFile != "" && !exists(t, dir, tt.wantFile) {
				t.Errorf("%s not checked out", tt.wantFile)
			}
			// A second Sync with nothing new upstream changes nothing.
			if again, note := sync(t, r, dir, u.url(), tt.branch); again != want || note != "" {
				t.Errorf("second Sync = %q, %q; want %q, no note", again, note, want)
			}
		})
	}
}

func TestSyncEmptyBareRemote(t *testing.T) {
	t.Parallel()
	bare := t.TempDir()
	if _, err := git.PlainInit(bare, true); err != nil {
		t.Fatal(err)
	}
	url := "file://" + bare
	dir := filepath.Join(t.TempDir(), "clone")
	r := gitrepo.New(gitrepo.Options{})

	if got, note := sync(t, r, dir, url, ""); got != "" || note != "" {
		t.Fatalf("Sync of empty remote = %q, %q; want no commit, no note", got, note)
	}
	repo := openRepo(t, dir)
	remote, err := repo.Remote("origin")
	if err != nil || remote.Config().URLs[0] != url {
		t.Fatalf("origin = %v, %v; want %s", remote, err, url)
	}

	// The first commit works and later Syncs keep it (the remote is still
	// empty because nothing pushes).
	writeFile(t, dir, "control-001.csv", "42\n")
	first, files := commit(t, r, dir, "first run")
	if first == "" || !slices.Equal(files, []string{"control-001.csv"}) {
		t.Fatalf("first Commit = %q, %v", first, files)
	}
	if len(headCommit(t, dir).ParentHashes) != 0 {
		t.Error("first commit has parents")
	}
	if got, note := sync(t, r, dir, url, ""); got != first || note != "" {
		t.Errorf("Sync after first commit = %q, %q; want %q, no note", got, note, first)
	}
}

func TestSyncEmptyRemoteGetsFirstCommit(t *testing.T) {
	t.Parallel()
	u := newUpstream(t) // empty; its default branch is master
	dir := filepath.Join(t.TempDir(), "clone")
	r := gitrepo.New(gitrepo.Options{})
	if got, _ := sync(t, r, dir, u.url(), ""); got != "" {
		t.Fatalf("Sync of empty remote = %q, want no commit", got)
	}
	want := u.commit(map[string]string{"readme": "hello"})
	got, note := sync(t, r, dir, u.url(), "")
	if got != want || note != "" {
		t.Fatalf("Sync = %q, %q; want %q, no note", got, note, want)
	}
	if readFile(t, dir, "readme") != "hello" {
		t.Error("readme not checked out")
	}
}

func TestSyncUpdates(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// change edits the clone and upstream after the first Sync and
		// returns the commit the second Sync must return.
		change   func(t *testing.T, r *gitrepo.Repos, u *upstream, dir string) string
		branch   string // for the second Sync
		wantNote string // substring; "" means no note
	}{
		{
			name: "fast-forward",
			change: func(t *testing.T, r *gitrepo.Repos, u *upstream, dir string) string {
				return u.commit(map[string]string{"b.txt": "B", "a.txt": "A2"})
			},
		},
		{
			name: "local ahead",
			change: func(t *testing.T, r *gitrepo.Repos, u *upstream, dir string) string {
				writeFile(t, dir, "out.csv", "1")
				h, _ := commit(t, r, dir, "run")
				return h
			},
		},
		{
			name: "diverged",
			change: func(t *testing.T, r *gitrepo.Repos, u *upstream, dir string) string {
				writeFile(t, dir, "out.csv", "1")
				h, _ := commit(t, r, dir, "run")
				u.commit(map[string]string{"b.txt": "B"})
				return h
			},
			wantNote: "pull: remote has diverged",
		},
		{
			name: "switch to another branch",
			change: func(t *testing.T, r *gitrepo.Repos, u *upstream, dir string) string {
				w, err := u.repo.Worktree()
				if err != nil {
					t.Fatal(err)
				}
				if err := w.Checkout(&git.CheckoutOptions{Branch: plumbing.NewBranchReferenceName("data"), Create: true}); err != nil {
					t.Fatal(err)
				}
				return u.commit(map[string]string{"b.txt": "B"})
			},
			branch: "data",
		},
		{
			name: "switch back to a local branch",
			change: func(t *testing.T, r *gitrepo.Repos, u *upstream, dir string) string {
				master := clonedHead(t, dir)
				w, err := u.repo.Worktree()
				if err != nil {
					t.Fatal(err)
				}
				if err := w.Checkout(&git.CheckoutOptions{Branch: plumbing.NewBranchReferenceName("data"), Create: true}); err != nil {
					t.Fatal(err)
				}
				u.commit(map[string]string{"b.txt": "B"})
				sync(t, r, dir, u.url(), "data")
				return master
			},
			branch: "master",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			u := newUpstream(t)
			u.commit(map[string]string{"a.txt": "A"})
			dir := filepath.Join(t.TempDir(), "clone")
			r := gitrepo.New(gitrepo.Options{})
			sync(t, r, dir, u.url(), "")

			want := tt.change(t, r, u, dir)
			got, note := sync(t, r, dir, u.url(), tt.branch)
			if got != want {
				t.Errorf("Sync = %q, want %q", got, want)
			}
			if got := clonedHead(t, dir); got != want {
				t.Errorf("HEAD of clone = %q, want %q", got, want)
			}
			if tt.wantNote == "" && note != "" || !strings.Contains(note, tt.wantNote) {
				t.Errorf("note = %q, want %q", note, tt.wantNote)
			}
			if tt.wantNote != "" && !strings.Contains(note, want[:12]) {
				t.Errorf("note %q does not name the local head %s", note, want[:12])
			}
			if !isClean(t, dir) {
				t.Error("worktree not clean after Sync")
			}
		})
	}
}

func TestSyncFastForwardUpdatesFiles(t *testing.T) {
	t.Parallel()
	u := newUpstream(t)
	u.commit(map[string]string{"a.txt": "A"})
	dir := filepath.Join(t.TempDir(), "clone")
	r := gitrepo.New(gitrepo.Options{})
	sync(t, r, dir, u.url(), "")
	u.commit(map[string]string{"a.txt": "A2", "sub/b.txt": "B"})
	sync(t, r, dir, u.url(), "")
	if got := readFile(t, dir, "a.txt"); got != "A2" {
		t.Errorf("a.txt = %q after fast-forward, want A2", got)
	}
	if got := readFile(t, dir, "sub/b.txt"); got != "B" {
		t.Errorf("sub/b.txt = %q after fast-forward, want B", got)
	}
}

func TestSyncErrors(t *testing.T) {
	t.Parallel()
	closed := fmt.Sprintf("git://127.0.0.1:%d/x.git", closedPort(t))
	missing := "file://" + filepath.Join(t.TempDir(), "does-not-exist")

	tests := []struct {
		name string
		// setup returns the dir and URL to Sync.
		setup     func(t *testing.T, r *gitrepo.Repos) (dir, url string)
		ctx       func() context.Context
		branch    string
		wantInErr []string
		wantIs    error
		wantClean bool // the target dir must not be left behind
	}{
		{
			name: "unreachable remote on clone",
			setup: func(t *testing.T, r *gitrepo.Repos) (string, string) {
				return filepath.Join(t.TempDir(), "clone"), closed
			},
			wantInErr: []string{"clone " + closed},
			wantClean: true,
		},
		{
			name: "missing file remote on clone",
			setup: func(t *testing.T, r *gitrepo.Repos) (string, string) {
				return filepath.Join(t.TempDir(), "clone"), missing
			},
			wantInErr: []string{"clone " + missing},
			wantClean: true,
		},
		{
			name: "unreachable remote on fetch",
			setup: func(t *testing.T, r *gitrepo.Repos) (string, string) {
				u := newUpstream(t)
				u.commit(map[string]string{"a.txt": "A"})
				dir := filepath.Join(t.TempDir(), "clone")
				sync(t, r, dir, u.url(), "")
				if err := os.RemoveAll(u.dir); err != nil {
					t.Fatal(err)
				}
				return dir, u.url()
			},
			wantInErr: []string{"fetch file://"},
		},
		{
			name: "uncommitted change blocks a fast-forward",
			setup: func(t *testing.T, r *gitrepo.Repos) (string, string) {
				u := newUpstream(t)
				u.commit(map[string]string{"a.txt": "A"})
				dir := filepath.Join(t.TempDir(), "clone")
				sync(t, r, dir, u.url(), "")
				writeFile(t, dir, "a.txt", "local edit")
				u.commit(map[string]string{"a.txt": "A2"})
				return dir, u.url()
			},
			wantInErr: []string{"fast-forward master"},
			wantIs:    git.ErrUnstagedChanges,
		},
		{
			name: "branch missing on clone",
			setup: func(t *testing.T, r *gitrepo.Repos) (string, string) {
				u := newUpstream(t)
				u.commit(map[string]string{"a.txt": "A"})
				return filepath.Join(t.TempDir(), "clone"), u.url()
			},
			branch:    "nope",
			wantInErr: []string{"clone file://", "no branch nope"},
			wantClean: true,
		},
		{
			name: "branch missing on later sync",
			setup: func(t *testing.T, r *gitrepo.Repos) (string, string) {
				u := newUpstream(t)
				u.commit(map[string]string{"a.txt": "A"})
				dir := filepath.Join(t.TempDir(), "clone")
				sync(t, r, dir, u.url(), "")
				return dir, u.url()
			},
			branch:    "nope",
			wantInErr: []string{"switch to branch nope: the remote has no such branch"},
		},
		{
			name: "not a repository",
			setup: func(t *testing.T, r *gitrepo.Repos) (string, string) {
				dir := t.TempDir()
				writeFile(t, dir, "stray.txt", "x")
				return dir, "https://example.org/x.git"
			},
			wantInErr: []string{"is neither empty nor a clone of https://example.org/x.git"},
			wantIs:    git.ErrRepositoryNotExists,
		},
		{
			name: "password is redacted",
			setup: func(t *testing.T, r *gitrepo.Repos) (string, string) {
				return filepath.Join(t.TempDir(), "clone"), fmt.Sprintf("https://user:secret@127.0.0.1:%d/x.git", closedPort(t))
			},
			wantInErr: []string{"clone https://user:xxxxx@127.0.0.1"},
			wantClean: true,
		},
		{
			name: "cancelled context",
			setup: func(t *testing.T, r *gitrepo.Repos) (string, string) {
				u := newUpstream(t)
				u.commit(map[string]string{"a.txt": "A"})
				return filepath.Join(t.TempDir(), "clone"), u.url()
			},
			ctx: func() context.Context {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				return ctx
			},
			wantIs:    context.Canceled,
			wantClean: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := gitrepo.New(gitrepo.Options{})
			dir, url := tt.setup(t, r)
			ctx := context.Background()
			if tt.ctx != nil {
				ctx = tt.ctx()
			}
			commit, note, err := r.Sync(ctx, dir, url, tt.branch)
			if err == nil {
				t.Fatalf("Sync = %q, %q, nil; want an error", commit, note)
			}
			t.Logf("error: %v", err)
			for _, s := range tt.wantInErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error %q is not %v", err, tt.wantIs)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error %q shows the password", err)
			}
			if tt.wantClean && exists(t, dir, "") {
				t.Errorf("failed clone left %s behind", dir)
			}
		})
	}
}

// oldClone clones an upstream, commits to the clone without pushing and
// points its origin at oldURL, as if the clone were of that URL. It returns
// the clone's directory and head.
func oldClone(t *testing.T, r *gitrepo.Repos, oldURL string) (dir, head string) {
	t.Helper()
	u := newUpstream(t)
	u.commit(map[string]string{"a.txt": "A"})
	dir = filepath.Join(t.TempDir(), "clone")
	sync(t, r, dir, u.url(), "")
	writeFile(t, dir, "out.csv", "unpushed")
	head, _ = commit(t, r, dir, "run")
	repo := openRepo(t, dir)
	cfg, err := repo.Config()
	if err != nil {
		t.Fatal(err)
	}
	cfg.Remotes["origin"].URLs = []string{oldURL}
	if err := repo.SetConfig(cfg); err != nil {
		t.Fatal(err)
	}
	return dir, head
}

// originOf is the URL of the origin remote of the clone in dir.
func originOf(t *testing.T, dir string) string {
	t.Helper()
	repo := openRepo(t, dir)
	remote, err := repo.Remote("origin")
	if err != nil {
		t.Fatal(err)
	}
	return remote.Config().URLs[0]
}

// siblings lists the names in dir's parent other than dir's own and its git
// directory's.
func siblings(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Dir(dir))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if e.Name() != filepath.Base(dir) && e.Name() != filepath.Base(gitrepo.GitDir(dir)) {
			names = append(names, e.Name())
		}
	}
	return names
}

func TestSyncReplacesCloneOfAnotherURL(t *testing.T) {
	t.Parallel()
	const (
		oldURL      = "https://user:secret@example.org/old.git"
		oldRedacted = "https://user:xxxxx@example.org/old.git"
	)
	// An hour east of UTC: the directory name must use UTC.
	now := time.Date(2024, 1, 2, 4, 4, 5, 0, time.FixedZone("UTC+1", 3600))
	const stamp = "clone.replaced-20240102T030405Z"

	tests := []struct {
		name     string
		taken    []string // sibling names that exist already
		empty    bool     // the new remote has no commits
		wantKept string
	}{
		{name: "new remote", wantKept: stamp},
		{name: "name taken", taken: []string{stamp, stamp + "-2"}, wantKept: stamp + "-3"},
		{name: "empty new remote", empty: true, wantKept: stamp},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := gitrepo.New(gitrepo.Options{Now: func() time.Time { return now }})
			dir, oldHead := oldClone(t, r, oldURL)
			for _, name := range tt.taken {
				if err := os.Mkdir(filepath.Join(filepath.Dir(dir), name), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			u := newUpstream(t)
			var want string
			if !tt.empty {
				want = u.commit(map[string]string{"b.txt": "B"})
			}

			got, note := sync(t, r, dir, u.url(), "")
			t.Logf("note: %s", note)
			if got != want {
				t.Errorf("Sync = %q, want the new remote's head %q", got, want)
			}
			if head := clonedHead(t, dir); head != want {
				t.Errorf("HEAD of %s = %q, want %q", dir, head, want)
			}
			if origin := originOf(t, dir); origin != u.url() {
				t.Errorf("origin of %s = %q, want %q", dir, origin, u.url())
			}
			if exists(t, dir, "out.csv") || !tt.empty && !exists(t, dir, "b.txt") {
				t.Errorf("%s does not hold the new remote's files", dir)
			}

			kept := filepath.Join(filepath.Dir(dir), tt.wantKept)
			if head := clonedHead(t, kept); head != oldHead {
				t.Errorf("HEAD of kept clone = %q, want the unpushed commit %q", head, oldHead)
			}
			if readFile(t, kept, "out.csv") != "unpushed" || originOf(t, kept) != oldURL {
				t.Error("kept clone is not the old one")
			}
			if want := append(slices.Clone(tt.taken), tt.wantKept); !slices.Equal(siblings(t, dir), want) {
				t.Errorf("siblings of %s = %q, want %q", dir, siblings(t, dir), want)
			}
			for _, s := range []string{oldRedacted, u.url(), kept} {
				if !strings.Contains(note, s) {
					t.Errorf("note %q does not contain %q", note, s)
				}
			}
			if strings.Contains(note, "secret") {
				t.Errorf("note %q shows the password", note)
			}

			// The next Sync is an ordinary one.
			if again, note := sync(t, r, dir, u.url(), ""); again != want || note != "" {
				t.Errorf("next Sync = %q, %q; want %q, no note", again, note, want)
			}
		})
	}
}

func TestSyncSameURLSpelledDifferently(t *testing.T) {
	t.Parallel()
	u := newUpstream(t)
	want := u.commit(map[string]string{"a.txt": "A"})
	dir := filepath.Join(t.TempDir(), "clone")
	r := gitrepo.New(gitrepo.Options{})
	sync(t, r, dir, u.url(), "")
	if got, note := sync(t, r, dir, u.url()+"/", ""); got != want || note != "" {
		t.Errorf("Sync = %q, %q; want %q, no note", got, note, want)
	}
	if s := siblings(t, dir); len(s) != 0 {
		t.Errorf("Sync left %q next to the clone", s)
	}
}

func TestSyncReplaceFails(t *testing.T) {
	t.Parallel()
	const oldURL = "https://example.org/old.git"
	upstreamURL := func(t *testing.T) string {
		u := newUpstream(t)
		u.commit(map[string]string{"b.txt": "B"})
		return u.url()
	}
	tests := []struct {
		name      string
		url       func(t *testing.T) string
		branch    string
		wantInErr []string
	}{
		{
			name: "unreachable new remote",
			url: func(t *testing.T) string {
				return fmt.Sprintf("https://user:secret@127.0.0.1:%d/x.git", closedPort(t))
			},
			wantInErr: []string{"clone https://user:xxxxx@127.0.0.1"},
		},
		{
			name:      "branch missing on new remote",
			url:       upstreamURL,
			branch:    "nope",
			wantInErr: []string{"clone file://", "no branch nope"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := gitrepo.New(gitrepo.Options{})
			dir, oldHead := oldClone(t, r, oldURL)
			commit, note, err := r.Sync(context.Background(), dir, tt.url(t), tt.branch)
			if err == nil {
				t.Fatalf("Sync = %q, %q, nil; want an error", commit, note)
			}
			t.Logf("error: %v", err)
			for _, s := range tt.wantInErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error %q shows the password", err)
			}
			// dir is untouched and nothing is left next to it.
			if head := clonedHead(t, dir); head != oldHead || originOf(t, dir) != oldURL {
				t.Errorf("%s changed: HEAD %q, origin %q", dir, head, originOf(t, dir))
			}
			if s := siblings(t, dir); len(s) != 0 {
				t.Errorf("failed Sync left %q next to the clone", s)
			}
		})
	}
}

// cloned returns a fresh clone of an upstream holding tracked files and a
// .gitignore.
func cloned(t *testing.T, r *gitrepo.Repos) (dir, head string) {
	t.Helper()
	u := newUpstream(t)
	u.commit(map[string]string{
		".gitignore":   "*.tmp\ncache/\n",
		"keep.txt":     "keep",
		"edit.txt":     "v1",
		"gone.txt":     "bye",
		"sub/deep.txt": "deep",
	})
	dir = filepath.Join(t.TempDir(), "clone")
	head, _ = sync(t, r, dir, u.url(), "")
	return dir, head
}

// dirty makes every kind of change in dir and returns the paths Commit and
// Discard must report.
func dirty(t *testing.T, dir string) []string {
	t.Helper()
	writeFile(t, dir, "edit.txt", "v2")
	if err := os.Remove(filepath.Join(dir, "gone.txt")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "sub", "deep.txt")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "new.csv", "1")
	writeFile(t, dir, "out/2024/control-002.csv", "2")
	writeFile(t, dir, "scratch.tmp", "ignored")
	writeFile(t, dir, "cache/blob", "ignored")
	if err := os.MkdirAll(filepath.Join(dir, "empty", "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	return []string{"edit.txt", "gone.txt", "new.csv", "out/2024/control-002.csv", "sub/deep.txt"}
}

func TestCommit(t *testing.T) {
	t.Parallel()
	r := gitrepo.New(gitrepo.Options{AuthorName: "site-a", AuthorEmail: "ops@site-a.example"})
	dir, before := cloned(t, r)
	want := dirty(t, dir)

	got, files := commit(t, r, dir, "run 7 of tool x")
	if got == "" || got == before {
		t.Fatalf("Commit = %q, want a new commit after %q", got, before)
	}
	if !slices.Equal(files, want) {
		t.Errorf("files = %q, want %q", files, want)
	}
	if head := clonedHead(t, dir); head != got {
		t.Errorf("HEAD = %s, Commit returned %s", head, got)
	}
	c := headCommit(t, dir)
	if c.Message != "run 7 of tool x" || c.Author.Name != "site-a" || c.Author.Email != "ops@site-a.example" ||
		c.Committer.Name != "site-a" || c.Committer.Email != "ops@site-a.example" {
		t.Errorf("commit message/author/committer = %q, %v, %v", c.Message, c.Author, c.Committer)
	}
	if len(c.ParentHashes) != 1 || c.ParentHashes[0].String() != before {
		t.Errorf("parents = %v, want [%s]", c.ParentHashes, before)
	}

	tree, err := c.Tree()
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{"edit.txt": "v2", "new.csv": "1", "out/2024/control-002.csv": "2", "keep.txt": "keep"} {
		f, err := tree.File(path)
		if err != nil {
			t.Errorf("%s not in commit: %v", path, err)
			continue
		}
		if got, _ := f.Contents(); got != want {
			t.Errorf("%s = %q in commit, want %q", path, got, want)
		}
	}
	for _, path := range []string{"gone.txt", "sub/deep.txt", "scratch.tmp", "cache/blob"} {
		if _, err := tree.File(path); err == nil {
			t.Errorf("%s is in the commit", path)
		}
	}
	if !isClean(t, dir) {
		t.Error("worktree not clean after Commit")
	}
}

func TestCommitDefaults(t *testing.T) {
	t.Parallel()
	r := gitrepo.New(gitrepo.Options{})
	dir, _ := cloned(t, r)
	writeFile(t, dir, "a", "1")
	commit(t, r, dir, "m")
	if a := headCommit(t, dir).Author; a.Name != "mao" || a.Email != "mao@localhost" {
		t.Errorf("default author = %s <%s>, want mao <mao@localhost>", a.Name, a.Email)
	}
}

func TestCommitNoChanges(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		change func(t *testing.T, dir string)
	}{
		{"untouched", func(*testing.T, string) {}},
		{"only ignored files", func(t *testing.T, dir string) {
			writeFile(t, dir, "x.tmp", "1")
			writeFile(t, dir, "cache/y", "2")
		}},
		{"rewritten with the same content", func(t *testing.T, dir string) { writeFile(t, dir, "edit.txt", "v1") }},
		{"staged change undone in the worktree", func(t *testing.T, dir string) {
			repo := openRepo(t, dir)
			w, err := repo.Worktree()
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, dir, "edit.txt", "v2")
			if _, err := w.Add("edit.txt"); err != nil {
				t.Fatal(err)
			}
			writeFile(t, dir, "edit.txt", "v1")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := gitrepo.New(gitrepo.Options{})
			dir, before := cloned(t, r)
			tt.change(t, dir)
			got, files := commit(t, r, dir, "nothing")
			if got != before || len(files) != 0 {
				t.Errorf("Commit = %q, %q; want %q and no files", got, files, before)
			}
			if head := clonedHead(t, dir); head != before {
				t.Errorf("HEAD moved to %s", head)
			}
		})
	}
}

func TestDiscard(t *testing.T) {
	t.Parallel()
	r := gitrepo.New(gitrepo.Options{})
	dir, before := cloned(t, r)
	want := dirty(t, dir)

	// A file staged by someone else is discarded too.
	repo := openRepo(t, dir)
	w, err := repo.Worktree()
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "staged/s.txt", "s")
	if _, err := w.Add("staged/s.txt"); err != nil {
		t.Fatal(err)
	}
	want = append(want, "staged/s.txt")
	slices.Sort(want)

	files, err := r.Discard(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(files, want) {
		t.Errorf("files = %q, want %q", files, want)
	}
	if head := clonedHead(t, dir); head != before {
		t.Errorf("HEAD moved to %s", head)
	}
	for path, want := range map[string]string{"edit.txt": "v1", "gone.txt": "bye", "sub/deep.txt": "deep", "keep.txt": "keep"} {
		if got := readFile(t, dir, path); got != want {
			t.Errorf("%s = %q after Discard, want %q", path, got, want)
		}
	}
	for _, path := range []string{"new.csv", "out", "staged", "empty"} {
		if exists(t, dir, path) {
			t.Errorf("%s survived Discard", path)
		}
	}
	for _, path := range []string{"scratch.tmp", "cache/blob"} {
		if !exists(t, dir, path) {
			t.Errorf("ignored %s was removed", path)
		}
	}
	if !isClean(t, dir) {
		t.Error("worktree not clean after Discard")
	}
	// Nothing left to discard or commit.
	if files, err := r.Discard(context.Background(), dir); err != nil || len(files) != 0 {
		t.Errorf("second Discard = %q, %v; want nothing", files, err)
	}
	if got, files := commit(t, r, dir, "after discard"); got != before || len(files) != 0 {
		t.Errorf("Commit after Discard = %q, %q; want %q and no files", got, files, before)
	}
}

func TestDiscardWithoutCommits(t *testing.T) {
	t.Parallel()
	u := newUpstream(t) // empty
	dir := filepath.Join(t.TempDir(), "clone")
	r := gitrepo.New(gitrepo.Options{})
	sync(t, r, dir, u.url(), "")
	writeFile(t, dir, "out/a.csv", "1")
	writeFile(t, dir, "b.csv", "2")

	files, err := r.Discard(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"b.csv", "out/a.csv"}; !slices.Equal(files, want) {
		t.Errorf("files = %q, want %q", files, want)
	}
	for _, path := range []string{"b.csv", "out"} {
		if exists(t, dir, path) {
			t.Errorf("%s survived Discard", path)
		}
	}
	if got, files := commit(t, r, dir, "nothing"); got != "" || len(files) != 0 {
		t.Errorf("Commit = %q, %q; want no commit", got, files)
	}
}

func TestCommitDiscardErrors(t *testing.T) {
	t.Parallel()
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	r := gitrepo.New(gitrepo.Options{})
	dir, _ := cloned(t, r)
	notRepo := t.TempDir()

	tests := []struct {
		name string
		ctx  context.Context
		dir  string
		want error
	}{
		{"cancelled", cancelled, dir, context.Canceled},
		{"not a repository", context.Background(), notRepo, git.ErrRepositoryNotExists},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := r.Commit(tt.ctx, tt.dir, "m", nil); !errors.Is(err, tt.want) {
				t.Errorf("Commit error = %v, want %v", err, tt.want)
			}
			if _, err := r.Discard(tt.ctx, tt.dir); !errors.Is(err, tt.want) {
				t.Errorf("Discard error = %v, want %v", err, tt.want)
			}
		})
	}
}
