package federation_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/orchestrator/errs"
	"github.com/mao-research/mao/orchestrator/federation"
	"github.com/mao-research/mao/orchestrator/runs"
	"github.com/mao-research/mao/toolspec"
)

var (
	start    = time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	testTool = toolspec.Tool{Name: "t", Author: "a", Image: "img:1", DataRepo: "file:///r"}
)

func isValidation(err error) bool {
	var ve *toolspec.ValidationError
	return errors.As(err, &ve)
}

func isNotFound(err error) bool { return errors.Is(err, errs.ErrNotFound) }

func isConflict(err error) bool { return errors.Is(err, errs.ErrConflict) }

func TestRequest(t *testing.T) {
	eu, gpu := map[string]string{"zone": "eu"}, map[string]string{"gpu": "yes"}
	sites := fakeSites{
		{Site: api.Site{Name: "b", Labels: map[string]string{"zone": "eu", "gpu": "yes"}}, Live: true},
		{Site: api.Site{Name: "c", Labels: gpu}, Live: true},
		{Site: api.Site{Name: "gone", Labels: gpu}},
		{Site: api.Site{Name: "here", Labels: eu}, Live: true},
	}
	site := func(name string, labels map[string]string) toolspec.Target {
		return toolspec.Target{Mode: toolspec.TargetSite, Site: name, Labels: labels}
	}
	type wantRun struct {
		suffix string // after the common ID, for --all
		target toolspec.Target
	}
	tests := []struct {
		name    string
		tool    string
		req     api.RunRequest
		err     func(error) bool
		local   bool // started here at once
		fanOut  bool
		retries int
		runs    []wantRun
	}{
		{name: "no target and no retries starts here", req: api.RunRequest{}, local: true},
		{name: "retries alone ask for this site", req: api.RunRequest{Retries: 2}, retries: 2,
			runs: []wantRun{{target: site("here", nil)}}},
		{name: "any", req: api.RunRequest{Target: &toolspec.Target{Mode: toolspec.TargetAny}, Retries: 1}, retries: 1,
			runs: []wantRun{{target: toolspec.Target{Mode: toolspec.TargetAny}}}},
		{name: "no mode is any", req: api.RunRequest{Target: &toolspec.Target{Labels: gpu}},
			runs: []wantRun{{target: toolspec.Target{Mode: toolspec.TargetAny, Labels: gpu}}}},
		{name: "a named site that is down waits for it", req: api.RunRequest{Target: &toolspec.Target{Mode: toolspec.TargetSite, Site: "gone"}},
			runs: []wantRun{{target: site("gone", nil)}}},
		{name: "all live matching sites", req: api.RunRequest{Target: &toolspec.Target{Mode: toolspec.TargetAll, Labels: gpu}, Retries: 3},
			fanOut: true, retries: 3, runs: []wantRun{{"-b", site("b", gpu)}, {"-c", site("c", gpu)}}},
		{name: "all live sites", req: api.RunRequest{Target: &toolspec.Target{Mode: toolspec.TargetAll}},
			fanOut: true, runs: []wantRun{{"-b", site("b", nil)}, {"-c", site("c", nil)}, {"-here", site("here", nil)}}},
		{name: "all with no live matching site", req: api.RunRequest{Target: &toolspec.Target{Mode: toolspec.TargetAll, Labels: map[string]string{"arch": "arm"}}},
			err: isConflict},
		{name: "a named site without the labels can never take it", req: api.RunRequest{Target: &toolspec.Target{Mode: toolspec.TargetSite, Site: "c", Labels: eu}},
			err: isConflict},
		{name: "a named site that is down, without the labels", req: api.RunRequest{Target: &toolspec.Target{Mode: toolspec.TargetSite, Site: "gone", Labels: eu}},
			err: isConflict},
		{name: "a named site with the labels", req: api.RunRequest{Target: &toolspec.Target{Mode: toolspec.TargetSite, Site: "b", Labels: eu}},
			runs: []wantRun{{target: site("b", eu)}}},
		{name: "an unknown site", req: api.RunRequest{Target: &toolspec.Target{Mode: toolspec.TargetSite, Site: "nope"}}, err: isNotFound},
		{name: "an invalid mode", req: api.RunRequest{Target: &toolspec.Target{Mode: "x"}}, err: isValidation},
		{name: "a site for mode any", req: api.RunRequest{Target: &toolspec.Target{Mode: toolspec.TargetAny, Site: "b"}}, err: isValidation},
		{name: "too many retries", req: api.RunRequest{Retries: federation.MaxRetries + 1}, err: isValidation},
		{name: "negative retries", req: api.RunRequest{Target: &toolspec.Target{}, Retries: -1}, err: isValidation},
		{name: "an unknown tool", tool: "nope", req: api.RunRequest{}, err: isNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reqs, launcher := newFakeRequests(), &fakeLauncher{site: "here"}
			d := federation.NewDispatcher(federation.DispatcherDeps{
				Requests: reqs, Claims: reqs, Sites: sites, Launcher: launcher, Images: fakeUsable{},
				Tools: fakeTools{tools: map[string]toolspec.Tool{"t": testTool}},
			}, federation.Options{Site: "here", Labels: eu, Clock: clockwork.NewFakeClockAt(start)})
			name := tc.tool
			if name == "" {
				name = "t"
			}
			runs, err := d.Request(context.Background(), name, tc.req, "ci")
			requested, _, _ := reqs.calls()
			started, _, _ := launcher.calls()
			if tc.err != nil {
				if !tc.err(err) || len(requested) > 0 || len(started) > 0 {
					t.Fatalf("err %v, %d requested, %d started", err, len(requested), len(started))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.local {
				if len(started) != 1 || started[0] != "t" || len(requested) > 0 || len(runs) != 1 || runs[0].ID != "t-local" || runs[0].RequestedBy != "ci" {
					t.Fatalf("started %v, requested %d, returned %+v; want a start here only", started, len(requested), runs)
				}
				return
			}
			if len(started) > 0 || len(requested) != len(tc.runs) || len(runs) != len(tc.runs) {
				t.Fatalf("started %v, requested %+v, returned %+v; want %d requests", started, requested, runs, len(tc.runs))
			}
			base := strings.TrimSuffix(requested[0].run.ID, tc.runs[0].suffix)
			if want := fmt.Sprintf("t-%d-", start.Unix()); !regexp.MustCompile(`^` + want + `[0-9a-f]{6}$`).MatchString(base) {
				t.Errorf("run ID %q, want %s<6 hex digits>", base, want)
			}
			for i, w := range tc.runs {
				r := requested[i].run
				if !reflect.DeepEqual(r, runs[i]) {
					t.Errorf("returned %+v, requested %+v", runs[i], r)
				}
				if r.ID != base+w.suffix || r.Site != "" || r.State != api.StatePending || r.Tool != "t" ||
					r.Image != testTool.Image || r.Trigger != api.TriggerManual || !r.CreatedAt.Equal(start) ||
					r.MaxAttempts != 1+tc.retries || requested[i].fanOut != tc.fanOut || r.RequestedBy != "ci" {
					t.Errorf("request %d: %+v fan-out %v", i, r, requested[i].fanOut)
				}
				if r.Target == nil || !reflect.DeepEqual(*r.Target, w.target) {
					t.Errorf("request %d: target %v, want %v", i, r.Target, w.target)
				}
			}
		})
	}
}

func TestRequestStoreFails(t *testing.T) {
	reqs := newFakeRequests()
	reqs.fail = errs.New(errs.ErrUnavailable, "etcd unavailable")
	d := federation.NewDispatcher(federation.DispatcherDeps{
		Requests: reqs, Claims: reqs, Sites: fakeSites{}, Launcher: &fakeLauncher{}, Images: fakeUsable{},
		Tools: fakeTools{tools: map[string]toolspec.Tool{"t": testTool}},
	}, federation.Options{Site: "here", Clock: clockwork.NewFakeClockAt(start)})
	if _, err := d.Request(context.Background(), "t", api.RunRequest{Target: &toolspec.Target{}}, ""); !errors.Is(err, errs.ErrUnavailable) {
		t.Fatalf("err %v, want ErrUnavailable", err)
	}
}

// unavailableSites is a Sites whose etcd does not answer.
type unavailableSites struct{}

func (unavailableSites) KnownSites(context.Context) ([]api.SiteInfo, error) {
	return nil, errs.New(errs.ErrUnavailable, "etcd unavailable")
}

// TestRequestWithoutEtcd checks what a site asked for runs does while etcd
// does not answer it: a run for this very site (retries with no target, or
// a target naming it) is recorded held by this site and runs here, as a
// claimed request would, keeping its target and retries; a run that another
// site could take, or one for a target this site cannot meet, is refused
// and nothing runs.
func TestRequestWithoutEtcd(t *testing.T) {
	eu := map[string]string{"zone": "eu"}
	here := toolspec.Target{Mode: toolspec.TargetSite, Site: "here"}
	tests := []struct {
		name    string
		req     api.RunRequest
		sites   federation.Sites // default: etcd does not answer
		err     func(error) bool
		target  toolspec.Target
		retries int
	}{
		{name: "retries alone", req: api.RunRequest{Retries: 2}, target: here, retries: 2},
		{name: "this site by name", req: api.RunRequest{Target: &here}, target: here},
		{name: "this site with its labels", req: api.RunRequest{Target: &toolspec.Target{Mode: toolspec.TargetSite, Site: "here", Labels: eu}},
			target: toolspec.Target{Mode: toolspec.TargetSite, Site: "here", Labels: eu}},
		{name: "the sites are read, the request is not written", req: api.RunRequest{Target: &here}, target: here,
			sites: fakeSites{{Site: api.Site{Name: "here", Labels: eu}, Live: true}}},
		{name: "this site without the labels", req: api.RunRequest{Target: &toolspec.Target{Mode: toolspec.TargetSite, Site: "here",
			Labels: map[string]string{"gpu": "yes"}}}, err: isConflict},
		{name: "another site", req: api.RunRequest{Target: &toolspec.Target{Mode: toolspec.TargetSite, Site: "b"}},
			err: func(err error) bool { return errors.Is(err, errs.ErrUnavailable) }},
		{name: "any site", req: api.RunRequest{Target: &toolspec.Target{Mode: toolspec.TargetAny}},
			err: func(err error) bool { return errors.Is(err, errs.ErrUnavailable) }},
		{name: "every site", req: api.RunRequest{Target: &toolspec.Target{Mode: toolspec.TargetAll}},
			err: func(err error) bool { return errors.Is(err, errs.ErrUnavailable) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reqs, launcher := newFakeRequests(), &fakeLauncher{site: "here"}
			reqs.fail = errs.New(errs.ErrUnavailable, "etcd unavailable")
			sites := tc.sites
			if sites == nil {
				sites = unavailableSites{}
			}
			d := federation.NewDispatcher(federation.DispatcherDeps{
				Requests: reqs, Claims: reqs, Sites: sites, Launcher: launcher, Images: fakeUsable{},
				Tools: fakeTools{tools: map[string]toolspec.Tool{"t": testTool}},
			}, federation.Options{Site: "here", Labels: eu, Clock: clockwork.NewFakeClockAt(start)})
			got, err := d.Request(context.Background(), "t", tc.req, "ci")
			launcher.mu.Lock()
			created := slices.Clone(launcher.created)
			launcher.mu.Unlock()
			if tc.err != nil {
				if !tc.err(err) || len(created) > 0 {
					t.Fatalf("err %v, %d created", err, len(created))
				}
				return
			}
			if err != nil || len(got) != 1 || len(created) != 1 || !reflect.DeepEqual(got[0], created[0]) {
				t.Fatalf("err %v, returned %+v, created %+v", err, got, created)
			}
			r := created[0]
			if r.Site != "here" || r.State != api.StatePending || r.MaxAttempts != 1+tc.retries || r.RequestedBy != "ci" ||
				r.Target == nil || !reflect.DeepEqual(*r.Target, tc.target) || !runs.OwnOnly(r) {
				t.Fatalf("created %+v (target %v), want pending at here, target %v, %d retries", r, r.Target, tc.target, tc.retries)
			}
		})
	}
}

// TestClaims feeds one request to a dispatcher at site "here" (labels
// zone=eu) and checks what it does with it. A request comes in the first
// listing, or, when watched is set, through the watch.
func TestClaims(t *testing.T) {
	usable := fakeUsable{"img:1": true}
	tools := fakeTools{tools: map[string]toolspec.Tool{"t": testTool, "u": {Name: "u", Image: "gone:1"}}}
	req := func(tool string, target toolspec.Target, fanOut bool) runs.Request {
		return runs.Request{Run: "r1", Tool: tool, Target: target, FanOut: fanOut, CreatedAt: start}
	}
	anySite := toolspec.Target{Mode: toolspec.TargetAny}
	here := toolspec.Target{Mode: toolspec.TargetSite, Site: "here"}
	tests := []struct {
		name    string
		req     runs.Request
		watched bool
		tools   federation.Tools
		lose    bool
		claimed bool
		launch  string         // the tool launched, if any
		saved   api.RunState   // the state recorded, if any
		reason  *regexp.Regexp // of the recorded run
	}{
		{name: "another site's run", req: req("t", toolspec.Target{Mode: toolspec.TargetSite, Site: "b"}, false)},
		{name: "labels this site lacks", req: req("t", toolspec.Target{Mode: toolspec.TargetAny, Labels: map[string]string{"gpu": "yes"}}, false)},
		{name: "any, image not usable here", req: req("u", anySite, false)},
		{name: "tool lookup fails", req: req("t", anySite, false), tools: fakeTools{err: errs.New(errs.ErrUnavailable, "etcd down")}},
		{name: "any, usable", req: req("t", toolspec.Target{Mode: toolspec.TargetAny, Labels: map[string]string{"zone": "eu"}}, false),
			claimed: true, launch: "t"},
		{name: "any, usable, watched", req: req("t", anySite, false), watched: true, claimed: true, launch: "t"},
		{name: "named site runs without an image check", req: req("u", here, false), claimed: true, launch: "u"},
		{name: "fan-out, usable", req: req("t", here, true), claimed: true, launch: "t"},
		{name: "fan-out, image not usable", req: req("u", here, true), claimed: true, saved: api.StateSkipped,
			reason: regexp.MustCompile(`^skipped: the image cannot run at site here: image gone:1 is not here`)},
		{name: "tool removed", req: req("zz", anySite, false), claimed: true, saved: api.StateFailed,
			reason: regexp.MustCompile(`tool zz is no longer registered`)},
		{name: "claim lost to another site", req: req("t", anySite, false), lose: true, claimed: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reqs, launcher := newFakeRequests(), &fakeLauncher{site: "here"}
			if !tc.watched {
				reqs.open = []runs.Request{tc.req}
			}
			reqs.lose[tc.req.Run] = tc.lose
			if tc.tools == nil {
				tc.tools = tools
			}
			clock := clockwork.NewFakeClockAt(start)
			d := federation.NewDispatcher(federation.DispatcherDeps{
				Requests: reqs, Claims: reqs, Sites: fakeSites{}, Tools: tc.tools, Images: usable, Launcher: launcher,
			}, federation.Options{Site: "here", Labels: map[string]string{"zone": "eu"}, Clock: clock})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan struct{})
			go func() { defer close(done); d.Run(ctx) }()
			watch := <-reqs.feed.watches
			if tc.watched {
				watch <- []runs.Request{tc.req}
			}
			// Run returns once every request it took is handled.
			cancel()
			<-done

			_, claims, saved := reqs.calls()
			_, launched, launchedTools := launcher.calls()
			if got := len(claims) > 0; got != tc.claimed {
				t.Errorf("claimed %v, want %v", claims, tc.claimed)
			}
			switch {
			case tc.launch == "" && len(launched) > 0:
				t.Errorf("launched %+v", launched)
			case tc.launch != "" && (len(launched) != 1 || launched[0].ID != "r1" || launched[0].Site != "here" || launchedTools[0].Name != tc.launch):
				t.Errorf("launched %+v with %+v, want r1 of %s", launched, launchedTools, tc.launch)
			}
			switch {
			case tc.saved == "" && len(saved) > 0:
				t.Errorf("recorded %+v", saved)
			case tc.saved != "":
				if len(saved) != 1 {
					t.Fatalf("recorded %+v, want one %s run", saved, tc.saved)
				}
				r := saved[0]
				if r.ID != "r1" || r.Site != "here" || r.State != tc.saved || !tc.reason.MatchString(r.Reason) ||
					r.FinishedAt == nil || !r.FinishedAt.Equal(start) {
					t.Errorf("recorded %+v", r)
				}
			}
		})
	}
}

// TestRelistAfterRejoining checks the promise that a site that has
// registered again after its lease expired looks at the waiting requests
// at once (Relist), not at the next periodic relist: a request whose claim
// failed while the site was not live is claimed and launched then.
func TestRelistAfterRejoining(t *testing.T) {
	reqs := newFakeRequests(runs.Request{Run: "r1", Tool: "t", Target: toolspec.Target{Mode: toolspec.TargetSite, Site: "here"}})
	reqs.notLive = 1
	launcher := &fakeLauncher{}
	d := federation.NewDispatcher(federation.DispatcherDeps{
		Requests: reqs, Claims: reqs, Sites: fakeSites{}, Launcher: launcher, Images: fakeUsable{},
		Tools: fakeTools{tools: map[string]toolspec.Tool{"t": testTool}},
	}, federation.Options{Site: "here", Clock: clockwork.NewFakeClockAt(start)}) // its relist timer never fires
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); d.Run(ctx) }()
	<-reqs.feed.watches // listed once, and watching
	d.Relist()
	select {
	case <-reqs.feed.watches: // listed again
	case <-time.After(10 * time.Second):
		t.Fatal("Relist did not list the requests again")
	}
	cancel()
	<-done // Run returns once every request it took is handled
	_, claims, _ := reqs.calls()
	if _, launched, _ := launcher.calls(); len(claims) != 2 || len(launched) != 1 || launched[0].ID != "r1" {
		t.Fatalf("claims %v, launched %+v; want r1 claimed twice and launched once", claims, launched)
	}
}

// TestReplay checks where a replay runs and what it refuses: by default at
// the site that ran the original (here: created and started at once;
// elsewhere: a request for that site), at another site when asked, and
// never for a run that did not succeed or whose secret the tool's record
// no longer holds.
func TestReplay(t *testing.T) {
	hex := func(c string) string { return strings.Repeat(c, 40) }
	orig := api.Run{ID: "t-1-aaaaaa", Tool: "t", Site: "here", State: api.StateSucceeded, Image: "img:1",
		ImageID: "sha256:" + strings.Repeat("ab", 32), DataRepo: "https://git.example.org/d.git",
		DataCommitBefore: hex("1"), DataCommitAfter: hex("2"),
		Spec: &api.RunSpec{Env: map[string]string{"TOKEN": "***"}, SecretEnv: []string{"TOKEN"}, Timeout: "1h0m0s"}}
	tool := testTool
	tool.Env = map[string]string{"TOKEN": "s3cret"}
	withSite := func(r api.Run, site string) api.Run { r.Site = site; return r }
	failed := orig
	failed.State = api.StateFailed
	tests := []struct {
		name        string
		orig        api.Run
		req         api.ReplayRequest
		tool        toolspec.Tool
		wantCreated bool   // started here at once
		wantSite    string // else: requested for this site
		err         func(error) bool
	}{
		{name: "here, as the original", orig: orig, tool: tool, wantCreated: true},
		{name: "at the original's site", orig: withSite(orig, "b"), tool: tool, wantSite: "b"},
		{name: "at the site asked", orig: orig, req: api.ReplayRequest{Site: "b"}, tool: tool, wantSite: "b"},
		{name: "at a site that never joined", orig: orig, req: api.ReplayRequest{Site: "nowhere"}, tool: tool,
			err: func(err error) bool { return errors.Is(err, errs.ErrNotFound) }},
		{name: "a run that failed", orig: failed, tool: tool, err: isConflict},
		{name: "a secret gone from the tool", orig: orig, tool: testTool, err: isConflict},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reqs, launcher := newFakeRequests(), &fakeLauncher{site: "here"}
			d := federation.NewDispatcher(federation.DispatcherDeps{
				Requests: reqs, Claims: reqs, Sites: fakeSites{{Site: api.Site{Name: "b"}, Live: true}}, Launcher: launcher,
				Images: fakeUsable{}, Tools: fakeTools{tools: map[string]toolspec.Tool{"t": tc.tool}},
			}, federation.Options{Site: "here", Clock: clockwork.NewFakeClockAt(start)})
			run, err := d.Replay(context.Background(), tc.orig, tc.req, "ada")
			if tc.err != nil {
				if !tc.err(err) {
					t.Fatalf("err %v", err)
				}
				if len(launcher.created) != 0 || len(reqs.reqs) != 0 {
					t.Fatalf("refused, yet created %v, requested %v", launcher.created, reqs.reqs)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if run.Trigger != api.TriggerReplay || run.Replay == nil || run.Replay.Of != tc.orig.ID || run.Replay.Commit != hex("2") ||
				run.DataCommitBefore != hex("1") || run.ImageID != orig.ImageID || run.RequestedBy != "ada" || run.ID == tc.orig.ID {
				t.Errorf("replay record %+v", run)
			}
			switch {
			case tc.wantCreated && (len(launcher.created) != 1 || launcher.created[0].Site != "here" || len(reqs.reqs) != 0):
				t.Errorf("created %v, requested %v; want it created here", launcher.created, reqs.reqs)
			case !tc.wantCreated && (len(reqs.reqs) != 1 || reqs.reqs[0].run.Target == nil || reqs.reqs[0].run.Target.Site != tc.wantSite ||
				len(launcher.created) != 0):
				t.Errorf("created %v, requested %v; want a request for %s", launcher.created, reqs.reqs, tc.wantSite)
			}
		})
	}
}
