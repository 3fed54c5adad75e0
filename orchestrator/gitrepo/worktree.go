package gitrepo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/format/gitignore"
	"github.com/go-git/go-git/v5/plumbing/format/index"
)

// What a work tree may hold. Whatever a tool leaves in its data folder is
// hostile input: these bound the work of reading it.
const (
	maxDepth          = 256     // directories below the top; deeper output is refused
	maxPathLen        = 4096    // bytes of a slash-separated path; longer output is refused
	maxIgnoreBytes    = 1 << 20 // of one .gitignore or info/exclude
	maxIgnorePatterns = 10000   // in effect in one directory
	checkEvery        = 64      // entries between checks of the context
)

// fileStat is what git's index records of a file beyond its size, mode and
// mtime; known is false where the platform does not say.
type fileStat struct {
	known    bool
	ctime    time.Time
	dev, ino uint32
	uid, gid uint32
}

// OutputError is a run's output that Commit refuses to commit: over a
// limit, or holding something that must not enter a repository (a .git,
// a special file). Nothing was committed.
type OutputError struct {
	Path   string // slash-separated, relative to the work tree; "" for a limit
	Reason string
}

func (e *OutputError) Error() string {
	if e.Path == "" {
		return "output refused: " + e.Reason
	}
	return fmt.Sprintf("output refused: %s %s", e.Path, e.Reason)
}

// base is what a work tree is compared with: HEAD's tree, as index entries
// that carry the index's stat data where the index agrees with HEAD.
type base struct {
	entries map[string]*baseEntry
	dirs    map[string]bool // every directory that holds an entry (not "")
	// racy is the index file's mtime: an entry whose mtime is not before
	// it may have changed within the same tick, so it is hashed.
	racy time.Time
	// fromIndex: the index matched HEAD, so writing it again is needed
	// only when stat data changed.
	fromIndex bool
}

type baseEntry struct {
	*index.Entry
	seen bool // the work tree has a file or link at its path
}

func newBase(entries []*index.Entry, racy time.Time, fromIndex bool) *base {
	b := &base{entries: make(map[string]*baseEntry, len(entries)), dirs: map[string]bool{}, racy: racy, fromIndex: fromIndex}
	for _, e := range entries {
		b.entries[e.Name] = &baseEntry{Entry: e}
		for d := path.Dir(e.Name); d != "." && !b.dirs[d]; d = path.Dir(d) {
			b.dirs[d] = true
		}
	}
	return b
}

// candidate is a file or link of the work tree that is new or whose stat
// data differs from its base entry: its content must be read.
type candidate struct {
	dir, name string // its directory (slash-separated, "" for the top) and name
	fi        fs.FileInfo
	mode      filemode.FileMode
	was       *index.Entry // its base entry; nil when new
	sameSize  bool         // tracked, with the same size and mode: maybe unchanged, not counted yet
}

func (c candidate) path() string { return join(c.dir, c.name) }

// walker compares a work tree with a base, never following a symbolic
// link and never opening anything but regular files and directories. For
// Commit it collects what must be read and refuses hostile output; for
// Discard it also deletes untracked output as it goes.
type walker struct {
	ctx      context.Context
	base     *base
	discard  bool
	maxFiles int   // commit: most new or changed files, links and directories
	maxBytes int64 // commit: most bytes of new or changed files and links
	listCap  int   // discard: most paths listed in removed
	excludes []gitignore.Pattern
	// headBlob reads a blob of HEAD of at most limit bytes: Discard
	// follows the ignore rules of HEAD's .gitignore files.
	headBlob func(h plumbing.Hash, limit int64) ([]byte, error)

	kept    []*index.Entry // base entries found unchanged
	cands   []candidate
	removed []string // discard: untracked paths deleted
	files   int      // commit: new or changed files, links and directories
	bytes   int64    // commit: their size
	steps   int
}

func (w *walker) walk(top *os.Root) error {
	_, err := w.dir(top, "", 0, w.excludes, false)
	return err
}

func (w *walker) step() error {
	w.steps++
	if w.steps%checkEvery == 0 {
		return w.ctx.Err()
	}
	return nil
}

// dir walks the directory rel, opened as root. ignored says that an
// ancestor is ignored, so untracked entries here are too. It returns how
// many entries are left in the directory.
func (w *walker) dir(root *os.Root, rel string, depth int, patterns []gitignore.Pattern, ignored bool) (left int, err error) {
	names, err := readNames(root)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", display(rel), err)
	}
	var ps []gitignore.Pattern
	switch {
	case w.discard:
		// The rules of HEAD's .gitignore, not of one the run wrote: its
		// output must not hide from being discarded.
		if b := w.base.entries[join(rel, ".gitignore")]; b != nil && b.Mode == filemode.Regular && w.headBlob != nil {
			data, err := w.headBlob(b.Hash, maxIgnoreBytes)
			if err != nil {
				return 0, fmt.Errorf("%s in HEAD: %w", join(rel, ".gitignore"), err)
			}
			ps = parsePatterns(data, split(rel))
		}
	case slices.Contains(names, ".gitignore"):
		if ps, err = readPatterns(root, ".gitignore", split(rel)); err != nil {
			return 0, fmt.Errorf("%s: %w", join(rel, ".gitignore"), err)
		}
	}
	if len(ps) > 0 {
		patterns = append(slices.Clip(patterns), ps...)
		if len(patterns) > maxIgnorePatterns {
			return 0, &OutputError{Path: join(rel, ".gitignore"), Reason: fmt.Sprintf("brings the ignore patterns in effect to more than %d", maxIgnorePatterns)}
		}
	}
	for _, name := range names {
		if err := w.step(); err != nil {
			return 0, err
		}
		fi, err := root.Lstat(name)
		if err != nil {
			return 0, fmt.Errorf("lstat %s: %w", join(rel, name), err)
		}
		kept, err := w.entry(root, rel, name, fi, depth, patterns, ignored)
		if err != nil {
			return 0, err
		}
		if kept {
			left++
		}
	}
	return left, nil
}

// entry handles one entry of the directory rel and reports whether it is
// still there.
func (w *walker) entry(root *os.Root, rel, name string, fi fs.FileInfo, depth int, patterns []gitignore.Pattern, ignored bool) (bool, error) {
	p := join(rel, name)
	if isGitName(name) {
		// Whatever it is, and even if ignored: git would take it for a
		// repository (or, on other systems, for this one's .git).
		if w.discard {
			return false, w.remove(root, p, name)
		}
		return false, &OutputError{Path: p, Reason: "is named like .git: a run may not write one (git would take it for a repository)"}
	}
	if len(p) > maxPathLen && !w.discard {
		return false, &OutputError{Path: p[:64] + "...", Reason: fmt.Sprintf("is a path longer than %d bytes", maxPathLen)}
	}
	b := w.base.entries[p]
	mode, fileOrLink := modeOf(fi)
	switch {
	case fi.IsDir():
		if b != nil && b.Mode == filemode.Submodule {
			// A submodule's directory: its content is not this
			// repository's, as for git.
			b.seen = true
			w.kept = append(w.kept, b.Entry)
			return true, nil
		}
		tracked := w.base.dirs[p]
		ign := ignored || match(patterns, p, true)
		if ign && !tracked {
			return true, nil // ignored, and nothing tracked inside: never entered
		}
		if depth+1 > maxDepth {
			if w.discard {
				return false, w.remove(root, p, name)
			}
			return false, &OutputError{Path: p, Reason: fmt.Sprintf("is more than %d directories deep", maxDepth)}
		}
		if !tracked {
			if err := w.count(p, 0); err != nil {
				return false, err
			}
		}
		sub, err := openDir(root, name, fi)
		if err != nil {
			return false, fmt.Errorf("open %s: %w", p, err)
		}
		left, err := w.dir(sub, p, depth+1, patterns, ign)
		sub.Close()
		if err != nil {
			return false, err
		}
		if w.discard && left == 0 && !tracked {
			// Empty, and git cannot track it: removed, as git clean -d.
			if err := root.Remove(name); err != nil {
				return false, fmt.Errorf("remove %s: %w", p, err)
			}
			return false, nil
		}
		return true, nil

	case fileOrLink && b != nil && b.Mode != filemode.Submodule:
		b.seen = true
		if unchanged(b.Entry, fi, mode, w.base.racy) {
			w.kept = append(w.kept, b.Entry)
			return true, nil
		}
		// Its stat data changed. If its size and mode did not, its content
		// may not have either (touched, or the data directory moved): it
		// is hashed before it is stored, and counted only if it changed.
		same := mode == b.Mode && uint32(fi.Size()) == b.Size && b.Size != 0
		w.cands = append(w.cands, candidate{dir: rel, name: name, fi: fi, mode: mode, was: b.Entry, sameSize: same})
		if w.discard || same {
			return true, nil
		}
		return true, w.count(p, fi.Size())
	}

	// Untracked: a new file, link or special file. An ignored one is left
	// alone and never opened, unless a tracked directory must be restored
	// in its place.
	if !w.base.dirs[p] && (ignored || match(patterns, p, false)) {
		return true, nil
	}
	switch {
	case w.discard:
		return false, w.remove(root, p, name)
	case !fileOrLink:
		return false, &OutputError{Path: p, Reason: fmt.Sprintf("is a %s: a run's output may hold only files, directories and symbolic links", kind(fi.Mode()))}
	case mode == filemode.Symlink && isGitmodulesName(name):
		return false, &OutputError{Path: p, Reason: "is a symbolic link: git refuses a linked .gitmodules"}
	}
	w.cands = append(w.cands, candidate{dir: rel, name: name, fi: fi, mode: mode})
	return true, w.count(p, fi.Size())
}

// count adds one path of new or changed output and size bytes, and fails
// beyond a limit.
func (w *walker) count(p string, size int64) error {
	w.files++
	w.bytes += size
	switch {
	case w.maxFiles > 0 && w.files > w.maxFiles:
		return &OutputError{Reason: fmt.Sprintf("the run wrote more than max_output_files = %d new or changed files, links and directories (the last seen: %s)", w.maxFiles, p)}
	case w.maxBytes > 0 && w.bytes > w.maxBytes:
		return &OutputError{Reason: fmt.Sprintf("the run wrote more than max_output_bytes = %s of new or changed files (the last seen: %s)", formatBytes(w.maxBytes), p)}
	}
	return nil
}

// remove deletes an untracked entry of the directory root, never following
// a link, and lists it.
func (w *walker) remove(root *os.Root, p, name string) error {
	if err := root.RemoveAll(name); err != nil {
		return fmt.Errorf("remove %s: %w", p, err)
	}
	if len(w.removed) < w.listCap {
		w.removed = append(w.removed, p)
	}
	return nil
}

// readNames lists the directory root, sorted.
func readNames(root *os.Root) ([]string, error) {
	f, err := root.Open(".")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	slices.Sort(names)
	return names, err
}

// openDir opens the directory name of root as a root of its own, and
// checks that it is the directory that was listed (fi), not something put
// in its place since.
func openDir(root *os.Root, name string, fi fs.FileInfo) (*os.Root, error) {
	sub, err := root.OpenRoot(name)
	if err != nil {
		return nil, err
	}
	st, err := sub.Stat(".")
	if err == nil && !os.SameFile(st, fi) {
		err = errChanged
	}
	if err != nil {
		sub.Close()
		return nil, err
	}
	return sub, nil
}

var errChanged = errors.New("changed while mao was reading it")

// openFile opens the regular file name of root for reading and checks that
// it is the file that was listed (fi). It never blocks on a fifo put in its
// place.
func openFile(root *os.Root, name string, fi fs.FileInfo) (*os.File, error) {
	f, err := root.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err == nil && (!os.SameFile(st, fi) || !st.Mode().IsRegular() || st.Size() != fi.Size()) {
		err = errChanged
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// readPatterns reads the ignore patterns of the file name in root (a
// .gitignore, or info/exclude), whose directory is domain. A file that is
// not a regular one (a link, say) has none: git does not follow a
// symbolically linked .gitignore either.
func readPatterns(root *os.Root, name string, domain []string) ([]gitignore.Pattern, error) {
	fi, err := root.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) || err == nil && !fi.Mode().IsRegular() {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if fi.Size() > maxIgnoreBytes {
		return nil, &OutputError{Path: join(strings.Join(domain, "/"), name), Reason: fmt.Sprintf("is larger than %d bytes", maxIgnoreBytes)}
	}
	f, err := openFile(root, name, fi)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxIgnoreBytes))
	if err != nil {
		return nil, err
	}
	return parsePatterns(data, domain), nil
}

// parsePatterns reads the lines of an ignore file, as git: blank lines and
// comments are skipped.
func parsePatterns(data []byte, domain []string) []gitignore.Pattern {
	var ps []gitignore.Pattern
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSuffix(line, "\r")
		if !strings.HasPrefix(line, "#") && strings.TrimSpace(line) != "" {
			ps = append(ps, gitignore.ParsePattern(line, domain))
		}
	}
	return ps
}

func match(patterns []gitignore.Pattern, p string, isDir bool) bool {
	return len(patterns) > 0 && gitignore.NewMatcher(patterns).Match(strings.Split(p, "/"), isDir)
}

// modeOf is the git mode of a regular file or link, as git records it
// (executable when the owner may execute it).
func modeOf(fi fs.FileInfo) (filemode.FileMode, bool) {
	m := fi.Mode()
	switch {
	case m&fs.ModeSymlink != 0:
		return filemode.Symlink, true
	case m.IsRegular() && m&0o100 != 0:
		return filemode.Executable, true
	case m.IsRegular():
		return filemode.Regular, true
	}
	return filemode.Empty, false
}

// unchanged reports whether the work tree's file, by its stat data, is
// still the one its index entry describes. As git, an entry that is not
// older than the index file is "racily clean" and must be hashed.
func unchanged(e *index.Entry, fi fs.FileInfo, mode filemode.FileMode, racy time.Time) bool {
	if e.Mode != mode || e.Size != uint32(fi.Size()) || !e.ModifiedAt.Equal(fi.ModTime()) || !e.ModifiedAt.Before(racy) {
		return false
	}
	st := statOf(fi)
	return !st.known || e.CreatedAt.Equal(st.ctime) && e.Inode == st.ino && e.Dev == st.dev
}

// newEntry is the index entry of a work tree's file.
func newEntry(name string, mode filemode.FileMode, h [20]byte, fi fs.FileInfo) *index.Entry {
	e := &index.Entry{Name: name, Mode: mode, Hash: h, Size: uint32(fi.Size())}
	if t := fi.ModTime(); t.Unix() >= 0 {
		e.ModifiedAt = t // else left zero, which never matches: hashed every time
	}
	if st := statOf(fi); st.known {
		if st.ctime.Unix() >= 0 {
			e.CreatedAt = st.ctime
		}
		e.Dev, e.Inode, e.UID, e.GID = st.dev, st.ino, st.uid, st.gid
	}
	return e
}

// isGitName reports whether a file name is .git, or would be on a
// case-insensitive, HFS+ or NTFS file system where other sites may check
// the repository out: the names git itself refuses in a tree.
func isGitName(name string) bool {
	n := fold(name)
	return n == ".git" || n == "git~1"
}

// isGitmodulesName is isGitName for .gitmodules.
func isGitmodulesName(name string) bool {
	n := fold(name)
	return n == ".gitmodules" || len(n) == 8 && strings.HasPrefix(n, "gitmod~") && n[7] >= '1' && n[7] <= '9'
}

// fold compares a name as git's verify_path does for HFS+ and NTFS:
// without the code points HFS+ ignores, an NTFS stream suffix, trailing
// dots and spaces, or case.
func fold(name string) string {
	n := strings.Map(func(r rune) rune {
		switch {
		case r >= 0x200c && r <= 0x200f, r >= 0x202a && r <= 0x202e, r >= 0x206a && r <= 0x206f, r == 0xfeff:
			return -1
		}
		return r
	}, name)
	n, _, _ = strings.Cut(n, ":")
	return strings.ToLower(strings.TrimRight(n, ". "))
}

func join(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

func split(p string) []string {
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}

func display(rel string) string {
	if rel == "" {
		return "the work tree"
	}
	return rel
}

// formatBytes writes n in the largest binary unit that divides it, as
// config.ini would say it.
func formatBytes(n int64) string {
	for _, u := range []struct {
		name string
		size int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.size && n%u.size == 0 {
			return fmt.Sprintf("%d%s", n/u.size, u.name)
		}
	}
	return fmt.Sprintf("%d bytes", n)
}
