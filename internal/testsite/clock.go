package testsite

import (
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
)

// Clock is a site's clock in a test: the time it tells stands still but
// for Advance, so that what the site records (runs' times, next ticks,
// expiries) is the same on every run, while its timers, tickers and
// sleeps are the real clock's, so that the waits the site times with it
// (retries, relists, backoffs) go on as in production. Advance fires no
// timer.
type Clock struct {
	clockwork.Clock // the real clock, for every wait

	mu  sync.Mutex
	now time.Time
}

// NewClock returns a Clock that tells the time at.
func NewClock(at time.Time) *Clock {
	return &Clock{Clock: clockwork.NewRealClock(), now: at}
}

// Now is the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Since is the time elapsed since t, by the clock's time.
func (c *Clock) Since(t time.Time) time.Duration { return c.Now().Sub(t) }

// Until is the time until t, by the clock's time.
func (c *Clock) Until(t time.Time) time.Duration { return t.Sub(c.Now()) }

// Advance moves the clock's time forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}
