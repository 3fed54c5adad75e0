//go:build unix

package detector

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// A FIFO would block a reader forever; Extract must refuse it unopened.
func TestExtractFIFO(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(dir, "control-1.csv"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := Extract(dir, Config{})
	if err == nil || !strings.Contains(err.Error(), "control-1.csv: not a regular file") {
		t.Fatalf("Extract() = %v, %v", got, err)
	}
}
