package offline

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/mao-research/mao/api"
)

// JournalFile is the journal's file in its directory.
const JournalFile = "journal.jsonl"

// What an entry records.
const (
	OpClaim  = "claim"  // a schedule's tick claimed by this site (its index entry goes with it)
	OpCreate = "create" // a run asked for here
	OpSave   = "save"   // a state change of a run
)

// Entry is one record of the journal: a run record this site wrote while
// etcd did not answer it, as one line of JSON.
type Entry struct {
	Seq int64     `json:"seq"` // its place in the journal, from 1
	At  time.Time `json:"at"`  // when it was journaled, by the site's clock
	Op  string    `json:"op"`  // OpClaim, OpCreate or OpSave
	Run api.Run   `json:"run"`
}

// Journal is a file of entries, appended to and synced one by one, and
// read back in order for the replay. It keeps every entry in memory until
// all of them are in etcd, and then empties the file.
type Journal struct {
	path string

	mu      sync.Mutex
	f       *os.File
	entries []Entry // the file's entries, in order
	done    int     // how many of them are in etcd
	seq     int64   // the last entry's Seq
}

// Open opens the journal in dir (creating both when missing) and reads its
// entries, which a previous life of the site may have left: they are to
// be replayed. A last line that a crash cut short (torn: no newline, or
// not an entry, with nothing valid after it) is dropped and cut from the
// file; torn says how many bytes. A line that is not an entry but is
// followed by entries means the file is damaged: Open fails, naming it.
func Open(dir string) (j *Journal, torn int, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, 0, fmt.Errorf("journal: %w", err)
	}
	path := filepath.Join(dir, JournalFile)
	_, statErr := os.Stat(path)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, 0, fmt.Errorf("journal: %w", err)
	}
	if errors.Is(statErr, os.ErrNotExist) {
		// The file's name must survive a crash too.
		if err := syncDir(dir); err != nil {
			f.Close()
			return nil, 0, err
		}
	}
	j = &Journal{path: path, f: f}
	data, err := os.ReadFile(path)
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("journal: %w", err)
	}
	good, err := j.read(data)
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	if torn = len(data) - good; torn > 0 {
		if err := j.truncate(int64(good)); err != nil {
			f.Close()
			return nil, 0, err
		}
	}
	return j, torn, nil
}

// read decodes data's lines into j.entries and returns the length of the
// part that holds them: what follows is a torn end.
func (j *Journal) read(data []byte) (good int, err error) {
	bad := 0 // line number of the first line that is not an entry, while only such lines follow
	for off, n := 0, 1; off < len(data); n++ {
		end := bytes.IndexByte(data[off:], '\n')
		if end < 0 {
			break // the last line has no newline: torn
		}
		line := data[off : off+end]
		var e Entry
		if json.Unmarshal(line, &e) != nil || e.Seq <= 0 || e.Run.ID == "" {
			if bad == 0 {
				bad = n
			}
			off += end + 1
			continue
		}
		if bad != 0 {
			return 0, fmt.Errorf("journal %s: line %d is not a journal entry, and entries follow it: the file is damaged "+
				"(move it aside to start; the records in it would then never reach etcd)", j.path, bad)
		}
		j.entries = append(j.entries, e)
		j.seq = max(j.seq, e.Seq)
		off += end + 1
		good = off
	}
	return good, nil
}

// Append writes an entry of op for run at at, and returns once the file is
// synced: the entry survives a crash from then on.
func (j *Journal) Append(op string, run api.Run, at time.Time) (Entry, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	e := Entry{Seq: j.seq + 1, At: at.UTC(), Op: op, Run: run}
	line, err := json.Marshal(e)
	if err != nil {
		return Entry{}, fmt.Errorf("journal: encode run %s: %w", run.ID, err)
	}
	fi, err := j.f.Stat()
	if err != nil {
		return Entry{}, fmt.Errorf("journal: write run %s: %w", run.ID, err)
	}
	// A write or sync that fails (a full disk) is undone: the file ends
	// with whole entries, and the next start does not find it damaged.
	undo := func(err error) error { return errors.Join(err, j.f.Truncate(fi.Size())) }
	if _, err := j.f.Write(append(line, '\n')); err != nil {
		return Entry{}, fmt.Errorf("journal: write run %s: %w", run.ID, undo(err))
	}
	if err := j.f.Sync(); err != nil {
		return Entry{}, fmt.Errorf("journal: sync run %s: %w", run.ID, undo(err))
	}
	j.seq = e.Seq
	j.entries = append(j.entries, e)
	return e, nil
}

// Next returns the first entry not yet in etcd, if any.
func (j *Journal) Next() (Entry, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.done == len(j.entries) {
		return Entry{}, false
	}
	return j.entries[j.done], true
}

// Done marks the entry Next returned as in etcd. Once every entry is, the
// file is emptied (and synced); a crash before then replays them all again,
// which the replay makes harmless.
func (j *Journal) Done(seq int64) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.done == len(j.entries) || j.entries[j.done].Seq != seq {
		return fmt.Errorf("journal: entry %d is not the next to replay", seq)
	}
	j.done++
	if j.done < len(j.entries) {
		return nil
	}
	if err := j.truncate(0); err != nil {
		return err
	}
	j.entries, j.done = nil, 0
	return nil
}

// Len is how many entries are not yet in etcd.
func (j *Journal) Len() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return len(j.entries) - j.done
}

// Entries returns the entries not yet in etcd, in order.
func (j *Journal) Entries() []Entry {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]Entry(nil), j.entries[j.done:]...)
}

// Close closes the file.
func (j *Journal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.f.Close()
}

// truncate cuts the file to size and syncs it.
func (j *Journal) truncate(size int64) error {
	if err := j.f.Truncate(size); err != nil {
		return fmt.Errorf("journal: truncate: %w", err)
	}
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("journal: sync: %w", err)
	}
	return nil
}

// syncDir syncs a directory, so that a file created in it stays after a
// crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("journal: sync %s: %w", dir, err)
	}
	return nil
}
