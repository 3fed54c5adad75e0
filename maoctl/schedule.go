package maoctl

import (
	"context"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/mao-research/mao/api"
)

func (c *ctl) scheduleCommand() *cli.Command {
	return &cli.Command{
		Name:  "schedule",
		Usage: "list, change, pause and remove schedules (create them with tool schedule)",
		Subcommands: []*cli.Command{
			c.scheduleListCommand("list", "list the schedules"),
			{
				Name:      "show",
				Usage:     "show one schedule, its next run and its last run",
				ArgsUsage: "ID",
				Action:    c.scheduleShow,
			},
			{
				Name:      "update",
				Usage:     "change a schedule's timing or options",
				ArgsUsage: "ID",
				Description: "Only the fields whose flags are given change; --at \"\" or --weekday \"\" clears one.\n" +
					"--env adds or replaces single variables, --unset-env removes them.\n" +
					"--site, --any, --all and --label replace the target as a whole (--label alone means --any).\n" +
					"Ticks before the update are not caught up.",
				Flags:  scheduleFlags(true),
				Action: c.scheduleUpdate,
			},
			{
				Name:      "pause",
				Usage:     "stop a schedule's runs until it is resumed",
				ArgsUsage: "ID",
				Action:    c.schedulePause,
			},
			{
				Name:      "resume",
				Usage:     "restart a paused schedule from its next tick (the ticks while paused do not run)",
				ArgsUsage: "ID",
				Action:    c.scheduleResume,
			},
			c.scheduleRemoveCommand("remove", "remove a schedule; the records of its runs stay"),
		},
	}
}

// scheduleListCommand is `schedule list` or an alias of it. Each place
// gets its own command value, as prepare changes it.
func (c *ctl) scheduleListCommand(name, usage string) *cli.Command {
	return &cli.Command{
		Name:   name,
		Usage:  usage,
		Flags:  []cli.Flag{&cli.StringFlag{Name: "tool", Usage: "only the schedules of this tool"}},
		Action: c.scheduleList,
	}
}

// scheduleRemoveCommand is `schedule remove` or an alias of it.
func (c *ctl) scheduleRemoveCommand(name, usage string) *cli.Command {
	return &cli.Command{
		Name:      name,
		Usage:     usage,
		ArgsUsage: "ID",
		Action:    c.scheduleRemove,
	}
}

// scheduleStringFlag is a string flag of `tool schedule` and `schedule
// update` and the Schedule field it sets. def is the default that the
// orchestrator fills in when the field is left empty.
type scheduleStringFlag struct {
	name, usage, def string
	field            func(*api.Schedule) *string
}

func scheduleStringFlags() []scheduleStringFlag {
	return []scheduleStringFlag{
		{"at", "time of day `HH:MM` of daily, weekly and monthly schedules", "00:00", func(s *api.Schedule) *string { return &s.At }},
		{"weekday", "`DAY` of the week of weekly schedules: mon, tue, ...", "mon", func(s *api.Schedule) *string { return &s.Weekday }},
		{"tz", "time zone of the schedule's clock, an IANA `ZONE` such as Europe/Zurich", "the site's", func(s *api.Schedule) *string { return &s.TZ }},
		{"overlap", "whether a tick may start a run while the previous run is unfinished: `forbid|allow`", "forbid", func(s *api.Schedule) *string { return &s.Overlap }},
		{"catchup", "after downtime, run the latest missed tick once or skip it: `once|skip`", "once", func(s *api.Schedule) *string { return &s.Catchup }},
		{"deadline", "how long after its tick a catch-up run may still start, a `DURATION` such as 6h", "no limit", func(s *api.Schedule) *string { return &s.Deadline }},
		{"retry-delay", "wait between the attempts of a failed run, a `DURATION` such as 5m", "1m", func(s *api.Schedule) *string { return &s.RetryDelay }},
	}
}

// scheduleFlags are the options of `tool schedule`, and with update those
// of `schedule update`, whose unset flags leave their field alone.
func scheduleFlags(update bool) []cli.Flag {
	var flags []cli.Flag
	if update {
		flags = append(flags, &cli.StringFlag{Name: "spec", Usage: "new `SPEC`: daily, weekly, monthly, \"@every DURATION\" or a cron expression"})
	}
	retries := &cli.IntFlag{Name: "retries", Usage: "`N` extra attempts after a failed run"}
	if update {
		retries.DefaultText = "unchanged"
	}
	for _, s := range scheduleStringFlags() {
		if s.name == "retry-delay" { // next to --retries in the help
			flags = append(flags, retries)
		}
		def := s.def
		if update {
			def = ""
		}
		flags = append(flags, &cli.StringFlag{Name: s.name, Usage: s.usage, DefaultText: def})
	}
	flags = append(flags,
		&cli.StringSliceFlag{Name: "env", Usage: "variable `KEY=VALUE` added to the tool's env for these runs, repeatable"})
	if update {
		flags = append(flags, &cli.StringSliceFlag{Name: "unset-env", Usage: "remove the schedule's variable `KEY`, repeatable"})
	}
	return append(flags, targetFlags()...)
}

// applyScheduleFlags sets the fields of s whose flags were given.
func applyScheduleFlags(cCtx *cli.Context, s *api.Schedule) error {
	for _, f := range scheduleStringFlags() {
		if cCtx.IsSet(f.name) {
			*f.field(s) = cCtx.String(f.name)
		}
	}
	if cCtx.IsSet("retries") {
		s.Retries = cCtx.Int("retries")
	}
	target, err := targetFromFlags(cCtx)
	if err != nil {
		return err
	}
	if target != nil {
		s.Target = *target
	}
	if cCtx.IsSet("env") {
		return addEnv(&s.Env, cCtx.StringSlice("env"))
	}
	return nil
}

func (c *ctl) toolSchedule(cCtx *cli.Context) error {
	if got := cCtx.Args().Slice(); len(got) > 2 {
		return usageErrorf("%s takes NAME SPEC; quote a SPEC with spaces, as in \"@every 10m\" or \"15 */6 * * *\"; got also %q",
			commandName(cCtx), got[2:])
	}
	a, err := args(cCtx, "NAME", "SPEC")
	if err != nil {
		return err
	}
	s := api.Schedule{Tool: a[0], Spec: a[1]}
	if err := applyScheduleFlags(cCtx, &s); err != nil {
		return err
	}
	info, err := c.client.CreateSchedule(cCtx.Context, s)
	if err != nil {
		return err
	}
	if c.json {
		return writeJSON(c.stdout, info)
	}
	_, err = fmt.Fprintf(c.stdout, "scheduled %s: %s%s\n", info.Tool, info.ID, nextRunNote(info))
	return err
}

func (c *ctl) scheduleList(cCtx *cli.Context) error {
	if _, err := args(cCtx); err != nil {
		return err
	}
	list, err := c.client.Schedules(cCtx.Context, cCtx.String("tool"))
	if err != nil {
		return err
	}
	return printList(c, list, "no schedules", func(list []api.ScheduleInfo) error {
		tab := newTable(c.stdout, "ID", "TOOL", "WHEN", "TARGET", "STATE", "NEXT RUN", "LAST RUN", "RESULT")
		for _, s := range list {
			last, result := "", ""
			if s.LastRun != nil {
				last, result = timestamp(s.LastRun.ScheduledTime), runResult(*s.LastRun)
			}
			tab.row(s.ID, s.Tool, scheduleWhen(s.Schedule), s.Target.String(), scheduleState(s), timestamp(s.NextRun), last, result)
		}
		return tab.flush()
	})
}

func (c *ctl) scheduleShow(cCtx *cli.Context) error {
	a, err := args(cCtx, "ID")
	if err != nil {
		return err
	}
	info, err := c.client.Schedule(cCtx.Context, a[0])
	if err != nil {
		return err
	}
	if c.json {
		return writeJSON(c.stdout, info)
	}
	s := info.Schedule
	f := newFields(c.stdout)
	f.add("Schedule", s.ID)
	f.add("Tool", s.Tool)
	f.add("State", scheduleState(info))
	if info.Orphaned {
		f.add("Note", fmt.Sprintf("tool %s is no longer registered, so this schedule starts no runs;\n"+
			"register the tool again or remove the schedule (maoctl schedule remove %s)", s.Tool, s.ID))
	}
	f.add("When", scheduleWhen(s))
	f.add("Spec", s.Spec)
	f.addIf("At", s.At)
	f.addIf("Weekday", s.Weekday)
	f.add("Time zone", s.TZ)
	f.add("Target", s.Target.String())
	f.add("Overlap", s.Overlap)
	f.add("Catch-up", s.Catchup)
	f.add("Deadline", limit(s.Deadline != "", s.Deadline))
	f.add("Retries", fmt.Sprint(s.Retries))
	f.add("Retry delay", withDefault(s.RetryDelay, "1m"))
	f.addIf("Env", keyValues(s.Env, "\n"))
	f.add("Created", timestamp(&s.CreatedAt))
	f.add("Updated", timestamp(&s.UpdatedAt))
	next := timestamp(info.NextRun)
	if info.NextRun == nil && s.Paused {
		next = "none while paused"
	}
	f.add("Next run", next)
	if r := info.LastRun; r != nil {
		f.add("Last run", r.ID)
		f.add("Last tick", timestamp(r.ScheduledTime))
		f.add("Last result", runResult(*r))
		f.addIf("Last reason", r.Reason)
	} else {
		f.add("Last run", "none yet")
	}
	return f.flush()
}

func (c *ctl) scheduleUpdate(cCtx *cli.Context) error {
	a, err := args(cCtx, "ID")
	if err != nil {
		return err
	}
	if !anyFlagSet(cCtx) {
		return usageErrorf("%s needs a flag for each field to change, such as --spec or --at (see %s --help)",
			commandName(cCtx), cCtx.Command.HelpName)
	}
	ctx := cCtx.Context
	info, err := c.client.Schedule(ctx, a[0])
	if err != nil {
		return err
	}
	s := info.Schedule
	if cCtx.IsSet("spec") {
		s.Spec = cCtx.String("spec")
	}
	if err := applyScheduleFlags(cCtx, &s); err != nil {
		return err
	}
	for _, k := range cCtx.StringSlice("unset-env") {
		delete(s.Env, k)
	}
	if info, err = c.client.UpdateSchedule(ctx, s); err != nil {
		return err
	}
	if c.json {
		return writeJSON(c.stdout, info)
	}
	_, err = fmt.Fprintf(c.stdout, "updated schedule %s%s\n", info.ID, nextRunNote(info))
	return err
}

// anyFlagSet reports whether the command got any of its own flags.
func anyFlagSet(cCtx *cli.Context) bool {
	for _, f := range cCtx.Command.Flags {
		if cCtx.IsSet(f.Names()[0]) {
			return true
		}
	}
	return false
}

func (c *ctl) schedulePause(cCtx *cli.Context) error {
	return c.setPaused(cCtx, "paused", c.client.PauseSchedule)
}

func (c *ctl) scheduleResume(cCtx *cli.Context) error {
	return c.setPaused(cCtx, "resumed", c.client.ResumeSchedule)
}

// setPaused pauses or resumes the schedule ID with op and says so.
func (c *ctl) setPaused(cCtx *cli.Context, done string, op func(context.Context, string) (api.ScheduleInfo, error)) error {
	a, err := args(cCtx, "ID")
	if err != nil {
		return err
	}
	info, err := op(cCtx.Context, a[0])
	if err != nil {
		return err
	}
	if c.json {
		return writeJSON(c.stdout, info)
	}
	_, err = fmt.Fprintf(c.stdout, "%s schedule %s%s\n", done, info.ID, nextRunNote(info))
	return err
}

func (c *ctl) scheduleRemove(cCtx *cli.Context) error {
	a, err := args(cCtx, "ID")
	if err != nil {
		return err
	}
	if err := c.client.RemoveSchedule(cCtx.Context, a[0]); err != nil {
		return err
	}
	if c.json {
		return nil
	}
	_, err = fmt.Fprintf(c.stdout, "removed schedule %s\n", a[0])
	return err
}

// nextRunNote ends the line that reports a new or changed schedule.
func nextRunNote(info api.ScheduleInfo) string {
	switch {
	case info.NextRun != nil:
		return ", next run " + timestamp(info.NextRun)
	case info.Paused:
		return " (no runs while paused)"
	}
	return ""
}

// scheduleWhen is a schedule's timing in a few words, with the defaults
// filled in: "daily 06:30 Europe/Zurich", "weekly mon 00:00 UTC",
// "@every 10m" or "cron 15 */6 * * * Asia/Kolkata".
func scheduleWhen(s api.Schedule) string {
	at := s.At
	if at == "" {
		at = "00:00"
	}
	spec := strings.TrimSpace(s.Spec)
	switch {
	case spec == "daily":
		return strings.Join([]string{spec, at, s.TZ}, " ")
	case spec == "weekly":
		day := strings.ToLower(s.Weekday)
		if day == "" {
			day = "mon"
		}
		return strings.Join([]string{spec, day, at, s.TZ}, " ")
	case spec == "monthly":
		return strings.Join([]string{spec, "1st", at, s.TZ}, " ")
	case strings.HasPrefix(spec, "@every "): // the same instants in every time zone
		return spec
	case strings.HasPrefix(spec, "@"): // a descriptor such as @hourly
		return spec + " " + s.TZ
	}
	return "cron " + spec + " " + s.TZ
}

// scheduleState is active, paused or orphaned (its tool is gone).
func scheduleState(info api.ScheduleInfo) string {
	switch {
	case info.Orphaned && info.Paused:
		return "orphaned, paused"
	case info.Orphaned:
		return "orphaned"
	case info.Paused:
		return "paused"
	}
	return "active"
}
