package gitrepo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/mao-research/mao/orchestrator/container"
)

// ErrNoCommit is the error of Scratch when no source holds the commit, and
// of Compare when the clone lacks one of the two.
var ErrNoCommit = errors.New("commit not found")

// Scratch makes dir, which must be missing or empty, a clone (in the
// layout of Sync: its git directory GitDir(dir) outside it) of the
// repository at rawURL with commit checked out. A replay prepares its data
// folder and its input this way. An error wraps ErrNoCommit when the
// repository lacks commit; dir is then left as it was.
func (r *Repos) Scratch(ctx context.Context, dir, rawURL, commit string) error {
	return r.scratch(ctx, dir, rawURL, commit, false)
}

// ScratchParent is Scratch with the first parent of commit checked out
// (commit is in the clone): a replay of a run whose commit was rebased
// when it was pushed starts from the parent of its pushed copy.
func (r *Repos) ScratchParent(ctx context.Context, dir, rawURL, commit string) error {
	return r.scratch(ctx, dir, rawURL, commit, true)
}

// ScratchLocal is Scratch from the site's own clone whose work tree is
// local (it holds commits not pushed yet), read through its git directory
// only: a clone in another layout, or none, is an error, and the clone is
// never changed. The caller holds the clone's lock.
func (r *Repos) ScratchLocal(ctx context.Context, dir, local, commit string) error {
	gitDir := GitDir(local)
	if fi, err := os.Lstat(gitDir); err != nil || !fi.IsDir() {
		return fmt.Errorf("no clone at %s (no git directory %s): %w", local, gitDir, ErrNoCommit)
	}
	return r.scratch(ctx, dir, gitDir, commit, false)
}

func (r *Repos) scratch(ctx context.Context, dir, src, commit string, parent bool) (err error) {
	want := plumbing.NewHash(commit)
	if want.IsZero() || want.String() != commit {
		return fmt.Errorf("scratch %s: %q is not a commit hash: %w", dir, commit, ErrNoCommit)
	}
	defer func() {
		if err != nil {
			err = errors.Join(fmt.Errorf("scratch %s from %s: %w", dir, redact(src), err), os.RemoveAll(dir), os.RemoveAll(GitDir(dir)))
		}
	}()
	if _, err := r.cloneNew(ctx, dir, src, ""); err != nil {
		return err
	}
	c, err := openClone(dir)
	if err != nil {
		return err
	}
	co, err := c.repo.CommitObject(want)
	if errors.Is(err, plumbing.ErrObjectNotFound) {
		return fmt.Errorf("%s: %w", short(want), ErrNoCommit)
	} else if err != nil {
		return err
	}
	if parent {
		if co.NumParents() == 0 {
			return fmt.Errorf("%s has no parent: %w", short(want), ErrNoCommit)
		}
		want = co.ParentHashes[0]
	}
	wt, err := c.repo.Worktree()
	if err != nil {
		return err
	}
	if err := wt.Reset(&git.ResetOptions{Commit: want, Mode: git.HardReset}); err != nil {
		return fmt.Errorf("check out %s: %w", short(want), err)
	}
	return nil
}

// Compare returns the paths at which commits a and b of the clone in dir
// differ, sorted, each with its size and SHA-256 in a and in b (nil where
// the path holds no file there). A symbolic link counts as a file holding
// its target. A commit the clone lacks is an error wrapping ErrNoCommit.
func (r *Repos) Compare(ctx context.Context, dir, a, b string) ([]container.Difference, error) {
	c, err := openClone(dir)
	if err != nil {
		return nil, err
	}
	trees := make([]*object.Tree, 2)
	for i, h := range []string{a, b} {
		commit, err := c.repo.CommitObject(plumbing.NewHash(h))
		if errors.Is(err, plumbing.ErrObjectNotFound) {
			return nil, fmt.Errorf("compare in %s: %s: %w", dir, h, ErrNoCommit)
		}
		if err != nil {
			return nil, fmt.Errorf("compare in %s: %s: %w", dir, h, err)
		}
		if trees[i], err = commit.Tree(); err != nil {
			return nil, fmt.Errorf("compare in %s: %s: %w", dir, h, err)
		}
	}
	changes, err := object.DiffTreeWithOptions(ctx, trees[0], trees[1], &object.DiffTreeOptions{})
	if err != nil {
		return nil, fmt.Errorf("compare %s and %s in %s: %w", a, b, dir, err)
	}
	var out []container.Difference
	for _, ch := range changes {
		d := container.Difference{Path: ch.To.Name}
		if d.Path == "" {
			d.Path = ch.From.Name
		}
		if d.A, err = blobOf(c.repo, ch.From); err == nil {
			d.B, err = blobOf(c.repo, ch.To)
		}
		if err != nil {
			return nil, fmt.Errorf("compare %s in %s: %w", d.Path, dir, err)
		}
		if d.A != nil && d.B != nil && *d.A == *d.B && (ch.From.TreeEntry.Mode == filemode.Symlink) == (ch.To.TreeEntry.Mode == filemode.Symlink) {
			continue // the same bytes; only the executable bit changed
		}
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// blobOf is the size and SHA-256 of the file at a side of a change, nil
// where there is none.
func blobOf(repo *git.Repository, e object.ChangeEntry) (*container.Blob, error) {
	if e.Name == "" || e.TreeEntry.Mode == filemode.Dir || e.TreeEntry.Mode == filemode.Submodule {
		return nil, nil
	}
	blob, err := repo.BlobObject(e.TreeEntry.Hash)
	if err != nil {
		return nil, err
	}
	rd, err := blob.Reader()
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	h := sha256.New()
	n, err := io.Copy(h, rd)
	if err != nil {
		return nil, err
	}
	return &container.Blob{Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}
