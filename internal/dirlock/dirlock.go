package dirlock

import (
	"context"
	"sync"
)

// Locks is a lock per key; the zero value is ready to use.
type Locks struct {
	mu sync.Mutex
	m  map[string]chan struct{}
}

// Lock waits for key's lock or for ctx to end (its error).
func (l *Locks) Lock(ctx context.Context, key string) (unlock func(), err error) {
	l.mu.Lock()
	if l.m == nil {
		l.m = map[string]chan struct{}{}
	}
	ch, ok := l.m[key]
	if !ok {
		ch = make(chan struct{}, 1)
		l.m[key] = ch
	}
	l.mu.Unlock()
	select {
	case ch <- struct{}{}:
		return func() { <-ch }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
