package maoctl

import (
	"fmt"
	"slices"

	"github.com/dustin/go-humanize"
	"github.com/urfave/cli/v2"

	"github.com/mao-research/mao/api"
)

func (c *ctl) siteCommand() *cli.Command {
	return &cli.Command{
		Name:  "site",
		Usage: "inspect the federation's sites",
		Subcommands: []*cli.Command{
			{
				Name:   "list",
				Usage:  "list every site the federation has seen, live or gone",
				Action: c.siteList,
			},
			{
				Name:      "show",
				Usage:     "show one site",
				ArgsUsage: "NAME",
				Action:    c.siteShow,
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
	return printList(c, sites, "no sites", func(sites []api.SiteInfo) error {
		tab := newTable(c.stdout, "NAME", "STATE", "LAST SEEN", "VERSION", "LABELS", "RUNNING", "API")
		for _, s := range sites {
			tab.row(s.Name, siteState(s), timestamp(&s.LastSeen), s.Version, keyValues(s.Labels, ","),
				fmt.Sprint(s.RunsInProgress), s.APIAddr)
		}
		return tab.flush()
	})
}

func (c *ctl) siteShow(cCtx *cli.Context) error {
	a, err := args(cCtx, "NAME")
	if err != nil {
		return err
	}
	sites, err := c.client.Sites(cCtx.Context)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(sites.Items, func(s api.SiteInfo) bool { return s.Name == a[0] })
	if i < 0 {
		return fmt.Errorf("site %q not found (see maoctl site list)", a[0])
	}
	s := sites.Items[i]
	if c.json {
		return writeJSON(c.stdout, s)
	}
	f := newFields(c.stdout)
	f.add("Site", s.Name)
	f.add("State", siteState(s))
	f.add("Last seen", timestamp(&s.LastSeen))
	f.add("API", s.APIAddr)
	f.add("Version", s.Version)
	f.add("Platform", s.OS+"/"+s.Arch)
	f.add("CPUs", fmt.Sprint(s.CPUs))
	f.add("Memory", humanize.IBytes(s.MemoryBytes))
	f.add("Docker", s.DockerVersion)
	f.add("Up since", timestamp(&s.StartedAt))
	f.addIf("Labels", keyValues(s.Labels, "\n"))
	f.add("Runs in progress", fmt.Sprint(s.RunsInProgress))
	return f.flush()
}

// siteState is live or gone (its lease expired), or, for the asked
// site while etcd does not answer it, offline; with the records its
// journal holds that are not in etcd yet, if any.
func siteState(s api.SiteInfo) string {
	state := "gone"
	switch {
	case s.Offline:
		return journalState(true, s.Journaled)
	case s.Live:
		state = "live"
	}
	if s.Journaled > 0 {
		state += ", " + journalState(false, s.Journaled)
	}
	return state
}

// journalState says that the site is offline and how many records it has
// journaled, or, online, how many it has yet to replay into etcd.
func journalState(offline bool, journaled int) string {
	if offline {
		return "offline, " + plural(journaled, "record") + " journaled"
	}
	return plural(journaled, "record") + " journaled, being replayed into etcd"
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
		if h.InvalidRecords > 0 {
			f.add("Invalid records", fmt.Sprintf("%d, left out (maoctl federation check lists them)", h.InvalidRecords))
		}
		if h.Offline || h.Journaled > 0 {
			f.add("Work", journalState(h.Offline, h.Journaled))
		}
		err = f.flush()
	}
	if err == nil && h.Status != "ok" {
		err = fmt.Errorf("the orchestrator at %s is %s", c.client.Addr(), h.Status)
	}
	return err
}
