package gitrepo

import (
	"context"
	"path/filepath"
)

// lock takes the lock of the clone in dir (Repos.locks): it serialises
// the calls that read or write one clone's git directory: Sync, Commit,
// Discard and Push. Push runs while the clone's work tree may be in use
// by a run (it touches neither the work tree nor the index), so it may
// overlap with a caller's own lock of the directory; these locks keep its
// fetches, objects and refs apart from the others'.
func (r *Repos) lock(ctx context.Context, dir string) (unlock func(), err error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	return r.locks.Lock(ctx, abs)
}
