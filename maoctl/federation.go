package maoctl

import (
	"fmt"
	"os"
	"path/filepath"
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
				Name:  "check",
				Usage: "read every record of the federation in etcd and list those mao cannot use",
				Description: "Collaborators may write etcd directly; a value that is not a valid record of its kind\n" +
					"is left out of every list and never used. This reads every key under the federation's\n" +
					"prefix and lists those, with why. It exits 1 when there are any: fix them, or delete them\n" +
					"(etcdctl del KEY).",
				Action: c.federationCheck,
			},
			{
				Name:      "add-site",
				Usage:     "issue a one-time join token for a new site and print the config.ini lines it needs",
				ArgsUsage: "NAME",
				Description: "NAME is the new site's name. Put the printed lines in the new site's config.ini and\n" +
					"start it: it presents the token to this site, checks that this site is the federation's (the\n" +
					"token pins the federation's CA), and gets its certificates. With --peer-url it runs an etcd\n" +
					"member of its own, added as a learner when it joins (the quorum does not change), which\n" +
					"promotes itself once it has caught up. Needs an admin token.",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "peer-url", Usage: "`URL` where the new site's etcd member will listen for its peers, e.g. https://10.0.0.8:2380; without it, the site uses the federation's external etcd"},
					&cli.StringFlag{Name: "client-url", Usage: "`URL` where the new member serves clients", DefaultText: "https://127.0.0.1:2379"},
				},
				Action: c.federationAddSite,
			},
			{
				Name:      "credentials",
				Usage:     "issue a collaborator's read-only client certificate for the federation's etcd",
				ArgsUsage: "NAME",
				Description: "NAME is the collaborator (their etcd user is reader:NAME). The CA certificate, the\n" +
					"certificate and its key are written into --out, and the etcdctl flags that use them are\n" +
					"printed. The certificate reads the federation's keys and nothing else. Needs an admin token.",
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "read-only", Usage: "a certificate that can only read (required: the only kind issued)"},
					&cli.StringFlag{Name: "out", Usage: "`DIR` for the files", DefaultText: "./mao-credentials-NAME"},
				},
				Action: c.federationCredentials,
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

func (c *ctl) federationCheck(cCtx *cli.Context) error {
	if _, err := args(cCtx); err != nil {
		return err
	}
	chk, err := c.client.Check(cCtx.Context)
	if err != nil {
		return err
	}
	if c.json {
		chk.Invalid = nonNil(chk.Invalid)
		err = writeJSON(c.stdout, chk)
	} else if len(chk.Invalid) == 0 {
		_, err = fmt.Fprintf(c.stdout, "%s read, all valid\n", plural(chk.Records, "record"))
	} else {
		tab := newTable(c.stdout, "KEY", "WHY IT IS LEFT OUT")
		for _, r := range chk.Invalid {
			tab.row(r.Key, r.Reason)
		}
		err = tab.flush()
	}
	if err == nil && len(chk.Invalid) > 0 {
		err = fmt.Errorf("%s of %d invalid: fix or delete them (etcdctl del KEY)", plural(len(chk.Invalid), "record"), chk.Records)
	}
	return err
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
	if req.ClientURL != "" && req.PeerURL == "" {
		return usageErrorf("%s: --client-url is for a site with its own etcd member: give --peer-url too", commandName(cCtx))
	}
	res, err := c.client.AddSite(cCtx.Context, req)
	if err != nil {
		return err
	}
	if c.json {
		return writeJSON(c.stdout, res)
	}
	fmt.Fprintf(c.stderr, "Put these lines in the config.ini of site %s, then start it:\n", res.Site)
	config := res.Config
	if !strings.HasSuffix(config, "\n") {
		config += "\n"
	}
	if _, err := fmt.Fprint(c.stdout, config); err != nil {
		return err
	}
	_, err = fmt.Fprintf(c.stderr, "The join token is good once, until %s. It is a secret: pass it on as you would a password.\n",
		timestamp(&res.ExpiresAt))
	return err
}

func (c *ctl) federationCredentials(cCtx *cli.Context) error {
	a, err := args(cCtx, "NAME")
	if err != nil {
		return err
	}
	if !cCtx.Bool("read-only") {
		return usageErrorf("%s issues read-only credentials only: say --read-only", commandName(cCtx))
	}
	creds, err := c.client.Credentials(cCtx.Context, api.CredentialsRequest{Name: a[0], ReadOnly: true})
	if err != nil {
		return err
	}
	if c.json {
		return writeJSON(c.stdout, creds)
	}
	dir := cCtx.String("out")
	if dir == "" {
		dir = "mao-credentials-" + a[0]
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	files := []struct{ name, data string }{{"ca.crt", creds.CACert}, {a[0] + ".crt", creds.Cert}, {a[0] + ".key", creds.Key}}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f.name), []byte(f.data), 0o600); err != nil {
			return err
		}
	}
	fmt.Fprintf(c.stderr, "Wrote %s, %s and %s into %s: etcd user %s, read-only, until %s.\n",
		files[0].name, files[1].name, files[2].name, dir, creds.User, timestamp(&creds.ExpiresAt))
	_, err = fmt.Fprintf(c.stdout, "etcdctl --endpoints=%s --cacert=%s --cert=%s --key=%s get --prefix %s\n",
		strings.Join(creds.Endpoints, ","), filepath.Join(dir, files[0].name), filepath.Join(dir, files[1].name),
		filepath.Join(dir, files[2].name), creds.Prefix)
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
