package maoctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/toolspec"
)

func (c *ctl) toolCommand() *cli.Command {
	return &cli.Command{
		Name:  "tool",
		Usage: "register, inspect and run tools",
		Subcommands: []*cli.Command{
			{
				Name:      "register",
				Aliases:   []string{"add"},
				Usage:     "register a tool from a spec file, flags or the six classic fields",
				ArgsUsage: "[NAME AUTHOR IMAGE DATA_REPO CODE_REPO ARTEFACT]",
				Description: "Give -f FILE (YAML or JSON), flags, or the six positional fields.\n" +
					"Flags given with -f or the positional fields override their values.",
				Flags:  toolFlags(),
				Action: c.toolRegister,
			},
			{
				Name:   "list",
				Usage:  "list the registered tools",
				Action: c.toolList,
			},
			{
				Name:      "show",
				Usage:     "show one tool",
				ArgsUsage: "NAME",
				Action:    c.toolShow,
			},
			{
				Name:      "remove",
				Usage:     "remove a tool from the registry",
				ArgsUsage: "NAME",
				Action:    c.toolRemove,
			},
			{
				Name:      "run",
				Usage:     "run a tool at this site or at other sites of the federation",
				ArgsUsage: "NAME",
				Description: "Without --site, --any, --all or --label the run runs at this site. With them it runs where\n" +
					"they say, at a live site that carries every --label and has the tool's image or can pull it;\n" +
					"--all starts one run per such site.\n" +
					"Without --follow, print the new runs' IDs, sites and states. With --follow, stream the log\n" +
					"of the run, print a summary line on stderr and exit with the tool's exit code\n" +
					"(124 when the run timed out, 1 when it failed or was lost without one).",
				Flags: append(targetFlags(),
					&cli.IntFlag{Name: "retries", Usage: "`N` extra attempts after a failed or lost one"},
					&cli.BoolFlag{Name: "follow", Aliases: []string{"f"}, Usage: "stream the run's log until it ends (not with --all)"},
					&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print only the run IDs, one per line (for scripts)"},
					rawFlag(),
				),
				Action: c.toolRun,
			},
			{
				Name:      "schedule",
				Usage:     "run a tool daily, weekly, monthly, at a fixed interval or by a cron expression",
				ArgsUsage: "NAME SPEC",
				Description: "SPEC is daily, weekly, monthly, \"@every DURATION\" (e.g. \"@every 10m\") or a five-field cron\n" +
					"expression (e.g. \"15 */6 * * *\"); quote it when it has spaces. Times are wall-clock times in --tz.\n" +
					"Each tick runs at one live eligible site (--any, the default), at every one (--all) or at --site;\n" +
					"eligible sites carry every --label. The orchestrator checks the schedule and says what is wrong.",
				Flags:  scheduleFlags(false),
				Action: c.toolSchedule,
			},
			{
				Name:      "series",
				Usage:     "plot and list the values the spike detector keeps for a tool",
				ArgsUsage: "NAME",
				Description: "Prints, for each site and metric, a sparkline of the values (^ marks spikes) and\n" +
					"the last 20 of them with the runs they came from. --svg FILE writes a plot instead: a\n" +
					"panel per metric, each site's values a line over the band the detector judges them\n" +
					"against (its settings today), spikes in red.",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "metric", Usage: "only this metric"},
					&cli.StringFlag{Name: "site", Usage: "only the values of runs at this site"},
					&cli.BoolFlag{Name: "all-points", Usage: "list every value, not only the last 20"},
					&cli.StringFlag{Name: "svg", Usage: "write an SVG plot of the series to `FILE`", TakesFile: true},
				},
				Action: c.toolSeries,
			},
			{
				Name:      "data",
				Usage:     "clone a tool's data repository into DIR (default ./NAME), or update that clone",
				ArgsUsage: "NAME [DIR]",
				Description: "Clones the repository the tool's runs push their results to, every branch (the sites'\n" +
					"mao/<site> branches too), with the tool's branch checked out. When DIR is a clone of it\n" +
					"already, fetches and fast-forwards the checked-out branch instead. Progress goes to stderr\n" +
					"when it is a terminal. Credentials are your own (ssh-agent, or none for public https).",
				Action: c.toolData,
			},
			{
				Name:      "get",
				Usage:     "show one tool, or list them all (the predecessor's spelling)",
				ArgsUsage: "[NAME]",
				Flags:     []cli.Flag{&cli.StringFlag{Name: "name", Usage: "the tool to show"}},
				Action:    c.toolGet,
			},
			c.scheduleListCommand("list-scheduled", "list the schedules (the predecessor's spelling of schedule list)"),
			c.scheduleRemoveCommand("stop", "remove a schedule (the predecessor's spelling of schedule remove)"),
		},
	}
}

// toolStringFlag is a string flag of `tool register` and the Tool field it
// sets. old is the predecessor's spelling, accepted but not shown in help.
type toolStringFlag struct {
	name, old string
	usage     string
	field     func(*api.Tool) *string
}

func toolStringFlags() []toolStringFlag {
	return []toolStringFlag{
		{"name", "", "tool name", func(t *api.Tool) *string { return &t.Name }},
		{"author", "", "who maintains the tool", func(t *api.Tool) *string { return &t.Author }},
		{"image", "", "Docker image to run", func(t *api.Tool) *string { return &t.Image }},
		{"data-repo", "data_repo", "git URL of the repository the tool writes into", func(t *api.Tool) *string { return &t.DataRepo }},
		{"code-repo", "code_repo", "where the tool's source lives", func(t *api.Tool) *string { return &t.CodeRepo }},
		{"artefact", "", "what the tool produces", func(t *api.Tool) *string { return &t.Artefact }},
		{"description", "", "free text", func(t *api.Tool) *string { return &t.Description }},
		{"input-dataset", "", "dataset mounted read-only at /usr/src/app/input", func(t *api.Tool) *string { return &t.InputDataset }},
		{"timeout", "", "run time limit, e.g. 30m (default 1h)", func(t *api.Tool) *string { return &t.Timeout }},
		{"network", "", "container network (default bridge)", func(t *api.Tool) *string { return &t.Network }},
	}
}

func toolFlags() []cli.Flag {
	flags := []cli.Flag{
		&cli.PathFlag{Name: "file", Aliases: []string{"f"}, Usage: "tool spec file (YAML or JSON)"},
	}
	for _, s := range toolStringFlags() {
		flags = append(flags, &cli.StringFlag{Name: s.name, Usage: s.usage})
		if s.old != "" {
			flags = append(flags, &cli.StringFlag{Name: s.old, Usage: "same as --" + s.name, Hidden: true})
		}
	}
	return append(flags,
		&cli.StringSliceFlag{Name: "command", Usage: "container command, one `ARG` per flag"},
		&cli.StringSliceFlag{Name: "env", Usage: "environment variable `KEY=VALUE`, repeatable"},
		&cli.Float64Flag{Name: "cpus", Usage: "CPU limit, e.g. 1.5", DefaultText: "no limit"},
		&cli.StringFlag{Name: "memory", Usage: "memory limit, e.g. 512MiB"},
	)
}

func (c *ctl) toolRegister(cCtx *cli.Context) error {
	var t api.Tool
	file, pos := cCtx.Path("file"), cCtx.Args().Slice()
	switch {
	case file != "" && len(pos) > 0:
		return usageErrorf("give either -f FILE or the positional fields, not both")
	case file != "":
		var err error
		if t, err = toolspec.LoadTool(file); err != nil {
			return fmt.Errorf("read tool spec: %w", err)
		}
	case len(pos) == 6:
		t = api.Tool{Name: pos[0], Author: pos[1], Image: pos[2], DataRepo: pos[3], CodeRepo: pos[4], Artefact: pos[5]}
	case len(pos) != 0:
		return usageErrorf("%s takes NAME AUTHOR IMAGE DATA_REPO CODE_REPO ARTEFACT (6 arguments); got %d", commandName(cCtx), len(pos))
	}
	n, err := applyToolFlags(cCtx, &t)
	if err != nil {
		return err
	}
	if file == "" && len(pos) == 0 && n == 0 {
		return usageErrorf("%s needs -f FILE, flags such as --name and --image, or NAME AUTHOR IMAGE DATA_REPO CODE_REPO ARTEFACT", commandName(cCtx))
	}
	out, err := c.client.RegisterTool(cCtx.Context, t)
	if err != nil {
		return err
	}
	if c.json {
		return writeJSON(c.stdout, out)
	}
	_, err = fmt.Fprintf(c.stdout, "registered tool %s\n", out.Name)
	return err
}

// applyToolFlags sets the fields of t whose flags were given and returns
// how many were. --env adds to or replaces single variables.
func applyToolFlags(cCtx *cli.Context, t *api.Tool) (int, error) {
	n := 0
	for _, s := range toolStringFlags() {
		set, old := cCtx.IsSet(s.name), s.old != "" && cCtx.IsSet(s.old)
		switch {
		case set && old:
			return 0, usageErrorf("give --%s or --%s, not both", s.name, s.old)
		case set:
			*s.field(t) = cCtx.String(s.name)
		case old:
			*s.field(t) = cCtx.String(s.old)
		default:
			continue
		}
		n++
	}
	if cCtx.IsSet("command") {
		t.Command = cCtx.StringSlice("command")
		n++
	}
	if cCtx.IsSet("env") {
		if err := addEnv(&t.Env, cCtx.StringSlice("env")); err != nil {
			return 0, err
		}
		n++
	}
	if cCtx.IsSet("cpus") || cCtx.IsSet("memory") {
		if t.Resources == nil {
			t.Resources = &api.Resources{}
		}
		if cCtx.IsSet("cpus") {
			t.Resources.CPUs = cCtx.Float64("cpus")
			n++
		}
		if cCtx.IsSet("memory") {
			t.Resources.Memory = cCtx.String("memory")
			n++
		}
	}
	return n, nil
}

func (c *ctl) toolList(cCtx *cli.Context) error {
	if _, err := args(cCtx); err != nil {
		return err
	}
	return c.listTools(cCtx.Context)
}

// toolRow is what the table of tools shows of each: decoding only these
// fields halves the time a list of thousands takes.
type toolRow struct {
	Name     string `json:"name"`
	Author   string `json:"author"`
	Image    string `json:"image"`
	DataRepo string `json:"data_repo"`
	Artefact string `json:"artefact"`
}

func (c *ctl) listTools(ctx context.Context) error {
	if c.json {
		tools, err := c.client.Tools(ctx)
		if err != nil {
			return err
		}
		return printList(c, tools, "", nil)
	}
	tools, err := api.ToolsAs[toolRow](ctx, c.client)
	if err != nil {
		return err
	}
	return printList(c, tools, "no tools registered", func(tools []toolRow) error {
		tab := newTable(c.stdout, "NAME", "AUTHOR", "IMAGE", "DATA REPO", "ARTEFACT")
		for _, t := range tools {
			tab.row(t.Name, t.Author, t.Image, t.DataRepo, t.Artefact)
		}
		return tab.flush()
	})
}

// dataResult is what `tool data -o json` prints.
type dataResult struct {
	Tool string `json:"tool"`
	URL  string `json:"url"`
	cloned
}

func (c *ctl) toolData(cCtx *cli.Context) error {
	name, dir, err := nameAndDir(cCtx)
	if err != nil {
		return err
	}
	ctx := cCtx.Context
	t, err := c.client.Tool(ctx, name)
	if err != nil {
		return err
	}
	got, err := cloneOrUpdate(ctx, repoSource{what: "the data of tool " + t.Name, url: t.DataRepo, branch: t.Branch}, dir, c.progress())
	if err != nil {
		return err
	}
	if c.json {
		return writeJSON(c.stdout, dataResult{Tool: t.Name, URL: t.DataRepo, cloned: got})
	}
	switch got.Before {
	case "":
		_, err = fmt.Fprintf(c.stdout, "cloned the data of tool %s into %s (branch %s, commit %s)\n", t.Name, got.Dir, got.Branch, got.Commit)
	case got.Commit:
		_, err = fmt.Fprintf(c.stdout, "the data of tool %s in %s is up to date (branch %s, commit %s)\n", t.Name, got.Dir, got.Branch, got.Commit)
	default:
		_, err = fmt.Fprintf(c.stdout, "updated the data of tool %s in %s (branch %s, commit %s, was %s)\n", t.Name, got.Dir, got.Branch, got.Commit, got.Before)
	}
	return err
}

func (c *ctl) toolShow(cCtx *cli.Context) error {
	a, err := args(cCtx, "NAME")
	if err != nil {
		return err
	}
	return c.showTool(cCtx.Context, a[0])
}

func (c *ctl) showTool(ctx context.Context, name string) error {
	t, err := c.client.Tool(ctx, name)
	if err != nil {
		return err
	}
	if c.json {
		return writeJSON(c.stdout, t)
	}
	f := newFields(c.stdout)
	f.add("Name", t.Name)
	f.add("Author", t.Author)
	f.add("Image", t.Image)
	f.add("Data repo", t.DataRepo)
	f.addIf("Branch", t.Branch)
	f.addIf("Push", t.Push)
	f.addIf("Code repo", t.CodeRepo)
	f.addIf("Artefact", t.Artefact)
	f.addIf("Description", t.Description)
	if len(t.Command) > 0 {
		f.add("Command", quoteArgs(t.Command))
	}
	f.addIf("Env", keyValues(t.Env, "\n"))
	f.addIf("Input dataset", t.InputDataset)
	f.add("Timeout", withDefault(t.Timeout, t.TimeoutDuration().String()))
	f.add("Network", withDefault(t.Network, t.NetworkName()))
	f.add("CPUs", limit(t.CPUs() > 0, strconv.FormatFloat(t.CPUs(), 'f', -1, 64)))
	memory := ""
	if t.Resources != nil {
		memory = t.Resources.Memory
	}
	f.add("Memory", limit(memory != "", memory))
	return f.flush()
}

func (c *ctl) toolRemove(cCtx *cli.Context) error {
	a, err := args(cCtx, "NAME")
	if err != nil {
		return err
	}
	if err := c.client.RemoveTool(cCtx.Context, a[0]); err != nil {
		return err
	}
	if c.json {
		return nil
	}
	_, err = fmt.Fprintf(c.stdout, "removed tool %s\n", a[0])
	return err
}

func (c *ctl) toolGet(cCtx *cli.Context) error {
	name, err := nameArg(cCtx)
	if err != nil {
		return err
	}
	if name == "" {
		return c.listTools(cCtx.Context)
	}
	return c.showTool(cCtx.Context, name)
}

func (c *ctl) toolRun(cCtx *cli.Context) error {
	a, err := args(cCtx, "NAME")
	if err != nil {
		return err
	}
	target, err := targetFromFlags(cCtx)
	if err != nil {
		return err
	}
	follow := cCtx.Bool("follow")
	switch {
	case follow && target != nil && target.Mode == "all":
		return usageErrorf("%s --follow follows one run; --all starts one per site (follow each with maoctl run logs -f ID)", commandName(cCtx))
	case cCtx.Int("retries") < 0:
		return usageErrorf("--retries must not be negative")
	}
	ctx := cCtx.Context
	runs, err := c.client.RunTool(ctx, a[0], api.RunRequest{Target: target, Retries: cCtx.Int("retries")})
	if err != nil {
		return err
	}
	if !follow {
		return c.printStarted(cCtx.Bool("quiet"), runs)
	}
	if len(runs) != 1 {
		return fmt.Errorf("--follow follows one run, but the orchestrator started %d", len(runs))
	}
	return c.follow(ctx, runs[0], cCtx.Bool("raw"))
}

// follow says where a run that was just asked for runs, streams its log
// until it ends, and reports how it ended (see finished).
func (c *ctl) follow(ctx context.Context, r api.Run, raw bool) error {
	switch site := namedSite(r); {
	case r.Site != "":
		fmt.Fprintf(c.stderr, "run %s of %s started at site %s\n", r.ID, r.Tool, r.Site)
	case site != "": // sent to one site, which has not taken it yet
		fmt.Fprintf(c.stderr, "run %s of %s waits for site %s to take it\n", r.ID, r.Tool, site)
	default:
		fmt.Fprintf(c.stderr, "run %s of %s waits for an eligible site (target %s)\n", r.ID, r.Tool, targetText(r.Target))
	}
	if err := c.client.RunLogs(ctx, r.ID, api.LogOptions{Follow: true}, c.logWriter(raw)); err != nil {
		if errors.Is(err, context.Canceled) {
			return fmt.Errorf("stopped following run %s, which goes on %s (see maoctl run show %s): %w", r.ID, runWhere(r), r.ID, err)
		}
		return err
	}
	final, err := c.client.Run(ctx, r.ID)
	if err != nil {
		return err
	}
	return c.finished(final)
}

// printStarted lists the runs tool run started.
func (c *ctl) printStarted(quiet bool, runs []api.Run) error {
	switch {
	case quiet:
		for _, r := range runs {
			if _, err := fmt.Fprintln(c.stdout, r.ID); err != nil {
				return err
			}
		}
		return nil
	case c.json:
		return writeJSON(c.stdout, nonNil(runs))
	}
	tab := newTable(c.stdout, "ID", "SITE", "STATE", "TARGET")
	for _, r := range runs {
		tab.row(r.ID, runSite(r), runState(r), targetText(r.Target))
	}
	return tab.flush()
}

// finished reports how a followed run ended and turns anything but success
// into a *RunExitError.
func (c *ctl) finished(r api.Run) error {
	if !r.State.Terminal() {
		return fmt.Errorf("the log of run %s ended but the run is still %s (see maoctl run show %s)", r.ID, r.State, r.ID)
	}
	fmt.Fprintln(c.stderr, runSummary(r))
	code := 0
	if r.ExitCode != nil {
		code = *r.ExitCode
	}
	switch {
	case r.State == api.StateTimedOut:
		code = exitTimedOut
	case r.State != api.StateSucceeded && code == 0: // failed, or lost with its site
		code = exitError
	}
	if code == 0 {
		return nil
	}
	return &RunExitError{Run: r, Code: code}
}

// addEnv adds the KEY=VALUE values of --env flags to *env, replacing
// variables that are already set.
func addEnv(env *map[string]string, kvs []string) error {
	if *env == nil {
		*env = map[string]string{}
	}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return usageErrorf("--env %q: want KEY=VALUE", kv)
		}
		(*env)[k] = v
	}
	return nil
}

// keyValues lists the KEY=VALUE pairs of m sorted by key, joined by sep;
// "" when m is empty.
func keyValues(m map[string]string, sep string) string {
	pairs := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		pairs = append(pairs, k+"="+m[k])
	}
	return strings.Join(pairs, sep)
}

// quoteArgs renders a command line so that each argument stays visible.
func quoteArgs(argv []string) string {
	quoted := make([]string, len(argv))
	for i, a := range argv {
		if a == "" || strings.ContainsAny(a, " \t\n\"'\\$`") {
			a = strconv.Quote(a)
		}
		quoted[i] = a
	}
	return strings.Join(quoted, " ")
}

// withDefault is the value set in a spec, or the default marked as such.
func withDefault(set, def string) string {
	if set == "" {
		return def + " (default)"
	}
	return set
}

func limit(set bool, v string) string {
	if !set {
		return "no limit"
	}
	return v
}

// printList prints a list the API answered: its JSON (the items and the
// invalid records), or the table that table prints with a footer line
// naming the records left out as invalid, if any (none and the footer on
// stderr when the list is empty), then the list's note on stderr.
func printList[T any](c *ctl, list api.List[T], none string, table func([]T) error) error {
	if c.json {
		list.Items = nonNil(list.Items)
		return writeJSON(c.stdout, list)
	}
	// The footer goes under the table; with no table, beside the none
	// line, on stderr.
	footer := c.stdout
	if len(list.Items) == 0 {
		footer = c.stderr
		if _, err := fmt.Fprintln(c.stderr, none); err != nil {
			return err
		}
	} else if err := table(list.Items); err != nil {
		return err
	}
	if err := leftOut(footer, list.Invalid); err != nil {
		return err
	}
	if list.Note != "" {
		if _, err := fmt.Fprintln(c.stderr, list.Note); err != nil {
			return err
		}
	}
	return nil
}

// leftOut says, in a table's footer line, which invalid records a list
// left out, if any.
func leftOut(w io.Writer, invalid []api.InvalidRecord) error {
	if len(invalid) == 0 {
		return nil
	}
	keys := make([]string, 0, min(len(invalid), 3))
	for _, r := range invalid[:cap(keys)] {
		keys = append(keys, r.Key)
	}
	if len(invalid) > len(keys) {
		keys = append(keys, "...")
	}
	_, err := fmt.Fprintf(w, "%s left out as invalid: %s (maoctl federation check says why)\n",
		plural(len(invalid), "record"), strings.Join(keys, ", "))
	return err
}

// nonNil makes an empty list print as [] rather than null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
