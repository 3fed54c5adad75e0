package testsite

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/orchestrator/errs"
	"github.com/mao-research/mao/orchestrator/peer"
	"github.com/mao-research/mao/orchestrator/pki"
	"github.com/mao-research/mao/orchestrator/runs"
	"github.com/mao-research/mao/orchestrator/store"
	"github.com/mao-research/mao/toolspec"
)

// Tool registers a tool, as POST /api/v1/tools does once it has checked
// it.
func (s *Site) Tool(t testing.TB, tool api.Tool) {
	t.Helper()
	must(t, "seed tool "+tool.Name, tool.Validate())
	must(t, "seed tool "+tool.Name, s.Store.CreateTool(s.ctx(t), tool))
}

// Raw writes value under key (below the site's prefix) as it is, as a
// collaborator with etcdctl and a certificate could: for values that are
// not mao's records.
func (s *Site) Raw(t testing.TB, key, value string) {
	t.Helper()
	_, err := s.Etcd.Put(s.ctx(t), s.Config.Etcd.Prefix+key, value)
	must(t, "put "+key, err)
}

// RemoveTool removes a registered tool.
func (s *Site) RemoveTool(t testing.TB, name string) {
	t.Helper()
	must(t, "remove tool "+name, s.Store.DeleteTool(s.ctx(t), name))
}

// Dataset registers a dataset.
func (s *Site) Dataset(t testing.TB, d api.Dataset) {
	t.Helper()
	must(t, "seed dataset "+d.Name, d.Validate())
	must(t, "seed dataset "+d.Name, s.Store.CreateDataset(s.ctx(t), d))
}

// Run records a run as the site that holds it would: a run of a schedule
// (Schedule set) is claimed with its index entry, as a scheduler claims a
// tick; any other is created. Seeded runs are left out of Settle.
func (s *Site) Run(t testing.TB, r api.Run) {
	t.Helper()
	s.markSeeded(r.ID)
	if r.Schedule == "" {
		must(t, "seed run "+r.ID, s.Store.CreateRun(s.ctx(t), r))
		return
	}
	claimed, err := s.Store.ClaimRun(s.ctx(t), r)
	must(t, "seed run "+r.ID, err)
	if !claimed {
		t.Fatalf("seed run %s: a record with its ID exists, or its tick is older than the schedule's oldest", r.ID)
	}
}

// Request records a pending run with no site and the request that an
// eligible site claims, as POST /api/v1/tools/NAME/runs with a target
// does (one of an --all request's runs has an ID that ends in -SITE and
// a site target).
func (s *Site) Request(t testing.TB, r api.Run) {
	t.Helper()
	s.markSeeded(r.ID)
	must(t, "seed request "+r.ID, s.Store.RequestRun(s.ctx(t), r))
}

// Log writes a run's log at this site: the file <log_dir>/<run-id>.log
// that the site serves at GET /api/v1/runs/ID/logs.
func (s *Site) Log(t testing.TB, runID, text string) {
	t.Helper()
	must(t, "seed log", os.WriteFile(filepath.Join(s.Config.Runs.LogDir, runID+".log"), []byte(text), 0o644))
}

// Schedule stores a schedule as POST /api/v1/schedules does once it has
// filled in the defaults, checked it and picked its ID. The site's
// scheduler sees it through its watch and catches it up at once: seed a
// schedule's runs (Run) before the schedule, so that the catch-up starts
// after them.
func (s *Site) Schedule(t testing.TB, sch toolspec.Schedule) {
	t.Helper()
	must(t, "seed schedule "+sch.ID, sch.Validate())
	must(t, "seed schedule "+sch.ID, s.Store.CreateSchedule(s.ctx(t), sch))
}

// Series stores a spike detector series (its tool, site and metric name
// it), as the site that ran its runs keeps it.
func (s *Site) Series(t testing.TB, sr api.Series) {
	t.Helper()
	_, err := s.Store.UpdateSeries(s.ctx(t), sr.Tool, sr.Site, sr.Metric, max(len(sr.Points), 1),
		func(api.Series) (api.Series, error) { return sr, nil })
	must(t, "seed series", err)
}

// Notification records a notification's outcome, as the site that sent
// it does, and returns it with its ID.
func (s *Site) Notification(t testing.TB, n api.Notification) api.Notification {
	t.Helper()
	n, err := s.Store.RecordNotification(s.ctx(t), n, 1000)
	must(t, "seed notification", err)
	return n
}

// Other is another site of the federation, as this site sees it: its
// record in etcd, live while its lease lasts. Nothing runs there; a test
// acts for it (ClaimAs, SaveAs).
type Other struct {
	Site   api.Site
	member *store.Membership
	left   bool
}

// JoinSite makes another site live: its record under a lease (of an hour,
// which no test outlasts, so that nothing renews it and its lasting
// record keeps the clock's time at the join), until Leave or the end of
// the test.
func (s *Site) JoinSite(t testing.TB, site api.Site) *Other {
	t.Helper()
	m, err := s.Store.Join(s.ctx(t), site, time.Hour, slog.New(slog.DiscardHandler))
	must(t, "join site "+site.Name, err)
	o := &Other{Site: site, member: m}
	t.Cleanup(func() { o.Leave(t) })
	return o
}

// Leave ends the other site's life as a clean stop does: its lease is
// revoked, so its live record goes at once and its lasting one stays, as
// a gone site's, last seen when it joined.
func (o *Other) Leave(t testing.TB) {
	t.Helper()
	if o.left {
		return
	}
	o.left = true
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := o.member.Leave(ctx); err != nil {
		t.Errorf("site %s leaves: %v", o.Site.Name, err)
	}
}

// GoneSite records a site that was live once and is gone: it joins and
// leaves at once, which leaves its lasting record, last seen now.
func (s *Site) GoneSite(t testing.TB, site api.Site) {
	t.Helper()
	s.JoinSite(t, site).Leave(t)
}

// ClaimAs claims a requested run for another site, as its dispatcher
// would, and returns the run, now held by that site.
func (s *Site) ClaimAs(t testing.TB, id, site string) api.Run {
	t.Helper()
	run, ok, err := s.Store.ClaimRequest(s.ctx(t), id, site)
	must(t, "claim "+id+" for "+site, err)
	if !ok {
		t.Fatalf("claim %s for %s: the request is gone, or the site is not live", id, site)
	}
	s.markSeeded(id)
	return run
}

// SaveAs records a run as the site that holds it does at each change of
// state.
func (s *Site) SaveAs(t testing.TB, r api.Run) {
	t.Helper()
	must(t, "save run "+r.ID, s.Store.SaveRun(s.ctx(t), r))
}

// WaitRun waits until the record of run id satisfies done, and returns
// it. It fails the test after a minute.
func (s *Site) WaitRun(t testing.TB, id string, done func(api.Run) bool) api.Run {
	t.Helper()
	var last api.Run
	s.waitFor(t, func(ctx context.Context) (bool, error) {
		r, err := s.Store.Run(ctx, id)
		if errors.Is(err, errs.ErrNotFound) {
			return false, nil
		}
		last = r
		return err == nil && done(r), err
	}, func() string { return "run " + id + " is " + string(last.State) + ": " + last.Reason })
	return last
}

// Settle waits until the site has done what it was asked so far: every
// run it holds that the test did not seed has ended, and no request is
// open that the site claims whatever its image (one named for this site,
// or one of an --all request's runs that includes it) or, when the site
// uses Docker, any request it is eligible for. It fails the test after a
// minute.
func (s *Site) Settle(t testing.TB) {
	t.Helper()
	var busy []string
	s.waitFor(t, func(ctx context.Context) (bool, error) {
		busy = busy[:0]
		// One snapshot of runs and requests: a claim moves a run from
		// one to the other in one transaction.
		prefix := s.Config.Etcd.Prefix
		resp, err := s.Etcd.Txn(ctx).Then(
			clientv3.OpGet(prefix+"runs/", clientv3.WithPrefix()),
			clientv3.OpGet(prefix+"requests/", clientv3.WithPrefix()),
		).Commit()
		if err != nil {
			return false, err
		}
		for _, kv := range resp.Responses[0].GetResponseRange().Kvs {
			var r api.Run
			if err := json.Unmarshal(kv.Value, &r); err != nil {
				return false, fmt.Errorf("%s: %w", kv.Key, err)
			}
			if r.Site == s.Name && !r.State.Terminal() && !s.isSeeded(r.ID) {
				busy = append(busy, r.ID+" "+string(r.State))
			}
		}
		for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
			var req runs.Request
			if err := json.Unmarshal(kv.Value, &req); err != nil {
				return false, fmt.Errorf("%s: %w", kv.Key, err)
			}
			named := req.Target.EffectiveMode() == toolspec.TargetSite && req.Target.Site == s.Name
			if req.Target.Allows(s.Name, s.Config.Site.Labels) && (named || req.FanOut || s.docker) && !s.isSeeded(req.Run) {
				busy = append(busy, req.Run+" requested")
			}
		}
		return len(busy) == 0, nil
	}, func() string { return "busy: " + joinLines(busy) })
}

// waitFor checks cond now and after every change in etcd under the
// site's prefix, until it holds; it fails the test after a minute.
func (s *Site) waitFor(t testing.TB, cond func(context.Context) (bool, error), why func() string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// The watch starts before the first check, so no change is missed.
	resp, err := s.Etcd.Get(ctx, s.Config.Etcd.Prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	must(t, "read etcd", err)
	changes := s.Etcd.Watch(ctx, s.Config.Etcd.Prefix, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1))
	for {
		ok, err := cond(ctx)
		if err != nil && ctx.Err() == nil {
			t.Fatal(err)
		}
		if ok {
			return
		}
		select {
		case _, ok := <-changes:
			if !ok && ctx.Err() == nil {
				t.Fatalf("site %s: the watch of etcd ended while waiting: %s", s.Name, why())
			}
		case <-ctx.Done():
			t.Fatalf("site %s: still waiting after a minute: %s", s.Name, why())
		}
	}
}

func joinLines(lines []string) string {
	out := ""
	for i, l := range lines {
		if i > 0 {
			out += "; "
		}
		out += l
	}
	return out
}

// JoinWithoutStarting does what a new site with an embedded member does
// when it joins, and no more, as a site that failed right after joining
// would: it gets a join token for name from this site (federation
// add-site, with the site's admin token) and presents it with the
// member's URLs; the federation adds the member, a learner with no name
// until it starts, which it never does.
func (s *Site) JoinWithoutStarting(t testing.TB, name, peerURL, clientURL string) {
	t.Helper()
	ctx := s.ctx(t)
	res, err := s.AdminClient(t).AddSite(ctx, api.AddSiteRequest{Name: name, PeerURL: peerURL, ClientURL: clientURL})
	must(t, "a join token for "+name, err)
	tok, err := pki.ParseJoinToken(res.Token)
	must(t, "a join token for "+name, err)
	_, err = peer.Join(ctx, tok, peer.JoinRequest{Site: name, PeerURL: peerURL, ClientURL: clientURL})
	must(t, "join as "+name, err)
}
