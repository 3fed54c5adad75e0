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
	"strings"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"

	"github.com/mao-research/mao/internal/dirlock"
)

const (
	origin = git.DefaultRemoteName
	// emptyRemoteBranch is the branch a clone of an empty remote starts on
	// when the caller names none: the remote has no default branch yet.
	emptyRemoteBranch = "main"
)

// Default output limits (see Options).
const (
	DefaultMaxOutputBytes = 10 << 30
	DefaultMaxOutputFiles = 100000
)

// Options configures a Repos. Empty fields take the defaults noted.
type Options struct {
	AuthorName  string // author and committer name; default "mao"
	AuthorEmail string // author and committer email; default "mao@localhost"
	// Now is the clock for commit times and for naming the directory a
	// replaced clone is moved to; default time.Now.
	Now func() time.Time
	// MaxOutputBytes and MaxOutputFiles bound what one Commit reads: the
	// bytes of new or changed files and links, and the number of new or
	// changed files, links and directories. Beyond either, Commit refuses
	// the output. Defaults DefaultMaxOutputBytes and DefaultMaxOutputFiles.
	MaxOutputBytes int64
	MaxOutputFiles int
	// Auth authenticates to the remotes (LoadAuth); nil: anonymously, and
	// over ssh with the agent's keys and the default known_hosts.
	Auth *Auth
}

// Repos syncs, commits, discards and pushes changes in local clones. It
// holds no state besides its options and the locks of the clones' git
// directories; see the package doc about locking.
type Repos struct {
	opts  Options
	locks dirlock.Locks // of the clones' git directories (lock)
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
	if opts.MaxOutputBytes <= 0 {
		opts.MaxOutputBytes = DefaultMaxOutputBytes
	}
	if opts.MaxOutputFiles <= 0 {
		opts.MaxOutputFiles = DefaultMaxOutputFiles
	}
	return &Repos{opts: opts}
}

// Sync makes dir a clone of rawURL at branch ("" means the remote's default
// branch) and returns the hex hash of HEAD's commit, or "" while the
// repository has no commits. The clone's work tree is dir and its git
// directory GitDir(dir), outside it.
//
// A missing or empty dir is cloned. An existing clone is fetched and its
// branch fast-forwarded (switching to branch first if another one is checked
// out). If the local branch has commits the remote lacks (mao commits but
// does not push), the local head is kept; if the two have diverged, the
// local head is kept too and note says so.
//
// A clone of the old layout, with its git directory dir/.git inside the
// work tree, is moved to the new one first, keeping every commit; one
// whose .git is a file (a "gitdir:" redirect), a symbolic link, or holds
// one, is refused and left as it is. In the new layout, a dir/.git is
// refused too: no run's output may leave one.
//
// When the last Commit or Discard of dir did not finish (cancelled, or the
// process died), Sync first discards what the work tree holds beyond HEAD,
// as Discard, and note says so.
//
// If dir is a clone of another URL (the remote was changed), rawURL is
// cloned anew and, only once that succeeded, the old clone is moved aside to
// the sibling directory <dir>.replaced-<UTC time as 20060102T150405Z>
// (with "-2", "-3", ... appended if that exists), as an ordinary clone with
// its .git inside, keeping any commits that were never pushed; note names
// both URLs and that directory.
//
// An unreachable remote, or a dir that is neither empty nor a clone with an
// origin remote, is an error, and leaves dir as it was.
func (r *Repos) Sync(ctx context.Context, dir, rawURL, branch string) (commit, note string, err error) {
	if dir, err = filepath.Abs(dir); err != nil {
		return "", "", err
	}
	unlock, err := r.lock(ctx, dir)
	if err != nil {
		return "", "", err
	}
	defer unlock()
	c, err := openClone(dir)
	var none *noClone
	if errors.As(err, &none) {
		empty, err := isEmptyDir(dir)
		if err != nil {
			return "", "", err
		}
		if !empty {
			return "", "", fmt.Errorf("%s is neither empty nor a clone of %s: %w", dir, redact(rawURL), git.ErrRepositoryNotExists)
		}
		commit, err := r.cloneNew(ctx, dir, rawURL, branch)
		return commit, "", err
	}
	if err != nil {
		return "", "", err
	}
	var notes []string
	if pending, err := c.pending(); err != nil {
		return "", "", err
	} else if pending {
		files, err := r.discard(ctx, c)
		if err == nil {
			err = c.clearPending()
		}
		if err != nil {
			return "", "", fmt.Errorf("discard the output an interrupted run left in %s: %w", dir, err)
		}
		notes = append(notes, fmt.Sprintf("discarded the output an interrupted run left in the clone (%d files)", len(files)))
	}
	if fi, err := os.Lstat(filepath.Join(dir, git.GitDirName)); err == nil {
		return "", "", fmt.Errorf("%s holds a .git (%s) beside its git directory %s: mao never opens it, and refuses the clone until it is removed",
			dir, kind(fi.Mode()), c.gitDir)
	}
	old, err := originURL(c.repo, dir, rawURL)
	if err != nil {
		return "", "", err
	}
	if !sameURL(old, rawURL) {
		commit, note, err = r.replace(ctx, c, old, rawURL, branch)
	} else {
		commit, note, err = r.update(ctx, c.repo, rawURL, branch)
	}
	if note != "" {
		notes = append(notes, note)
	}
	return commit, strings.Join(notes, "; "), err
}

// cloneNew clones rawURL into dir, which is missing or empty: into a
// temporary sibling first, which then takes dir's place, so that dir never
// holds half a clone.
func (r *Repos) cloneNew(ctx context.Context, dir, rawURL, branch string) (commit string, err error) {
	tmp, err := tempSibling(dir)
	if err != nil {
		return "", fmt.Errorf("clone %s: %w", redact(rawURL), err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, os.RemoveAll(tmp))
		}
	}()
	if commit, err = r.cloneInto(ctx, tmp, rawURL, branch); err != nil {
		return "", err
	}
	// dir is missing or empty (os.Rename does not replace a directory).
	if err := os.Remove(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("clone %s: %w", redact(rawURL), err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return "", fmt.Errorf("clone %s: move the clone to %s: %w", redact(rawURL), dir, err)
	}
	if err := adopt(dir, GitDir(dir)); err != nil {
		return "", fmt.Errorf("clone %s: %w", redact(rawURL), err)
	}
	return commit, nil
}

func tempSibling(dir string) (string, error) {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", err
	}
	return os.MkdirTemp(filepath.Dir(dir), filepath.Base(dir)+".new-")
}

// replace clones rawURL next to dir, then moves the clone of oldURL in dir
// aside and the new clone into its place. Until the new clone is complete,
// dir is not touched. Every step leaves dir and the kept clone each either
// missing or a whole clone (in one layout or the other), so a crash between
// two loses nothing: the next Sync adopts or clones anew.
func (r *Repos) replace(ctx context.Context, c *clone, oldURL, rawURL, branch string) (commit, note string, err error) {
	dir := c.dir
	tmp, err := tempSibling(dir)
	if err != nil {
		return "", "", fmt.Errorf("replace clone of %s: %w", redact(oldURL), err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, os.RemoveAll(tmp))
		}
	}()
	if commit, err = r.cloneInto(ctx, tmp, rawURL, branch); err != nil {
		return "", "", err
	}
	// The old clone takes its git directory back in, and so moves aside
	// as an ordinary clone.
	inside := filepath.Join(dir, git.GitDirName)
	if err := os.Rename(c.gitDir, inside); err != nil {
		return "", "", fmt.Errorf("move the clone of %s aside: %w", redact(oldURL), err)
	}
	kept, err := moveAside(dir, r.opts.Now())
	if err != nil {
		return "", "", errors.Join(err, os.Rename(inside, c.gitDir))
	}
	if err := os.Rename(tmp, dir); err != nil {
		err = fmt.Errorf("move new clone of %s to %s: %w", redact(rawURL), dir, err)
		if rerr := os.Rename(kept, dir); rerr != nil {
			return "", "", errors.Join(err, rerr)
		}
		return "", "", errors.Join(err, os.Rename(inside, c.gitDir))
	}
	if err := adopt(dir, c.gitDir); err != nil {
		return "", "", fmt.Errorf("clone %s: %w", redact(rawURL), err)
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

// cloneInto clones rawURL into the empty directory dir as an ordinary
// clone (its git directory inside), removing what it created on failure.
func (r *Repos) cloneInto(ctx context.Context, dir, rawURL, branch string) (string, error) {
	auth, err := r.opts.Auth.method(rawURL)
	if err != nil {
		return "", fmt.Errorf("clone %s: %w", redact(rawURL), err)
	}
	opts := &git.CloneOptions{URL: rawURL, Auth: auth, CABundle: r.opts.Auth.caBundle()}
	if branch != "" {
		opts.ReferenceName = plumbing.NewBranchReferenceName(branch)
	}
	repo, err := git.PlainCloneContext(remoteCtx(ctx, rawURL), dir, false, opts)
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
	head, err := repo.Head()
	if err != nil {
		return "", fmt.Errorf("clone %s: read HEAD: %w", redact(rawURL), err)
	}
	// Everything the clone holds is on the remote: Push sends what comes
	// after.
	return head.Hash().String(), markPushed(repo, head.Name(), head.Hash())
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
// is a fast-forward, or when every commit of the local branch has been
// pushed (Push): then the remote's head holds them, maybe rebased onto
// other sites' commits. A remote that does not answer leaves the clone as
// it is, with a note: a run works on the local head, and its commit is
// pushed once the remote is back.
func (r *Repos) update(ctx context.Context, repo *git.Repository, rawURL, branch string) (commit, note string, err error) {
	auth, err := r.opts.Auth.method(rawURL)
	if err != nil {
		return "", "", fmt.Errorf("fetch %s: %w", redact(rawURL), err)
	}
	err = repo.FetchContext(remoteCtx(ctx, rawURL), &git.FetchOptions{RemoteName: origin, Auth: auth, CABundle: r.opts.Auth.caBundle()})
	remoteEmpty := errors.Is(err, transport.ErrEmptyRemoteRepository)
	offline := ""
	if err != nil && !remoteEmpty && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		if ctx.Err() != nil {
			return "", "", fmt.Errorf("fetch %s: %w", redact(rawURL), ctx.Err())
		}
		offline = fmt.Sprintf("could not fetch %s (%v): working on the clone as it is", redact(rawURL), err)
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
	if offline != "" {
		if branch != "" && plumbing.NewBranchReferenceName(branch) != head.Target() {
			return "", "", fmt.Errorf("switch to branch %s: %s", branch, offline)
		}
		if !local.IsZero() {
			offline += " at " + short(local)
		}
		return hexOrEmpty(local), offline, nil
	}

	want := head.Target()
	if branch != "" {
		want = plumbing.NewBranchReferenceName(branch)
	} else if local.IsZero() && !remoteEmpty {
		// Nothing committed yet, so follow the remote's default branch,
		// which an empty remote did not have when it was cloned.
		if want, err = remoteDefaultBranch(ctx, repo, want, auth, r.opts.Auth.caBundle()); err != nil {
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

	if remote.IsZero() {
		return hexOrEmpty(local), "", nil
	}
	if remote == local {
		return local.String(), "", markPushed(repo, want, local)
	}
	if !local.IsZero() {
		ff, ahead, err := compare(repo, local, remote)
		if err != nil {
			return "", "", err
		}
		if ahead {
			return local.String(), "", nil
		}
		pushed, err := hashOf(repo, pushedRef(want))
		if err != nil {
			return "", "", err
		}
		if !ff && pushed != local {
			return local.String(), fmt.Sprintf("pull: remote has diverged (%s/%s is at %s); ran on local head %s",
				origin, want.Short(), short(remote), short(local)), nil
		}
		// A fast-forward, or every local commit is on the remote now.
	}
	// MergeReset moves the branch and updates the files that changed, and
	// refuses if the worktree has uncommitted changes to tracked files.
	if err := w.Reset(&git.ResetOptions{Commit: remote, Mode: git.MergeReset}); err != nil {
		return "", "", fmt.Errorf("fast-forward %s to %s: %w", want.Short(), short(remote), err)
	}
	return remote.String(), "", markPushed(repo, want, remote)
}

// markPushed sets the pushed mark of branch (see pushedRef) to h, a commit
// the remote holds, unless it is there already.
func markPushed(repo *git.Repository, branch plumbing.ReferenceName, h plumbing.Hash) error {
	if cur, err := hashOf(repo, pushedRef(branch)); err != nil || cur == h {
		return err
	}
	if err := repo.Storer.SetReference(plumbing.NewHashReference(pushedRef(branch), h)); err != nil {
		return fmt.Errorf("mark %s as pushed: %w", short(h), err)
	}
	return nil
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

// remoteCtx is the context of a call of go-git's transport to rawURL. For
// a file:// remote (or a local path) it is never cancelled: when its
// context ends while a pack flows, go-git kills the local git-upload-pack
// or git-receive-pack and then waits for the end of its standard error,
// which the killed process's child (pack-objects, index-pack) holds open
// while it waits for go-git to read or write: both wait for ever (go-git
// v5.19.3; the outbox's push then never returned on shutdown). A local
// transfer ends by itself; callers check their context between calls. A
// context that has ended already is kept: the call fails before it starts
// a process.
func remoteCtx(ctx context.Context, rawURL string) context.Context {
	if ep, err := transport.NewEndpoint(rawURL); err == nil && ep.Protocol == "file" && ctx.Err() == nil {
		return context.WithoutCancel(ctx)
	}
	return ctx
}

// remoteDefaultBranch asks origin which branch its HEAD names, and returns
// fallback if it does not say.
func remoteDefaultBranch(ctx context.Context, repo *git.Repository, fallback plumbing.ReferenceName,
	auth transport.AuthMethod, ca []byte) (plumbing.ReferenceName, error) {
	remote, err := repo.Remote(origin)
	if err != nil {
		return "", err
	}
	var url string
	if urls := remote.Config().URLs; len(urls) > 0 {
		url = urls[0]
	}
	refs, err := remote.ListContext(remoteCtx(ctx, url), &git.ListOptions{Auth: auth, CABundle: ca})
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

func hexOrEmpty(h plumbing.Hash) string {
	if h.IsZero() {
		return ""
	}
	return h.String()
}

func short(h plumbing.Hash) string { return h.String()[:12] }
