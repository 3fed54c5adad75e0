package federation

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
)

// ImageChecker tells whether an image can run at this site;
// dockerrt.Runtime.CheckImage is one.
type ImageChecker interface {
	CheckImage(ctx context.Context, ref string) error
}

// Clock tells the time and waits; clockwork.Clock satisfies it.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
	NewTimer(d time.Duration) clockwork.Timer
}

// How long Images trusts an answer, and how long one check may take.
const (
	usableFor   = time.Minute      // an image that was here stays a while
	unusableFor = 10 * time.Second // one that was not may be built or pushed soon
	checkFor    = 5 * time.Second
)

// Images remembers, for a while, whether each image can run at this site,
// so that deciding eligibility does not cost a Docker request per tick.
type Images struct {
	check ImageChecker
	clock Clock
	log   *slog.Logger

	mu      sync.Mutex
	answers map[string]answer
}

type answer struct {
	err   error // nil: usable
	until time.Time
}

// NewImages returns an Images that asks check.
func NewImages(check ImageChecker, clock Clock, log *slog.Logger) *Images {
	return &Images{check: check, clock: clock, log: log, answers: map[string]answer{}}
}

// CheckImage returns nil when the image is here or its registry offers
// it, else why not (the engine did not answer, the registry does not have
// it, ...): the checker's answer, remembered for a while.
func (im *Images) CheckImage(ctx context.Context, image string) error {
	now := im.clock.Now()
	im.mu.Lock()
	a, ok := im.answers[image]
	im.mu.Unlock()
	if ok && now.Before(a.until) {
		return a.err
	}
	ctx, cancel := context.WithTimeout(ctx, checkFor)
	defer cancel()
	err := im.check.CheckImage(ctx, image)
	a = answer{err: err, until: now.Add(usableFor)}
	if err != nil {
		a.until = now.Add(unusableFor)
		im.log.Info("image not usable here; this site is not eligible for its runs", "image", image, "err", err)
	}
	im.mu.Lock()
	im.answers[image] = a
	im.mu.Unlock()
	return a.err
}
