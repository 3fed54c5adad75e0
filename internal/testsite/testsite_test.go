package testsite

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/internal/testenv"
	"github.com/mao-research/mao/orchestrator/config"
)

// TestSiteWithoutDocker checks a default site: it starts although its
// clock stands long before the real time (its certificates, which TLS
// checks against the real time, are signed at it), its clock stamps what
// it records, nothing reaches Docker, and Settle waits for the runs it was
// asked for.
func TestSiteWithoutDocker(t *testing.T) {
	s := Start(t, Options{Labels: map[string]string{"zone": "eu"}})
	ctx := context.Background()
	c := s.Client(t, "")

	h, err := c.Health(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if h.Site != "lab-a" || h.Etcd != "ok" || h.Status != "degraded" || !strings.Contains(h.Docker, "no-docker.sock") {
		t.Errorf("health %+v: want lab-a, etcd ok, degraded by the Docker host that does not exist", h)
	}

	s.Tool(t, api.Tool{Name: "t", Author: "a", Image: "img:1", DataRepo: testenv.GitRepo(t, nil), Network: "none"})
	s.Advance(time.Minute)
	runs, err := c.RunTool(ctx, "t", api.RunRequest{})
	if err != nil {
		t.Fatal(err)
	}
	s.Settle(t)
	run, err := c.Run(ctx, runs[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	want := Epoch.Add(time.Minute)
	if run.State != api.StateFailed || !strings.HasPrefix(run.Reason, "image: ") {
		t.Errorf("run %s %q: want it failed at its image", run.State, run.Reason)
	}
	if !run.CreatedAt.Equal(want) || run.FinishedAt == nil || !run.FinishedAt.Equal(want) {
		t.Errorf("run created %s, finished %v: want both at the site clock's %s", run.CreatedAt, run.FinishedAt, want)
	}
}

// TestOtherSites checks the seeding of other sites and of their runs: a
// live site, a gone one, and a run that another site claims and holds.
func TestOtherSites(t *testing.T) {
	s := Start(t, Options{})
	ctx := context.Background()
	b := s.JoinSite(t, api.Site{Name: "lab-b", APIAddr: "http://" + testenv.ClosedPort(t), Labels: map[string]string{"gpu": "a100"}})
	s.GoneSite(t, api.Site{Name: "lab-c", APIAddr: "http://" + testenv.ClosedPort(t)})
	s.Advance(time.Hour)

	infos, err := s.Client(t, "").Sites(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]api.SiteInfo{}
	for _, i := range infos.Items {
		got[i.Name] = i
	}
	if !got["lab-a"].Live || !got["lab-b"].Live || len(got) != 3 {
		t.Errorf("sites %+v: want lab-a and lab-b live, and lab-c", infos)
	}
	if c := got["lab-c"]; c.Live || !c.LastSeen.Equal(Epoch) {
		t.Errorf("lab-c %+v: want it gone, last seen at %s", c, Epoch)
	}

	s.Tool(t, api.Tool{Name: "t", Author: "a", Image: "img:1", DataRepo: "https://git.example.org/never-cloned.git"})
	runs, err := s.Client(t, "").RunTool(ctx, "t", api.RunRequest{Target: &api.Target{Mode: "site", Site: "lab-b"}})
	if err != nil {
		t.Fatal(err)
	}
	s.Settle(t) // the request is lab-b's: nothing to wait for
	run := s.ClaimAs(t, runs[0].ID, "lab-b")
	now := s.Now()
	run.State, run.StartedAt = api.StateRunning, &now
	s.SaveAs(t, run)
	b.Leave(t)
	lost := s.WaitRun(t, run.ID, func(r api.Run) bool { return r.State.Terminal() })
	if lost.State != api.StateLost || lost.Site != "lab-b" {
		t.Errorf("after lab-b left, its run is %s at %q: want it lost at lab-b", lost.State, lost.Site)
	}
}

// TestSiteWithDocker checks that a site asked to use Docker reaches the
// local engine.
func TestSiteWithDocker(t *testing.T) {
	s := Start(t, Options{Docker: true})
	h, err := s.Client(t, "").Health(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if h.Status != "ok" || h.Docker != "ok" {
		t.Errorf("health %+v: want ok", h)
	}
}

// TestJoinedSites checks two real sites of one federation on an external
// etcd: the second joins with a token the first issues, with its admin
// token, and the first reads the log of a run the second holds from it,
// over mutual TLS. The first serves its API over HTTPS.
func TestJoinedSites(t *testing.T) {
	admin := config.Token{Name: "ops", Scope: config.ScopeAdmin, Secret: "admin-secret"}
	reader := config.Token{Name: "ro", Scope: config.ScopeRead, Secret: "read-secret"}
	a := Start(t, Options{Etcd: testenv.Etcd(t), Tokens: []config.Token{admin, reader}, APITLS: true})
	b := Start(t, Options{Name: "lab-b", Join: a, Clock: a.Clock})
	if a.PKI == "" || b.PKI == "" || !strings.HasPrefix(b.FederationAddr, "https://") || !strings.HasPrefix(a.Addr, "https://") {
		t.Fatalf("lab-a: certificates %q, API %s; lab-b: certificates %q, federation API %q", a.PKI, a.Addr, b.PKI, b.FederationAddr)
	}
	ctx := context.Background()
	run := api.Run{ID: "t-1741955160-0000b1", Tool: "t", Site: "lab-b", State: api.StateSucceeded, Trigger: api.TriggerManual,
		Image: "img:1", Network: "none", DataRepo: "https://git.example.org/t.git", Attempt: 1, MaxAttempts: 1,
		CreatedAt: Epoch, StartedAt: &Epoch, FinishedAt: &Epoch}
	b.Run(t, run)
	b.Log(t, run.ID, "at lab-b\n")
	var log strings.Builder
	if err := a.Client(t, reader.Secret).RunLogs(ctx, run.ID, api.LogOptions{}, &log); err != nil || log.String() != "at lab-b\n" {
		t.Fatalf("lab-b's log read at lab-a: %q, %v", log.String(), err)
	}
	if _, err := a.Client(t, reader.Secret).AddSite(ctx, api.AddSiteRequest{Name: "lab-c"}); err == nil {
		t.Error("a read token was given a join token")
	}
}
