package daemon

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/mao-research/mao/internal/randid"
)

// InstanceFile is the file in the data directory that holds the site's
// instance ID: the ID of the data directory, which every life of the site
// publishes in its record (api.Site.Instance). A site that restarts after a
// crash knows its previous life's record by it and revokes that life's
// lease instead of waiting for it to expire.
const InstanceFile = "instance"

// LockFile is the file in the data directory that a running orchestrator
// holds locked, so that no second one uses the directory: a record that
// carries the directory's instance is then surely a previous life's.
const LockFile = "orchestrator.lock"

// siteInstance returns the data directory's instance ID, creating it (and
// syncing it to disk) on the first start.
func siteInstance(dataDir string) (string, error) {
	path := filepath.Join(dataDir, InstanceFile)
	b, err := os.ReadFile(path)
	if err == nil && strings.TrimSpace(string(b)) != "" {
		return strings.TrimSpace(string(b)), nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("site instance: %w", err)
	}
	id := randid.Hex(8)
	if err := writeSynced(path, []byte(id+"\n")); err != nil {
		return "", fmt.Errorf("site instance: %w", err)
	}
	return id, nil
}

// writeSynced writes data to path through a synced temporary file renamed
// into place, and syncs the directory, so that a crash leaves the old
// content or the new, never part of it.
func writeSynced(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // gone once renamed
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	dir, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer dir.Close()
	return dir.Sync()
}
