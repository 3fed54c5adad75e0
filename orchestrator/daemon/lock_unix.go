//go:build unix

package daemon

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockDataDir locks the data directory's LockFile for as long as the
// orchestrator runs (the lock goes with the process, also when it is
// killed); a second orchestrator on the same directory is refused.
func lockDataDir(dataDir string, stack *cleanup) error {
	path := filepath.Join(dataDir, LockFile)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("lock the data directory: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return fmt.Errorf("another orchestrator runs with the data directory %s (it holds %s)", dataDir, path)
		}
		return fmt.Errorf("lock the data directory: %w", err)
	}
	stack.push(func() { f.Close() })
	return nil
}
