package gitrepo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/index"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
)

const (
	origin = git.DefaultRemoteName
	// emptyRemoteBranch is the branch a clone of an empty remote starts on
	// when the caller names none: the remote has no default branch yet.
	emptyRemoteBranch = "main"
)

// Options configures a Repos. Empty fields take the defaults noted.
type Options struct {
	AuthorName  string // author and committer name; default "mao"
	AuthorEmail string // author and committer email; default "mao@localhost"
	// Now is the clock for commit times and for naming the directory a
	// replaced clone is moved to; default time.Now.
	Now func() time.Time
}

// Repos syncs, commits and discards changes in local clones. It holds no
// state besides its options; see the package doc about locking.
type Repos struct {
	opts Options
}

// New returns a Repos with opts' defaults filled in.
func New(opts Options) *Repos {
	if opts.AuthorName == "" {
		opts.AuthorName = "mao"
	}
	if opts.AuthorEmail == "" {
		opts.AuthorEmail = "mao@localhost"
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Repos{opts: opts}
}

// Sync makes dir a clone of rawURL at branch ("" means the remote's default
// branch) and returns the hex hash of HEAD's commit, or "" while the
// repository has no commits.
//
// A missing or empty dir is cloned. An existing clone is fetched and its
// branch fast-forwarded (switching to branch first if another one is checked
// out). If the local branch has commits the remote lacks (mao commits but
// does not push), the local head is kept; if the two have diverged, the
// local head is kept too and note says so.
//
// If dir is a clone of another URL (the remote was changed), rawURL is
// cloned anew and, only once that succeeded, the old clone is moved aside to
// the sibling directory <dir>.replaced-<UTC time as 20060102T150405Z>
// (with "-2", "-3", ... appended if that exists), keeping any commits that
// were never pushed; note names both URLs and that directory.
//
// An unreachable remote, or a dir that is neither empty nor a clone with an
// origin remote, is an error, and leaves dir as it was.
func (r *Repos) Sync(ctx context.Context, dir, rawURL, branch string) (commit, note string, err error) {
	empty, err := isEmptyDir(dir)
	if err != nil {
		return "", "", err
	}
	if empty {
		commit, err := clone(ctx, dir, rawURL, branch)
		return commit, "", err
	}
	repo, err := git.PlainOpen(dir)
	if errors.Is(err, git.ErrRepositoryNotExists) {
		return "", "", fmt.Errorf("%s is neither empty nor a clone of %s: %w", dir, redact(rawURL), err)
	}
	if err != nil {
		return "", "", fmt.Errorf("open %s: %w", dir, err)
	}
	old, err := originURL(repo, dir, rawURL)
	if err != nil {
		return "", "", err
	}
	if !sameURL(old, rawURL) {
		return r.replace(ctx, dir, old, rawURL, branch)
	}
	return update(ctx, repo, rawURL, branch)
}

// replace clones rawURL next to dir, then moves the clone of oldURL in dir
// aside and the new clone into its place. Until the new clone is complete,
// dir is not touched.
func (r *Repos) replace(ctx context.Context, dir, oldURL, rawURL, branch string) (commit, note string, err error) {
	dir = filepath.Clean(dir)
	tmp, err := os.MkdirTemp(filepath.Dir(dir), filepath.Base(dir)+".new-")
	if err != nil {
		return "", "", fmt.Errorf("replace clone of %s: %w", redact(oldURL), err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, os.RemoveAll(tmp))
		}
	}()
	if commit, err = clone(ctx, tmp, rawURL, branch); err != nil {
		return "", "", err
	}
	kept, err := moveAside(dir, r.opts.Now())
	if err != nil {
		return "", "", err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return "", "", errors.Join(fmt.Errorf("move new clone of %s to %s: %w", redact(rawURL), dir, err), os.Rename(kept, dir))
	}
	return commit, fmt.Sprintf("repository URL changed from %s to %s; the old clone (with any unpushed commits) was kept at %s",
		redact(oldURL), redact(rawURL), kept), nil
}

// moveAside renames dir to <dir>.replaced-<now in UTC>, with a numeric
// suffix if that name is taken, and returns the new name.
func moveAside(dir string, now time.Time) (string, error) {
	base := dir + ".replaced-" + now.UTC().Format("20060102T150405Z")
	kept := base
	for n := 2; ; n++ {
		_, err := os.Lstat(kept)
		if errors.Is(err, fs.ErrNotExist) {
			break
		}
		if err != nil {
			return "", fmt.Errorf("move %s aside: %w", dir, err)
		}
		kept = fmt.Sprintf("%s-%d", base, n)
	}
	if err := os.Rename(dir, kept); err != nil {
		return "", fmt.Errorf("move %s aside: %w", dir, err)
	}
	return kept, nil
}

func isEmptyDir(dir string) (bool, error) {
	f, err := os.Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	_, err = f.Readdirnames(1)
	if errors.Is(err, io.EOF) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("read %s: %w", dir, err)
	}
	return false, nil
}

func clone(ctx context.Context, dir, rawURL, branch string) (string, error) {
	opts := &git.CloneOptions{URL: rawURL}
	if branch != "" {
		opts.ReferenceName = plumbing.NewBranchReferenceName(branch)
	}
	repo, err := git.PlainCloneContext(ctx, dir, false, opts)
	if errors.Is(err, transport.ErrEmptyRemoteRepository) {
		// go-git removed what it created; start an empty repository with
		// the remote as origin so that the first Commit has a branch.
		return "", initEmpty(dir, rawURL, branch)
	}
	if branch != "" && errors.Is(err, plumbing.ErrReferenceNotFound) {
		return "", fmt.Errorf("clone %s: no branch %s: %w", redact(rawURL), branch, err)
	}
	if err != nil {
		return "", fmt.Errorf("clone %s: %w", redact(rawURL), err)
	}
	return headHash(repo)
}

func initEmpty(dir, rawURL, branch string) error {
	if branch == "" {
		branch = emptyRemoteBranch
	}
	repo, err := git.PlainInitWithOptions(dir, &git.PlainInitOptions{
		InitOptions: git.InitOptions{DefaultBranch: plumbing.NewBranchReferenceName(branch)},
	})
	if err != nil {
		return fmt.Errorf("init %s: %w", dir, err)
	}
	if _, err := repo.CreateRemote(&config.RemoteConfig{Name: origin, URLs: []string{rawURL}}); err != nil {
		return fmt.Errorf("init %s: add remote: %w", dir, err)
	}
	return nil
}

// originURL returns the URL of repo's origin remote; rawURL is only for the
// error.
func originURL(repo *git.Repository, dir, rawURL string) (string, error) {
	remote, err := repo.Remote(origin)
	if errors.Is(err, git.ErrRemoteNotFound) {
		return "", fmt.Errorf("%s is a git repository without an %s remote, not a clone of %s", dir, origin, redact(rawURL))
	}
	if err != nil {
		return "", fmt.Errorf("open %s: %w", dir, err)
	}
	urls := remote.Config().URLs
	if len(urls) == 0 {
		return "", fmt.Errorf("%s: the %s remote has no URL, not that of %s", dir, origin, redact(rawURL))
	}
	return urls[0], nil
}

// sameURL treats URLs that differ only in a trailing slash or ".git" as the
// same repository, as hosting services do.
func sameURL(a, b string) bool {
	norm := func(s string) string { return strings.TrimSuffix(strings.TrimRight(s, "/"), ".git") }
	return norm(a) == norm(b)
}

// redact hides a password in a URL so that errors can be shown to users.
func redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || u.User == nil {
		return rawURL
	}
	return u.Redacted()
}

// update fetches origin and moves the branch to the remote's head when that
// is a fast-forward.
func update(ctx context.Context, repo *git.Repository, rawURL, branch string) (commit, note string, err error) {
	err = repo.FetchContext(ctx, &git.FetchOptions{RemoteName: origin})
	remoteEmpty := errors.Is(err, transport.ErrEmptyRemoteRepository)
	if err != nil && !remoteEmpty && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		return "", "", fmt.Errorf("fetch %s: %w", redact(rawURL), err)
	}
	head, err := repo.Reference(plumbing.HEAD, false)
	if err != nil {
		return "", "", fmt.Errorf("read HEAD: %w", err)
	}
	if head.Type() != plumbing.SymbolicReference {
		return "", "", fmt.Errorf("HEAD is detached at %s, not on a branch", head.Hash())
	}
	local, err := hashOf(repo, head.Target())
	if err != nil {
		return "", "", err
	}

	want := head.Target()
	if branch != "" {
		want = plumbing.NewBranchReferenceName(branch)
	} else if local.IsZero() && !remoteEmpty {
		// Nothing committed yet, so follow the remote's default branch,
		// which an empty remote did not have when it was cloned.
		if want, err = remoteDefaultBranch(ctx, repo, want); err != nil {
			return "", "", fmt.Errorf("list %s: %w", redact(rawURL), err)
		}
	}
	remote, err := hashOf(repo, plumbing.NewRemoteReferenceName(origin, want.Short()))
	if err != nil {
		return "", "", err
	}
	w, err := repo.Worktree()
	if err != nil {
		return "", "", err
	}
	if want != head.Target() {
		if local, err = switchBranch(repo, w, want, remote); err != nil {
			return "", "", fmt.Errorf("switch to branch %s: %w", want.Short(), err)
		}
	}

	if remote.IsZero() || remote == local {
		return hexOrEmpty(local), "", nil
	}
	if !local.IsZero() {
		ff, ahead, err := compare(repo, local, remote)
		if err != nil {
			return "", "", err
		}
		if ahead {
			return local.String(), "", nil
		}
		if !ff {
			return local.String(), fmt.Sprintf("pull: remote has diverged (%s/%s is at %s); ran on local head %s",
				origin, want.Short(), short(remote), short(local)), nil
		}
	}
	// MergeReset moves the branch and updates the files that changed, and
	// refuses if the worktree has uncommitted changes to tracked files.
	if err := w.Reset(&git.ResetOptions{Commit: remote, Mode: git.MergeReset}); err != nil {
		return "", "", fmt.Errorf("fast-forward %s to %s: %w", want.Short(), short(remote), err)
	}
	return remote.String(), "", nil
}

// compare reports whether local is an ancestor of remote (a fast-forward)
// and, if not, whether remote is an ancestor of local (local is ahead).
func compare(repo *git.Repository, local, remote plumbing.Hash) (ff, ahead bool, err error) {
	localCommit, err := repo.CommitObject(local)
	if err != nil {
		return false, false, fmt.Errorf("read local head: %w", err)
	}
	remoteCommit, err := repo.CommitObject(remote)
	if err != nil {
		return false, false, fmt.Errorf("read remote head: %w", err)
	}
	if ff, err = localCommit.IsAncestor(remoteCommit); err != nil || ff {
		return ff, false, err
	}
	ahead, err = remoteCommit.IsAncestor(localCommit)
	return false, ahead, err
}

// remoteDefaultBranch asks origin which branch its HEAD names, and returns
// fallback if it does not say.
func remoteDefaultBranch(ctx context.Context, repo *git.Repository, fallback plumbing.ReferenceName) (plumbing.ReferenceName, error) {
	remote, err := repo.Remote(origin)
	if err != nil {
		return "", err
	}
	refs, err := remote.ListContext(ctx, &git.ListOptions{})
	if err != nil {
		return "", err
	}
	for _, ref := range refs {
		if ref.Name() == plumbing.HEAD && ref.Type() == plumbing.SymbolicReference {
			return ref.Target(), nil
		}
	}
	return fallback, nil
}

// switchBranch checks out branch, creating it at remote if it does not exist
// locally, and returns the branch's commit (zero if it has none yet).
func switchBranch(repo *git.Repository, w *git.Worktree, branch plumbing.ReferenceName, remote plumbing.Hash) (plumbing.Hash, error) {
	local, err := hashOf(repo, branch)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	if local.IsZero() && remote.IsZero() {
		current, err := repo.Head()
		if err == nil {
			return plumbing.ZeroHash, fmt.Errorf("the remote has no such branch and HEAD is at %s", short(current.Hash()))
		}
		// Nothing committed anywhere: point HEAD at the unborn branch.
		return plumbing.ZeroHash, repo.Storer.SetReference(plumbing.NewSymbolicReference(plumbing.HEAD, branch))
	}
	opts := &git.CheckoutOptions{Branch: branch}
	if local.IsZero() {
		local, opts.Hash, opts.Create = remote, remote, true
	}
	return local, w.Checkout(opts)
}

// hashOf resolves name to a commit hash, or the zero hash if it does not
// exist (or is an unborn branch).
func hashOf(repo *git.Repository, name plumbing.ReferenceName) (plumbing.Hash, error) {
	ref, err := repo.Reference(name, true)
	if errors.Is(err, plumbing.ErrReferenceNotFound) {
		return plumbing.ZeroHash, nil
	}
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("resolve %s: %w", name, err)
	}
	return ref.Hash(), nil
}

func headHash(repo *git.Repository) (string, error) {
	h, err := hashOf(repo, plumbing.HEAD)
	return hexOrEmpty(h), err
}

func hexOrEmpty(h plumbing.Hash) string {
	if h.IsZero() {
		return ""
	}
	return h.String()
}

func short(h plumbing.Hash) string { return h.String()[:12] }

// Commit stages every change in dir's worktree (new, modified and deleted
// files, except those .gitignore or .git/info/exclude ignore) and commits
// them with message. It returns the new HEAD and the changed paths, sorted,
// slash-separated and relative to the repository root. With nothing to
// commit it returns the current HEAD ("" if none) and no files.
func (r *Repos) Commit(ctx context.Context, dir, message string) (commit string, files []string, err error) {
	if err := ctx.Err(); err != nil {
		return "", nil, err
	}
	repo, w, files, err := changes(dir)
	if err != nil {
		return "", nil, err
	}
	if len(files) == 0 {
		commit, err := headHash(repo)
		return commit, nil, err
	}

	// Stage with the status already computed: go-git's Add of a whole
	// directory would compute it again.
	var gone []string
	for _, f := range files {
		if fi, err := os.Lstat(filepath.Join(dir, filepath.FromSlash(f))); err != nil || fi.IsDir() {
			gone = append(gone, f)
			continue
		}
		if err := w.AddWithOptions(&git.AddOptions{Path: f, SkipStatus: true}); err != nil {
			return "", nil, fmt.Errorf("commit %s: add %s: %w", dir, f, err)
		}
	}
	if err := removeFromIndex(repo, gone); err != nil {
		return "", nil, fmt.Errorf("commit %s: %w", dir, err)
	}

	sig := &object.Signature{Name: r.opts.AuthorName, Email: r.opts.AuthorEmail, When: r.opts.Now()}
	h, err := w.Commit(message, &git.CommitOptions{Author: sig, Committer: sig})
	if errors.Is(err, git.ErrEmptyCommit) {
		// The staged result equals HEAD (say, a staged change undone in
		// the worktree).
		commit, err := headHash(repo)
		return commit, nil, err
	}
	if err != nil {
		return "", nil, fmt.Errorf("commit %s: %w", dir, err)
	}
	return h.String(), files, nil
}

func removeFromIndex(repo *git.Repository, paths []string) error {
	if len(paths) == 0 {
		return nil
	}
	idx, err := repo.Storer.Index()
	if err != nil {
		return fmt.Errorf("read index: %w", err)
	}
	for _, p := range paths {
		if _, err := idx.Remove(p); err != nil && !errors.Is(err, index.ErrEntryNotFound) {
			return fmt.Errorf("unstage %s: %w", p, err)
		}
	}
	return repo.Storer.SetIndex(idx)
}

// Discard returns the changed paths as Commit would, then restores dir to
// HEAD: tracked files are reset and untracked files and directories are
// removed, so that a failed run's partial output cannot reach a later
// commit. Ignored files are left alone.
func (r *Repos) Discard(ctx context.Context, dir string) (files []string, err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	repo, w, files, err := changes(dir)
	if err != nil || len(files) == 0 {
		return nil, err
	}
	head, err := hashOf(repo, plumbing.HEAD)
	if err != nil {
		return nil, err
	}
	if head.IsZero() {
		err = discardUnborn(repo, dir, files)
	} else {
		// Limited to the changed files, a hard reset restores tracked
		// files and deletes untracked ones; unlimited, go-git's would
		// delete ignored files too.
		err = w.Reset(&git.ResetOptions{Commit: head, Mode: git.HardReset, Files: files})
	}
	if err != nil {
		return nil, fmt.Errorf("discard %s: %w", dir, err)
	}
	if _, err := pruneEmptyDirs(dir, git.GitDirName); err != nil {
		return nil, fmt.Errorf("discard %s: %w", dir, err)
	}
	return files, nil
}

// discardUnborn empties the index and deletes files in a repository with no
// commits, where every changed file is new.
func discardUnborn(repo *git.Repository, dir string, files []string) error {
	if err := repo.Storer.SetIndex(&index.Index{Version: 2}); err != nil {
		return fmt.Errorf("reset index: %w", err)
	}
	for _, f := range files {
		if err := os.Remove(filepath.Join(dir, filepath.FromSlash(f))); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// changes opens dir and returns its worktree's changed paths, sorted. It
// makes the one Status call of Commit and Discard.
func changes(dir string) (*git.Repository, *git.Worktree, []string, error) {
	repo, err := git.PlainOpen(dir)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("open %s: %w", dir, err)
	}
	w, err := repo.Worktree()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("open %s: %w", dir, err)
	}
	status, err := w.Status()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("status %s: %w", dir, err)
	}
	var files []string
	for path, s := range status {
		if s.Staging != git.Unmodified || s.Worktree != git.Unmodified {
			files = append(files, filepath.ToSlash(path))
		}
	}
	sort.Strings(files)
	return repo, w, files, nil
}

// pruneEmptyDirs removes the empty directories below dir, deepest first, as
// `git clean -d` does (git cannot track them), leaving alone a top-level
// entry named skip. It reports whether dir itself ended up empty.
func pruneEmptyDirs(dir, skip string) (bool, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false, err
	}
	empty := true
	for _, e := range entries {
		if !e.IsDir() || e.Name() == skip {
			empty = false
			continue
		}
		sub := filepath.Join(dir, e.Name())
		subEmpty, err := pruneEmptyDirs(sub, "")
		if err != nil {
			return false, err
		}
		if !subEmpty {
			empty = false
			continue
		}
		if err := os.Remove(sub); err != nil {
			return false, err
		}
	}
	return empty, nil
}
