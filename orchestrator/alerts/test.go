package alerts

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/notify"
	"github.com/mao-research/mao/toolspec"
)

// Recorder stores notification outcomes.
type Recorder interface {
	RecordNotification(ctx context.Context, n api.Notification, keep int) (api.Notification, error)
}

// KeepNotifications is how many outcomes etcd keeps, newest first.
const KeepNotifications = 1000

// Outcome turns a notify outcome into its stored record.
func Outcome(o notify.Outcome) api.Notification {
	return api.Notification{ID: o.ID, Kind: o.Kind, Tool: o.Tool, Site: o.Site, Run: o.RunID, Metric: o.Metric,
		Channel: o.Channel, Status: o.Status, Attempts: o.Attempts, Error: o.Error, Title: o.Title,
		CreatedAt: o.CreatedAt, FinishedAt: o.FinishedAt}
}

// Tester sends test messages now, each tried once, and records them.
type Tester struct {
	Sender    notify.Sender
	Templates *notify.Templates
	Recorder  Recorder
	Site      string
	Channels  []string // the site's channels
	Clock     Clock
}

// errNoChannels is the answer of a test with no URL at a site without
// channels.
func errNoChannels() error {
	return &toolspec.ValidationError{Kind: "notification test", Fields: []toolspec.FieldError{{
		Field: "url", Problem: "is required: this site has no [notify] urls"}}}
}

// Test sends a test message to url, or, when it is empty, to each of the
// site's channels, and returns each outcome (a failed send is an outcome,
// not an error).
func (t *Tester) Test(ctx context.Context, url string) ([]api.Notification, error) {
	channels := t.Channels
	if url != "" {
		channels = []string{url}
	}
	if len(channels) == 0 {
		return nil, errNoChannels()
	}
	e := notify.Event{Kind: notify.KindTest, Site: t.Site, Time: t.Clock.Now().UTC(),
		Reason: "someone ran maoctl notify test: this channel works"}
	msg, err := t.Templates.Render(e)
	if err != nil {
		return nil, fmt.Errorf("render the test message with the [notify] templates: %w", err)
	}
	out := make([]api.Notification, 0, len(channels))
	for _, ch := range channels {
		n := api.Notification{Kind: notify.KindTest, Site: t.Site, Channel: notify.Redact(ch), Status: notify.StatusSent,
			Attempts: 1, Title: msg.Title, CreatedAt: t.Clock.Now().UTC()}
		sctx, cancel := context.WithTimeout(ctx, testTimeout)
		if err := t.Sender.Send(sctx, ch, msg); err != nil {
			n.Status, n.Error = notify.StatusFailed, notify.Scrub(ch, err.Error())
		}
		cancel()
		n.FinishedAt = t.Clock.Now().UTC()
		recorded, err := t.Recorder.RecordNotification(ctx, n, KeepNotifications)
		if err != nil && !errors.Is(err, context.Canceled) {
			return nil, err
		}
		out = append(out, recorded)
	}
	return out, nil
}

const testTimeout = 15 * time.Second
