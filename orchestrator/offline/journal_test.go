package offline

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mao-research/mao/api"
)

var at = time.Date(2026, 12, 2, 6, 0, 0, 0, time.UTC)

func entryLine(t *testing.T, seq int64, id string, state api.RunState) string {
	t.Helper()
	b, err := json.Marshal(Entry{Seq: seq, At: at, Op: OpSave, Run: api.Run{ID: id, State: state}})
	if err != nil {
		t.Fatal(err)
	}
	return string(b) + "\n"
}

// TestJournalOpen checks what a site finds in its journal after a crash:
// every entry that was synced, in the order written, whatever a crash did
// to the end of the file: a last line cut short, or garbage with no
// newline, or not an entry at all (zeros a file system left), is dropped
// and cut from the file, and not fatal; a line that is not an entry with
// entries after it is damage, and Open says so rather than drop records.
func TestJournalOpen(t *testing.T) {
	a1, a2, b1 := entryLine(t, 1, "a", api.StatePending), entryLine(t, 2, "a", api.StateRunning), entryLine(t, 3, "b", api.StatePending)
	tests := []struct {
		name    string
		content string // the file; "" for none
		ids     []string
		states  []api.RunState
		torn    int
		damaged bool
	}{
		{"no file", "", nil, nil, 0, false},
		{"whole", a1 + a2 + b1, []string{"a", "a", "b"}, []api.RunState{api.StatePending, api.StateRunning, api.StatePending}, 0, false},
		{"last line cut short", a1 + a2 + b1[:len(b1)/2], []string{"a", "a"}, []api.RunState{api.StatePending, api.StateRunning},
			len(b1) / 2, false},
		{"only a cut line", a1[:10], nil, nil, 10, false},
		{"newline missing", a1 + strings.TrimSuffix(a2, "\n"), []string{"a"}, []api.RunState{api.StatePending}, len(a2) - 1, false},
		{"zeros at the end", a1 + "\x00\x00\x00\x00\n\x00\x00", []string{"a"}, []api.RunState{api.StatePending}, 7, false},
		{"not an entry at the end", a1 + "{\"seq\":0}\n", []string{"a"}, []api.RunState{api.StatePending}, 10, false},
		{"damage in the middle", a1 + "garbage\n" + a2, nil, nil, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "journal")
			if tc.content != "" {
				if err := os.MkdirAll(dir, 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, JournalFile), []byte(tc.content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			j, torn, err := Open(dir)
			if tc.damaged {
				if err == nil || !strings.Contains(err.Error(), "line 2") {
					t.Fatalf("Open of a damaged journal: %v, want an error naming line 2", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer j.Close()
			var ids []string
			var states []api.RunState
			for _, e := range j.Entries() {
				ids, states = append(ids, e.Run.ID), append(states, e.Run.State)
			}
			if strings.Join(ids, ",") != strings.Join(tc.ids, ",") || len(states) != len(tc.states) || torn != tc.torn {
				t.Fatalf("entries %v %v, torn %d; want %v %v, torn %d", ids, states, torn, tc.ids, tc.states, tc.torn)
			}
			for i := range states {
				if states[i] != tc.states[i] {
					t.Fatalf("states %v, want %v", states, tc.states)
				}
			}
			// The torn end is cut: the next entry starts on a line of its own,
			// and a second Open finds it after the others.
			if _, err := j.Append(OpSave, api.Run{ID: "c", State: api.StateSucceeded}, at); err != nil {
				t.Fatal(err)
			}
			j.Close()
			again, torn, err := Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer again.Close()
			got := again.Entries()
			if torn != 0 || len(got) != len(tc.ids)+1 || got[len(got)-1].Run.ID != "c" || got[len(got)-1].Seq <= int64(len(tc.ids)) {
				t.Fatalf("after an append and a second Open: %d entries (torn %d), last %+v", len(got), torn, got[len(got)-1])
			}
		})
	}
}

// TestJournalReplayOrder checks that entries come back in the order they
// were appended, each once, across a crash (a new Open before they were
// all done), and that the file is emptied only once every entry is done.
func TestJournalReplayOrder(t *testing.T) {
	dir := t.TempDir()
	j, _, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	states := []api.RunState{api.StatePending, api.StateRunning, api.StateSucceeded}
	for i, id := range []string{"a", "b", "a", "c", "a", "b"} {
		if _, err := j.Append(OpSave, api.Run{ID: id, State: states[min(i/2, 2)]}, at); err != nil {
			t.Fatal(err)
		}
	}
	// Two entries are replayed; then the site crashes.
	for range 2 {
		e, ok := j.Next()
		if !ok {
			t.Fatal("no entry")
		}
		if err := j.Done(e.Seq); err != nil {
			t.Fatal(err)
		}
	}
	if j.Len() != 4 {
		t.Fatalf("Len %d, want 4", j.Len())
	}
	j.Close()
	j, _, err = Open(dir) // the next life replays them all again: the replay makes that harmless
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	var order []string
	for {
		e, ok := j.Next()
		if !ok {
			break
		}
		order = append(order, e.Run.ID)
		if info, err := os.Stat(filepath.Join(dir, JournalFile)); err != nil || info.Size() == 0 {
			t.Fatalf("the journal was emptied before every entry was done: %v", err)
		}
		if err := j.Done(e.Seq); err != nil {
			t.Fatal(err)
		}
	}
	if got := strings.Join(order, ","); got != "a,b,a,c,a,b" {
		t.Fatalf("replay order %s", got)
	}
	if info, err := os.Stat(filepath.Join(dir, JournalFile)); err != nil || info.Size() != 0 {
		t.Fatalf("journal after every entry was done: %v %v", info.Size(), err)
	}
	if err := j.Done(99); err == nil {
		t.Fatal("Done of an entry that is not next: no error")
	}
}
