package notify

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
)

// Outcome is what became of one notification to one channel.
type Outcome struct {
	ID                        string // empty: the Record func's store gives one
	Kind                      string
	Tool, Site, RunID, Metric string
	Channel                   string // the channel's URL, redacted
	Status                    string // StatusSent or StatusFailed
	Attempts                  int    // sends tried; 0 when none was
	Error                     string // the last error, redacted
	Title                     string
	CreatedAt, FinishedAt     time.Time // when Notify was called; when the outcome was known
}

// Outcome statuses.
const (
	StatusSent   = "sent"
	StatusFailed = "failed"
)

// Errors of the outcomes of events that were never sent.
const (
	ReasonQueueFull = "queue full"
	ReasonStopped   = "notifier stopped before sending"
)

// Clock tells the time and waits; clockwork's clocks are ones.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

// Default option values.
const (
	DefaultAttempts   = 5
	DefaultBackoff    = time.Second
	DefaultMaxBackoff = time.Minute
	DefaultTimeout    = 30 * time.Second
	DefaultQueue      = 256
)

// Options configure a Notifier.
type Options struct {
	Attempts   int           // sends tried per channel; default 5
	Backoff    time.Duration // wait after the first failed round of sends, doubling after each; default 1s
	MaxBackoff time.Duration // the longest wait; default 1m
	Timeout    time.Duration // bound of one send, and of one Record, in real time; default 30s
	Queue      int           // events waiting to be sent; default 256
	Clock      Clock         // default the real clock
	Log        *slog.Logger  // default none
	// Record, if set, is told each Outcome, from Run's goroutine, one at
	// a time. Its ctx carries Run's values but not its end: it is bounded
	// by Timeout, so that a stop does not cut the write of an outcome.
	Record func(context.Context, Outcome)
}

// Notifier delivers events asynchronously: Notify queues an event and
// returns at once, and Run, on a goroutine its caller owns, renders each
// event and sends it to each of its channels, retrying with exponential
// backoff, and records each Outcome.
//
// Events are sent one after another: a slow channel delays the events
// queued behind it, never the caller of Notify.
type Notifier struct {
	sender Sender
	tmpl   *Templates
	o      Options
	queue  chan job
	wake   chan struct{} // tells Run that dropped has events

	mu      sync.Mutex
	stopped bool  // Run has returned
	dropped []job // events refused by a full queue, not yet recorded
}

// job is an event queued for its channels.
type job struct {
	e        Event
	channels []string
	at       time.Time
}

// New returns a Notifier that sends with s and renders with t; Run makes
// it deliver.
func New(s Sender, t *Templates, o Options) *Notifier {
	if o.Attempts <= 0 {
		o.Attempts = DefaultAttempts
	}
	if o.Backoff <= 0 {
		o.Backoff = DefaultBackoff
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Queue <= 0 {
		o.Queue = DefaultQueue
	}
	if o.Clock == nil {
		o.Clock = clockwork.NewRealClock()
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Record == nil {
		o.Record = func(context.Context, Outcome) {}
	}
	return &Notifier{sender: s, tmpl: t, o: o, queue: make(chan job, o.Queue), wake: make(chan struct{}, 1)}
}

// Notify queues an event for its channels and returns at once; it never
// blocks and never fails. When the queue is full, the event is logged
// and recorded as failed with ReasonQueueFull (by Run, up to Queue such
// events; past that they are only logged). After Run has returned, events
// are only logged.
func (n *Notifier) Notify(e Event, channels []string) {
	if len(channels) == 0 {
		return
	}
	j := job{e: e, channels: unique(channels), at: n.o.Clock.Now()}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.stopped {
		n.o.Log.Warn("notifier stopped; not sending", "kind", e.Kind, "tool", e.Tool, "run", e.RunID)
		return
	}
	select {
	case n.queue <- j:
		return
	default:
	}
	n.o.Log.Error("notification queue full; not sending", "kind", e.Kind, "tool", e.Tool, "run", e.RunID)
	if len(n.dropped) < n.o.Queue {
		n.dropped = append(n.dropped, j)
	}
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// unique returns the channels without repeats, in their order: a channel
// that a site and a tool both name gets the message once.
func unique(channels []string) []string {
	out := make([]string, 0, len(channels))
	for _, ch := range channels {
		if !slices.Contains(out, ch) {
			out = append(out, ch)
		}
	}
	return out
}

// Run delivers queued events until ctx ends. Then it records the send in
// progress, if any, with its last error, and the events still queued as
// failed with ReasonStopped, and returns. Call it once.
func (n *Notifier) Run(ctx context.Context) {
	defer n.stop(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-n.queue:
			n.deliver(ctx, j)
		case <-n.wake:
			n.recordDropped(ctx)
		}
	}
}

// stop marks the notifier stopped and records what it will never send.
func (n *Notifier) stop(ctx context.Context) {
	n.mu.Lock()
	n.stopped = true
	n.mu.Unlock()
	n.recordDropped(ctx)
	for {
		select {
		case j := <-n.queue:
			n.failAll(ctx, j, "", ReasonStopped)
		default:
			return
		}
	}
}

func (n *Notifier) recordDropped(ctx context.Context) {
	n.mu.Lock()
	dropped := n.dropped
	n.dropped = nil
	n.mu.Unlock()
	for _, j := range dropped {
		n.failAll(ctx, j, "", ReasonQueueFull)
	}
}

// failAll records an event that was never sent as failed on each channel.
func (n *Notifier) failAll(ctx context.Context, j job, title, reason string) {
	if title == "" {
		if m, err := n.tmpl.Render(j.e); err == nil {
			title = m.Title
		}
	}
	for _, ch := range j.channels {
		n.record(ctx, j, ch, title, 0, reason)
	}
}

// deliver sends an event to its channels: each round sends to the
// channels not yet done, then waits, longer each round, until every
// channel is done, Attempts rounds were tried, or ctx ends.
func (n *Notifier) deliver(ctx context.Context, j job) {
	m, err := n.tmpl.Render(j.e)
	if err != nil {
		n.o.Log.Error("render a notification", "kind", j.e.Kind, "tool", j.e.Tool, "err", err)
		n.failAll(ctx, j, j.e.Summary(), err.Error())
		return
	}
	pending := j.channels
	lastErr := make(map[string]string, len(pending))
	tries := make(map[string]int, len(pending))
	for round := 1; len(pending) > 0 && ctx.Err() == nil; round++ {
		var failed []string
		for i, ch := range pending {
			if ctx.Err() != nil {
				failed = append(failed, pending[i:]...)
				break
			}
			tries[ch]++
			if err := n.send(ctx, ch, m); err != nil {
				lastErr[ch] = Scrub(ch, err.Error())
				n.o.Log.Warn("send a notification", "channel", Redact(ch), "attempt", round, "err", lastErr[ch])
				failed = append(failed, ch)
				continue
			}
			n.record(ctx, j, ch, m.Title, tries[ch], "")
		}
		pending = failed
		if len(pending) == 0 || round == n.o.Attempts {
			break
		}
		select {
		case <-n.o.Clock.After(n.backoff(round)):
		case <-ctx.Done():
		}
	}
	for _, ch := range pending {
		reason := lastErr[ch]
		if reason == "" {
			reason = ReasonStopped
		}
		n.o.Log.Error("notification failed", "channel", Redact(ch), "attempts", tries[ch], "err", reason)
		n.record(ctx, j, ch, m.Title, tries[ch], reason)
	}
}

// send tries one send, bounded by Timeout.
func (n *Notifier) send(ctx context.Context, ch string, m Message) error {
	ctx, cancel := context.WithTimeout(ctx, n.o.Timeout)
	defer cancel()
	return n.sender.Send(ctx, ch, m)
}

// backoff is the wait after the given round of sends failed.
func (n *Notifier) backoff(round int) time.Duration {
	d := n.o.Backoff
	for i := 1; i < round && d < n.o.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, n.o.MaxBackoff)
}

// record tells Record an outcome; failed when reason is set.
func (n *Notifier) record(ctx context.Context, j job, ch, title string, attempts int, reason string) {
	o := Outcome{Kind: j.e.Kind, Tool: j.e.Tool, Site: j.e.Site, RunID: j.e.RunID, Metric: j.e.Metric,
		Channel: Redact(ch), Status: StatusSent, Attempts: attempts, Error: reason, Title: title,
		CreatedAt: j.at, FinishedAt: n.o.Clock.Now()}
	if reason != "" {
		o.Status = StatusFailed
	}
	// Detached from Run's ctx, even while it lives: a stop that comes
	// during the write must not lose the outcome of a send that was made.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), n.o.Timeout)
	defer cancel()
	n.o.Record(ctx, o)
}
