package gitrepo

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// GitDir returns where the git directory of the clone whose work tree is
// dir is kept: the hidden sibling .<base of dir>.git. The work tree is
// what a tool's container gets mounted; the git directory (objects, refs,
// index, config) is never inside it, so a tool cannot reach it.
//
// Tool and dataset names never start with '.', so the git directory of
// one clone is never the work tree of another.
func GitDir(dir string) string {
	dir = filepath.Clean(dir)
	return filepath.Join(filepath.Dir(dir), "."+filepath.Base(dir)+".git")
}

// pendingFile, in a clone's git directory, says that the output in its
// work tree was neither committed nor discarded yet: Commit and Discard
// create it when they start and remove it when they succeed, and Sync
// discards the work tree's changes first when it finds it (a commit or
// discard that was cancelled, or a crash).
const pendingFile = "mao-output-pending"

// clone is an opened clone: its work tree, its git directory and the
// go-git repository over both, each bound to its directory.
type clone struct {
	dir, gitDir string
	repo        *git.Repository
}

// openClone opens the clone in dir, never following a .git file, a gitdir:
// redirect or a symlink. A clone in the old layout (a .git directory inside
// the work tree) is moved to the new one first (see adopt). It returns an
// error wrapping noClone when dir holds no clone.
func openClone(dir string) (*clone, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	gitDir := GitDir(dir)
	fi, err := os.Lstat(gitDir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := adopt(dir, gitDir); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, err
	case !fi.IsDir():
		return nil, fmt.Errorf("the git directory %s of %s is not a directory (%s): refused, nothing was changed", gitDir, dir, kind(fi.Mode()))
	}
	wt, err := os.Lstat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("the work tree %s of the git directory %s is missing: restore it, or move the git directory away (it may hold commits that were never pushed)", dir, gitDir)
	case err != nil:
		return nil, err
	case !wt.IsDir():
		return nil, fmt.Errorf("the work tree %s is not a directory (%s): refused, nothing was changed", dir, kind(wt.Mode()))
	}
	storage := filesystem.NewStorage(osfs.New(gitDir, osfs.WithBoundOS()), cache.NewObjectLRUDefault())
	repo, err := git.Open(storage, osfs.New(dir, osfs.WithBoundOS()))
	if err != nil {
		return nil, fmt.Errorf("open %s (git directory %s): %w", dir, gitDir, err)
	}
	return &clone{dir: dir, gitDir: gitDir, repo: repo}, nil
}

// adopt moves the git directory of a clone in the old layout, dir/.git,
// to gitDir, keeping every commit. It refuses, touching nothing, a .git
// that is a file (such as a "gitdir:" redirect to another repository), a
// symlink, or a directory that holds a symlink, a special file, object
// alternates or a commondir: each would make git read or write outside the
// clone. With no dir/.git it returns an error wrapping noClone.
func adopt(dir, gitDir string) error {
	old := filepath.Join(dir, git.GitDirName)
	fi, err := os.Lstat(old)
	switch {
	case errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR):
		return &noClone{dir}
	case err != nil:
		return err
	case fi.Mode().IsRegular():
		return fmt.Errorf("%s is a file%s, not a directory: mao opens a clone only as itself and refuses it; nothing was changed (move %s away to clone anew)",
			old, redirectOf(old), dir)
	case !fi.IsDir():
		return fmt.Errorf("%s is a %s, not a directory: mao opens a clone only as itself and refuses it; nothing was changed (move %s away to clone anew)",
			old, kind(fi.Mode()), dir)
	}
	if err := checkGitDir(old); err != nil {
		return fmt.Errorf("%s: %w: refused, nothing was changed (move %s away to clone anew)", old, err, dir)
	}
	if err := os.Rename(old, gitDir); err != nil {
		return fmt.Errorf("move the git directory of %s out of its work tree: %w", dir, err)
	}
	return nil
}

// checkGitDir walks a git directory and reports the first thing that would
// make git look outside it.
func checkGitDir(dir string) error {
	for _, redirect := range []string{"commondir", "objects/info/alternates", "objects/info/http-alternates"} {
		if _, err := os.Lstat(filepath.Join(dir, filepath.FromSlash(redirect))); err == nil {
			return fmt.Errorf("it has %s, which points git at another repository's files", redirect)
		}
	}
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		t := d.Type()
		if t.IsDir() || t.IsRegular() {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		if t&fs.ModeSymlink != 0 {
			target, _ := os.Readlink(p)
			return fmt.Errorf("%s is a symbolic link (to %q)", rel, target)
		}
		return fmt.Errorf("%s is a %s", rel, kind(t))
	})
}

// redirectOf describes where a .git file points, for messages.
func redirectOf(p string) string {
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return ""
	}
	defer f.Close()
	b, _ := io.ReadAll(io.LimitReader(f, 256))
	line, _, _ := strings.Cut(string(b), "\n")
	if target, ok := strings.CutPrefix(line, "gitdir:"); ok {
		return fmt.Sprintf(" (a gitdir: redirect to %q)", strings.TrimSpace(target))
	}
	return ""
}

// kind names a file's type for messages.
func kind(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "symbolic link"
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeDevice != 0:
		return "device"
	case m.IsDir():
		return "directory"
	case m.IsRegular():
		return "regular file"
	}
	return "special file"
}

// setPending and clearPending create and remove the clone's pendingFile.
func (c *clone) setPending() error {
	return os.WriteFile(filepath.Join(c.gitDir, pendingFile), nil, 0o644)
}

func (c *clone) clearPending() error {
	err := os.Remove(filepath.Join(c.gitDir, pendingFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

func (c *clone) pending() (bool, error) {
	_, err := os.Lstat(filepath.Join(c.gitDir, pendingFile))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// noClone means a directory holds no clone in either layout.
type noClone struct{ dir string }

func (e *noClone) Error() string { return e.dir + ": " + git.ErrRepositoryNotExists.Error() }
func (e *noClone) Unwrap() error { return git.ErrRepositoryNotExists }
