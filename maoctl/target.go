package maoctl

import (
	"github.com/urfave/cli/v2"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/toolspec"
)

// targetFlags pick the sites that may run a run or a schedule's ticks:
// the flags of tool run, tool schedule and schedule update.
func targetFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "site", Usage: "run at the site `NAME` only"},
		&cli.BoolFlag{Name: "any", Usage: "run at one live eligible site"},
		&cli.BoolFlag{Name: "all", Usage: "run at every live eligible site, once each"},
		&cli.StringSliceFlag{Name: "label", Usage: "eligible sites carry the label `KEY=VALUE`, repeatable; alone it means --any"},
	}
}

// targetFromFlags reads the target flags: nil when none was given, a
// usage error for more than one of --site, --any and --all or a malformed
// --label.
func targetFromFlags(cCtx *cli.Context) (*api.Target, error) {
	var t api.Target
	modes := 0
	if cCtx.IsSet("site") {
		t.Mode, t.Site = "site", cCtx.String("site")
		modes++
	}
	for _, mode := range []string{"any", "all"} {
		if cCtx.Bool(mode) {
			t.Mode = mode
			modes++
		}
	}
	if modes > 1 {
		return nil, usageErrorf("%s takes at most one of --site, --any and --all", commandName(cCtx))
	}
	labels, err := toolspec.ParseLabels(cCtx.StringSlice("label"))
	if err != nil {
		return nil, usageErrorf("--%w", err)
	}
	if modes == 0 && labels == nil {
		return nil, nil
	}
	if t.Mode == "" {
		t.Mode = "any"
	}
	t.Labels = labels
	return &t, nil
}

// targetText is a run's target in the words of the flags, "" for a run
// at the site that was asked.
func targetText(t *api.Target) string {
	if t == nil {
		return ""
	}
	return t.String()
}

// runSite is the run's site, or, while no site has claimed it, "(any
// eligible)" or, for a run sent to one site, "(waits for NAME)".
func runSite(r api.Run) string {
	if r.Site == "" && !r.State.Terminal() {
		if site := namedSite(r); site != "" {
			return "(waits for " + site + ")"
		}
		return "(any eligible)"
	}
	return r.Site
}

// runWhere is where a run runs, for a sentence: "at site lab-a" (its
// site, or the one site it was sent to), or "at the eligible site that
// claims it".
func runWhere(r api.Run) string {
	site := r.Site
	if site == "" {
		site = namedSite(r)
	}
	if site == "" {
		return "at the eligible site that claims it"
	}
	return "at site " + site
}

// namedSite is the site a run was sent to (tool run --site, or one of
// --all's runs, which the orchestrator records with a site target), ""
// when any eligible site may claim it.
func namedSite(r api.Run) string {
	if r.Target != nil && r.Target.EffectiveMode() == "site" {
		return r.Target.Site
	}
	return ""
}
