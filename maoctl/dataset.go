package maoctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/toolspec"
)

func (c *ctl) datasetCommand() *cli.Command {
	return &cli.Command{
		Name:  "dataset",
		Usage: "register, inspect and clone datasets (git repositories)",
		Subcommands: []*cli.Command{
			{
				Name:        "register",
				Aliases:     []string{"add"},
				Usage:       "register a dataset from a spec file, flags or NAME URL",
				ArgsUsage:   "[NAME URL]",
				Description: "Give -f FILE (YAML or JSON), flags, or NAME URL. Flags override the file's or the arguments' values.",
				Flags: []cli.Flag{
					&cli.PathFlag{Name: "file", Aliases: []string{"f"}, Usage: "dataset spec file (YAML or JSON)"},
					&cli.StringFlag{Name: "name", Usage: "dataset name"},
					&cli.StringFlag{Name: "url", Usage: "git URL"},
					&cli.StringFlag{Name: "branch", Usage: "branch to use (default: the remote's default branch)"},
					&cli.StringFlag{Name: "description", Usage: "free text"},
					&cli.StringFlag{Name: "owner", Usage: "who maintains the dataset"},
				},
				Action: c.datasetRegister,
			},
			{
				Name:   "list",
				Usage:  "list the registered datasets",
				Action: c.datasetList,
			},
			{
				Name:      "show",
				Usage:     "show one dataset",
				ArgsUsage: "NAME",
				Action:    c.datasetShow,
			},
			{
				Name:      "remove",
				Usage:     "remove a dataset from the registry",
				ArgsUsage: "NAME",
				Action:    c.datasetRemove,
			},
			{
				Name:      "clone",
				Usage:     "clone a dataset's repository into DIR (default ./NAME)",
				ArgsUsage: "NAME [DIR]",
				Action:    c.datasetClone,
			},
			{
				Name:      "get",
				Usage:     "show one dataset, or list them all (the predecessor's spelling)",
				ArgsUsage: "[NAME]",
				Flags:     []cli.Flag{&cli.StringFlag{Name: "name", Usage: "the dataset to show"}},
				Action:    c.datasetGet,
			},
		},
	}
}

func (c *ctl) datasetRegister(cCtx *cli.Context) error {
	var d api.Dataset
	file, pos := cCtx.Path("file"), cCtx.Args().Slice()
	switch {
	case file != "" && len(pos) > 0:
		return usageErrorf("give either -f FILE or NAME URL, not both")
	case file != "":
		var err error
		if d, err = toolspec.LoadDataset(file); err != nil {
			return fmt.Errorf("read dataset spec: %w", err)
		}
	case len(pos) == 2:
		d = api.Dataset{Name: pos[0], URL: pos[1]}
	case len(pos) != 0:
		return usageErrorf("%s takes NAME URL (2 arguments); got %d", commandName(cCtx), len(pos))
	}
	n := 0
	for _, f := range []struct {
		name string
		dst  *string
	}{{"name", &d.Name}, {"url", &d.URL}, {"branch", &d.Branch}, {"description", &d.Description}, {"owner", &d.Owner}} {
		if cCtx.IsSet(f.name) {
			*f.dst = cCtx.String(f.name)
			n++
		}
	}
	if file == "" && len(pos) == 0 && n == 0 {
		return usageErrorf("%s needs -f FILE, flags such as --name and --url, or NAME URL", commandName(cCtx))
	}
	out, err := c.client.RegisterDataset(cCtx.Context, d)
	if err != nil {
		return err
	}
	if c.json {
		return writeJSON(c.stdout, out)
	}
	_, err = fmt.Fprintf(c.stdout, "registered dataset %s\n", out.Name)
	return err
}

func (c *ctl) datasetList(cCtx *cli.Context) error {
	if _, err := args(cCtx); err != nil {
		return err
	}
	return c.listDatasets(cCtx.Context)
}

func (c *ctl) listDatasets(ctx context.Context) error {
	sets, err := c.client.Datasets(ctx)
	if err != nil {
		return err
	}
	return printList(c, sets, "no datasets registered", func(sets []api.Dataset) error {
		tab := newTable(c.stdout, "NAME", "URL", "BRANCH", "OWNER", "DESCRIPTION")
		for _, d := range sets {
			tab.row(d.Name, d.URL, d.Branch, d.Owner, d.Description)
		}
		return tab.flush()
	})
}

func (c *ctl) datasetShow(cCtx *cli.Context) error {
	a, err := args(cCtx, "NAME")
	if err != nil {
		return err
	}
	return c.showDataset(cCtx.Context, a[0])
}

func (c *ctl) showDataset(ctx context.Context, name string) error {
	d, err := c.client.Dataset(ctx, name)
	if err != nil {
		return err
	}
	if c.json {
		return writeJSON(c.stdout, d)
	}
	f := newFields(c.stdout)
	f.add("Name", d.Name)
	f.add("URL", d.URL)
	f.add("Branch", orRemoteDefault(d.Branch))
	f.addIf("Owner", d.Owner)
	f.addIf("Description", d.Description)
	return f.flush()
}

func (c *ctl) datasetRemove(cCtx *cli.Context) error {
	a, err := args(cCtx, "NAME")
	if err != nil {
		return err
	}
	if err := c.client.RemoveDataset(cCtx.Context, a[0]); err != nil {
		return err
	}
	if c.json {
		return nil
	}
	_, err = fmt.Fprintf(c.stdout, "removed dataset %s\n", a[0])
	return err
}

func (c *ctl) datasetGet(cCtx *cli.Context) error {
	name, err := nameArg(cCtx)
	if err != nil {
		return err
	}
	if name == "" {
		return c.listDatasets(cCtx.Context)
	}
	return c.showDataset(cCtx.Context, name)
}

// cloneResult is what `dataset clone -o json` prints.
type cloneResult struct {
	Dataset api.Dataset `json:"dataset"`
	Dir     string      `json:"dir"`
	Branch  string      `json:"branch"`
	Commit  string      `json:"commit"`
}

func (c *ctl) datasetClone(cCtx *cli.Context) error {
	pos := cCtx.Args().Slice()
	if len(pos) == 0 || len(pos) > 2 {
		return usageErrorf("%s takes NAME [DIR]; got %d arguments", commandName(cCtx), len(pos))
	}
	ctx := cCtx.Context
	d, err := c.client.Dataset(ctx, pos[0])
	if err != nil {
		return err
	}
	dir := d.Name
	if len(pos) == 2 {
		dir = pos[1]
	}
	res, err := clone(ctx, d, dir, c.progress())
	if err != nil {
		return err
	}
	if c.json {
		return writeJSON(c.stdout, res)
	}
	_, err = fmt.Fprintf(c.stdout, "cloned dataset %s into %s (branch %s, commit %s)\n", d.Name, res.Dir, res.Branch, res.Commit)
	return err
}

// progress is where go-git reports clone progress: stderr when it is a
// terminal, nowhere otherwise.
func (c *ctl) progress() io.Writer {
	f, ok := c.stderr.(interface{ Fd() uintptr })
	if ok && term.IsTerminal(int(f.Fd())) {
		return c.stderr
	}
	return nil
}

// clone clones d into dir, which must not exist or be empty.
func clone(ctx context.Context, d api.Dataset, dir string, progress io.Writer) (cloneResult, error) {
	entries, err := os.ReadDir(dir)
	switch {
	case err == nil && len(entries) > 0:
		return cloneResult{}, fmt.Errorf("clone dataset %s: %s already exists and is not empty; give another DIR", d.Name, dir)
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return cloneResult{}, fmt.Errorf("clone dataset %s: %w", d.Name, err)
	}
	opts := &git.CloneOptions{URL: d.URL}
	if progress != nil {
		opts.Progress = progress
	}
	if d.Branch != "" {
		opts.ReferenceName = plumbing.NewBranchReferenceName(d.Branch)
		opts.SingleBranch = true
	}
	repo, err := git.PlainCloneContext(ctx, dir, false, opts)
	if err != nil {
		return cloneResult{}, fmt.Errorf("clone dataset %s from %s: %w", d.Name, d.URL, err)
	}
	head, err := repo.Head()
	if err != nil {
		return cloneResult{}, fmt.Errorf("clone dataset %s: read HEAD of %s: %w", d.Name, dir, err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return cloneResult{}, fmt.Errorf("clone dataset %s: %w", d.Name, err)
	}
	return cloneResult{Dataset: d, Dir: abs, Branch: head.Name().Short(), Commit: head.Hash().String()}, nil
}

func orRemoteDefault(branch string) string {
	if branch == "" {
		return "the remote's default"
	}
	return branch
}
