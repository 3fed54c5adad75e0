//go:build unix

package gitrepo_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/mao-research/mao/orchestrator/gitrepo"
)

// TestSpecialFiles: a fifo in the output never makes the orchestrator
// block on it (it is never opened): unignored, it is refused and
// discarded; ignored, it is left alone.
func TestSpecialFiles(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		fifo        string // where the run makes a fifo
		refused     bool
		wantFiles   []string // committed, or else discarded
		keptByRules bool     // an ignored fifo Discard leaves alone
	}{
		{name: "new fifo", fifo: "out/pipe", refused: true, wantFiles: []string{"new.csv", "out/pipe"}},
		{name: "fifo in place of a tracked file", fifo: "keep.txt", refused: true, wantFiles: []string{"keep.txt", "new.csv"}},
		{name: "ignored fifo", fifo: "x.tmp", wantFiles: []string{"new.csv"}, keptByRules: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := gitrepo.New(gitrepo.Options{})
			dir, head := cloned(t, r)
			writeFile(t, dir, "new.csv", "1")
			p := filepath.Join(dir, filepath.FromSlash(tt.fifo))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			os.Remove(p)
			if err := syscall.Mkfifo(p, 0o644); err != nil {
				t.Fatal(err)
			}
			_, files, err := r.Commit(context.Background(), dir, "run", nil)
			var refused *gitrepo.OutputError
			switch {
			case tt.refused && (!errors.As(err, &refused) || refused.Path != tt.fifo || !strings.Contains(err.Error(), "named pipe")):
				t.Fatalf("Commit error = %v, want a refusal of the fifo", err)
			case tt.refused:
				if h := clonedHead(t, dir); h != head {
					t.Errorf("HEAD moved to %s", h)
				}
				if files, err = r.Discard(context.Background(), dir); err != nil {
					t.Fatal(err)
				}
			case err != nil:
				t.Fatal(err)
			}
			if !slices.Equal(files, tt.wantFiles) {
				t.Errorf("files = %q, want %q", files, tt.wantFiles)
			}
			fi, err := os.Lstat(p)
			if kept := err == nil && fi.Mode()&os.ModeNamedPipe != 0; kept != tt.keptByRules {
				t.Errorf("fifo kept = %v, want %v", kept, tt.keptByRules)
			}
			if tt.refused && readFile(t, dir, "keep.txt") != "keep" {
				t.Error("keep.txt not restored")
			}
		})
	}
}
