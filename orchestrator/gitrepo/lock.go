package gitrepo

import (
	"context"
	"path/filepath"
	"sync"
)

// lock takes the lock of the clone in dir.
func (r *Repos) lock(ctx context.Context, dir string) (unlock func(), err error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	return r.locks.lock(ctx, abs)
}

// gitLocks serialise the calls that read or write one clone's git
// directory: Sync, Commit, Discard and Push. Push runs while the clone's
// work tree may be in use by a run (it touches neither the work tree nor
// the index), so it may overlap with a caller's own lock of the
// directory; these locks keep its fetches, objects and refs apart from
// the others'.
type gitLocks struct {
	mu sync.Mutex
	m  map[string]chan struct{}
}

// lock waits for dir's lock or for ctx to end.
func (l *gitLocks) lock(ctx context.Context, dir string) (unlock func(), err error) {
	l.mu.Lock()
	ch, ok := l.m[dir]
	if !ok {
		ch = make(chan struct{}, 1)
		l.m[dir] = ch
	}
	l.mu.Unlock()
	select {
	case ch <- struct{}{}:
		return func() { <-ch }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
