package maoctl

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/mao-research/mao/api"
)

func (c *ctl) federationCommand() *cli.Command {
	return &cli.Command{
		Name:  "federation",
		Usage: "inspect the etcd cluster the sites share, add and remove its members",
		Subcommands: []*cli.Command{
			{
				Name:   "status",
				Usage:  "show the cluster, its leader and the health of each member",
				Action: c.federationStatus,
			},
			{
				Name:      "add-site",
				Usage:     "add an etcd member for a new site and print the config.ini lines it needs",
				ArgsUsage: "NAME",
				Description: "NAME is the new site's name, also its member's name. Put the printed lines in the new\n" +
					"site's config.ini and start it: it joins the cluster as a learner, which does not count for\n" +
					"the quorum, and promotes itself. Add one site at a time: until the member added has started,\n" +
					"it has no name, and another cannot be added (remove it by its ID to start again).",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "peer-url", Usage: "`URL` where the new member listens for its peers, e.g. http://10.0.0.8:2380"},
					&cli.StringFlag{Name: "client-url", Usage: "`URL` where the new member serves clients", DefaultText: "http://127.0.0.1:2379"},
				},
				Action: c.federationAddSite,
			},
			{
				Name:      "remove-site",
				Usage:     "remove a site's etcd member (by site name, or by member ID if it never started)",
				ArgsUsage: "NAME | MEMBER-ID",
				Action:    c.federationRemoveSite,
			},
		},
	}
}

func (c *ctl) federationStatus(cCtx *cli.Context) error {
	if _, err := args(cCtx); err != nil {
		return err
	}
	fed, err := c.client.Federation(cCtx.Context)
	if err != nil {
		return err
	}
	if c.json {
		return writeJSON(c.stdout, fed)
	}
	f := newFields(c.stdout)
	f.add("Cluster", fed.ClusterID)
	leader := fed.Leader
	if leader == "" {
		leader = "none (the cluster has no quorum)"
	}
	f.add("Leader", leader)
	if err := f.flush(); err != nil {
		return err
	}
	fmt.Fprintln(c.stdout)
	tab := newTable(c.stdout, "NAME", "ID", "PEER URLS", "CLIENT URLS", "LEADER", "HEALTH", "VERSION")
	for _, m := range fed.Members {
		star := ""
		if m.Leader {
			star = "*"
		}
		tab.row(m.Name, m.ID, strings.Join(m.PeerURLs, ","), strings.Join(m.ClientURLs, ","), star, m.Health, m.Version)
	}
	return tab.flush()
}

func (c *ctl) federationAddSite(cCtx *cli.Context) error {
	a, err := args(cCtx, "NAME")
	if err != nil {
		return err
	}
	req := api.AddSiteRequest{Name: a[0], PeerURL: cCtx.String("peer-url"), ClientURL: cCtx.String("client-url")}
	if req.PeerURL == "" {
		return usageErrorf("%s needs --peer-url URL, where the new site's etcd member will listen for its peers", commandName(cCtx))
	}
	res, err := c.client.AddSite(cCtx.Context, req)
	if err != nil {
		return err
	}
	if c.json {
		return writeJSON(c.stdout, res)
	}
	fmt.Fprintf(c.stderr, "Put these lines in the config.ini of site %s, then start it:\n", res.Member.Name)
	config := res.Config
	if !strings.HasSuffix(config, "\n") {
		config += "\n"
	}
	if _, err := fmt.Fprint(c.stdout, config); err != nil {
		return err
	}
	_, err = fmt.Fprintf(c.stderr, "Note: site %s joins as a learner and promotes itself to a voting member once it has caught up.\n",
		res.Member.Name)
	return err
}

func (c *ctl) federationRemoveSite(cCtx *cli.Context) error {
	a, err := args(cCtx, "NAME")
	if err != nil {
		return err
	}
	if err := c.client.RemoveSite(cCtx.Context, a[0]); err != nil {
		return err
	}
	if c.json {
		return nil
	}
	// The orchestrator removes the site's etcd member, if it has one, and
	// its lasting record; it does not say which it found.
	_, err = fmt.Fprintf(c.stdout, "removed %s from the federation\n", a[0])
	return err
}
