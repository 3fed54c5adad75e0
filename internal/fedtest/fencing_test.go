package fedtest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/internal/testenv"
)

// TestFrozenSite checks what fencing promises when a site is frozen
// (SIGSTOP) past its lease while it runs a run with a retry, and then
// thawed (SIGCONT):
//   - the run is lost and its next attempt runs at the other site, and
//     succeeds there;
//   - the thawed site commits nothing of the lost attempt to its clone
//     and appends nothing to its detector series, although the lost
//     attempt's container ended well (while the site was frozen);
//   - no tick of an --all schedule that the frozen site would have fired
//     is run as on time: the ticks due while it was frozen (but for those
//     within the skew grace of its thaw, which are on time) are missed, or
//     the latest of them runs once as a catch-up, and every tick that ran
//     as on time was claimed within the skew grace of its time;
//   - every commit in the site's clones is of a run that the records say
//     succeeded at that site.
func TestFrozenSite(t *testing.T) {
	const ttl, every, grace = 3 * time.Second, 2 * time.Second, 2 * time.Second
	bins, image := Build(t), testenv.BuildTestImage(t)
	cluster := testenv.EtcdCluster(t, 3)
	etcd := fmt.Sprintf("\n[etcd]\nendpoints = %s\nrequest_timeout = 2s\n", strings.Join(cluster.Endpoints(), ", "))
	f1 := Start(t, bins, "f1", SiteConfig("f1", "%DIR%", "", ttl, etcd))
	f2 := Start(t, bins, "f2", SiteConfig("f2", "%DIR%", "", ttl, etcd+"join_token = "+JoinToken(t, bins, f1.Addr, "f2")+"\n"))
	sites := []*Site{f1, f2}
	records := WatchRuns(t, cluster.Client(t))
	ctx := context.Background()
	for name, args := range map[string][]string{
		"frozen": {"-lines", "1", "-mark", "-control", "5", "-sleep", "4s"},
		"ticker": {"-mark"},
	} {
		tool := api.Tool{Name: name, Author: "fedtest", Image: image, DataRepo: testenv.GitRepo(t, nil), Network: "none", Command: args}
		if _, err := f1.Client.RegisterTool(ctx, tool); err != nil {
			t.Fatal(err)
		}
	}
	sch, err := f1.Client.CreateSchedule(ctx, api.Schedule{Tool: "ticker", Spec: "@every " + every.String(), Overlap: "allow",
		Target: api.Target{Mode: "all"}})
	if err != nil {
		t.Fatal(err)
	}
	records.Until(30*time.Second, "two ticks of the --all schedule ran at each site", func(m map[string]api.Run) bool {
		return succeededTicks(m, sch.ID, 2) >= 2
	})

	started, err := f1.Client.RunTool(ctx, "frozen", api.RunRequest{Target: &api.Target{Mode: "any"}, Retries: 1})
	if err != nil {
		t.Fatal(err)
	}
	id := started[0].ID
	AwaitOutput(t, f1.Client, id, "line 1") // attempt 1's container runs
	victim := siteNamed(sites, records.Get(id).Site)
	survivor := f1
	if victim == f1 {
		survivor = f2
	}
	frozenAt := victim.Freeze()
	retried := records.Until(ttl+60*time.Second, "attempt 2 succeeded at the other site", func(m map[string]api.Run) bool {
		r := m[id]
		return r.Attempt == 2 && r.Site == survivor.Name && r.State == api.StateSucceeded
	})[id]
	victim.Drain()
	thawedAt := victim.Thaw()
	t.Logf("%s frozen for %s; attempt 2 started at %s %s after the freeze (lease TTL %s)", victim.Name,
		thawedAt.Sub(frozenAt).Round(time.Millisecond), survivor.Name, retried.StartedAt.Sub(frozenAt).Round(time.Millisecond), ttl)
	if len(retried.Attempts) != 1 || retried.Attempts[0].State != api.StateLost || !strings.Contains(retried.Attempts[0].Reason, victim.Name) {
		t.Fatalf("attempts of the retried run: %+v", retried.Attempts)
	}
	// The thawed site learns that it lost its lease, registers again,
	// and its execution of attempt 1 ends.
	var registered, ended bool
	if _, err := victim.Await(60*time.Second, func(r Record) bool {
		registered = registered || r.Msg == "site registered again"
		ended = ended || r.Msg == "run ended" && r.Attrs["run"] == id
		return registered && ended
	}); err != nil {
		t.Fatalf("after the thaw: registered again %v, attempt 1 ended %v: %v", registered, ended, err)
	}
	// Every tick of the victim's share due while it was frozen is
	// recorded (missed, or caught up once) before the schedule pauses.
	var frozenTicks []int64
	for tick := frozenAt.Truncate(every).Add(every); tick.Before(thawedAt.Add(-grace)); tick = tick.Add(every) {
		frozenTicks = append(frozenTicks, tick.Unix())
	}
	runs := records.Until(60*time.Second, "the ticks due while frozen recorded", func(m map[string]api.Run) bool {
		for _, tick := range frozenTicks {
			if r, ok := m[fmt.Sprintf("%s-%d-%s", sch.ID, tick, victim.Name)]; !ok || !r.State.Terminal() {
				return false
			}
		}
		return true
	})
	if _, err := f1.Client.PauseSchedule(ctx, sch.ID); err != nil {
		t.Fatal(err)
	}
	// The runs under way when the schedule paused end (a run commits
	// before its final record), before what the clones hold is read.
	runs = records.Until(60*time.Second, "every run ended", func(m map[string]api.Run) bool {
		for _, r := range m {
			if !r.State.Terminal() {
				return false
			}
		}
		return true
	})

	t.Run("no output of the lost attempt", func(t *testing.T) {
		for _, subject := range victim.Commits("frozen") {
			if strings.Contains(subject, id) {
				t.Errorf("%s committed %q of the attempt it lost", victim.Name, subject)
			}
		}
		if !strings.Contains(strings.Join(survivor.Commits("frozen"), "\n"), id) {
			t.Errorf("%s did not commit the output of attempt 2", survivor.Name)
		}
		for _, s := range sites {
			series, err := survivor.Client.Series(ctx, "frozen", "control", s.Name)
			if err != nil {
				t.Fatal(err)
			}
			var points int
			for _, sr := range series.Items {
				for _, p := range sr.Points {
					if p.Run == id {
						points++
					}
				}
			}
			if want := map[bool]int{true: 1, false: 0}[s == survivor]; points != want {
				t.Errorf("series of %s holds %d points of run %s, want %d", s.Name, points, id, want)
			}
		}
	})
	t.Run("no overdue tick run as on time", func(t *testing.T) {
		catchups := 0
		for _, tick := range frozenTicks {
			r := runs[fmt.Sprintf("%s-%d-%s", sch.ID, tick, victim.Name)]
			switch {
			case r.Trigger == api.TriggerCatchup:
				catchups++
			case r.State != api.StateMissed:
				t.Errorf("tick %d due while %s was frozen: %s (%s), want missed or caught up", tick, victim.Name, r.State, r.Trigger)
			}
		}
		if catchups > 1 {
			t.Errorf("%d ticks due while frozen were caught up, want at most the latest", catchups)
		}
		for _, r := range runs {
			ran := r.State != api.StateMissed && r.State != api.StateSkipped
			if r.Schedule == sch.ID && r.Trigger == api.TriggerSchedule && ran && r.ScheduledTime != nil {
				if late := r.CreatedAt.Sub(*r.ScheduledTime); late > grace+time.Second {
					t.Errorf("tick %s claimed as on time %s after it was due", r.ID, late)
				}
			}
		}
		t.Logf("%d ticks of %s due while frozen: %d caught up, the others missed", len(frozenTicks), victim.Name, catchups)
	})
	t.Run("every commit is of a run that succeeded there", func(t *testing.T) {
		for _, s := range sites {
			for _, tool := range []string{"frozen", "ticker"} {
				for _, subject := range s.Commits(tool) {
					run, ok := strings.CutPrefix(subject, "mao: run ")
					if !ok {
						continue // the data repository's own history
					}
					run, _, _ = strings.Cut(run, " ")
					if r := runs[run]; r.State != api.StateSucceeded || r.Site != s.Name {
						t.Errorf("%s's clone of %s holds %q, but the run is %s at %q", s.Name, tool, subject, r.State, r.Site)
					}
				}
			}
		}
	})
}
