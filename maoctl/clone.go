package maoctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"
)

// repoSource is a repository that maoctl clones on the user's machine: a
// dataset's, or a tool's data repository.
type repoSource struct {
	what   string // in errors: "dataset NAME", "the data of tool NAME"
	url    string
	branch string // "" for the remote's default branch
	// only: clone branch alone (with a branch), not every branch of the
	// remote.
	only bool
}

// cloned is a clone on the user's machine and its checked-out commit.
type cloned struct {
	Dir    string `json:"dir"` // absolute
	Branch string `json:"branch"`
	Commit string `json:"commit"`
	// Before is the commit the clone was at before update moved it;
	// "" for a new clone.
	Before string `json:"before,omitempty"`
}

// progress is where go-git reports a clone's or fetch's progress: stderr
// when it is a terminal, nowhere otherwise.
func (c *ctl) progress() io.Writer {
	f, ok := c.stderr.(interface{ Fd() uintptr })
	if ok && term.IsTerminal(int(f.Fd())) {
		return c.stderr
	}
	return nil
}

// nameAndDir are the arguments NAME [DIR] of the commands that clone:
// DIR defaults to NAME.
func nameAndDir(cCtx *cli.Context) (name, dir string, err error) {
	pos := cCtx.Args().Slice()
	switch len(pos) {
	case 1:
		return pos[0], pos[0], nil
	case 2:
		return pos[0], pos[1], nil
	}
	return "", "", usageErrorf("%s takes NAME [DIR]; got %d arguments", commandName(cCtx), len(pos))
}

// clone clones src into dir, which must not exist or be empty.
func clone(ctx context.Context, src repoSource, dir string, progress io.Writer) (cloned, error) {
	entries, err := os.ReadDir(dir)
	switch {
	case err == nil && len(entries) > 0:
		return cloned{}, fmt.Errorf("clone %s: %s already exists and is not empty; give another DIR", src.what, dir)
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return cloned{}, fmt.Errorf("clone %s: %w", src.what, err)
	}
	opts := &git.CloneOptions{URL: src.url}
	if progress != nil {
		opts.Progress = progress
	}
	if src.branch != "" {
		opts.ReferenceName = plumbing.NewBranchReferenceName(src.branch)
		opts.SingleBranch = src.only
	}
	repo, err := git.PlainCloneContext(ctx, dir, false, opts)
	if err != nil {
		return cloned{}, fmt.Errorf("clone %s from %s: %w", src.what, src.url, err)
	}
	return checkedOut(repo, src, dir, "")
}

// cloneOrUpdate clones src into dir, or, when dir is a clone of src
// already, fetches every branch and fast-forwards the checked-out one.
// A clone with commits of its own that the remote lacks, with changes to
// tracked files, or with untracked files where new ones would go, is left
// as it is, with an error that says so. (go-git's Pull is not used: it
// moves the branch before it finds local changes, and leaves the clone
// half updated.)
func cloneOrUpdate(ctx context.Context, src repoSource, dir string, progress io.Writer) (cloned, error) {
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return clone(ctx, src, dir, progress) // which says what is wrong
	}
	repo, err := git.PlainOpen(dir)
	if errors.Is(err, git.ErrRepositoryNotExists) {
		return clone(ctx, src, dir, progress)
	}
	fail := func(format string, args ...any) (cloned, error) {
		return cloned{}, fmt.Errorf("update %s in %s: %s", src.what, dir, fmt.Sprintf(format, args...))
	}
	if err != nil {
		return fail("%v", err)
	}
	origin, err := repo.Remote(git.DefaultRemoteName)
	if err != nil || len(origin.Config().URLs) == 0 || origin.Config().URLs[0] != src.url {
		return fail("it is a git repository but not a clone of %s; give another DIR", src.url)
	}
	head, err := repo.Head()
	if err != nil {
		return fail("read HEAD: %v", err)
	}
	if !head.Name().IsBranch() {
		return fail("no branch is checked out; check one out first")
	}
	opts := &git.FetchOptions{RemoteName: git.DefaultRemoteName}
	if progress != nil {
		opts.Progress = progress
	}
	if err := origin.FetchContext(ctx, opts); err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		return fail("fetch from %s: %v", src.url, err)
	}
	branch := head.Name().Short()
	ref, err := repo.Reference(plumbing.NewRemoteReferenceName(git.DefaultRemoteName, branch), true)
	if err != nil {
		return fail("%s has no branch %s", src.url, branch)
	}
	mine, err := repo.CommitObject(head.Hash())
	if err != nil {
		return fail("%v", err)
	}
	theirs, err := repo.CommitObject(ref.Hash())
	if err != nil {
		return fail("%v", err)
	}
	if ahead, err := theirs.IsAncestor(mine); err != nil || ahead {
		return checkedOut(repo, src, dir, head.Hash().String()) // nothing new
	}
	if ff, err := mine.IsAncestor(theirs); err != nil || !ff {
		return fail("it has commits that %s has not; merge or rebase by hand (git pull)", src.url)
	}
	if err := readyFor(repo, mine, theirs, dir); err != nil {
		return fail("%v", err)
	}
	wt, err := repo.Worktree()
	if err != nil {
		return fail("%v", err)
	}
	if err := wt.Reset(&git.ResetOptions{Commit: theirs.Hash, Mode: git.MergeReset}); err != nil {
		return fail("move %s to %s: %v", branch, theirs.Hash, err)
	}
	return checkedOut(repo, src, dir, head.Hash().String())
}

// readyFor checks that the work tree in dir, at commit from, can move to
// commit to without losing anything: no tracked file is changed or staged,
// and no untracked file is where to adds one.
func readyFor(repo *git.Repository, from, to *object.Commit, dir string) error {
	wt, err := repo.Worktree()
	if err != nil {
		return err
	}
	status, err := wt.Status()
	if err != nil {
		return err
	}
	var changed []string
	for path, st := range status {
		if st.Staging != git.Untracked && (st.Staging != git.Unmodified || st.Worktree != git.Unmodified) {
			changed = append(changed, path)
		}
	}
	if len(changed) > 0 {
		slices.Sort(changed)
		return fmt.Errorf("it has changes of its own (%s); commit or stash them first", strings.Join(changed, ", "))
	}
	fromTree, err := from.Tree()
	if err != nil {
		return err
	}
	toTree, err := to.Tree()
	if err != nil {
		return err
	}
	changes, err := object.DiffTree(fromTree, toTree)
	if err != nil {
		return err
	}
	var inTheWay []string
	for _, c := range changes {
		if c.From.Name == "" && status.IsUntracked(c.To.Name) {
			inTheWay = append(inTheWay, c.To.Name)
		}
	}
	if len(inTheWay) > 0 {
		slices.Sort(inTheWay)
		return fmt.Errorf("untracked files are where new ones go (%s); move them away first", strings.Join(inTheWay, ", "))
	}
	return nil
}

// checkedOut describes repo, a clone of src in dir, once cloned or
// updated from before.
func checkedOut(repo *git.Repository, src repoSource, dir, before string) (cloned, error) {
	head, err := repo.Head()
	if err != nil {
		return cloned{}, fmt.Errorf("clone %s: read HEAD of %s: %w", src.what, dir, err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return cloned{}, fmt.Errorf("clone %s: %w", src.what, err)
	}
	return cloned{Dir: abs, Branch: head.Name().Short(), Commit: head.Hash().String(), Before: before}, nil
}
