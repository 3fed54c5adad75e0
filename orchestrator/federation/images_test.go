package federation_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/mao-research/mao/orchestrator/federation"
)

func TestImagesRemember(t *testing.T) {
	tests := []struct {
		image  string
		usable bool
		ttl    time.Duration // how long the answer is trusted
	}{
		{"here:1", true, time.Minute},
		{"missing:1", false, 10 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.image, func(t *testing.T) {
			ctx := context.Background()
			clock := clockwork.NewFakeClockAt(start)
			checker := &fakeChecker{missing: map[string]bool{"missing:1": true}}
			images := federation.NewImages(checker, clock, slog.New(slog.DiscardHandler))
			steps := []struct {
				advance time.Duration
				checks  int // the checks so far
			}{
				{0, 1},
				{0, 1},
				{tc.ttl - time.Second, 1},
				{time.Second, 2}, // the answer has expired
				{tc.ttl - time.Second, 2},
				{time.Second, 3},
			}
			for i, st := range steps {
				clock.Advance(st.advance)
				if got := images.CheckImage(ctx, tc.image) == nil; got != tc.usable {
					t.Fatalf("step %d: usable %v, want %v", i, got, tc.usable)
				}
				if n := checker.count(tc.image); n != st.checks {
					t.Fatalf("step %d: %d checks, want %d", i, n, st.checks)
				}
			}
			// Another image has an answer of its own.
			if images.CheckImage(ctx, "other:1") != nil || checker.count("other:1") != 1 {
				t.Fatalf("other image: %d checks", checker.count("other:1"))
			}
		})
	}
}
