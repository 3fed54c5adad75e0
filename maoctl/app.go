package maoctl

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/mao-research/mao/api"
)

// Run executes one maoctl command line. args are the arguments without the
// program name (os.Args[1:]); output goes to stdout and stderr, and a
// command told to read "-" reads the process's standard input. ctx bounds
// every request, log stream and clone. The error is for PrintError and
// ExitCode.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return run(ctx, args, os.Stdin, stdout, stderr)
}

// run is Run with stdin as the standard input.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "help" { // `maoctl help tool run` is `maoctl tool run --help`
		args = append(args[1:len(args):len(args)], "--help")
	}
	c := &ctl{stdin: stdin, stdout: stdout, stderr: stderr, tty: isTerminal(stdout)}
	app := c.app()
	return app.RunContext(ctx, append([]string{app.Name}, hoistFlags(app, args)...))
}

// ctl holds what every command needs; setup, the app's Before hook, fills
// in client and json from the global options.
type ctl struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	tty            bool // stdout is a terminal: logs are printed without control sequences
	client         *api.Client
	json           bool
}

// Global option names.
const (
	flagOutput = "output"
	flagAddr   = "addr"
	flagToken  = "token"
	flagCAFile = "ca-file"
)

func (c *ctl) app() *cli.App {
	app := &cli.App{
		Name:  "maoctl",
		Usage: "register tools and datasets, run tools and follow their runs at a mao site",
		Description: "maoctl talks to one orchestrator's REST API. Tools and datasets are shared by all sites;\n" +
			"runs happen at the site of the orchestrator you talk to, unless tool run --site, --any or --all\n" +
			"send them elsewhere in the federation.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: flagOutput, Aliases: []string{"o"}, Value: "table", Usage: "output format: table or json"},
			&cli.StringFlag{Name: flagAddr, EnvVars: []string{"MAO_ADDR"}, Value: api.DefaultAddr, Usage: "orchestrator address"},
			&cli.StringFlag{Name: flagToken, EnvVars: []string{"MAO_TOKEN"}, Usage: "API bearer token", DefaultText: "none"},
			&cli.StringFlag{Name: flagCAFile, EnvVars: []string{"MAO_CA_FILE"}, Usage: "PEM certificates of the authority that signed an https orchestrator's certificate",
				DefaultText: "the system's", TakesFile: true},
		},
		Commands: []*cli.Command{
			c.toolCommand(),
			c.datasetCommand(),
			c.runCommand(),
			c.scheduleCommand(),
			c.siteCommand(),
			c.federationCommand(),
			c.notifyCommand(),
			c.detectorCommand(),
			c.healthCommand(),
			c.completionCommand(),
		},
		Before:                    c.setup,
		Action:                    groupAction,
		HideHelpCommand:           true,
		EnableBashCompletion:      true,
		BashComplete:              complete,
		DisableSliceFlagSeparator: true,
		OnUsageError:              onUsageError,
		ExitErrHandler:            func(*cli.Context, error) {}, // Run's caller decides how to exit
		Writer:                    c.stdout,
		ErrWriter:                 c.stderr,
	}
	for _, cmd := range app.Commands {
		prepare(cmd)
	}
	return app
}

// prepare gives cmd and its subcommands maoctl's behaviour: usage errors
// are returned rather than printed with the help text, a group prints its
// help, and completion lists subcommands and flags.
func prepare(cmd *cli.Command) {
	cmd.OnUsageError = onUsageError
	cmd.HideHelpCommand = true
	cmd.BashComplete = complete
	if len(cmd.Subcommands) > 0 {
		cmd.Action = groupAction
	}
	for _, sub := range cmd.Subcommands {
		prepare(sub)
	}
}

// setup reads the global options.
func (c *ctl) setup(cCtx *cli.Context) error {
	switch out := cCtx.String(flagOutput); out {
	case "table":
	case "json":
		c.json = true
	default:
		return usageErrorf("--output must be table or json, not %q", out)
	}
	hc, err := httpClient(cCtx.String(flagCAFile))
	if err != nil {
		return usageErrorf("--ca-file: %w", err)
	}
	client, err := api.NewClient(cCtx.String(flagAddr), cCtx.String(flagToken), hc)
	if err != nil {
		return usageErrorf("--addr: %w", err)
	}
	c.client = client
	return nil
}

// httpClient is the client of the API: nil (http.DefaultClient, which
// trusts the system's certificate authorities) without caFile, else one
// that trusts only the authorities in caFile, as curl --cacert does.
func httpClient(caFile string) (*http.Client, error) {
	if caFile == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", caFile)
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: transport}, nil
}

// onUsageError turns a flag parsing error into a usage error that names
// the command, instead of printing it with the help text.
func onUsageError(cCtx *cli.Context, err error, isSubcommand bool) error {
	// Go's flag package names flags with one dash; maoctl's help uses two.
	err = errors.New(longFlagRe.ReplaceAllString(err.Error(), "$1--$2"))
	if !isSubcommand {
		return usageErrorf("%w (see maoctl --help)", err)
	}
	return usageErrorf("%s: %w (see %s --help)", commandName(cCtx), err, cCtx.Command.HelpName)
}

// longFlagRe matches a flag name of two or more letters after one dash.
var longFlagRe = regexp.MustCompile(`(^|[\s:])-([A-Za-z][\w-]+)`)

// commandName is the command's path without the program name, e.g. "tool
// show".
func commandName(cCtx *cli.Context) string {
	return strings.TrimPrefix(cCtx.Command.HelpName, cCtx.App.Name+" ")
}

// groupAction runs for `maoctl` or a command group such as `maoctl tool`
// without a subcommand: it prints the help, or rejects an unknown command.
func groupAction(cCtx *cli.Context) error {
	root := cCtx.Command.HelpName == cCtx.App.Name
	if cCtx.Args().Present() {
		unknown := cCtx.Args().First()
		if !root {
			unknown = commandName(cCtx) + " " + unknown
		}
		return usageErrorf("unknown command %q (see %s --help)", unknown, cCtx.Command.HelpName)
	}
	if root {
		return cli.ShowAppHelp(cCtx)
	}
	return cli.ShowSubcommandHelp(cCtx)
}

// complete prints the candidates for the next word: the command's
// subcommands and flags. The completion scripts filter them by prefix.
func complete(cCtx *cli.Context) {
	w := cCtx.App.Writer
	for _, sub := range cCtx.Command.VisibleCommands() {
		fmt.Fprintln(w, sub.Name)
	}
	for _, f := range cCtx.Command.VisibleFlags() {
		for _, name := range f.Names() {
			if len(name) == 1 {
				fmt.Fprintln(w, "-"+name)
			} else {
				fmt.Fprintln(w, "--"+name)
			}
		}
	}
}

// args checks that the command got exactly the named positional arguments.
func args(cCtx *cli.Context, names ...string) ([]string, error) {
	got := cCtx.Args().Slice()
	switch {
	case len(got) < len(names):
		return nil, usageErrorf("%s needs %s", commandName(cCtx), strings.Join(names[len(got):], " "))
	case len(got) > len(names) && len(names) == 0:
		return nil, usageErrorf("%s takes no arguments; got %q", commandName(cCtx), got)
	case len(got) > len(names):
		return nil, usageErrorf("%s takes only %s; got also %q", commandName(cCtx), strings.Join(names, " "), got[len(names):])
	}
	return got, nil
}

// nameArg is the NAME of `get [--name N | NAME]`, "" when neither is given.
func nameArg(cCtx *cli.Context) (string, error) {
	name, rest := cCtx.String("name"), cCtx.Args().Slice()
	switch {
	case len(rest) > 1 || (len(rest) == 1 && name != ""):
		return "", usageErrorf("%s takes one name, as --name NAME or NAME", commandName(cCtx))
	case len(rest) == 1:
		return rest[0], nil
	}
	return name, nil
}

// completionFlag is the flag urfave/cli appends when a shell asks for
// completions.
const completionFlag = "--generate-bash-completion"

// hoistFlags reorders args for urfave/cli v2, which stops reading flags at
// the first positional argument: global options may appear anywhere and go
// first, then the command path, then the command's own flags, then its
// positional arguments. So `maoctl tool run NAME --follow -o json` works.
// Everything after "--" stays positional.
func hoistFlags(app *cli.App, in []string) []string {
	completing := len(in) > 0 && in[len(in)-1] == completionFlag
	if completing {
		in = in[:len(in)-1]
	}
	var global, path, local, positional []string
	flags, subs := app.Flags, app.Commands
	dashdash := false
	for i := 0; i < len(in); i++ {
		a := in[i]
		switch {
		case a == "--":
			dashdash = true
			positional = append(positional, in[i+1:]...)
			i = len(in)
		case len(a) > 1 && a[0] == '-':
			dst := &local
			f := findFlag(flags, a)
			if f == nil {
				f = findFlag(app.Flags, a)
				if f != nil || len(path) == 0 {
					dst = &global
				}
			} else if len(path) == 0 {
				dst = &global
			}
			*dst = append(*dst, a)
			if takesValue(f) && !strings.Contains(a, "=") && i+1 < len(in) {
				i++
				*dst = append(*dst, in[i])
			}
		case len(positional) == 0 && findCommand(subs, a) != nil:
			cmd := findCommand(subs, a)
			path = append(path, a)
			flags, subs = cmd.Flags, cmd.Subcommands
		default:
			positional = append(positional, a)
		}
	}
	out := append(append(global, path...), local...)
	if dashdash {
		out = append(out, "--")
	}
	out = append(out, positional...)
	if completing {
		out = append(out, completionFlag)
	}
	return out
}

func findFlag(flags []cli.Flag, arg string) cli.Flag {
	name, _, _ := strings.Cut(strings.TrimLeft(arg, "-"), "=")
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				return f
			}
		}
	}
	return nil
}

func takesValue(f cli.Flag) bool {
	d, ok := f.(cli.DocGenerationFlag)
	return ok && d.TakesValue()
}

func findCommand(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}
