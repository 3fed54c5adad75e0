package maoctl

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/mao-research/mao/api"
)

// showLogLines is how much of its log `run show` prints.
const showLogLines = 10

func (c *ctl) runCommand() *cli.Command {
	return &cli.Command{
		Name:  "run",
		Usage: "inspect runs and their logs",
		Subcommands: []*cli.Command{
			{
				Name:  "list",
				Usage: "list runs, newest first",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "tool", Usage: "only the runs of this tool"},
					&cli.StringFlag{Name: "schedule", Usage: "only the runs of the schedule `ID`"},
				},
				Action: c.runList,
			},
			{
				Name:      "show",
				Usage:     "show a run's record and the end of its log",
				ArgsUsage: "ID",
				Action:    c.runShow,
			},
			{
				Name:      "logs",
				Usage:     "print a run's log (its container's stdout and stderr)",
				ArgsUsage: "ID",
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "follow", Aliases: []string{"f"}, Usage: "keep streaming until the run ends"},
					&cli.IntFlag{Name: "tail", Usage: "only the last `N` lines", DefaultText: "all"},
					rawFlag(),
				},
				Action: c.runLogs,
			},
		},
	}
}

func (c *ctl) runList(cCtx *cli.Context) error {
	if _, err := args(cCtx); err != nil {
		return err
	}
	runs, err := c.client.Runs(cCtx.Context, api.RunFilter{Tool: cCtx.String("tool"), Schedule: cCtx.String("schedule")})
	if err != nil {
		return err
	}
	return printList(c, runs, "no runs", func(runs []api.Run) error {
		// A TRIGGER column only when some run did not start by hand, so
		// that a site without schedules keeps its narrower table.
		triggers := slices.ContainsFunc(runs, func(r api.Run) bool { return r.Trigger != api.TriggerManual })
		header := []string{"ID", "TOOL", "SITE", "STATE", "EXIT", "CREATED", "DURATION"}
		if triggers {
			header = slices.Insert(header, 4, "TRIGGER")
		}
		tab := newTable(c.stdout, header...)
		for _, r := range runs {
			row := []string{r.ID, r.Tool, runSite(r), runState(r), exitCode(r), timestamp(&r.CreatedAt), runDuration(r)}
			if triggers {
				row = slices.Insert(row, 4, r.Trigger)
			}
			tab.row(row...)
		}
		return tab.flush()
	})
}

func (c *ctl) runShow(cCtx *cli.Context) error {
	a, err := args(cCtx, "ID")
	if err != nil {
		return err
	}
	ctx := cCtx.Context
	r, err := c.client.Run(ctx, a[0])
	if err != nil {
		return err
	}
	if c.json {
		return writeJSON(c.stdout, r)
	}
	f := newFields(c.stdout)
	f.add("Run", r.ID)
	f.add("Tool", r.Tool)
	f.add("Site", cell(runSite(r)))
	f.addIf("Target", targetText(r.Target))
	f.add("State", string(r.State))
	f.addIf("Reason", r.Reason)
	f.addIf("Exit code", exitCode(r))
	f.addIf("Trigger", triggerText(r.Trigger))
	f.addIf("Schedule", r.Schedule)
	if r.ScheduledTime != nil {
		f.add("Scheduled", timestamp(r.ScheduledTime))
	}
	f.addIf("Attempt", attemptText(r))
	if r.MaxAttempts > 1 {
		f.addIf("Retry delay", r.RetryDelay)
	}
	if len(r.Attempts) > 0 {
		lines := make([]string, len(r.Attempts))
		for i, a := range r.Attempts {
			lines[i] = attemptLine(a)
		}
		f.add("Earlier attempts", strings.Join(lines, "\n"))
	}
	f.add("Image", r.Image)
	f.addIf("Image ID", r.ImageID)
	f.addIf("Image digest", r.ImageDigest)
	f.addIf("Network", r.Network)
	f.add("Data repo", r.DataRepo)
	f.addIf("Commit before", r.DataCommitBefore)
	f.addIf("Commit after", r.DataCommitAfter)
	f.addIf("Input dataset", r.InputDataset)
	f.addIf("Input commit", r.InputCommit)
	f.addIf("Env", keyValues(r.Env, "\n"))
	f.add("Created", timestamp(&r.CreatedAt))
	f.add("Started", timestamp(r.StartedAt))
	if r.ContainerStartedAt != nil {
		f.add("Container started", timestamp(r.ContainerStartedAt))
	}
	f.add("Finished", timestamp(r.FinishedAt))
	f.addIf("Duration", runDuration(r))
	f.add("Files", filesText(r))
	if err := f.flush(); err != nil {
		return err
	}
	if len(r.Verdicts) > 0 {
		if err := writeVerdicts(c.stdout, r.Verdicts); err != nil {
			return err
		}
	}

	var log bytes.Buffer
	if err := c.client.RunLogs(ctx, r.ID, api.LogOptions{Tail: showLogLines}, &log); err != nil {
		_, err := fmt.Fprintf(c.stdout, "\nLog: not available: %v\n", err)
		return err
	}
	if log.Len() == 0 {
		_, err := fmt.Fprintln(c.stdout, "\nLog: empty")
		return err
	}
	lines := strings.Split(strings.TrimSuffix(log.String(), "\n"), "\n")
	header := "\nLog:"
	if len(lines) == showLogLines {
		header = fmt.Sprintf("\nLog (last %d lines):", showLogLines)
	}
	if c.tty { // without control sequences, and their carriage returns as new lines
		var clean bytes.Buffer
		(&stripper{w: &clean}).Write(log.Bytes())
		lines = strings.Split(strings.TrimSuffix(clean.String(), "\n"), "\n")
	}
	fmt.Fprintln(c.stdout, header)
	for _, line := range lines {
		fmt.Fprintf(c.stdout, "  %s\n", line)
	}
	return nil
}

// filesText lists the files a run wrote, noting those left out of its
// record.
func filesText(r api.Run) string {
	total := max(r.FilesTotal, len(r.Files))
	if total == 0 {
		return "none"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d written", total)
	if total > len(r.Files) {
		fmt.Fprintf(&b, " (the first %d listed)", len(r.Files))
	}
	for _, f := range r.Files {
		b.WriteString("\n" + f)
	}
	return b.String()
}

func (c *ctl) runLogs(cCtx *cli.Context) error {
	a, err := args(cCtx, "ID")
	if err != nil {
		return err
	}
	if cCtx.Int("tail") < 0 {
		return usageErrorf("--tail must not be negative")
	}
	opts := api.LogOptions{Follow: cCtx.Bool("follow"), Tail: cCtx.Int("tail")}
	return c.client.RunLogs(cCtx.Context, a[0], opts, c.logWriter(cCtx.Bool("raw")))
}

// rawFlag is --raw of the commands that print a run's log.
func rawFlag() cli.Flag {
	return &cli.BoolFlag{Name: "raw", Usage: "print the log's bytes unchanged (else, on a terminal, its control sequences are left out)"}
}

// triggerText is what started a run, in words.
func triggerText(trigger string) string {
	if trigger == api.TriggerCatchup {
		return trigger + " (a tick missed while no site was up, run late)"
	}
	return trigger
}

// attemptText is "2 of 3" for a run with retries, with when the next
// attempt starts while the run waits for it; "" for a run without
// retries.
func attemptText(r api.Run) string {
	if r.MaxAttempts <= 1 {
		return ""
	}
	text := fmt.Sprintf("%d of %d", r.Attempt, r.MaxAttempts)
	if r.RetryAt != nil {
		text += ", next attempt at " + timestamp(r.RetryAt)
	}
	return text
}

// attemptLine is one earlier attempt of a run, e.g. "1: failed (exit 3),
// <start> to <end>: <reason>".
func attemptLine(a api.Attempt) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d: %s", a.Attempt, withExit(string(a.State), a.ExitCode))
	switch {
	case a.StartedAt != nil:
		fmt.Fprintf(&b, ", %s to %s", timestamp(a.StartedAt), timestamp(a.FinishedAt))
	case a.FinishedAt != nil:
		fmt.Fprintf(&b, ", ended %s", timestamp(a.FinishedAt))
	}
	if a.Reason != "" {
		fmt.Fprintf(&b, ": %s", a.Reason)
	}
	return b.String()
}
