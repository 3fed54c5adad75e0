package gitrepo

import (
	"bufio"
	"bytes"
	"compress/zlib"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/format/index"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// copyBuffer is the size of the chunks in which files are read: the
// context is checked between chunks.
const copyBuffer = 1 << 20

// objectWriter writes loose objects into a clone's git directory, streaming
// their content: never a whole file in memory. As git's own loose objects
// they are compressed for speed (zlib level 1).
type objectWriter struct {
	c       *clone
	lookup  storer.EncodedObjectStorer // for has
	objects string
	zw      *zlib.Writer
	bw      *bufio.Writer
	buf     []byte
	made    map[string]bool // fan-out directories known to exist
}

func newObjectWriter(c *clone) *objectWriter {
	zw, _ := zlib.NewWriterLevel(nil, zlib.BestSpeed)
	// Lookups go through a storage without BoundOS: the git directory is
	// mao's own (no tool reaches it) and BoundOS's checks of every path
	// cost more than writing a small object.
	lookup := filesystem.NewStorage(osfs.New(c.gitDir), cache.NewObjectLRU(0))
	return &objectWriter{c: c, lookup: lookup, objects: filepath.Join(c.gitDir, "objects"), zw: zw,
		bw: bufio.NewWriterSize(nil, 64<<10), buf: make([]byte, copyBuffer), made: map[string]bool{}}
}

// has reports whether the repository has the object, loose or packed.
func (o *objectWriter) has(h plumbing.Hash) bool {
	return o.lookup.HasEncodedObject(h) == nil
}

// write stores an object of type typ whose content, exactly size bytes, is
// read from src, and returns its hash. A src that holds more or fewer
// bytes is an error (errChanged), and so is ctx ending.
func (o *objectWriter) write(ctx context.Context, typ plumbing.ObjectType, size int64, src io.Reader) (h plumbing.Hash, err error) {
	if err := os.MkdirAll(o.objects, 0o755); err != nil {
		return h, err
	}
	tmp, err := os.CreateTemp(o.objects, "tmp_obj_")
	if err != nil {
		return h, err
	}
	defer func() {
		if tmp != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	o.bw.Reset(tmp)
	o.zw.Reset(o.bw)
	hasher := plumbing.NewHasher(typ, size)
	header := append(typ.Bytes(), ' ')
	header = strconv.AppendInt(header, size, 10)
	if _, err := o.zw.Write(append(header, 0)); err != nil {
		return h, err
	}
	if err := copyExactly(ctx, io.MultiWriter(hasher, o.zw), src, size, o.buf); err != nil {
		return h, err
	}
	if err := o.zw.Close(); err != nil {
		return h, err
	}
	if err := o.bw.Flush(); err != nil {
		return h, err
	}
	if err := tmp.Chmod(0o444); err != nil {
		return h, err
	}
	if err := tmp.Close(); err != nil {
		return h, err
	}
	h = hasher.Sum()
	if o.has(h) {
		return h, nil // the deferred function removes the copy
	}
	hex := h.String()
	fan := filepath.Join(o.objects, hex[:2])
	if !o.made[hex[:2]] {
		if err := os.Mkdir(fan, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return h, err
		}
		o.made[hex[:2]] = true
	}
	if err := os.Rename(tmp.Name(), filepath.Join(fan, hex[2:])); err != nil {
		return h, err
	}
	tmp = nil
	return h, nil
}

// writeBytes stores a small object held in memory, unless the repository
// has it already.
func (o *objectWriter) writeBytes(ctx context.Context, typ plumbing.ObjectType, content []byte) (plumbing.Hash, error) {
	if h := plumbing.ComputeHash(typ, content); o.has(h) {
		return h, nil
	}
	return o.write(ctx, typ, int64(len(content)), bytes.NewReader(content))
}

// copyExactly copies n bytes from src to dst in chunks of buf, checking
// ctx between chunks, and fails with errChanged if src does not hold
// exactly n bytes.
func copyExactly(ctx context.Context, dst io.Writer, src io.Reader, n int64, buf []byte) error {
	for n > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		k, err := io.ReadFull(src, buf[:min(int64(len(buf)), n)])
		if k > 0 {
			if _, werr := dst.Write(buf[:k]); werr != nil {
				return werr
			}
			n -= int64(k)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return errChanged // shorter than it was
		}
		if err != nil {
			return err
		}
	}
	if k, _ := src.Read(buf[:1]); k > 0 {
		return errChanged // longer than it was
	}
	return nil
}

// hashOnly is the blob hash of n bytes of src, checking ctx between chunks.
func hashOnly(ctx context.Context, src io.Reader, n int64, buf []byte) (plumbing.Hash, error) {
	h := plumbing.NewHasher(plumbing.BlobObject, n)
	if err := copyExactly(ctx, h, src, n, buf); err != nil {
		return plumbing.ZeroHash, err
	}
	return h.Sum(), nil
}

// tree is one tree object built from index entries.
type tree struct {
	hash    plumbing.Hash
	content []byte // kept only for the trees to write
}

// buildTrees computes the tree objects of entries, which are sorted by
// name (the index's order), and returns the root's hash. It keeps the
// content of the trees of the directories for which keep is true (""
// being the root), to be written.
func buildTrees(entries []*index.Entry, keep func(dir string) bool) (plumbing.Hash, map[string]tree) {
	out := map[string]tree{}
	h := buildTree(entries, "", keep, out)
	return h, out
}

type treeItem struct {
	name string
	mode filemode.FileMode
	hash plumbing.Hash
}

func buildTree(entries []*index.Entry, dir string, keep func(string) bool, out map[string]tree) plumbing.Hash {
	prefix := dir
	if dir != "" {
		prefix += "/"
	}
	var items []treeItem
	for i := 0; i < len(entries); {
		rest := entries[i].Name[len(prefix):]
		name, _, isDir := strings.Cut(rest, "/")
		if !isDir {
			items = append(items, treeItem{name, entries[i].Mode, entries[i].Hash})
			i++
			continue
		}
		sub := prefix + name + "/"
		k := i + 1
		for k < len(entries) && strings.HasPrefix(entries[k].Name, sub) {
			k++
		}
		items = append(items, treeItem{name, filemode.Dir, buildTree(entries[i:k], prefix+name, keep, out)})
		i = k
	}
	content := encodeTree(items)
	t := tree{hash: plumbing.ComputeHash(plumbing.TreeObject, content)}
	if keep(dir) {
		t.content = content
		out[dir] = t
	}
	return t.hash
}

func sortKey(it treeItem) string {
	if it.mode == filemode.Dir {
		return it.name + "/"
	}
	return it.name
}
