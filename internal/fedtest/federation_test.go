package fedtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/internal/testenv"
)

const leaseTTL = 3 * time.Second

// federation is three orchestrator processes, s1 (zone=a), s2 and s3
// (zone=b), over a three-member etcd cluster.
type federation struct {
	bins    Binaries
	cluster *testenv.Cluster
	sites   []*Site
	runs    *Runs
	image   string
}

func newFederation(t *testing.T) *federation {
	t.Helper()
	f := &federation{image: testenv.BuildTestImage(t), bins: Build(t), cluster: testenv.EtcdCluster(t, 3)}
	etcd := fmt.Sprintf("\n[etcd]\nendpoints = %s\nrequest_timeout = 2s\n", strings.Join(f.cluster.Endpoints(), ", "))
	// s1 founds the federation's certificates; s2 and s3 join with
	// tokens, so that each can read the others' logs.
	for i, zone := range []string{"a", "b", "b"} {
		name := fmt.Sprintf("s%d", i+1)
		join := ""
		if i > 0 {
			join = "join_token = " + JoinToken(t, f.bins, f.sites[0].Addr, name) + "\n"
		}
		f.sites = append(f.sites, Start(t, f.bins, name, SiteConfig(name, "%DIR%", "zone="+zone, leaseTTL, etcd+join)))
	}
	f.runs = WatchRuns(t, f.cluster.Client(t))
	return f
}

// tool registers a tool of the test image with the given args.
func (f *federation) tool(t *testing.T, name string, args ...string) {
	t.Helper()
	tool := api.Tool{Name: name, Author: "fedtest", Image: f.image, DataRepo: testenv.GitRepo(t, nil), Network: "none", Command: args}
	if _, err := f.up().Client.RegisterTool(context.Background(), tool); err != nil {
		t.Fatal(err)
	}
}

// up returns a site that is up, the last one.
func (f *federation) up() *Site {
	for i := len(f.sites) - 1; i >= 0; i-- {
		if f.sites[i].Up() {
			return f.sites[i]
		}
	}
	panic("no site is up")
}

// schedule creates an @every schedule and returns its ID.
func (f *federation) schedule(t *testing.T, tool, every string, target api.Target) string {
	t.Helper()
	sch := api.Schedule{Tool: tool, Spec: "@every " + every, Overlap: "allow", Target: target}
	info, err := f.up().Client.CreateSchedule(context.Background(), sch)
	if err != nil {
		t.Fatal(err)
	}
	return info.ID
}

func (f *federation) pause(t *testing.T, id string) {
	t.Helper()
	if _, err := f.up().Client.PauseSchedule(context.Background(), id); err != nil {
		t.Fatal(err)
	}
}

// ticks groups a schedule's runs by tick (Unix seconds).
func ticks(runs map[string]api.Run, schedule string) map[int64][]api.Run {
	out := map[int64][]api.Run{}
	for _, r := range runs {
		if r.Schedule == schedule && r.ScheduledTime != nil {
			out[r.ScheduledTime.Unix()] = append(out[r.ScheduledTime.Unix()], r)
		}
	}
	return out
}

// succeededTicks counts the ticks whose runs have all succeeded.
func succeededTicks(runs map[string]api.Run, schedule string, perTick int) int {
	n := 0
	for _, rs := range ticks(runs, schedule) {
		ok := len(rs) == perTick
		for _, r := range rs {
			ok = ok && r.State == api.StateSucceeded
		}
		if ok {
			n++
		}
	}
	return n
}

func TestFederation(t *testing.T) {
	f := newFederation(t)
	s1, s2, s3 := f.sites[0], f.sites[1], f.sites[2]
	ctx := context.Background()

	t.Run("registered at s1, run at s3, asked and followed at s2", func(t *testing.T) {
		f.tool(t, "hello", "-env", "-lines", "2")
		started, err := s2.Client.RunTool(ctx, "hello", api.RunRequest{Target: &api.Target{Mode: "site", Site: "s3"}})
		if err != nil || len(started) != 1 {
			t.Fatalf("run: %v %v", started, err)
		}
		var logs bytes.Buffer
		if err := s2.Client.RunLogs(ctx, started[0].ID, api.LogOptions{Follow: true}, &logs); err != nil {
			t.Fatal(err)
		}
		run, err := s2.Client.Run(ctx, started[0].ID)
		if err != nil || run.Site != "s3" || run.State != api.StateSucceeded {
			t.Fatalf("run %+v, %v; want succeeded at s3", run, err)
		}
		if !strings.Contains(logs.String(), "MAO_SITE=s3") || !strings.Contains(logs.String(), "line 2") {
			t.Fatalf("log followed through s2:\n%s", logs.String())
		}
	})

	t.Run("--all and --label", func(t *testing.T) {
		f.tool(t, "everywhere", "-mark")
		all := f.schedule(t, "everywhere", "1s", api.Target{Mode: "all"})
		zoneB := f.schedule(t, "everywhere", "1s", api.Target{Mode: "all", Labels: map[string]string{"zone": "b"}})
		runs := f.runs.Until(30*time.Second, "3 ticks of each --all schedule ran at every eligible site", func(m map[string]api.Run) bool {
			return succeededTicks(m, all, 3) >= 3 && succeededTicks(m, zoneB, 2) >= 3
		})
		f.pause(t, all)
		f.pause(t, zoneB)
		for sch, want := range map[string][]string{all: {"s1", "s2", "s3"}, zoneB: {"s2", "s3"}} {
			for tick, rs := range ticks(runs, sch) {
				got := map[string]bool{}
				for _, r := range rs {
					if r.ID != fmt.Sprintf("%s-%d-%s", sch, tick, r.Site) || got[r.Site] {
						t.Errorf("tick %d of %s: run %s at %s (one run per site, ID <schedule>-<T>-<site>)", tick, sch, r.ID, r.Site)
					}
					got[r.Site] = true
				}
				for _, r := range rs {
					if !strings.Contains(strings.Join(want, " "), r.Site) {
						t.Errorf("tick %d of %s ran at %s, which the target excludes", tick, sch, r.Site)
					}
				}
			}
		}
	})

	t.Run("--any: once per tick in all, and failover", func(t *testing.T) {
		f.tool(t, "anywhere", "-mark")
		anySched := f.schedule(t, "anywhere", "1s", api.Target{Mode: "any"})
		f.runs.Until(30*time.Second, "3 ticks of the --any schedule ran", func(m map[string]api.Run) bool {
			return succeededTicks(m, anySched, 1) >= 3
		})
		// A long run of an --any request, with a retry; kill its site.
		f.tool(t, "long", "-lines", "1", "-sleep", "20s")
		started, err := s1.Client.RunTool(ctx, "long", api.RunRequest{Target: &api.Target{Mode: "any"}, Retries: 1})
		if err != nil {
			t.Fatal(err)
		}
		id := started[0].ID
		AwaitOutput(t, s1.Client, id, "line 1") // its container runs
		running := f.runs.Get(id)
		victim := siteNamed(f.sites, running.Site)
		killed := victim.Kill()
		retried := f.runs.Until(leaseTTL+15*time.Second, "the lost run started again at another site", func(m map[string]api.Run) bool {
			r := m[id]
			return r.Attempt == 2 && r.Site != "" && r.Site != victim.Name && r.State == api.StateRunning
		})[id]
		if len(retried.Attempts) != 1 || retried.Attempts[0].State != api.StateLost || !strings.Contains(retried.Attempts[0].Reason, victim.Name) {
			t.Fatalf("attempts of the retried run: %+v", retried.Attempts)
		}
		t.Logf("failover: killed %s at %s; attempt 2 started at %s at %s (%s later; lease TTL %s)",
			victim.Name, killed.Format(time.RFC3339Nano), retried.Site, retried.StartedAt.Format(time.RFC3339Nano),
			retried.StartedAt.Sub(killed).Round(time.Millisecond), leaseTTL)
		// The --any schedule goes on at the surviving sites, once per tick.
		after := killed.Add(leaseTTL + 2*time.Second).Unix()
		runs := f.runs.Until(30*time.Second, "3 more ticks of the --any schedule after the kill", func(m map[string]api.Run) bool {
			n := 0
			for tick, rs := range ticks(m, anySched) {
				if tick > after && len(rs) == 1 && rs[0].State == api.StateSucceeded {
					n++
				}
			}
			return n >= 3
		})
		f.pause(t, anySched)
		for tick, rs := range ticks(runs, anySched) {
			if len(rs) != 1 {
				t.Errorf("tick %d of the --any schedule has %d runs", tick, len(rs))
			}
			if tick > after && rs[0].Site == victim.Name {
				t.Errorf("tick %d ran at %s, which was killed", tick, victim.Name)
			}
		}
		// The killed site's container still runs the first attempt: it
		// comes back, stops nothing that others hold, and rejoins.
		victim.Restart()
		if infos, err := victim.Client.Sites(ctx); err != nil || len(infos.Items) != 3 {
			t.Fatalf("sites after the restart: %+v %v", infos, err)
		}
	})

	t.Run("one etcd member stopped: nothing fails", func(t *testing.T) {
		f.cluster.Stop(0)
		defer f.cluster.Start(0)
		f.tool(t, "while-degraded", "-lines", "1")
		for _, s := range f.sites {
			h, err := s.Client.Health(ctx)
			if err != nil || h.Status != "ok" {
				t.Errorf("health of %s with one member down: %+v %v", s.Name, h, err)
			}
		}
		started, err := s3.Client.RunTool(ctx, "while-degraded", api.RunRequest{Target: &api.Target{Mode: "site", Site: "s1"}})
		if err != nil {
			t.Fatal(err)
		}
		f.runs.Until(30*time.Second, "a run with one member down", func(m map[string]api.Run) bool {
			return m[started[0].ID].State == api.StateSucceeded
		})
	})

	t.Run("quorum lost: degraded, 503, then everything resumes", func(t *testing.T) {
		f.tool(t, "through-outage", "-sleep", "4s", "-lines", "1")
		started, err := s1.Client.RunTool(ctx, "through-outage", api.RunRequest{})
		if err != nil {
			t.Fatal(err)
		}
		id := started[0].ID
		f.runs.Until(30*time.Second, "the run started", func(m map[string]api.Run) bool {
			return m[id].ContainerStartedAt != nil
		})
		f.cluster.Stop(1)
		f.cluster.Stop(2)
		h, err := s1.Client.Health(ctx)
		if err != nil || h.Status != "degraded" {
			t.Fatalf("health without quorum: %+v %v", h, err)
		}
		_, err = s1.Client.RegisterDataset(ctx, api.Dataset{Name: "during-outage", URL: testenv.GitRepo(t, nil)})
		var apiErr *api.Error
		if !errors.As(err, &apiErr) || apiErr.Status != http.StatusServiceUnavailable {
			t.Fatalf("write without quorum: %v, want 503", err)
		}
		// The run's container ends during the outage; its record is
		// written when etcd is back.
		waitContainerGone(t, "mao-"+id+"-1") // attempt 1
		f.cluster.Start(1)
		f.cluster.Start(2)
		done := f.runs.Until(60*time.Second, "the run's record after the outage", func(m map[string]api.Run) bool {
			return m[id].State.Terminal()
		})[id]
		if done.State != api.StateSucceeded || done.Site != "s1" || done.Attempt != 1 {
			t.Fatalf("run after the outage: %s at %s, attempt %d: %s", done.State, done.Site, done.Attempt, done.Reason)
		}
		Eventually(t, 30*time.Second, "every site healthy again", func() bool {
			for _, s := range f.sites {
				if h, err := s.Client.Health(ctx); err != nil || h.Status != "ok" {
					return false
				}
			}
			return true
		})
		if _, err := s1.Client.RegisterDataset(ctx, api.Dataset{Name: "after-outage", URL: testenv.GitRepo(t, nil)}); err != nil {
			t.Fatalf("write after the outage: %v", err)
		}
	})

	t.Run("a fourth site joins with a token and runs a tool", func(t *testing.T) {
		etcd := fmt.Sprintf("\n[etcd]\nendpoints = %s\nrequest_timeout = 2s\njoin_token = %s\n",
			strings.Join(f.cluster.Endpoints(), ", "), JoinToken(t, f.bins, s1.Addr, "s4"))
		s4 := Start(t, f.bins, "s4", SiteConfig("s4", "%DIR%", "zone=c", leaseTTL, etcd))
		f.sites = append(f.sites, s4)
		f.tool(t, "joined", "-env", "-lines", "1")
		started, err := s2.Client.RunTool(ctx, "joined", api.RunRequest{Target: &api.Target{Mode: "site", Site: "s4"}})
		if err != nil {
			t.Fatal(err)
		}
		AwaitOutput(t, s2.Client, started[0].ID, "line 1")
		run := f.runs.Until(60*time.Second, "the run at the new site", func(m map[string]api.Run) bool {
			return m[started[0].ID].State.Terminal()
		})[started[0].ID]
		if run.State != api.StateSucceeded || run.Site != "s4" {
			t.Fatalf("run at s4: %s at %s: %s", run.State, run.Site, run.Reason)
		}
		if out := f.bins.Ctl(t, s4.Addr, "site", "list"); !strings.Contains(out, "s4") || !strings.Contains(out, "live") {
			t.Fatalf("site list at s4:\n%s", out)
		}
	})
}

func siteNamed(sites []*Site, name string) *Site {
	for _, s := range sites {
		if s.Name == name {
			return s
		}
	}
	panic("no site named " + name)
}
