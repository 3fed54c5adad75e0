package gitrepo_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-git/go-git/v5/plumbing"

	"github.com/mao-research/mao/orchestrator/gitrepo"
)

// objects lists the files in the clone's objects directory.
func objects(t *testing.T, dir string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	root := filepath.Join(gitrepo.GitDir(dir), "objects")
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(root, p)
			out[rel] = true
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// manyFiles writes n small files in directories of 300.
func manyFiles(t *testing.T, dir string, n int) {
	t.Helper()
	for i := range n {
		p := filepath.Join(dir, fmt.Sprintf("out/%03d/f%05d.csv", i/300, i))
		if i%300 == 0 {
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(p, []byte(fmt.Sprintf("%d\n", i)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// sparse makes a file of size zero bytes without writing them.
func sparse(t *testing.T, p string, size int64) {
	t.Helper()
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestOutputLimits(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		opts      gitrepo.Options
		write     func(t *testing.T, dir string)
		wantInErr string
		wantFiles int // that Discard lists
	}{
		{"over the bytes", gitrepo.Options{MaxOutputBytes: 1000}, func(t *testing.T, dir string) {
			writeFile(t, dir, "a.csv", strings.Repeat("a", 600))
			writeFile(t, dir, "b.csv", strings.Repeat("b", 600))
		}, "more than max_output_bytes = 1000 bytes", 2},
		{"over the bytes, in a changed tracked file", gitrepo.Options{MaxOutputBytes: 1 << 10}, func(t *testing.T, dir string) {
			writeFile(t, dir, "edit.txt", strings.Repeat("x", 2<<10))
		}, "more than max_output_bytes = 1KiB", 1},
		{"over the files", gitrepo.Options{MaxOutputFiles: 3}, func(t *testing.T, dir string) {
			for i := range 10 {
				writeFile(t, dir, fmt.Sprintf("f%d.csv", i), "1")
			}
		}, "more than max_output_files = 3", 4},
		{"over the files, counting directories", gitrepo.Options{MaxOutputFiles: 3}, func(t *testing.T, dir string) {
			writeFile(t, dir, "a/b/c/d.csv", "1")
		}, "more than max_output_files = 3", 1},
		{"a sparse file over the bytes", gitrepo.Options{MaxOutputBytes: 1 << 20}, func(t *testing.T, dir string) {
			sparse(t, filepath.Join(dir, "huge.bin"), 1<<40)
		}, "more than max_output_bytes = 1MiB", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := gitrepo.New(tt.opts)
			dir, head := cloned(t, r)
			before := objects(t, dir)
			tt.write(t, dir)
			got, files, err := r.Commit(context.Background(), dir, "run", nil)
			var refused *gitrepo.OutputError
			if !errors.As(err, &refused) || !strings.Contains(err.Error(), tt.wantInErr) {
				t.Fatalf("Commit = %q, %q, %v; want an *OutputError with %q", got, files, err, tt.wantInErr)
			}
			t.Logf("Commit: %v", err)
			if h := clonedHead(t, dir); h != head {
				t.Errorf("HEAD moved to %s", h)
			}
			if after := objects(t, dir); len(after) != len(before) {
				t.Errorf("%d objects written for refused output", len(after)-len(before))
			}
			discarded, err := r.Discard(context.Background(), dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(discarded) != tt.wantFiles {
				t.Errorf("Discard listed %q, want %d paths", discarded, tt.wantFiles)
			}
			assertConsistent(t, dir)
			if h := clonedHead(t, dir); h != head {
				t.Errorf("HEAD moved to %s", h)
			}
		})
	}
}

// TestCommitLargeFileStreams: a 256 MiB file (sparse, so that the test
// machine writes little) is committed without holding it in memory.
func TestCommitLargeFileStreams(t *testing.T) {
	const size = 256 << 20
	r := gitrepo.New(gitrepo.Options{})
	dir, _ := cloned(t, r)
	sparse(t, filepath.Join(dir, "big.bin"), size)

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	_, files := commit(t, r, dir, "big")
	took := time.Since(start)
	runtime.ReadMemStats(&after)
	allocated := after.TotalAlloc - before.TotalAlloc
	grew := int64(after.HeapInuse) - int64(before.HeapInuse)
	t.Logf("committed 256 MiB in %v: %.1f MiB allocated in all, heap in use grew by %.1f MiB",
		took, float64(allocated)/(1<<20), float64(grew)/(1<<20))
	// Everything allocated, freed or not, bounds how far the heap grew.
	if allocated > 32<<20 || grew > 32<<20 {
		t.Errorf("committing a %d MiB file allocated %d MiB (heap grew by %d MiB); want under 32 MiB", size>>20, allocated>>20, grew>>20)
	}
	if len(files) != 1 || files[0] != "big.bin" {
		t.Errorf("files = %q", files)
	}
	// The blob is right: the hash of 256 MiB of zeros, as git computes it.
	h := plumbing.NewHasher(plumbing.BlobObject, size)
	if _, err := io.CopyN(h, zeros{}, size); err != nil {
		t.Fatal(err)
	}
	tree, err := headCommit(t, dir).Tree()
	if err != nil {
		t.Fatal(err)
	}
	f, err := tree.File("big.bin")
	if err != nil || f.Hash != h.Sum() || f.Size != size {
		t.Errorf("big.bin committed as %v (%v), want blob %s of %d bytes", f, err, h.Sum(), size)
	}
	if st := gitCLI(t, dir, "status", "--porcelain"); st != "" {
		t.Errorf("git status:\n%s", st)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestCommitManySmallFiles: 30,000 new files are committed in seconds (it
// took more than half an hour, at 14 files a second). The bound asserted
// is generous; the log has the figure.
func TestCommitManySmallFiles(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 30,000 files")
	}
	const n = 30000
	r := gitrepo.New(gitrepo.Options{})
	dir, _ := cloned(t, r)
	manyFiles(t, dir, n)
	start := time.Now()
	_, files := commit(t, r, dir, "many")
	took := time.Since(start)
	t.Logf("committed %d new files in %v (%.0f files/s)", n, took, n/took.Seconds())
	if len(files) != n {
		t.Errorf("%d files committed, want %d", len(files), n)
	}
	if took > 5*time.Minute {
		t.Errorf("committing %d files took %v", n, took)
	}
	// One more file: only it is read again.
	writeFile(t, dir, "one-more.csv", "1")
	start = time.Now()
	if _, files := commit(t, r, dir, "one more"); len(files) != 1 {
		t.Errorf("files = %q, want one-more.csv", files)
	}
	t.Logf("then one new file among %d in %v", n, time.Since(start))
	assertConsistent(t, dir)
}

// cancelAfter is a context that ends once its Err has been asked n times:
// a commit stopped midway, deterministically.
type cancelAfter struct {
	context.Context
	cancel context.CancelFunc
	n      atomic.Int64
}

func newCancelAfter(n int64) *cancelAfter {
	ctx, cancel := context.WithCancel(context.Background())
	c := &cancelAfter{Context: ctx, cancel: cancel}
	c.n.Store(n)
	return c
}

func (c *cancelAfter) Err() error {
	if c.n.Add(-1) < 0 {
		c.cancel()
	}
	return c.Context.Err()
}

// TestCommitCancelled: a commit whose context ends midway, between files or
// in the middle of copying one, returns the context's error at once and
// leaves the branch where it was; the next Sync discards the output.
func TestCommitCancelled(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		write  func(t *testing.T, dir string)
		checks int64 // times Err answers before the context ends
		most   int   // objects that may have been written meanwhile
	}{
		{"between files", func(t *testing.T, dir string) { manyFiles(t, dir, 3000) }, 1000, 2000},
		{"while copying a file", func(t *testing.T, dir string) {
			sparse(t, filepath.Join(dir, "big.bin"), 64<<20)
		}, 20, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			u := newUpstream(t)
			u.commit(map[string]string{"a.txt": "A"})
			dir := filepath.Join(t.TempDir(), "clone")
			r := gitrepo.New(gitrepo.Options{})
			head, _ := sync(t, r, dir, u.url(), "")
			tt.write(t, dir)
			before := objects(t, dir)

			ctx := newCancelAfter(tt.checks)
			got, files, err := r.Commit(ctx, dir, "cancelled", nil)
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Commit = %q, %d files, %v; want context.Canceled", got, len(files), err)
			}
			if h := clonedHead(t, dir); h != head {
				t.Errorf("HEAD moved to %s", h)
			}
			written := 0
			for o := range objects(t, dir) {
				if !before[o] {
					written++
					if strings.Contains(o, "tmp_") {
						t.Errorf("a temporary file was left: %s", o)
					}
				}
			}
			if written > tt.most {
				t.Errorf("%d objects written after the context ended at most %d in", written, tt.most)
			}
			t.Logf("stopped after writing %d objects", written)

			_, note := sync(t, r, dir, u.url(), "")
			if !strings.Contains(note, "discarded the output an interrupted run left") {
				t.Errorf("Sync note = %q, want that it discarded the output", note)
			}
			if h, files := commit(t, r, dir, "nothing"); h != head || len(files) != 0 {
				t.Errorf("Commit after the Sync = %s, %q; want nothing to commit", h, files)
			}
			assertConsistent(t, dir)
		})
	}
}

// TestCommitNotKept checks that keep, called once the commit is written
// and before the branch moves, decides whether it moves: an error from it
// comes back and HEAD stays, and Discard then leaves the clone as it was;
// with nothing to commit it is not asked; when it agrees, the commit is
// made.
func TestCommitNotKept(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	u := newUpstream(t)
	u.commit(map[string]string{"a.txt": "A"})
	dir := filepath.Join(t.TempDir(), "clone")
	r := gitrepo.New(gitrepo.Options{})
	head, _ := sync(t, r, dir, u.url(), "")
	asked := 0
	keep := func(err error) func() error { return func() error { asked++; return err } }
	if err := os.WriteFile(filepath.Join(dir, "out.csv"), []byte("1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	errLost := errors.New("the run is held by another site")
	if got, _, err := r.Commit(ctx, dir, "lost", keep(errLost)); !errors.Is(err, errLost) || asked != 1 {
		t.Fatalf("Commit = %q, %v after %d questions; want the keep error after one", got, err, asked)
	}
	if h := clonedHead(t, dir); h != head {
		t.Fatalf("HEAD moved to %s", h)
	}
	if files, err := r.Discard(ctx, dir); err != nil || !slices.Equal(files, []string{"out.csv"}) {
		t.Fatalf("Discard = %v, %v", files, err)
	}
	assertConsistent(t, dir)
	asked = 0
	if got, files, err := r.Commit(ctx, dir, "nothing", keep(errLost)); err != nil || got != head || len(files) != 0 || asked != 0 {
		t.Fatalf("Commit of nothing = %q %v %v, asked %d times", got, files, err, asked)
	}
	if err := os.WriteFile(filepath.Join(dir, "out.csv"), []byte("2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, files, err := r.Commit(ctx, dir, "kept", keep(nil)); err != nil || got == head || !slices.Equal(files, []string{"out.csv"}) || asked != 1 {
		t.Fatalf("Commit = %q %v %v, asked %d times", got, files, err, asked)
	}
	if h := clonedHead(t, dir); h == head {
		t.Fatal("HEAD did not move")
	}
}

// TestDiscardCancelled: a discard stopped midway leaves the rest to the
// next Sync.
func TestDiscardCancelled(t *testing.T) {
	t.Parallel()
	r := gitrepo.New(gitrepo.Options{})
	u := newUpstream(t)
	u.commit(map[string]string{"a.txt": "A"})
	dir := filepath.Join(t.TempDir(), "clone")
	head, _ := sync(t, r, dir, u.url(), "")
	manyFiles(t, dir, 1000)
	if _, err := r.Discard(newCancelAfter(5), dir); !errors.Is(err, context.Canceled) {
		t.Fatalf("Discard error = %v, want context.Canceled", err)
	}
	if !exists(t, dir, "out") {
		t.Fatal("the discard did not stop midway")
	}
	if _, note := sync(t, r, dir, u.url(), ""); !strings.Contains(note, "discarded") {
		t.Errorf("Sync note = %q", note)
	}
	if exists(t, dir, "out") || clonedHead(t, dir) != head {
		t.Error("Sync did not finish the discard")
	}
	assertConsistent(t, dir)
}

// TestCommitTouchedFiles: tracked files whose stat data changed but not
// their content (touched, or the data directory restored from a backup)
// are neither committed nor counted against the limits, and nothing is
// written for them; one that changed within the same size is committed.
func TestCommitTouchedFiles(t *testing.T) {
	t.Parallel()
	r := gitrepo.New(gitrepo.Options{MaxOutputFiles: 1})
	dir, head := cloned(t, r)
	later := time.Now().Add(time.Hour)
	for _, p := range []string{".gitignore", "keep.txt", "edit.txt", "gone.txt", "sub/deep.txt"} {
		if err := os.Chtimes(filepath.Join(dir, filepath.FromSlash(p)), later, later); err != nil {
			t.Fatal(err)
		}
	}
	before := objects(t, dir)
	if got, files := commit(t, r, dir, "touched"); got != head || len(files) != 0 {
		t.Fatalf("Commit = %s, %q; want nothing to commit", got, files)
	}
	if after := objects(t, dir); len(after) != len(before) {
		t.Errorf("%d objects written for touched files", len(after)-len(before))
	}
	writeFile(t, dir, "edit.txt", "v2") // the same size as v1
	if _, files := commit(t, r, dir, "edited"); len(files) != 1 || files[0] != "edit.txt" {
		t.Errorf("files = %q, want edit.txt", files)
	}
	assertConsistent(t, dir)
}
