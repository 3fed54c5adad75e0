package maoctl

import (
	"fmt"
	"sort"
	"strings"

	"github.com/dustin/go-humanize"
	"github.com/urfave/cli/v2"
)

func (c *ctl) siteCommand() *cli.Command {
	return &cli.Command{
		Name:  "site",
		Usage: "inspect the federation's sites",
		Subcommands: []*cli.Command{
			{
				Name:   "list",
				Usage:  "list the live sites",
				Action: c.siteList,
			},
		},
	}
}

func (c *ctl) siteList(cCtx *cli.Context) error {
	if _, err := args(cCtx); err != nil {
		return err
	}
	sites, err := c.client.Sites(cCtx.Context)
	if err != nil {
		return err
	}
	if c.json {
		return writeJSON(c.stdout, nonNil(sites))
	}
	if len(sites) == 0 {
		_, err := fmt.Fprintln(c.stderr, "no live sites")
		return err
	}
	tab := newTable(c.stdout, "NAME", "API", "VERSION", "PLATFORM", "CPUS", "MEMORY", "DOCKER", "UP SINCE", "LABELS")
	for _, s := range sites {
		labels := make([]string, 0, len(s.Labels))
		for k, v := range s.Labels {
			labels = append(labels, k+"="+v)
		}
		sort.Strings(labels)
		tab.row(s.Name, s.APIAddr, s.Version, s.OS+"/"+s.Arch, fmt.Sprint(s.CPUs), humanize.IBytes(s.MemoryBytes),
			s.DockerVersion, timestamp(&s.StartedAt), strings.Join(labels, ","))
	}
	return tab.flush()
}

func (c *ctl) healthCommand() *cli.Command {
	return &cli.Command{
		Name:   "health",
		Usage:  "check that the orchestrator, its etcd and its Docker engine are usable",
		Action: c.health,
	}
}

func (c *ctl) health(cCtx *cli.Context) error {
	if _, err := args(cCtx); err != nil {
		return err
	}
	h, err := c.client.Health(cCtx.Context)
	if err != nil {
		return err
	}
	if c.json {
		err = writeJSON(c.stdout, h)
	} else {
		f := newFields(c.stdout)
		f.add("Site", h.Site)
		f.add("Status", h.Status)
		f.add("Etcd", h.Etcd)
		f.add("Docker", h.Docker)
		err = f.flush()
	}
	if err == nil && h.Status != "ok" {
		err = fmt.Errorf("the orchestrator at %s is %s", c.client.Addr(), h.Status)
	}
	return err
}
