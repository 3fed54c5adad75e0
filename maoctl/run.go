package maoctl

import (
	"bytes"
	"fmt"
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
				Name:   "list",
				Usage:  "list runs, newest first",
				Flags:  []cli.Flag{&cli.StringFlag{Name: "tool", Usage: "only the runs of this tool"}},
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
	runs, err := c.client.Runs(cCtx.Context, api.RunFilter{Tool: cCtx.String("tool")})
	if err != nil {
		return err
	}
	if c.json {
		return writeJSON(c.stdout, nonNil(runs))
	}
	if len(runs) == 0 {
		_, err := fmt.Fprintln(c.stderr, "no runs")
		return err
	}
	tab := newTable(c.stdout, "ID", "TOOL", "SITE", "STATE", "EXIT", "CREATED", "DURATION")
	for _, r := range runs {
		tab.row(r.ID, r.Tool, r.Site, string(r.State), exitCode(r), timestamp(&r.CreatedAt), runDuration(r))
	}
	return tab.flush()
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
	f.add("Site", r.Site)
	f.add("State", string(r.State))
	f.addIf("Reason", r.Reason)
	f.addIf("Exit code", exitCode(r))
	f.addIf("Trigger", r.Trigger)
	f.add("Image", r.Image)
	f.addIf("Image ID", r.ImageID)
	f.addIf("Image digest", r.ImageDigest)
	f.addIf("Network", r.Network)
	f.add("Data repo", r.DataRepo)
	f.addIf("Commit before", r.DataCommitBefore)
	f.addIf("Commit after", r.DataCommitAfter)
	f.addIf("Input dataset", r.InputDataset)
	f.addIf("Input commit", r.InputCommit)
	f.add("Created", timestamp(&r.CreatedAt))
	f.add("Started", timestamp(r.StartedAt))
	f.add("Finished", timestamp(r.FinishedAt))
	f.addIf("Duration", runDuration(r))
	f.add("Files", filesText(r))
	if err := f.flush(); err != nil {
		return err
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
	return c.client.RunLogs(cCtx.Context, a[0], opts, c.stdout)
}
