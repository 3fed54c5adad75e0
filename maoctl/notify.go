package maoctl

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/mao-research/mao/api"
)

// notifyErrorWidth is how much of a failed notification's error notify
// list shows.
const notifyErrorWidth = 60

func (c *ctl) notifyCommand() *cli.Command {
	return &cli.Command{
		Name:  "notify",
		Usage: "list the notifications sent and test the notification channels",
		Subcommands: []*cli.Command{
			{
				Name:  "list",
				Usage: "list what became of the notifications sent, newest first",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "tool", Usage: "only the notifications about this tool"},
					&cli.IntFlag{Name: "limit", Value: 50, Usage: "at most `N` notifications"},
				},
				Action: c.notifyList,
			},
			{
				Name:      "test",
				Usage:     "send a test message to a channel, or to each of the site's channels",
				ArgsUsage: "[URL]",
				Description: "URL is a channel URL, as in [notify] urls of config.ini. The orchestrator sends the message,\n" +
					"with its retries, and says what became of it. Without URL it sends to each channel configured\n" +
					"at its site. Exits 1 when a send failed.\n" +
					"The URL may hold secrets: maoctl prints the channel only as the orchestrator redacts it.",
				Action: c.notifyTest,
			},
		},
	}
}

func (c *ctl) notifyList(cCtx *cli.Context) error {
	if _, err := args(cCtx); err != nil {
		return err
	}
	if cCtx.Int("limit") < 1 {
		return usageErrorf("--limit must be at least 1")
	}
	list, err := c.client.Notifications(cCtx.Context, cCtx.String("tool"), cCtx.Int("limit"))
	if err != nil {
		return err
	}
	return printList(c, list, "no notifications", func(list []api.Notification) error {
		tab := newTable(c.stdout, "TIME", "KIND", "TOOL", "SITE", "RUN", "CHANNEL", "STATUS", "ATTEMPTS", "ERROR")
		for _, n := range list {
			tab.row(timestamp(&n.CreatedAt), n.Kind, n.Tool, n.Site, n.Run, n.Channel, n.Status,
				strconv.Itoa(n.Attempts), truncate(cell(n.Error), notifyErrorWidth))
		}
		return tab.flush()
	})
}

func (c *ctl) notifyTest(cCtx *cli.Context) error {
	rest := cCtx.Args().Slice()
	if len(rest) > 1 { // never echo the arguments: the URL may hold secrets
		return usageErrorf("%s takes at most one URL; got %d arguments", commandName(cCtx), len(rest))
	}
	var rawURL string
	if len(rest) == 1 {
		rawURL = rest[0]
	}
	outcomes, err := c.client.NotifyTest(cCtx.Context, rawURL)
	if err != nil {
		return redactError(err, rawURL)
	}
	failed := 0
	for i, n := range outcomes {
		if n.Status != "sent" {
			failed++
		}
		outcomes[i].Error = redact(n.Error, rawURL, n.Channel)
	}
	if c.json {
		if err := writeJSON(c.stdout, nonNil(outcomes)); err != nil {
			return err
		}
	} else {
		for _, n := range outcomes {
			if _, err := fmt.Fprintln(c.stdout, testOutcome(n)); err != nil {
				return err
			}
		}
	}
	if failed > 0 {
		return fmt.Errorf("the test message failed on %d of %d channels", failed, len(outcomes))
	}
	return nil
}

// testOutcome is one line on a test message to one channel.
func testOutcome(n api.Notification) string {
	if n.Status == "sent" {
		return "sent to " + n.Channel
	}
	attempts := "attempts"
	if n.Attempts == 1 {
		attempts = "attempt"
	}
	return fmt.Sprintf("failed to send to %s after %d %s: %s", n.Channel, n.Attempts, attempts, cell(n.Error))
}

// redact replaces the URL the user typed with its redacted form in text
// from the orchestrator, in case an error message quotes it.
func redact(text, rawURL, redacted string) string {
	if rawURL == "" {
		return text
	}
	return strings.ReplaceAll(text, rawURL, redacted)
}

// redactError redacts an error answer of the orchestrator.
func redactError(err error, rawURL string) error {
	var apiErr *api.Error
	if rawURL == "" || !errors.As(err, &apiErr) {
		return err
	}
	out := &api.Error{Status: apiErr.Status, ErrorBody: apiErr.ErrorBody}
	out.Message = redact(out.Message, rawURL, "***")
	out.Details = make([]string, len(apiErr.Details))
	for i, d := range apiErr.Details {
		out.Details[i] = redact(d, rawURL, "***")
	}
	return out
}

// truncate shortens s to at most width runes, ending it with … when it
// was longer.
func truncate(s string, width int) string {
	r := []rune(s)
	if len(r) <= width {
		return s
	}
	return string(r[:width-1]) + "…"
}
