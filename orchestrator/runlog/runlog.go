package runlog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/mao-research/mao/orchestrator/errs"
)

// ErrNoLog means the site holds no log for the run.
var ErrNoLog = errs.New(errs.ErrNotFound, "no log on this site")

// Dir is a directory of run logs.
type Dir struct {
	path    string
	mu      sync.Mutex
	active  map[string]*Log // logs still being written
	created chan struct{}   // closed and replaced at every Create
}

// Open returns the log directory at path, creating it if needed.
func Open(path string) (*Dir, error) {
	if err := os.MkdirAll(path, 0o755); err != nil {
		return nil, fmt.Errorf("log directory: %w", err)
	}
	return &Dir{path: path, active: map[string]*Log{}, created: make(chan struct{})}, nil
}

// file is the path of a run's log. A run ID comes from etcd, which anyone
// with a certificate may write: one that is not shaped like an ID (a
// '/', "..", a leading dot) would name a file elsewhere, and is refused.
func (d *Dir) file(id string) (string, error) {
	if !validID(id) {
		return "", fmt.Errorf("run ID %q: %w", id, errBadID)
	}
	return filepath.Join(d.path, id+".log"), nil
}

// errBadID is a run ID that cannot name a log file.
var errBadID = fmt.Errorf("not a run ID: it would name a file outside the log directory: %w", ErrNoLog)

// validID reports whether id can be a run's log file name: lowercase
// letters, digits, '.', '_' and '-', not starting with '.', at most 255.
func validID(id string) bool {
	if id == "" || len(id) > 255 || id[0] == '.' {
		return false
	}
	for _, c := range id {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '.' && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

// Create opens a run's log for writing, appending to what an earlier life
// of the run (before a restart, or an earlier attempt) wrote. Followers of
// the run wait for its writes until the Log is closed.
func (d *Dir) Create(id string) (*Log, error) {
	path, err := d.file(id)
	if err != nil {
		return nil, err
	}
	// The file is created and the log registered as one step: a
	// follower that sees the file (Await) and then asks whether it is
	// live (Copy) must not find it between the two, or it would take a
	// log that has just begun for one that has ended.
	d.mu.Lock()
	defer d.mu.Unlock()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create log: %w", err)
	}
	l := &Log{dir: d, id: id, f: f, changed: make(chan struct{})}
	d.active[id] = l
	close(d.created)
	d.created = make(chan struct{})
	return l, nil
}

// Await waits until the run's log exists, or ctx ends: a follower of a run
// that was just claimed may ask before the run has started writing.
func (d *Dir) Await(ctx context.Context, id string) error {
	path, err := d.file(id)
	if err != nil {
		return err
	}
	for {
		d.mu.Lock()
		created := d.created
		d.mu.Unlock()
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		select {
		case <-created:
		case <-ctx.Done():
			return fmt.Errorf("run %s: %w", id, ErrNoLog)
		}
	}
}

// Remove deletes a run's log file.
func (d *Dir) Remove(id string) error {
	path, err := d.file(id)
	if err != nil {
		return err
	}
	err = os.Remove(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// Log is a run log being written.
type Log struct {
	dir *Dir
	id  string
	f   *os.File

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every write and on Close
	closed  bool
}

// Write appends p and wakes the followers.
func (l *Log) Write(p []byte) (int, error) {
	n, err := l.f.Write(p)
	l.notify(false)
	return n, err
}

// Close ends the log: followers read what is left and return.
func (l *Log) Close() error {
	err := l.f.Close()
	l.dir.mu.Lock()
	delete(l.dir.active, l.id)
	l.dir.mu.Unlock()
	l.notify(true)
	return err
}

func (l *Log) notify(closing bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	close(l.changed)
	l.changed, l.closed = make(chan struct{}), closing
}

// state returns the channel that the next change closes, and whether the log
// has ended. A nil log has ended.
func (l *Log) state() (<-chan struct{}, bool) {
	if l == nil {
		return nil, true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.changed, l.closed
}

// Copy writes the run's log to w. With follow it keeps writing what is
// appended until the log is closed or ctx ends. After each chunk it calls
// flush, if not nil, so that streamed output reaches the reader at once.
func (d *Dir) Copy(ctx context.Context, id string, follow bool, w io.Writer, flush func()) error {
	// The file first, then whether it is live: once the file exists,
	// Create has registered it, and a log no longer active is complete.
	f, err := d.open(id)
	if err != nil {
		return err
	}
	defer f.Close()
	d.mu.Lock()
	live := d.active[id]
	d.mu.Unlock()
	for {
		changed, ended := live.state() // before reading, so no write is missed
		if _, err := io.Copy(w, f); err != nil {
			return fmt.Errorf("copy log: %w", err)
		}
		if flush != nil {
			flush()
		}
		if !follow || ended {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		}
	}
}

// open opens a run's log for reading.
func (d *Dir) open(id string) (*os.File, error) {
	path, err := d.file(id)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("run %s: %w", id, ErrNoLog)
	}
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	return f, nil
}

// Tail writes the last n lines of the run's log to w, and a newline after
// a last line that has none. It reads the file backwards from its end, a
// block at a time, so that neither its memory nor its work depends on n:
// a caller that asks for a billion lines of a short log gets the log.
func (d *Dir) Tail(id string, n int, w io.Writer) error {
	f, err := d.open(id)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("read log: %w", err)
	}
	size := st.Size() // the log may grow meanwhile: tail what is there now
	start, err := tailStart(f, size, n)
	if err != nil {
		return fmt.Errorf("read log: %w", err)
	}
	if _, err := io.Copy(w, io.NewSectionReader(f, start, size-start)); err != nil {
		return err
	}
	if start < size {
		last := make([]byte, 1)
		if _, err := f.ReadAt(last, size-1); err != nil {
			return fmt.Errorf("read log: %w", err)
		}
		if last[0] != '\n' {
			_, err = io.WriteString(w, "\n")
		}
	}
	return err
}

// tailBlock is how much Tail reads at a time.
const tailBlock = 32 << 10

// tailStart returns the offset of the first of the last n lines of the
// first size bytes of r. A newline at the very end ends the last line; it
// does not begin another.
func tailStart(r io.ReaderAt, size int64, n int) (int64, error) {
	if n <= 0 {
		return size, nil
	}
	buf := make([]byte, tailBlock)
	seen := 0
	for pos := size; pos > 0; {
		chunk := min(int64(len(buf)), pos)
		pos -= chunk
		if _, err := r.ReadAt(buf[:chunk], pos); err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
		for i := chunk - 1; i >= 0; i-- {
			if buf[i] != '\n' || pos+i == size-1 {
				continue
			}
			if seen++; seen == n {
				return pos + i + 1, nil
			}
		}
	}
	return 0, nil
}
