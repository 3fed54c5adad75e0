package gitrepo

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/format/gitignore"
	"github.com/go-git/go-git/v5/plumbing/format/index"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// Commit records what changed in dir's work tree since HEAD (new, modified
// and deleted files and links, except untracked files that .gitignore or
// info/exclude ignore) as a commit with message on HEAD's branch. It
// returns the new HEAD and the changed paths, sorted, slash-separated and
// relative to the work tree. With nothing to commit it returns the current
// HEAD ("" if none) and no files.
//
// It reads only what changed: a file whose size, mode, mtime, ctime and
// inode match the index is not read again. Content is streamed into the
// repository, never held whole in memory. Symbolic links are committed as
// links, never followed.
//
// Output it refuses, returning an *OutputError and committing nothing:
// more than Options.MaxOutputFiles new or changed files, links and
// directories, or more than Options.MaxOutputBytes of them; a path named
// .git (or a name other systems read as .git) anywhere; a fifo, socket or
// device; a symbolic link named .gitmodules; paths deeper than 256
// directories or longer than 4096 bytes. The caller should Discard then.
//
// Commit checks ctx between files and while copying one; when ctx ends it
// returns ctx's error and the branch stays where it was: the branch moves
// last, after the objects and the index are written. keep, when set, is
// called once the commit object is written, just before the index and the
// branch (never when there is nothing to commit): an error from it stops
// the commit in the same way, and Commit returns it wrapped. Output that
// was neither committed nor discarded is discarded by the next Sync.
func (r *Repos) Commit(ctx context.Context, dir, message string, keep func() error) (commit string, files []string, err error) {
	c, err := openClone(dir)
	if err != nil {
		return "", nil, err
	}
	if err := c.setPending(); err != nil {
		return "", nil, fmt.Errorf("commit %s: %w", dir, err)
	}
	if err := ctx.Err(); err != nil {
		return "", nil, err
	}
	commit, files, err = r.commit(ctx, c, message, keep)
	if err == nil {
		err = c.clearPending()
	}
	if err != nil {
		return "", nil, fmt.Errorf("commit %s: %w", dir, err)
	}
	return commit, files, nil
}

func (r *Repos) commit(ctx context.Context, c *clone, message string, keep func() error) (string, []string, error) {
	head, err := c.head()
	if err != nil {
		return "", nil, err
	}
	if head.branch == "" {
		return "", nil, fmt.Errorf("HEAD is detached at %s, not on a branch", head.hash)
	}
	b, err := c.loadBase(head)
	if err != nil {
		return "", nil, err
	}
	top, err := os.OpenRoot(c.dir)
	if err != nil {
		return "", nil, err
	}
	defer top.Close()
	w := &walker{ctx: ctx, base: b, maxFiles: r.opts.MaxOutputFiles, maxBytes: r.opts.MaxOutputBytes}
	if w.excludes, err = c.excludes(); err != nil {
		return "", nil, err
	}
	if err := w.walk(top); err != nil {
		return "", nil, err
	}

	// Store what changed, and collect the new index.
	ow := newObjectWriter(c)
	entries := w.kept
	var changed []string
	err = eachCandidate(top, w.cands, func(dir *os.Root, cd candidate) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if cd.sameSize {
			same, err := sameContent(ctx, dir, cd, ow.buf)
			if err != nil {
				return fmt.Errorf("read %s: %w", cd.path(), err)
			}
			if same {
				entries = append(entries, newEntry(cd.path(), cd.mode, cd.was.Hash, cd.fi))
				return nil
			}
			if err := w.count(cd.path(), cd.fi.Size()); err != nil {
				return err
			}
		}
		h, err := storeBlob(ctx, ow, dir, cd)
		if err != nil {
			return fmt.Errorf("store %s: %w", cd.path(), err)
		}
		entries = append(entries, newEntry(cd.path(), cd.mode, h, cd.fi))
		if cd.was == nil || cd.was.Hash != h || cd.was.Mode != cd.mode {
			changed = append(changed, cd.path())
		}
		return nil
	})
	if err != nil {
		return "", nil, err
	}
	for name, e := range b.entries {
		if !e.seen {
			changed = append(changed, name)
		}
	}
	sortEntries(entries)
	writeIndex := len(w.cands) > 0 || len(changed) > 0 || !b.fromIndex
	if len(changed) == 0 {
		if writeIndex {
			if err := c.writeIndex(entries); err != nil {
				return "", nil, err
			}
		}
		return hexOrEmpty(head.hash), nil, nil
	}
	slices.Sort(changed)

	// Trees: only those of directories that hold a change are new.
	dirty := map[string]bool{"": true}
	for _, p := range changed {
		for d := path.Dir(p); d != "." && !dirty[d]; d = path.Dir(d) {
			dirty[d] = true
		}
	}
	root, trees := buildTrees(entries, func(d string) bool { return dirty[d] })
	for _, t := range trees {
		if err := ctx.Err(); err != nil {
			return "", nil, err
		}
		if ow.has(t.hash) {
			continue
		}
		if _, err := ow.writeBytes(ctx, plumbing.TreeObject, t.content); err != nil {
			return "", nil, fmt.Errorf("store a tree: %w", err)
		}
	}
	sig := object.Signature{Name: r.opts.AuthorName, Email: r.opts.AuthorEmail, When: r.opts.Now()}
	co := &object.Commit{Author: sig, Committer: sig, Message: message, TreeHash: root}
	if !head.hash.IsZero() {
		co.ParentHashes = []plumbing.Hash{head.hash}
	}
	obj := &plumbing.MemoryObject{}
	if err := co.Encode(obj); err != nil {
		return "", nil, err
	}
	rd, err := obj.Reader()
	if err != nil {
		return "", nil, err
	}
	h, err := ow.write(ctx, plumbing.CommitObject, obj.Size(), rd)
	if err != nil {
		return "", nil, fmt.Errorf("store the commit: %w", err)
	}
	// The last point where ctx or keep can stop the commit: then the
	// index, and last the branch.
	if err := ctx.Err(); err != nil {
		return "", nil, err
	}
	if keep != nil {
		if err := keep(); err != nil {
			return "", nil, fmt.Errorf("not kept: %w", err)
		}
	}
	if err := c.writeIndex(entries); err != nil {
		return "", nil, err
	}
	if err := c.repo.Storer.CheckAndSetReference(plumbing.NewHashReference(head.branch, h), head.ref); err != nil {
		return "", nil, fmt.Errorf("move %s to %s: %w", head.branch.Short(), short(h), err)
	}
	return h.String(), changed, nil
}

// storeBlob stores the content of a candidate, a file or a link (as git:
// the link's target), never following a link.
func storeBlob(ctx context.Context, ow *objectWriter, dir *os.Root, cd candidate) (plumbing.Hash, error) {
	if cd.mode == filemode.Symlink {
		target, err := readLink(dir, cd)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		return ow.writeBytes(ctx, plumbing.BlobObject, []byte(target))
	}
	f, err := openFile(dir, cd.name, cd.fi)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	defer f.Close()
	return ow.write(ctx, plumbing.BlobObject, cd.fi.Size(), f)
}

func readLink(dir *os.Root, cd candidate) (string, error) {
	target, err := dir.Readlink(cd.name)
	if err != nil {
		return "", err
	}
	if fi, err := dir.Lstat(cd.name); err != nil || !os.SameFile(fi, cd.fi) {
		return "", errChanged
	}
	return target, nil
}

// eachCandidate calls f for each candidate with its directory opened,
// opening each directory once (candidates come grouped by directory).
func eachCandidate(top *os.Root, cands []candidate, f func(dir *os.Root, cd candidate) error) error {
	var (
		dir  = top
		name = ""
	)
	defer func() {
		if dir != top {
			dir.Close()
		}
	}()
	for _, cd := range cands {
		if cd.dir != name {
			if dir != top {
				dir.Close()
			}
			dir, name = top, ""
			if cd.dir != "" {
				d, err := top.OpenRoot(cd.dir)
				if err != nil {
					return fmt.Errorf("open %s: %w", cd.dir, err)
				}
				dir, name = d, cd.dir
			}
		}
		if err := f(dir, cd); err != nil {
			return err
		}
	}
	return nil
}

// Discard restores dir's work tree to HEAD, as Commit would have seen it:
// untracked files, links and directories are deleted (never following a
// link out of the work tree), and changed or deleted tracked ones are
// written again from HEAD, so that a failed run's partial output cannot
// reach a later commit. Untracked files that HEAD's .gitignore files or
// info/exclude ignore are left alone: a .gitignore the run wrote does not
// count, so that its output cannot hide (but anything named .git, and
// whatever stands where a tracked directory must be, is deleted). It returns the paths it deleted or restored, sorted;
// at most Options.MaxOutputFiles+1 of them, all the same when there are
// more.
//
// Discard checks ctx between files; when ctx ends it returns ctx's error,
// and the next Sync discards what is left.
func (r *Repos) Discard(ctx context.Context, dir string) (files []string, err error) {
	c, err := openClone(dir)
	if err != nil {
		return nil, err
	}
	if err := c.setPending(); err != nil {
		return nil, fmt.Errorf("discard %s: %w", dir, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	files, err = r.discard(ctx, c)
	if err == nil {
		err = c.clearPending()
	}
	if err != nil {
		return nil, fmt.Errorf("discard %s: %w", dir, err)
	}
	return files, nil
}

func (r *Repos) discard(ctx context.Context, c *clone) ([]string, error) {
	head, err := c.head()
	if err != nil {
		return nil, err
	}
	b, err := c.loadBase(head)
	if err != nil {
		return nil, err
	}
	top, err := os.OpenRoot(c.dir)
	if err != nil {
		return nil, err
	}
	defer top.Close()
	listCap := r.opts.MaxOutputFiles + 1
	w := &walker{ctx: ctx, base: b, discard: true, listCap: listCap, headBlob: c.readBlob}
	if w.excludes, err = c.excludes(); err != nil {
		return nil, err
	}
	if err := w.walk(top); err != nil {
		return nil, err
	}

	// Tracked files whose stat data changed: restored unless their
	// content is the same.
	entries := w.kept
	var restore []*index.Entry
	buf := make([]byte, copyBuffer)
	err = eachCandidate(top, w.cands, func(dir *os.Root, cd candidate) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		same, err := sameContent(ctx, dir, cd, buf)
		if err != nil {
			return fmt.Errorf("read %s: %w", cd.path(), err)
		}
		if same {
			entries = append(entries, newEntry(cd.path(), cd.mode, cd.was.Hash, cd.fi))
		} else {
			restore = append(restore, cd.was)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, e := range b.entries {
		if !e.seen {
			restore = append(restore, e.Entry)
		}
	}
	files := w.removed
	sortEntries(restore)
	for _, e := range restore {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		ne, err := c.restore(ctx, top, e, buf)
		if err != nil {
			return nil, fmt.Errorf("restore %s: %w", e.Name, err)
		}
		entries = append(entries, ne)
		if len(files) < listCap {
			files = append(files, e.Name)
		}
	}
	if len(w.cands) > 0 || len(restore) > 0 || !b.fromIndex {
		sortEntries(entries)
		if err := c.writeIndex(entries); err != nil {
			return nil, err
		}
	}
	slices.Sort(files)
	return slices.Compact(files), nil // a path removed and restored is listed once
}

// sameContent reports whether a tracked file still holds its base entry's
// content and mode.
func sameContent(ctx context.Context, dir *os.Root, cd candidate, buf []byte) (bool, error) {
	switch {
	case cd.mode != cd.was.Mode:
		return false, nil
	case cd.mode == filemode.Symlink:
		target, err := readLink(dir, cd)
		return err == nil && plumbing.ComputeHash(plumbing.BlobObject, []byte(target)) == cd.was.Hash, err
	case uint32(cd.fi.Size()) != cd.was.Size && cd.was.Size != 0:
		return false, nil
	}
	f, err := openFile(dir, cd.name, cd.fi)
	if err != nil {
		return false, err
	}
	defer f.Close()
	h, err := hashOnly(ctx, f, cd.fi.Size(), buf)
	return h == cd.was.Hash, err
}

// restore writes the base entry e into the work tree from HEAD, replacing
// whatever is at its path and creating its directories, and returns its
// new index entry.
func (c *clone) restore(ctx context.Context, top *os.Root, e *index.Entry, buf []byte) (*index.Entry, error) {
	dirName, name := path.Split(e.Name)
	dirName = strings.TrimSuffix(dirName, "/")
	dir := top
	if dirName != "" {
		if err := top.MkdirAll(dirName, 0o755); err != nil {
			return nil, err
		}
		d, err := top.OpenRoot(dirName)
		if err != nil {
			return nil, err
		}
		defer d.Close()
		dir = d
	}
	if err := dir.RemoveAll(name); err != nil {
		return nil, err
	}
	switch e.Mode {
	case filemode.Submodule:
		if err := dir.Mkdir(name, 0o755); err != nil {
			return nil, err
		}
	case filemode.Symlink:
		target, err := c.readBlob(e.Hash, 64<<10)
		if err != nil {
			return nil, err
		}
		if err := dir.Symlink(string(target), name); err != nil {
			return nil, err
		}
	default:
		if err := c.checkout(ctx, dir, name, e, buf); err != nil {
			return nil, err
		}
	}
	fi, err := dir.Lstat(name)
	if err != nil {
		return nil, err
	}
	return newEntry(e.Name, e.Mode, e.Hash, fi), nil
}

// checkout writes the blob of e as the new file name of dir.
func (c *clone) checkout(ctx context.Context, dir *os.Root, name string, e *index.Entry, buf []byte) error {
	blob, err := c.repo.BlobObject(e.Hash)
	if err != nil {
		return err
	}
	rd, err := blob.Reader()
	if err != nil {
		return err
	}
	defer rd.Close()
	perm := fs.FileMode(0o644)
	if e.Mode == filemode.Executable {
		perm = 0o755
	}
	f, err := dir.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	err = copyExactly(ctx, f, rd, blob.Size, buf)
	return errors.Join(err, f.Close())
}

func (c *clone) readBlob(h plumbing.Hash, limit int64) ([]byte, error) {
	blob, err := c.repo.BlobObject(h)
	if err != nil {
		return nil, err
	}
	if blob.Size > limit {
		return nil, fmt.Errorf("blob %s is larger than %d bytes", h, limit)
	}
	rd, err := blob.Reader()
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	return io.ReadAll(rd)
}

// headInfo is where HEAD points.
type headInfo struct {
	branch plumbing.ReferenceName // "" when HEAD is detached
	ref    *plumbing.Reference    // the branch's reference; nil while unborn
	hash   plumbing.Hash          // zero while unborn
	tree   plumbing.Hash          // HEAD's tree; the empty tree while unborn
}

// emptyTree is the hash of the tree with no entries.
var emptyTree = plumbing.ComputeHash(plumbing.TreeObject, nil)

func (c *clone) head() (headInfo, error) {
	h, err := c.repo.Storer.Reference(plumbing.HEAD)
	if err != nil {
		return headInfo{}, fmt.Errorf("read HEAD: %w", err)
	}
	info := headInfo{tree: emptyTree}
	switch h.Type() {
	case plumbing.HashReference:
		info.hash = h.Hash()
	case plumbing.SymbolicReference:
		info.branch = h.Target()
		ref, err := c.repo.Storer.Reference(info.branch)
		if errors.Is(err, plumbing.ErrReferenceNotFound) {
			return info, nil // unborn
		}
		if err != nil {
			return headInfo{}, fmt.Errorf("resolve %s: %w", info.branch, err)
		}
		info.ref, info.hash = ref, ref.Hash()
	default:
		return headInfo{}, fmt.Errorf("HEAD is neither a branch nor a commit")
	}
	co, err := c.repo.CommitObject(info.hash)
	if err != nil {
		return headInfo{}, fmt.Errorf("read HEAD's commit %s: %w", info.hash, err)
	}
	info.tree = co.TreeHash
	return info, nil
}

// loadBase reads the index and, when it describes HEAD's tree (the usual
// case), uses its entries as the base; otherwise (something was staged)
// the base is HEAD's tree, with the index's stat data where they agree.
func (c *clone) loadBase(head headInfo) (*base, error) {
	var racy time.Time
	if fi, err := os.Stat(filepath.Join(c.gitDir, "index")); err == nil {
		racy = fi.ModTime()
	}
	idx, err := c.repo.Storer.Index()
	if err != nil {
		return nil, fmt.Errorf("read the index: %w", err)
	}
	entries := slices.Clone(idx.Entries)
	sortEntries(entries)
	staged := false
	for _, e := range entries {
		if e.Stage != 0 || e.Mode == filemode.Dir {
			staged = true
			break
		}
	}
	if !staged {
		if root, _ := buildTrees(entries, func(string) bool { return false }); root == head.tree {
			return newBase(entries, racy, true), nil
		}
	}
	stat := make(map[string]*index.Entry, len(entries))
	for _, e := range entries {
		if e.Stage == 0 {
			stat[e.Name] = e
		}
	}
	var from []*index.Entry
	if !head.hash.IsZero() {
		co, err := c.repo.CommitObject(head.hash)
		if err != nil {
			return nil, err
		}
		t, err := co.Tree()
		if err != nil {
			return nil, err
		}
		walker := object.NewTreeWalker(t, true, nil)
		defer walker.Close()
		for {
			name, te, err := walker.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("read HEAD's tree: %w", err)
			}
			if te.Mode == filemode.Dir {
				continue
			}
			e := &index.Entry{Name: name, Mode: te.Mode, Hash: te.Hash}
			if s := stat[name]; s != nil && s.Hash == te.Hash && s.Mode == te.Mode {
				cp := *s
				e = &cp
			}
			from = append(from, e)
		}
	}
	return newBase(from, racy, false), nil
}

func sortEntries(es []*index.Entry) {
	slices.SortFunc(es, func(a, b *index.Entry) int { return strings.Compare(a.Name, b.Name) })
}

// writeIndex replaces the index with entries (sorted), atomically.
func (c *clone) writeIndex(entries []*index.Entry) error {
	tmp, err := os.CreateTemp(c.gitDir, "index.mao-")
	if err != nil {
		return fmt.Errorf("write the index: %w", err)
	}
	bw := bufio.NewWriterSize(tmp, 256<<10)
	version := uint32(2)
	for _, e := range entries {
		if e.IntentToAdd || e.SkipWorktree {
			version = 3 // extended flags
		}
	}
	err = index.NewEncoder(bw).Encode(&index.Index{Version: version, Entries: entries})
	if err == nil {
		err = bw.Flush()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(c.gitDir, "index"))
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write the index: %w", err)
	}
	return nil
}

// excludes reads the git directory's info/exclude.
func (c *clone) excludes() ([]gitignore.Pattern, error) {
	root, err := os.OpenRoot(c.gitDir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	if _, err := root.Lstat("info"); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	info, err := root.OpenRoot("info")
	if err != nil {
		return nil, err
	}
	defer info.Close()
	return readPatterns(info, "exclude", nil)
}
