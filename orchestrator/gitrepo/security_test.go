package gitrepo_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/mao-research/mao/orchestrator/gitrepo"
)

// The tests in this file replay what a tool can do to the data folder it
// gets mounted (the work tree of its clone), and what it could do before
// the git directory moved out of it (a clone of the old layout), and check
// that the orchestrator never reads or writes outside the clone because
// of it.

// gitCLI runs the git command line on the clone in dir (work tree and git
// directory apart) and returns its output.
func gitCLI(t *testing.T, dir string, args ...string) string {
	t.Helper()
	return gitRun(t, append([]string{"--git-dir=" + gitrepo.GitDir(dir), "--work-tree=" + dir}, args...)...)
}

func gitRun(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@localhost", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@localhost")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}

// assertConsistent checks the clone in dir with git itself: every object
// sound, and the work tree, the index and HEAD agreeing.
func assertConsistent(t *testing.T, dir string) {
	t.Helper()
	gitCLI(t, dir, "fsck", "--strict", "--no-progress")
	if st := gitCLI(t, dir, "status", "--porcelain", "--untracked-files=all"); st != "" {
		t.Errorf("git status of %s is not clean:\n%s", dir, st)
	}
}

// snapshot describes every entry under root without following links, to
// check that root was left untouched.
func snapshot(t *testing.T, root string) map[string]string {
	t.Helper()
	snap := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			snap[rel] = "link " + target
			return err
		case d.IsDir():
			snap[rel] = "dir " + fi.Mode().String()
		default:
			b, err := os.ReadFile(p)
			sum := sha256.Sum256(b)
			snap[rel] = fi.Mode().String() + " " + hex.EncodeToString(sum[:]) + " " + fi.ModTime().String()
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

func assertUntouched(t *testing.T, what string, before map[string]string, root string) {
	t.Helper()
	after := snapshot(t, root)
	for k, v := range before {
		if after[k] != v {
			t.Errorf("%s changed: %s was %q, is %q", what, k, v, after[k])
		}
	}
	for k, v := range after {
		if _, ok := before[k]; !ok {
			t.Errorf("%s changed: %s appeared (%q)", what, k, v)
		}
	}
}

// otherRepo is a bare repository with a commit, standing in for an
// upstream that other sites clone, and an outside directory with a secret:
// what an attack aims at.
type target struct {
	bare    string // bare repository
	outside string // a directory outside every clone
	secret  string // a file in it
}

func newTarget(t *testing.T) target {
	t.Helper()
	u := newUpstream(t)
	u.commit(map[string]string{"shared.txt": "what other sites clone"})
	bare := filepath.Join(t.TempDir(), "other.git")
	gitRun(t, "clone", "--quiet", "--bare", u.dir, bare)
	outside := t.TempDir()
	secret := filepath.Join(outside, "secret")
	if err := os.WriteFile(secret, []byte("the orchestrator's secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	writeFile(t, outside, "dir/inner.txt", "outside content")
	return target{bare: bare, outside: outside, secret: secret}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

// TestCommitRefusesGitInOutput: whatever a tool writes under a name git
// reads as a repository (a gitdir: file, a .git directory with links to
// another repository or a config of its own, ...) is refused: nothing is
// committed, the other repository and the outside are untouched, and
// Discard removes it.
func TestCommitRefusesGitInOutput(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		attack   func(t *testing.T, dir string, tg target)
		wantPath string // in the refusal
	}{
		{"a .git file redirecting to another repository", func(t *testing.T, dir string, tg target) {
			writeFile(t, dir, ".git", "gitdir: "+tg.bare+"\n")
		}, ".git"},
		{"a .git symlink to another repository", func(t *testing.T, dir string, tg target) {
			symlink(t, tg.bare, filepath.Join(dir, ".git"))
		}, ".git"},
		{"a .git directory whose objects and refs link to another repository", func(t *testing.T, dir string, tg target) {
			writeFile(t, dir, ".git/HEAD", "ref: refs/heads/master\n")
			symlink(t, filepath.Join(tg.bare, "objects"), filepath.Join(dir, ".git", "objects"))
			symlink(t, filepath.Join(tg.bare, "refs"), filepath.Join(dir, ".git", "refs"))
		}, ".git"},
		{"a .git/config of the tool's own", func(t *testing.T, dir string, tg target) {
			writeFile(t, dir, ".git/HEAD", "ref: refs/heads/master\n")
			writeFile(t, dir, ".git/config", "[core]\n\tworktree = "+tg.outside+"\n[remote \"origin\"]\n\turl = "+tg.bare+"\n")
		}, ".git"},
		{"a repository in a subdirectory", func(t *testing.T, dir string, tg target) {
			writeFile(t, dir, "results/ok.csv", "1")
			writeFile(t, dir, "results/.git", "gitdir: "+tg.bare+"\n")
		}, "results/.git"},
		{"an ignored .git", func(t *testing.T, dir string, tg target) {
			writeFile(t, dir, ".gitignore", ".git\n")
			writeFile(t, dir, ".git", "gitdir: "+tg.bare+"\n")
		}, ".git"},
		{".GIT, as case-insensitive systems read it", func(t *testing.T, dir string, tg target) {
			writeFile(t, dir, ".GIT/config", "[core]\n")
		}, ".GIT"},
		{"git~1, as NTFS reads it", func(t *testing.T, dir string, tg target) {
			writeFile(t, dir, "git~1", "gitdir: "+tg.bare+"\n")
		}, "git~1"},
		{".git with a trailing dot, as NTFS reads it", func(t *testing.T, dir string, tg target) {
			writeFile(t, dir, "sub/.git.", "gitdir: "+tg.bare+"\n")
		}, "sub/.git."},
		{".git with an HFS+ ignorable code point", func(t *testing.T, dir string, tg target) {
			writeFile(t, dir, ".g\u200cit", "gitdir: "+tg.bare+"\n")
		}, ".g\u200cit"},
		{"a symlink named .gitmodules", func(t *testing.T, dir string, tg target) {
			symlink(t, tg.secret, filepath.Join(dir, ".gitmodules"))
		}, ".gitmodules"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := gitrepo.New(gitrepo.Options{})
			dir, head := cloned(t, r)
			tg := newTarget(t)
			bare, outside := snapshot(t, tg.bare), snapshot(t, tg.outside)
			gitDir := snapshot(t, gitrepo.GitDir(dir))
			writeFile(t, dir, "control-001.csv", "42\n") // the run's legitimate output
			tt.attack(t, dir, tg)

			got, files, err := r.Commit(context.Background(), dir, "run", nil)
			var refused *gitrepo.OutputError
			if !errors.As(err, &refused) {
				t.Fatalf("Commit = %q, %q, %v; want an *OutputError", got, files, err)
			}
			t.Logf("Commit: %v", err)
			if refused.Path != tt.wantPath || !strings.Contains(err.Error(), tt.wantPath) {
				t.Errorf("refusal names %q (%v), want %q", refused.Path, err, tt.wantPath)
			}
			if h := clonedHead(t, dir); h != head {
				t.Errorf("HEAD moved to %s", h)
			}
			if _, err := r.Discard(context.Background(), dir); err != nil {
				t.Fatalf("Discard: %v", err)
			}
			if exists(t, dir, ".git") || exists(t, dir, "control-001.csv") {
				t.Error("Discard left the output behind")
			}
			if h := clonedHead(t, dir); h != head {
				t.Errorf("HEAD moved to %s", h)
			}
			assertConsistent(t, dir)
			assertUntouched(t, "the other repository", bare, tg.bare)
			assertUntouched(t, "the outside directory", outside, tg.outside)
			// The git directory got no commit; only the index may have
			// been rewritten, and the marker come and gone.
			after := snapshot(t, gitrepo.GitDir(dir))
			for k, v := range gitDir {
				if k != "index" && after[k] != v {
					t.Errorf("the clone's git directory changed: %s", k)
				}
			}
		})
	}
}

// TestCommitStoresLinksAsLinks: a symbolic link in the output is committed
// as a link (its target, as git does) and never followed, whether it
// points at a file or a directory outside the clone.
func TestCommitStoresLinksAsLinks(t *testing.T) {
	t.Parallel()
	r := gitrepo.New(gitrepo.Options{})
	dir, _ := cloned(t, r)
	tg := newTarget(t)
	writeFile(t, tg.outside, "ignore-all", "*\n")
	outside := snapshot(t, tg.outside)
	symlink(t, tg.secret, filepath.Join(dir, "leak"))
	symlink(t, filepath.Join(tg.outside, "dir"), filepath.Join(dir, "out", "linked-dir"))
	symlink(t, "../keep.txt", filepath.Join(dir, "out", "relative"))
	// A .gitignore that is a link is not read (as git): had it been, "*"
	// would ignore everything new.
	if err := os.Remove(filepath.Join(dir, ".gitignore")); err != nil {
		t.Fatal(err)
	}
	symlink(t, filepath.Join(tg.outside, "ignore-all"), filepath.Join(dir, ".gitignore"))
	writeFile(t, dir, "new.csv", "1")

	_, files := commit(t, r, dir, "links")
	want := []string{".gitignore", "leak", "new.csv", "out/linked-dir", "out/relative"}
	if !slices.Equal(files, want) {
		t.Errorf("files = %q, want %q", files, want)
	}
	tree, err := headCommit(t, dir).Tree()
	if err != nil {
		t.Fatal(err)
	}
	for path, target := range map[string]string{
		"leak": tg.secret, "out/linked-dir": filepath.Join(tg.outside, "dir"), "out/relative": "../keep.txt",
		".gitignore": filepath.Join(tg.outside, "ignore-all"),
	} {
		f, err := tree.File(path)
		if err != nil {
			t.Errorf("%s not committed: %v", path, err)
			continue
		}
		content, _ := f.Contents()
		if f.Mode != filemode.Symlink || content != target {
			t.Errorf("%s committed as %v %q, want a link to %q", path, f.Mode, content, target)
		}
	}
	if _, err := tree.File("out/linked-dir/inner.txt"); err == nil {
		t.Error("the linked directory was followed")
	}
	assertConsistent(t, dir)
	assertUntouched(t, "the outside directory", outside, tg.outside)
}

// TestDiscardNeverFollowsLinks: a failed run that replaced tracked files
// and directories with links to the outside, or left such links, is
// discarded by removing the links and restoring the tracked content in
// the clone, never writing or deleting through a link.
func TestDiscardNeverFollowsLinks(t *testing.T) {
	t.Parallel()
	r := gitrepo.New(gitrepo.Options{})
	dir, head := cloned(t, r)
	tg := newTarget(t)
	outside := snapshot(t, tg.outside)
	for _, p := range []string{"sub", "edit.txt"} {
		if err := os.RemoveAll(filepath.Join(dir, p)); err != nil {
			t.Fatal(err)
		}
	}
	symlink(t, filepath.Join(tg.outside, "dir"), filepath.Join(dir, "sub")) // was a tracked directory
	symlink(t, tg.secret, filepath.Join(dir, "edit.txt"))                   // was a tracked file
	symlink(t, filepath.Join(tg.outside, "dir"), filepath.Join(dir, "new")) // untracked
	symlink(t, tg.outside, filepath.Join(dir, "cache", "ignored-link"))     // ignored, left alone
	writeFile(t, dir, "deep/er/file.csv", "1")                              // untracked directories

	files, err := r.Discard(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"deep/er/file.csv", "edit.txt", "new", "sub", "sub/deep.txt"}; !slices.Equal(files, want) {
		t.Errorf("files = %q, want %q", files, want)
	}
	if got := readFile(t, dir, "sub/deep.txt"); got != "deep" {
		t.Errorf("sub/deep.txt = %q", got)
	}
	if got := readFile(t, dir, "edit.txt"); got != "v1" {
		t.Errorf("edit.txt = %q", got)
	}
	for _, p := range []string{"sub", "edit.txt"} {
		if fi, err := os.Lstat(filepath.Join(dir, p)); err != nil || fi.Mode()&fs.ModeSymlink != 0 {
			t.Errorf("%s is still a link (%v)", p, err)
		}
	}
	if exists(t, dir, "new") || exists(t, dir, "deep") || !exists(t, dir, "cache/ignored-link") {
		t.Error("Discard did not remove the untracked output, or removed the ignored link")
	}
	if h := clonedHead(t, dir); h != head {
		t.Errorf("HEAD moved to %s", h)
	}
	if err := os.Remove(filepath.Join(dir, "cache", "ignored-link")); err != nil {
		t.Fatal(err)
	}
	assertConsistent(t, dir)
	assertUntouched(t, "the outside directory", outside, tg.outside)
}

// oldLayout makes dir a clone in the layout of earlier versions, its .git
// inside the work tree, with a commit that was never pushed, and returns
// that commit.
func oldLayout(t *testing.T, dir string) (url, unpushed string) {
	t.Helper()
	u := newUpstream(t)
	u.commit(map[string]string{"a.txt": "A"})
	repo, err := git.PlainClone(dir, false, &git.CloneOptions{URL: u.url()})
	if err != nil {
		t.Fatal(err)
	}
	w, err := repo.Worktree()
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "out/result.csv", "unpushed result")
	if _, err := w.Add("out/result.csv"); err != nil {
		t.Fatal(err)
	}
	h, err := w.Commit("a run before the upgrade", &git.CommitOptions{Author: sig()})
	if err != nil {
		t.Fatal(err)
	}
	return u.url(), h.String()
}

// TestOldLayoutIsAdopted: an existing clone with .git inside keeps its
// unpushed commits when the git directory moves out of the work tree,
// whichever call meets it first (Recover discards before any Sync).
func TestOldLayoutIsAdopted(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		first func(r *gitrepo.Repos, dir, url string) error
	}{
		{"Sync", func(r *gitrepo.Repos, dir, url string) error {
			_, _, err := r.Sync(context.Background(), dir, url, "")
			return err
		}},
		{"Discard", func(r *gitrepo.Repos, dir, url string) error {
			_, err := r.Discard(context.Background(), dir)
			return err
		}},
		{"Commit", func(r *gitrepo.Repos, dir, url string) error {
			_, _, err := r.Commit(context.Background(), dir, "m", nil)
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "tool")
			url, unpushed := oldLayout(t, dir)
			r := gitrepo.New(gitrepo.Options{})
			if err := tt.first(r, dir, url); err != nil {
				t.Fatal(err)
			}
			if exists(t, dir, ".git") {
				t.Fatal(".git is still in the work tree")
			}
			if h := clonedHead(t, dir); h != unpushed {
				t.Fatalf("HEAD = %s, want the unpushed commit %s", h, unpushed)
			}
			if got := readFile(t, dir, "out/result.csv"); got != "unpushed result" {
				t.Errorf("out/result.csv = %q", got)
			}
			assertConsistent(t, dir)
			// It works as any clone now.
			if got, note := sync(t, r, dir, url, ""); got != unpushed || note != "" {
				t.Errorf("Sync = %q, %q; want the local head %s", got, note, unpushed)
			}
			writeFile(t, dir, "out/next.csv", "2")
			next, files := commit(t, r, dir, "after the upgrade")
			if c := headCommit(t, dir); next == unpushed || !slices.Equal(files, []string{"out/next.csv"}) ||
				len(c.ParentHashes) != 1 || c.ParentHashes[0].String() != unpushed {
				t.Errorf("Commit = %s, %q, parents %v", next, files, c.ParentHashes)
			}
			assertConsistent(t, dir)
		})
	}
}

// TestOldLayoutRedirectsAreRefused: a clone of the old layout whose .git a
// tool had replaced (by a gitdir: file) or riddled with links to another
// repository is refused by every call, naming the reason, and nothing is
// touched: not the clone, not the other repository.
func TestOldLayoutRedirectsAreRefused(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		attack func(t *testing.T, dir string, tg target)
		want   string
	}{
		{"gitdir: file", func(t *testing.T, dir string, tg target) {
			if err := os.Rename(filepath.Join(dir, ".git"), filepath.Join(filepath.Dir(dir), "saved.git")); err != nil {
				t.Fatal(err)
			}
			writeFile(t, dir, ".git", "gitdir: "+tg.bare+"\n")
		}, "a gitdir: redirect to \"" + "BARE" + "\""},
		{".git a symlink", func(t *testing.T, dir string, tg target) {
			if err := os.RemoveAll(filepath.Join(dir, ".git")); err != nil {
				t.Fatal(err)
			}
			symlink(t, tg.bare, filepath.Join(dir, ".git"))
		}, "is a symbolic link"},
		{"objects a symlink", func(t *testing.T, dir string, tg target) {
			if err := os.RemoveAll(filepath.Join(dir, ".git", "objects")); err != nil {
				t.Fatal(err)
			}
			symlink(t, filepath.Join(tg.bare, "objects"), filepath.Join(dir, ".git", "objects"))
		}, "objects is a symbolic link"},
		{"refs/heads a symlink", func(t *testing.T, dir string, tg target) {
			if err := os.RemoveAll(filepath.Join(dir, ".git", "refs", "heads")); err != nil {
				t.Fatal(err)
			}
			symlink(t, filepath.Join(tg.bare, "refs", "heads"), filepath.Join(dir, ".git", "refs", "heads"))
		}, "refs/heads is a symbolic link"},
		{"config a symlink", func(t *testing.T, dir string, tg target) {
			if err := os.Remove(filepath.Join(dir, ".git", "config")); err != nil {
				t.Fatal(err)
			}
			symlink(t, filepath.Join(tg.bare, "config"), filepath.Join(dir, ".git", "config"))
		}, "config is a symbolic link"},
		{"object alternates", func(t *testing.T, dir string, tg target) {
			writeFile(t, dir, ".git/objects/info/alternates", filepath.Join(tg.bare, "objects")+"\n")
		}, "objects/info/alternates"},
		{"commondir", func(t *testing.T, dir string, tg target) {
			writeFile(t, dir, ".git/commondir", tg.bare+"\n")
		}, "commondir"},
	}
	calls := []struct {
		name string
		call func(r *gitrepo.Repos, dir, url string) error
	}{
		{"Sync", func(r *gitrepo.Repos, dir, url string) error {
			_, _, err := r.Sync(context.Background(), dir, url, "")
			return err
		}},
		{"Commit", func(r *gitrepo.Repos, dir, url string) error {
			_, _, err := r.Commit(context.Background(), dir, "m", nil)
			return err
		}},
		{"Discard", func(r *gitrepo.Repos, dir, url string) error {
			_, err := r.Discard(context.Background(), dir)
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "tool")
			url, _ := oldLayout(t, dir)
			tg := newTarget(t)
			tt.attack(t, dir, tg)
			writeFile(t, dir, "control-002.csv", "output of a run")
			bare, clone := snapshot(t, tg.bare), snapshot(t, dir)
			r := gitrepo.New(gitrepo.Options{})
			for _, c := range calls {
				err := c.call(r, dir, url)
				want := strings.ReplaceAll(tt.want, "BARE", tg.bare)
				if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "refuse") {
					t.Errorf("%s: error %v, want a refusal naming %q", c.name, err, want)
				} else {
					t.Logf("%s: %v", c.name, err)
				}
			}
			assertUntouched(t, "the clone", clone, dir)
			assertUntouched(t, "the other repository", bare, tg.bare)
			if exists(t, gitrepo.GitDir(dir), "") {
				t.Error("a git directory was made for the refused clone")
			}
		})
	}
}

// TestOldLayoutConfigCannotRedirect: a .git/config that a tool rewrote
// before the upgrade (another remote, a work tree elsewhere) reaches
// neither: the clone of another URL is cloned anew from the registered
// one (the old one kept aside), and commits land only in the clone.
func TestOldLayoutConfigCannotRedirect(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "tool")
	url, unpushed := oldLayout(t, dir)
	tg := newTarget(t)
	cfg := filepath.Join(dir, ".git", "config")
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tampered := strings.Replace(string(b), url, "file://"+tg.bare, 1) + "[core]\n\tworktree = " + tg.outside + "\n"
	if err := os.WriteFile(cfg, []byte(tampered), 0o644); err != nil {
		t.Fatal(err)
	}
	bare, outside := snapshot(t, tg.bare), snapshot(t, tg.outside)
	r := gitrepo.New(gitrepo.Options{})
	got, note := sync(t, r, dir, url, "")
	t.Logf("note: %s", note)
	if !strings.Contains(note, "kept at") || !exists(t, dir, "a.txt") || exists(t, dir, "shared.txt") {
		t.Errorf("Sync = %s, %q: want the registered URL cloned anew", got, note)
	}
	if origin := originOf(t, dir); origin != url {
		t.Errorf("origin = %s, want %s", origin, url)
	}
	kept := strings.TrimSpace(note[strings.LastIndex(note, " ")+1:])
	if h := clonedHead(t, kept); h != unpushed {
		t.Errorf("the kept clone's HEAD = %s, want the unpushed %s", h, unpushed)
	}
	writeFile(t, dir, "out.csv", "1")
	commit(t, r, dir, "run")
	assertConsistent(t, dir)
	assertUntouched(t, "the other repository", bare, tg.bare)
	assertUntouched(t, "the outside directory", outside, tg.outside)
}

// TestSyncRefusesADotGitInTheWorkTree: a .git that is in the work tree
// beside the git directory (left by a run whose discard failed) is never
// opened; Sync refuses the clone until it is gone.
func TestSyncRefusesADotGitInTheWorkTree(t *testing.T) {
	t.Parallel()
	u := newUpstream(t)
	u.commit(map[string]string{"a.txt": "A"})
	dir := filepath.Join(t.TempDir(), "clone")
	r := gitrepo.New(gitrepo.Options{})
	sync(t, r, dir, u.url(), "")
	tg := newTarget(t)
	writeFile(t, dir, ".git", "gitdir: "+tg.bare+"\n")
	bare := snapshot(t, tg.bare)
	_, _, err := r.Sync(context.Background(), dir, u.url(), "")
	if err == nil || !strings.Contains(err.Error(), "holds a .git") {
		t.Fatalf("Sync error = %v, want a refusal", err)
	}
	assertUntouched(t, "the other repository", bare, tg.bare)
	if _, err := r.Discard(context.Background(), dir); err != nil {
		t.Fatal(err)
	}
	sync(t, r, dir, u.url(), "")
}

func sig() *object.Signature {
	return &object.Signature{Name: "test", Email: "test@localhost", When: time.Now()}
}

// TestDiscardFollowsHEADsIgnoreRules: a failed run cannot hide its output
// from Discard by rewriting .gitignore (it would reach the next commit
// once .gitignore is restored); what HEAD's .gitignore ignores stays.
func TestDiscardFollowsHEADsIgnoreRules(t *testing.T) {
	t.Parallel()
	r := gitrepo.New(gitrepo.Options{})
	dir, head := cloned(t, r)
	writeFile(t, dir, ".gitignore", "*\n")      // the run's: ignore everything
	writeFile(t, dir, "out/new.gitignore", "*") // and again below
	writeFile(t, dir, "out/.gitignore", "*\n")
	writeFile(t, dir, "hidden.csv", "partial output")
	writeFile(t, dir, "scratch.tmp", "ignored by HEAD's rules")
	files, err := r.Discard(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{".gitignore", "hidden.csv", "out/.gitignore", "out/new.gitignore"}; !slices.Equal(files, want) {
		t.Errorf("files = %q, want %q", files, want)
	}
	if exists(t, dir, "hidden.csv") || exists(t, dir, "out") || !exists(t, dir, "scratch.tmp") {
		t.Error("Discard kept the run's output or removed what HEAD ignores")
	}
	if got, files := commit(t, r, dir, "next run"); got != head || len(files) != 0 {
		t.Errorf("the next Commit = %s, %q; want nothing", got, files)
	}
}
