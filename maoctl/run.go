package maoctl

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
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
					&cli.StringFlag{Name: "push", Usage: "only the runs whose commit's push is `STATE`: " + pushStates},
					&cli.StringFlag{Name: "state", Usage: "only the runs in `STATE`: " + runStates},
					&cli.StringFlag{Name: "site", Usage: "only the runs of site `NAME`"},
					&cli.StringFlag{Name: "since", Usage: "only the runs created since `TIME` (RFC 3339, e.g. 2026-01-02T15:04:05Z) or within a duration before now (e.g. 24h)"},
					&cli.IntFlag{Name: "limit", Value: defaultRunLimit, Usage: "at most `N` runs, the newest (0: all, read a page at a time)"},
					&cli.StringFlag{Name: "continue", Usage: "start at the page `TOKEN` that an earlier list gave (-o json prints it as \"continue\")"},
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
				Name:      "provenance",
				Usage:     "print what produced a run's output: the image, command, env, resources and commits it ran with",
				ArgsUsage: "ID",
				Action:    c.runProvenance,
			},
			{
				Name:      "replay",
				Usage:     "run a past run again, exactly (its image by digest, command, env, resources and input commit), and compare its output with the original's",
				ArgsUsage: "ID",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "site", Usage: "replay at site `NAME` (default: the site that ran it, whose clone holds its commits)"},
					&cli.BoolFlag{Name: "follow", Aliases: []string{"f"}, Usage: "stream the replay's log until it ends, then print its verdict"},
					&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print only the replay's run ID (for scripts)"},
					rawFlag(),
				},
				Action: c.runReplay,
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
	push := api.PushState(cCtx.String("push"))
	if push != "" && !push.Valid() {
		return usageErrorf("--push %q: want one of %s", push, pushStates)
	}
	f, err := c.runFilter(cCtx)
	if err != nil {
		return err
	}
	f.Push = push
	limit := cCtx.Int("limit")
	if limit < 0 {
		return usageErrorf("--limit %d: want 0 (all) or more", limit)
	}
	// Pages of at most maxRunPage, until limit runs are read or the last
	// page is.
	var runs api.List[api.Run]
	for {
		page, err := c.client.Runs(cCtx.Context, f)
		if err != nil {
			return err
		}
		runs.Items = append(runs.Items, page.Items...)
		runs.Invalid, runs.Note, runs.Continue = page.Invalid, page.Note, page.Continue
		if page.Continue == "" || limit > 0 && len(runs.Items) >= limit {
			break
		}
		f.Continue, f.Limit = page.Continue, maxRunPage
		if limit > 0 {
			f.Limit = min(limit-len(runs.Items), maxRunPage)
		}
	}
	empty := "no runs"
	if push != "" {
		empty = fmt.Sprintf("no runs whose push is %s", push)
	}
	if runs.Continue != "" && !c.json {
		runs.Note = strings.TrimSpace(runs.Note + fmt.Sprintf("\nthe newest %d shown; more with --limit N (0: all), or from here with --continue %s",
			len(runs.Items), runs.Continue))
	}
	return printList(c, runs, empty, func(runs []api.Run) error {
		// A TRIGGER column only when some run did not start by hand, and a
		// PUSH column only when some run's commit is pushed, so that a
		// site without schedules or pushes keeps its narrower table.
		triggers := slices.ContainsFunc(runs, func(r api.Run) bool { return r.Trigger != api.TriggerManual })
		pushes := slices.ContainsFunc(runs, func(r api.Run) bool { return r.Push != nil })
		header := []string{"ID", "TOOL", "SITE", "STATE", "EXIT", "CREATED", "DURATION"}
		if triggers {
			header = slices.Insert(header, 4, "TRIGGER")
		}
		if pushes {
			header = append(header, "PUSH")
		}
		tab := newTable(c.stdout, header...)
		for _, r := range runs {
			row := []string{r.ID, r.Tool, runSite(r), runState(r), exitCode(r), timestamp(&r.CreatedAt), runDuration(r)}
			if triggers {
				row = slices.Insert(row, 4, r.Trigger)
			}
			if pushes {
				row = append(row, pushCell(r.Push))
			}
			tab.row(row...)
		}
		return tab.flush()
	})
}

// Run list pages: maoctl's default, and the most the API gives at once.
const (
	defaultRunLimit = 50
	maxRunPage      = 1000
)

// runStates lists the run states, for usage texts.
const runStates = "pending, running, succeeded, failed, timed_out, missed, skipped or lost"

// runFilter reads run list's filters; the first page's size is --limit's
// (at most a page).
func (c *ctl) runFilter(cCtx *cli.Context) (api.RunFilter, error) {
	f := api.RunFilter{Tool: cCtx.String("tool"), Schedule: cCtx.String("schedule"), Site: cCtx.String("site"),
		State: api.RunState(cCtx.String("state")), Continue: cCtx.String("continue"), Limit: maxRunPage}
	if n := cCtx.Int("limit"); n > 0 {
		f.Limit = min(n, maxRunPage)
	}
	if f.State != "" && !f.State.Valid() {
		return f, usageErrorf("--state %q: want one of %s", f.State, runStates)
	}
	if v := cCtx.String("since"); v != "" {
		if d, err := time.ParseDuration(v); err == nil && d > 0 {
			f.Since = time.Now().Add(-d)
		} else if t, err := time.Parse(time.RFC3339, v); err == nil {
			f.Since = t
		} else {
			return f, usageErrorf("--since %q: want an RFC 3339 time (2026-01-02T15:04:05Z) or a duration (24h)", v)
		}
	}
	return f, nil
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
	f.addIf("Push", pushText(r.Push))
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
	if r.Replay != nil {
		fmt.Fprintln(c.stdout, "\nReplay:")
		f = newFields(c.stdout)
		f.indent = "  "
		replayFields(f, *r.Replay)
		if err := f.flush(); err != nil {
			return err
		}
	}
	fmt.Fprintln(c.stdout, "\nProvenance:")
	p, ok := api.ProvenanceOf(r)
	f = newFields(c.stdout)
	f.indent = "  "
	provenanceFields(f, p, ok)
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

// pushStates are the values of run list --push.
var pushStates = strings.Join([]string{string(api.PushPending), string(api.PushFailed), string(api.PushPushed), string(api.PushConflict)}, ", ")

// pushCell is a run's push in run list: its state, with the failed
// attempts; "-" for a run whose commit is not pushed.
func pushCell(p *api.Push) string {
	switch {
	case p == nil:
		return "-"
	case p.State == api.PushFailed:
		return fmt.Sprintf("failed (%d)", p.Attempts)
	}
	return string(p.State)
}

// pushText is where a run's commit is on its way to the data repository,
// for run show; "" when it is not pushed.
func pushText(p *api.Push) string {
	if p == nil {
		return ""
	}
	switch p.State {
	case api.PushPending:
		return "pending since " + timestamp(&p.QueuedAt)
	case api.PushPushed:
		text := fmt.Sprintf("pushed to %s at %s", p.Branch, timestamp(p.PushedAt))
		if p.Attempts > 0 {
			text += ", after " + attempts(p.Attempts) + " failed"
		}
		return text + "\ncommit " + p.Commit
	case api.PushConflict:
		return fmt.Sprintf("conflict: pushed to %s at %s, since a file it wrote was changed on the branch too\ncommit %s",
			p.Branch, timestamp(p.PushedAt), p.Commit)
	case api.PushFailed:
		return fmt.Sprintf("failed: %s since %s, retried until it lands\n%s", attempts(p.Attempts), timestamp(p.FailedAt), p.Reason)
	}
	return string(p.State)
}

// attempts is "1 attempt" or "N attempts".
func attempts(n int) string {
	if n == 1 {
		return "1 attempt"
	}
	return fmt.Sprintf("%d attempts", n)
}

func (c *ctl) runReplay(cCtx *cli.Context) error {
	a, err := args(cCtx, "ID")
	if err != nil {
		return err
	}
	if cCtx.Bool("follow") && cCtx.Bool("quiet") {
		return usageErrorf("%s: --follow and --quiet do not go together", commandName(cCtx))
	}
	ctx := cCtx.Context
	r, err := c.client.ReplayRun(ctx, a[0], api.ReplayRequest{Site: cCtx.String("site")})
	if err != nil {
		return err
	}
	if cCtx.Bool("follow") {
		if err := c.follow(ctx, r, cCtx.Bool("raw")); err != nil {
			return err
		}
		final, err := c.client.Run(ctx, r.ID)
		if err != nil {
			return err
		}
		return c.verdict(final)
	}
	return c.printStarted(cCtx.Bool("quiet"), []api.Run{r})
}

// verdict prints how a replay that succeeded compares with its original,
// and turns a replay that did not reproduce it into exit code 1.
func (c *ctl) verdict(r api.Run) error {
	if r.Replay == nil || r.Replay.Verdict == "" {
		return nil
	}
	f := newFields(c.stderr)
	replayFields(f, *r.Replay)
	if err := f.flush(); err != nil {
		return err
	}
	if r.Replay.Verdict != api.ReplayReproduced {
		return &RunExitError{Run: r, Code: exitError}
	}
	return nil
}

// replayFields adds what a replay replayed and how its output compares.
func replayFields(f *fields, p api.Replay) {
	f.add("Replay of", fmt.Sprintf("%s (site %s)", p.Of, p.Site))
	f.addIf("Compared with", p.Commit)
	f.add("Verdict", cell(p.Verdict))
	if len(p.Differences) > 0 {
		lines := make([]string, 0, len(p.Differences)+1)
		for _, d := range p.Differences {
			lines = append(lines, fmt.Sprintf("%s: original %s, replay %s", d.Path, versionText(d.Original), versionText(d.Replay)))
		}
		if p.DifferencesTotal > len(p.Differences) {
			lines = append(lines, fmt.Sprintf("(%d more)", p.DifferencesTotal-len(p.Differences)))
		}
		f.add("Differences", strings.Join(lines, "\n"))
	}
	f.addIf("Note", p.Note)
}

// versionText is a file's size and hash, or that it is absent.
func versionText(v *api.FileVersion) string {
	if v == nil {
		return "absent"
	}
	return fmt.Sprintf("%s sha256:%s", humanize.IBytes(uint64(v.Size)), v.SHA256[:min(len(v.SHA256), 12)])
}

func (c *ctl) runProvenance(cCtx *cli.Context) error {
	a, err := args(cCtx, "ID")
	if err != nil {
		return err
	}
	r, err := c.client.Run(cCtx.Context, a[0])
	if err != nil {
		return err
	}
	p, ok := api.ProvenanceOf(r)
	if !ok {
		return fmt.Errorf("run %s has no provenance: %s", r.ID, noSnapshot(r))
	}
	if c.json {
		return writeJSON(c.stdout, p)
	}
	f := newFields(c.stdout)
	f.add("Run", p.Run)
	f.add("Tool", p.Tool)
	f.add("Site", p.Site)
	f.add("Trigger", p.Trigger)
	if p.ScheduledTime != nil {
		f.add("Scheduled", timestamp(p.ScheduledTime))
	}
	provenanceFields(f, p, ok)
	return f.flush()
}

// provenanceFields adds what produced a run's output; snapshot says
// whether p has the run's snapshot of what it ran.
func provenanceFields(f *fields, p api.Provenance, snapshot bool) {
	f.add("Image", p.Image)
	f.addIf("Image ID", p.ImageID)
	f.addIf("Image digest", p.ImageDigest)
	if !snapshot {
		f.addIf("Network", p.Network)
		f.addIf("Env", keyValues(p.Env, "\n"))
	} else {
		f.add("Command", commandText(p.Command))
		f.addIf("Env", keyValues(p.Env, "\n"))
		f.add("Resources", resourcesText(p.RunSpec))
		f.add("Network", cell(p.Network))
		f.addIf("User", p.User)
		f.add("Timeout", p.Timeout)
	}
	f.addIf("Input dataset", p.InputDataset)
	f.addIf("Input commit", p.InputCommit)
	f.add("Data repo", p.DataRepo)
	f.addIf("Commit before", p.DataCommitBefore)
	f.addIf("Commit after", p.DataCommitAfter)
	if !snapshot {
		return
	}
	if p.SpecRevision != 0 {
		f.add("Tool revision", fmt.Sprint(p.SpecRevision))
	}
	f.addIf("Orchestrator", p.Version)
}

// noSnapshot says why a run's record has no snapshot of what it ran.
func noSnapshot(r api.Run) string {
	if r.State == api.StatePending {
		return "it has not started yet"
	}
	return "its site did not get as far as preparing it, or recorded no snapshot (an orchestrator older than provenance)"
}

// commandText is a container's command, each argument visible; "the
// image's" when it has none.
func commandText(cmd []string) string {
	if len(cmd) == 0 {
		return "the image's"
	}
	return quoteArgs(cmd)
}

// resourcesText is a run's CPU and memory limits as applied.
func resourcesText(s api.RunSpec) string {
	cpus := "no cpu limit"
	if s.Resources != nil && s.Resources.CPUs > 0 {
		cpus = fmt.Sprintf("%g cpus", s.Resources.CPUs)
	}
	memory := "no memory limit"
	if s.Memory > 0 {
		memory = humanize.IBytes(uint64(s.Memory)) + " memory"
	}
	return cpus + ", " + memory
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
