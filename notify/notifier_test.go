package notify

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
)

// sendFunc is a Sender made of a function.
type sendFunc func(ctx context.Context, url string, m Message) error

func (f sendFunc) Send(ctx context.Context, url string, m Message) error { return f(ctx, url, m) }

// waitClock is a fake clock that tells each wait asked of it, once the
// wait is set, so that a test can check it and then advance the clock.
type waitClock struct {
	*clockwork.FakeClock
	waits chan time.Duration
}

func (c waitClock) After(d time.Duration) <-chan time.Time {
	ch := c.FakeClock.After(d)
	c.waits <- d
	return ch
}

// harness runs a Notifier on a fake clock and collects its outcomes.
type harness struct {
	n        *Notifier
	clock    waitClock
	outcomes chan Outcome
	cancel   context.CancelFunc
	done     chan struct{}
}

func newHarness(t *testing.T, s Sender, o Options) *harness {
	t.Helper()
	h := &harness{
		clock:    waitClock{FakeClock: clockwork.NewFakeClockAt(t0), waits: make(chan time.Duration, 100)},
		outcomes: make(chan Outcome, 1000),
		done:     make(chan struct{}),
	}
	o.Clock = h.clock
	o.Record = func(ctx context.Context, out Outcome) {
		if ctx.Err() != nil {
			t.Errorf("Record got a ctx that has ended: %v", ctx.Err())
		}
		h.outcomes <- out
	}
	tm, err := NewTemplates("", "")
	if err != nil {
		t.Fatal(err)
	}
	h.n = New(s, tm, o)
	return h
}

// run starts Run; the test's cleanup stops it.
func (h *harness) run(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() {
		defer close(h.done)
		h.n.Run(ctx)
	}()
	t.Cleanup(h.stop)
}

// stop ends Run and waits for it to return.
func (h *harness) stop() {
	h.cancel()
	<-h.done
}

// recv waits for a value; the bound only turns a hang into a failure.
func recv[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatal("nothing came in 10s")
		panic("unreachable")
	}
}

// none checks that nothing more is in a channel.
func none[T any](t *testing.T, ch <-chan T) {
	t.Helper()
	select {
	case v := <-ch:
		t.Fatalf("unexpected %+v", v)
	default:
	}
}

const (
	slackURL   = "slack://hook:T0KEN-S3CRET-abcdef@webhook"
	webhookURL = "generic://hooks.lab.org/in?token=W3BH00K-S3CRET"
)

func TestNotifierSendsFirstTry(t *testing.T) {
	type call struct{ url, title string }
	calls := make(chan call, 10)
	h := newHarness(t, sendFunc(func(_ context.Context, url string, m Message) error {
		calls <- call{url, m.Title}
		return nil
	}), Options{})
	h.run(t)
	h.n.Notify(spikeEvent, []string{slackURL, webhookURL, slackURL})
	h.n.Notify(spikeEvent, nil) // nobody to tell: nothing happens

	wantTitle := "[mao] spike in gh-crawler (control) at site lab-a"
	for _, url := range []string{slackURL, webhookURL} {
		if c := recv(t, calls); c.url != url || c.title != wantTitle {
			t.Errorf("sent %+v, want to %s", c, url)
		}
		o := recv(t, h.outcomes)
		want := Outcome{Kind: KindSpike, Tool: "gh-crawler", Site: "lab-a", RunID: "r-20260101-abc123", Metric: "control",
			Channel: Redact(url), Status: StatusSent, Attempts: 1, Title: wantTitle, CreatedAt: t0, FinishedAt: t0}
		if o != want {
			t.Errorf("outcome\n %+v\nwant\n %+v", o, want)
		}
	}
	h.stop()
	none(t, calls) // the repeated channel got one message
	none(t, h.outcomes)
	none(t, h.clock.waits)
}

func TestNotifierRetries(t *testing.T) {
	tests := []struct {
		name         string
		opts         Options
		failures     int // the sender fails this many times, then succeeds
		wantWaits    []time.Duration
		wantStatus   string
		wantAttempts int
	}{
		{"retries then success", Options{Attempts: 5, Backoff: time.Second, MaxBackoff: time.Minute}, 2,
			[]time.Duration{time.Second, 2 * time.Second}, StatusSent, 3},
		{"failure after all attempts", Options{Attempts: 3, Backoff: time.Second}, 99,
			[]time.Duration{time.Second, 2 * time.Second}, StatusFailed, 3},
		{"backoff capped", Options{Attempts: 5, Backoff: time.Second, MaxBackoff: 3 * time.Second}, 99,
			[]time.Duration{time.Second, 2 * time.Second, 3 * time.Second, 3 * time.Second}, StatusFailed, 5},
		{"defaults", Options{}, 99,
			[]time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second}, StatusFailed, 5},
		{"one attempt", Options{Attempts: 1}, 99, nil, StatusFailed, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h *harness
			tries := make(chan time.Time, 100)
			n := 0 // tries so far; only Run's goroutine counts them
			h = newHarness(t, sendFunc(func(_ context.Context, url string, _ Message) error {
				tries <- h.clock.Now()
				if n++; n <= tt.failures {
					return fmt.Errorf("post %s: try %d: 503 Service Unavailable", url, n)
				}
				return nil
			}), tt.opts)
			h.run(t)
			h.n.Notify(spikeEvent, []string{webhookURL})

			at := t0
			for i, want := range tt.wantWaits {
				if got := recv(t, tries); !got.Equal(at) {
					t.Fatalf("try %d at %v, want %v", i+1, got.Sub(t0), at.Sub(t0))
				}
				if got := recv(t, h.clock.waits); got != want {
					t.Fatalf("wait %d: %v, want %v", i+1, got, want)
				}
				h.clock.Advance(want)
				at = at.Add(want)
			}
			if got := recv(t, tries); !got.Equal(at) {
				t.Fatalf("last try at %v, want %v", got.Sub(t0), at.Sub(t0))
			}
			o := recv(t, h.outcomes)
			if o.Status != tt.wantStatus || o.Attempts != tt.wantAttempts || !o.FinishedAt.Equal(at) || !o.CreatedAt.Equal(t0) {
				t.Fatalf("outcome %+v, want %s after %d attempts, finished at +%v", o, tt.wantStatus, tt.wantAttempts, at.Sub(t0))
			}
			if tt.wantStatus == StatusFailed {
				wantErr := fmt.Sprintf("post %s: try %d: 503 Service Unavailable", Redact(webhookURL), tt.wantAttempts)
				if o.Error != wantErr {
					t.Errorf("error %q, want %q", o.Error, wantErr)
				}
			}
			if strings.Contains(fmt.Sprint(o), "W3BH00K-S3CRET") {
				t.Errorf("the outcome holds the channel's secret: %+v", o)
			}
			h.stop()
			none(t, h.clock.waits)
			none(t, h.outcomes)
		})
	}
}

func TestNotifierRetriesOnlyFailedChannels(t *testing.T) {
	var h *harness
	sent := make(chan string, 10)
	h = newHarness(t, sendFunc(func(_ context.Context, url string, _ Message) error {
		sent <- url
		if url == webhookURL && h.clock.Now().Equal(t0) {
			return errors.New("connection refused")
		}
		return nil
	}), Options{})
	h.run(t)
	h.n.Notify(spikeEvent, []string{webhookURL, slackURL})
	if a, b := recv(t, sent), recv(t, sent); a != webhookURL || b != slackURL {
		t.Fatalf("first round sent to %s, %s", a, b)
	}
	if o := recv(t, h.outcomes); o.Channel != Redact(slackURL) || o.Status != StatusSent || o.Attempts != 1 {
		t.Fatalf("outcome %+v", o)
	}
	h.clock.Advance(recv(t, h.clock.waits))
	if url := recv(t, sent); url != webhookURL {
		t.Fatalf("second round sent to %s", url)
	}
	if o := recv(t, h.outcomes); o.Channel != Redact(webhookURL) || o.Status != StatusSent || o.Attempts != 2 {
		t.Fatalf("outcome %+v", o)
	}
	h.stop()
	none(t, sent)
}

func TestNotifierQueueFull(t *testing.T) {
	h := newHarness(t, sendFunc(func(context.Context, string, Message) error { return nil }), Options{Queue: 1})
	first, second, third := spikeEvent, spikeEvent, spikeEvent
	first.RunID, second.RunID, third.RunID = "r-1", "r-2", "r-3"
	h.n.Notify(first, []string{slackURL})  // queued
	h.n.Notify(second, []string{slackURL}) // refused, recorded
	h.n.Notify(third, []string{slackURL})  // refused, only logged: Queue refused events are kept
	h.run(t)
	got := map[string]Outcome{}
	for range 2 {
		o := recv(t, h.outcomes)
		got[o.RunID] = o
	}
	if o := got["r-1"]; o.Status != StatusSent {
		t.Errorf("queued event: %+v", o)
	}
	if o := got["r-2"]; o.Status != StatusFailed || o.Error != ReasonQueueFull || o.Attempts != 0 ||
		o.Title != "[mao] spike in gh-crawler (control) at site lab-a" || o.Channel != Redact(slackURL) {
		t.Errorf("refused event: %+v", o)
	}
	h.stop()
	none(t, h.outcomes)
}

// TestNotifyNeverBlocks keeps the sender busy and Notifies far past the
// queue's size: every call returns, and Run, when stopped, records what
// it did not send.
func TestNotifyNeverBlocks(t *testing.T) {
	started := make(chan struct{}, 1)
	h := newHarness(t, sendFunc(func(ctx context.Context, _ string, _ Message) error {
		started <- struct{}{}
		<-ctx.Done() // a channel that never answers
		return ctx.Err()
	}), Options{Queue: 2})
	h.run(t)
	h.n.Notify(spikeEvent, []string{slackURL})
	recv(t, started)
	for range 100 {
		h.n.Notify(spikeEvent, []string{webhookURL})
	}
	h.stop()
	count := map[string]int{}
	for range 5 {
		o := recv(t, h.outcomes)
		if o.Status != StatusFailed {
			t.Fatalf("outcome %+v", o)
		}
		count[o.Error]++
	}
	none(t, h.outcomes)
	want := map[string]int{"context canceled": 1, ReasonStopped: 2, ReasonQueueFull: 2}
	for k, n := range want {
		if count[k] != n {
			t.Errorf("outcomes by error %v, want %v", count, want)
		}
	}
}

func TestNotifierShutdown(t *testing.T) {
	h := newHarness(t, sendFunc(func(_ context.Context, url string, _ Message) error {
		return fmt.Errorf("post %s: 500 Internal Server Error", url)
	}), Options{})
	h.run(t)
	h.n.Notify(spikeEvent, []string{webhookURL})
	recv(t, h.clock.waits) // the first try failed; Run waits to retry
	h.stop()
	o := recv(t, h.outcomes)
	if o.Status != StatusFailed || o.Attempts != 1 || o.Error != "post "+Redact(webhookURL)+": 500 Internal Server Error" {
		t.Fatalf("outcome %+v", o)
	}
	h.n.Notify(spikeEvent, []string{webhookURL}) // after Run: returns, logs only
	none(t, h.outcomes)
}

func TestNotifierRenderFails(t *testing.T) {
	tm, err := NewTemplates("", `{{if eq .Kind "run_failed"}}{{.Nope}}{{end}}`)
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, sendFunc(func(context.Context, string, Message) error {
		t.Error("sent a message that did not render")
		return nil
	}), Options{})
	h.n.tmpl = tm
	h.run(t)
	h.n.Notify(Event{Kind: KindRunFailed, Tool: "t", Site: "s"}, []string{slackURL})
	o := recv(t, h.outcomes)
	if o.Status != StatusFailed || !strings.Contains(o.Error, "render body") || o.Title != "run of t failed at site s" {
		t.Fatalf("outcome %+v", o)
	}
}

func TestUnique(t *testing.T) {
	got := unique([]string{"a", "b", "a", "c", "b"})
	if !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("got %v", got)
	}
}

// channelSend times a send of an Event on a buffered channel, received by
// another goroutine: the physical baseline of handing an event over.
func channelSend() time.Duration {
	const n = 100000
	ch := make(chan Event, 1024)
	done := make(chan struct{})
	go func() {
		for range ch {
		}
		close(done)
	}()
	start := time.Now()
	for range n {
		ch <- spikeEvent
	}
	per := time.Since(start) / n
	close(ch)
	<-done
	return per
}

// BenchmarkNotify measures Notify, the call on a run's critical path:
// with Run delivering to a sender that answers at once (Notify queues the
// event, or, when Run is behind, refuses it: dropped/op says how often),
// and with a queue that is always full.
func BenchmarkNotify(b *testing.B) {
	tm, err := NewTemplates("", "")
	if err != nil {
		b.Fatal(err)
	}
	channels := []string{slackURL, webhookURL}
	b.Run("delivering", func(b *testing.B) {
		var dropped atomic.Int64
		n := New(sendFunc(func(context.Context, string, Message) error { return nil }), tm, Options{Queue: 1024,
			Record: func(_ context.Context, o Outcome) {
				if o.Error == ReasonQueueFull {
					dropped.Add(1)
				}
			}})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			n.Run(ctx)
		}()
		base := channelSend()
		b.ReportAllocs()
		start := time.Now()
		for b.Loop() {
			n.Notify(spikeEvent, channels)
		}
		per := time.Since(start) / time.Duration(b.N)
		b.StopTimer()
		cancel()
		<-done
		b.ReportMetric(float64(dropped.Load())/float64(len(channels))/float64(b.N), "dropped/op")
		b.ReportMetric(float64(per)/float64(base), "x-chan")
		b.Logf("Notify: %s per call; a buffered channel send of the event (the least a hand-over costs): %s; ratio %.1f; target <= 5ms",
			per, base, float64(per)/float64(base))
	})
	b.Run("queue full", func(b *testing.B) {
		n := New(sendFunc(func(context.Context, string, Message) error { return nil }), tm, Options{Queue: 1})
		n.Notify(spikeEvent, channels)
		b.ReportAllocs()
		for b.Loop() {
			n.Notify(spikeEvent, channels)
		}
	})
}
