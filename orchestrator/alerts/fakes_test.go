package alerts

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/notify"
	"github.com/mao-research/mao/toolspec"
)

var (
	_ Series        = (*fakeSeries)(nil)
	_ States        = (*fakeStates)(nil)
	_ Tools         = (*fakeTools)(nil)
	_ Notifier      = (*fakeNotifier)(nil)
	_ Recorder      = (*fakeRecorder)(nil)
	_ notify.Sender = (*fakeSender)(nil)
	_ Clock         = clockwork.NewFakeClock()
)

// t0 is the fake clock's start and the runs' creation time.
var t0 = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

const (
	testTool = "crawler"
	testSite = "lab-a"
)

// fakeSeries keeps series in memory, as the store does: fn sees a copy of
// the stored series, and the result keeps its newest max points.
type fakeSeries struct {
	mu     sync.Mutex
	series map[string]api.Series // by tool/site/metric
	maxes  []int                 // the max of each call
	// conflict, when set, makes the next call act like a lost
	// compare-and-swap: fn runs, its result is discarded, conflict changes
	// the stored series (another writer), and fn runs again.
	conflict func(api.Series) api.Series
	fnCalls  int
	// errBefore fails a call before fn runs (the read failed); errAfter
	// after it (the write failed).
	errBefore, errAfter error
}

func newFakeSeries() *fakeSeries { return &fakeSeries{series: map[string]api.Series{}} }

func seriesKey(tool, site, metric string) string { return tool + "/" + site + "/" + metric }

func (f *fakeSeries) UpdateSeries(ctx context.Context, tool, site, metric string, max int,
	fn func(api.Series) (api.Series, error)) (api.Series, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.maxes = append(f.maxes, max)
	if f.errBefore != nil {
		return api.Series{}, f.errBefore
	}
	key := seriesKey(tool, site, metric)
	cur := f.series[key]
	cur.Tool, cur.Site, cur.Metric = tool, site, metric
	if f.conflict != nil {
		f.fnCalls++
		if _, err := fn(cloneSeries(cur)); err != nil {
			return api.Series{}, err
		}
		cur = f.conflict(cloneSeries(cur))
		f.conflict = nil
	}
	f.fnCalls++
	next, err := fn(cloneSeries(cur))
	if err != nil {
		return api.Series{}, err
	}
	if len(next.Points) > max {
		next.Points = next.Points[len(next.Points)-max:]
	}
	if f.errAfter != nil {
		return api.Series{}, f.errAfter
	}
	f.series[key] = cloneSeries(next)
	return next, nil
}

func (f *fakeSeries) get(tool, site, metric string) api.Series {
	f.mu.Lock()
	defer f.mu.Unlock()
	return cloneSeries(f.series[seriesKey(tool, site, metric)])
}

func (f *fakeSeries) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.maxes)
}

func cloneSeries(s api.Series) api.Series {
	s.Points = slices.Clone(s.Points)
	return s
}

// fakeStates keeps notification states in memory. Like etcd, it fails on
// a context that has ended when honourCtx is set.
type fakeStates struct {
	mu     sync.Mutex
	states map[string]notify.State // by tool/scope
	scopes []string                // the tool/scope of each call
	// conflicts, by tool/scope, make the next call on that scope act like
	// a lost compare-and-swap: fn runs, its result is discarded, the
	// conflict changes the stored state (another site), and fn runs again.
	conflicts map[string]func(notify.State) notify.State
	fnCalls   int
	err       error
	honourCtx bool
}

func newFakeStates() *fakeStates {
	return &fakeStates{states: map[string]notify.State{}, conflicts: map[string]func(notify.State) notify.State{}}
}

func (f *fakeStates) UpdateNotifyState(ctx context.Context, tool, scope string,
	fn func(notify.State) notify.State) (before, after notify.State, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.scopes = append(f.scopes, tool+"/"+scope)
	if f.honourCtx && ctx.Err() != nil {
		return before, after, fmt.Errorf("update notify state: %w", ctx.Err())
	}
	if f.err != nil {
		return before, after, f.err
	}
	key := tool + "/" + scope
	cur := f.states[key]
	if conflict, ok := f.conflicts[key]; ok {
		f.fnCalls++
		fn(cur)
		cur = conflict(cur)
		delete(f.conflicts, key)
	}
	f.fnCalls++
	next := fn(cur)
	f.states[key] = next
	return cur, next, nil
}

func (f *fakeStates) state(tool, scope string) notify.State {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.states[tool+"/"+scope]
}

func (f *fakeStates) calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.scopes)
}

var errNoTool = errors.New("no such tool")

type fakeTools map[string]toolspec.Tool

func (f fakeTools) Tool(_ context.Context, name string) (toolspec.Tool, error) {
	t, ok := f[name]
	if !ok {
		return toolspec.Tool{}, fmt.Errorf("tool %s: %w", name, errNoTool)
	}
	return t, nil
}

// notified is one Notify call.
type notified struct {
	e        notify.Event
	channels []string
}

// fakeNotifier sends each Notify call on a channel.
type fakeNotifier struct{ calls chan notified }

func newFakeNotifier() *fakeNotifier { return &fakeNotifier{calls: make(chan notified, 4096)} }

func (f *fakeNotifier) Notify(e notify.Event, channels []string) {
	f.calls <- notified{e: e, channels: slices.Clone(channels)}
}

// pending returns the calls made so far, without waiting.
func (f *fakeNotifier) pending() []notified {
	var out []notified
	for {
		select {
		case n := <-f.calls:
			out = append(out, n)
		default:
			return out
		}
	}
}

// kinds returns the kinds of the calls made so far, without waiting.
func (f *fakeNotifier) kinds() []string {
	var out []string
	for _, n := range f.pending() {
		out = append(out, n.e.Kind)
	}
	return out
}

// fakeRecorder records outcomes with IDs n-1, n-2, ...; like the store,
// it returns the outcome with its ID on an error too.
type fakeRecorder struct {
	mu    sync.Mutex
	saved []api.Notification
	keeps []int
	err   error
}

func (f *fakeRecorder) RecordNotification(_ context.Context, n api.Notification, keep int) (api.Notification, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.keeps = append(f.keeps, keep)
	n.ID = fmt.Sprintf("n-%d", len(f.keeps))
	if f.err != nil {
		return n, f.err
	}
	f.saved = append(f.saved, n)
	return n, nil
}

// sent is one Send call.
type sent struct {
	url         string
	m           notify.Message
	hasDeadline bool
}

// fakeSender records sends and fails those to the URLs in fail.
type fakeSender struct {
	mu   sync.Mutex
	sent []sent
	fail map[string]error
}

func (f *fakeSender) Send(ctx context.Context, url string, m notify.Message) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := ctx.Deadline()
	f.sent = append(f.sent, sent{url: url, m: m, hasDeadline: ok})
	return f.fail[url]
}

// syncBuffer is a log destination safe for several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testLog returns a logger and what it wrote.
func testLog() (*slog.Logger, *syncBuffer) {
	var buf syncBuffer
	return slog.New(slog.NewTextHandler(&buf, nil)), &buf
}

// env is an Alerts with its fakes.
type env struct {
	a        *Alerts
	series   *fakeSeries
	states   *fakeStates
	tools    fakeTools
	notifier *fakeNotifier
	clock    *clockwork.FakeClock
	log      *syncBuffer
}

// newEnv returns Alerts over fakes, with the site channels given and the
// test tool, whose own channel is tool://hook.
func newEnv(t *testing.T, opts Options) *env {
	t.Helper()
	log, buf := testLog()
	e := &env{series: newFakeSeries(), states: newFakeStates(), notifier: newFakeNotifier(),
		clock: clockwork.NewFakeClockAt(t0), log: buf,
		tools: fakeTools{testTool: {Name: testTool, Notify: []string{"tool://hook"}}}}
	opts.Site, opts.Clock, opts.Log = testSite, e.clock, log
	e.a = New(e.series, e.states, e.tools, e.notifier, opts)
	return e
}

func ptr(v float64) *float64 { return &v }

// toolWithChannels is the test tool with its own channels.
func toolWithChannels(channels []string) toolspec.Tool {
	return toolspec.Tool{Name: testTool, Notify: channels}
}
