package maoctl

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/dustin/go-humanize"
	"github.com/urfave/cli/v2"

	"github.com/mao-research/mao/api"
)

func (c *ctl) federationCommand() *cli.Command {
	return &cli.Command{
		Name:  "federation",
		Usage: "inspect the etcd cluster the sites share, add and remove its members",
		Subcommands: []*cli.Command{
			{
				Name:  "status",
				Usage: "show the cluster, its leader, its voters and each member's role, health, database size and alarms",
				Description: "Each member is a voter or a learner (it holds every record but does not count towards\n" +
					"quorum); a witness's member (orchestrator -witness) is marked. Warnings (on standard error)\n" +
					"say what threatens the quorum: voters down, an even number of them, alarms. Without a\n" +
					"leader (no quorum) the command exits with status 1.",
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
					"member of its own, added as a learner when it joins (the quorum does not change). It\n" +
					"votes only if that keeps the federation's voters odd and at most [federation] max_voters\n" +
					"(default 3): a second site stays a learner until a third member, such as a witness\n" +
					"(orchestrator -witness), joins. The command says which, and warns when the federation\n" +
					"would have an even number of voters. A witness joins with a token like a site. Needs an\n" +
					"admin token.",
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
				Usage:     "remove a stopped site's etcd member (by site name, or by member ID if it never started)",
				ArgsUsage: "NAME | MEMBER-ID",
				Description: "Removes the member, the site's record (a witness's too) and its etcd user. The site must be\n" +
					"stopped: a site that is live, or whose member answers, is refused. A learner takes a removed\n" +
					"voter's place when the voter policy lets it.",
				Action: c.federationRemoveSite,
			},
			{
				Name:      "leave",
				Usage:     "have the site asked (--addr) leave the federation for good",
				ArgsUsage: "NAME",
				Description: "NAME is the site asked, named as a check. It stops as on SIGTERM (its running runs get\n" +
					"runs.shutdown_grace), then hands its vote to a learner if the voters left would otherwise\n" +
					"be none or an even number, removes its etcd member, its record and its etcd user, and\n" +
					"exits. It refuses when no member could take its vote. The command returns once the site\n" +
					"has begun; its log says when it is done. A witness, or a stopped site: orchestrator -leave.",
				Action: c.federationLeave,
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
		err = writeJSON(c.stdout, fed)
	} else {
		err = c.printFederation(fed)
	}
	if err != nil {
		return err
	}
	for _, w := range fed.Warnings {
		fmt.Fprintf(c.stderr, "warning: %s\n", w)
	}
	if fed.Leader == "" {
		return errors.New("the federation's etcd has no leader: it has no quorum, and takes no writes")
	}
	return nil
}

// printFederation writes federation status as text.
func (c *ctl) printFederation(fed api.Federation) error {
	f := newFields(c.stdout)
	f.add("Cluster", fed.ClusterID)
	leader := fed.Leader
	if leader == "" {
		leader = "none (the cluster has no quorum)"
	}
	f.add("Leader", leader)
	voters := fmt.Sprint(fed.Voters)
	if fed.MaxVoters > 0 {
		voters += fmt.Sprintf(" (at most %d)", fed.MaxVoters)
	}
	f.add("Voters", voters)
	if err := f.flush(); err != nil {
		return err
	}
	fmt.Fprintln(c.stdout)
	tab := newTable(c.stdout, "NAME", "ID", "ROLE", "PEER URLS", "CLIENT URLS", "LEADER", "HEALTH", "DB SIZE", "ALARMS", "VERSION")
	for _, m := range fed.Members {
		star := ""
		if m.Leader {
			star = "*"
		}
		role := "voter"
		if m.Learner {
			role = "learner"
		}
		if m.Witness {
			role += " (witness)"
		}
		size := ""
		if m.DBSize > 0 {
			size = humanize.Bytes(uint64(m.DBSize))
		}
		tab.row(m.Name, m.ID, role, strings.Join(m.PeerURLs, ","), strings.Join(m.ClientURLs, ","), star, m.Health, size,
			strings.Join(m.Alarms, ","), m.Version)
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
	if v := res.Voting; v != nil {
		fmt.Fprintf(c.stderr, "Votes: %s.\n", v.Note)
		if v.Warning != "" {
			fmt.Fprintf(c.stderr, "warning: %s\n", v.Warning)
		}
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

func (c *ctl) federationLeave(cCtx *cli.Context) error {
	a, err := args(cCtx, "NAME")
	if err != nil {
		return err
	}
	res, err := c.client.Leave(cCtx.Context, a[0])
	if err != nil {
		return err
	}
	if c.json {
		return writeJSON(c.stdout, res)
	}
	fmt.Fprintf(c.stdout, "Site %s is leaving the federation for good: it stops its work (runs.shutdown_grace), then leaves.\n", res.Site)
	fmt.Fprintf(c.stdout, "Votes: %s.\n", res.Voting.Note)
	if res.Voting.Warning != "" {
		fmt.Fprintf(c.stderr, "warning: %s\n", res.Voting.Warning)
	}
	_, err = fmt.Fprintf(c.stdout, "Its log says when it has left; maoctl federation status at another site shows the members.\n")
	return err
}
