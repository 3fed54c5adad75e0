package dirlock_test

import (
	"context"
	"errors"
	"testing"

	"github.com/mao-research/mao/internal/dirlock"
)

// TestLock: one holder per key at a time, other keys are free, a waiter
// gives up when its context ends, and an unlocked key is taken again.
func TestLock(t *testing.T) {
	var l dirlock.Locks
	ctx := context.Background()
	unlockA, err := l.Lock(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	unlockB, err := l.Lock(ctx, "b")
	if err != nil {
		t.Fatalf("another key: %v", err)
	}
	unlockB()
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := l.Lock(cancelled, "a"); !errors.Is(err, context.Canceled) {
		t.Fatalf("a held key with an ended context: %v", err)
	}
	got := make(chan struct{})
	go func() {
		unlock, err := l.Lock(ctx, "a")
		if err == nil {
			unlock()
		}
		close(got)
	}()
	unlockA()
	<-got
}
