package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/orchestrator/errs"
	"github.com/mao-research/mao/toolspec"
)

// revokeBehindItsBack ends m's lease as etcd does when it expires: the
// site's record goes, and m does not know.
func revokeBehindItsBack(t *testing.T, c *clientv3.Client, m *Membership) {
	t.Helper()
	if _, err := c.Revoke(context.Background(), clientv3.LeaseID(m.lease.Load())); err != nil {
		t.Fatal(err)
	}
}

// TestClaimsNeedTheLiveLease checks the promise that a site claims a run
// (a schedule's tick with ClaimRun, a waiting run's request with
// ClaimRequest) only while its record lives under the lease it joined this
// store with, checked in the claim's own transaction: a site that never
// joined, left, whose lease expired, or whose name another orchestrator
// holds now, claims nothing, writes nothing and gets ErrNotLive (so that
// the scheduler catches the tick up later instead of taking it for another
// site's); once it has registered again, it claims. A store that acts for
// a site that joined through another store (tests, tools) claims while
// the site's record exists.
func TestClaimsNeedTheLiveLease(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, c := newStore(t)
	log := slog.New(slog.DiscardHandler)
	tests := []struct {
		name  string
		setup func(t *testing.T, site string) // makes site as the case says
		live  bool
	}{
		{"live", func(t *testing.T, site string) { joinSite(t, s, site) }, true},
		{"never joined", func(*testing.T, string) {}, false},
		{"left", func(t *testing.T, site string) {
			if err := joinSite(t, s, site).Leave(ctx); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"lease expired", func(t *testing.T, site string) { revokeBehindItsBack(t, c, joinSite(t, s, site)) }, false},
		{"registered again after its lease expired", func(t *testing.T, site string) {
			revokeBehindItsBack(t, c, joinSite(t, s, site))
			joinSite(t, s, site)
		}, true},
		{"live through another store", func(t *testing.T, site string) {
			m, err := New(c, Options{Prefix: "/mao/", Timeout: 2 * time.Second}).Join(ctx, api.Site{Name: site}, 30*time.Second, log)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { m.Leave(context.Background()) })
		}, true},
		{"gone, through another store", func(t *testing.T, site string) {
			m, err := New(c, Options{Prefix: "/mao/", Timeout: 2 * time.Second}).Join(ctx, api.Site{Name: site}, 30*time.Second, log)
			if err != nil {
				t.Fatal(err)
			}
			revokeBehindItsBack(t, c, m)
		}, false},
		{"name held by another orchestrator", func(t *testing.T, site string) {
			revokeBehindItsBack(t, c, joinSite(t, s, site))
			other, err := c.Grant(ctx, 30)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Put(ctx, "/mao/sites/"+site, `{"name":"`+site+`"}`, clientv3.WithLease(other.ID)); err != nil {
				t.Fatal(err)
			}
		}, false},
	}
	claims := []struct {
		kind  string
		claim func(site, id string) (bool, error)
		// written tells whether the claim left its mark.
		written func(t *testing.T, id string) bool
	}{
		{"tick", func(site, id string) (bool, error) {
			r := tickRun("sch", 1795300000, api.StatePending)
			r.ID, r.Site, r.Schedule = id, site, id
			return s.ClaimRun(ctx, r)
		}, func(t *testing.T, id string) bool {
			_, err := s.Run(ctx, id)
			return err == nil
		}},
		{"request", func(site, id string) (bool, error) {
			if err := s.RequestRun(ctx, requested(id, toolspec.Target{Mode: toolspec.TargetAny})); err != nil {
				return false, err
			}
			_, ok, err := s.ClaimRequest(ctx, id, site)
			return ok, err
		}, func(t *testing.T, id string) bool {
			got, err := s.Run(ctx, id)
			_, waiting := request(t, s, id)
			return err != nil || got.Site != "" || !waiting
		}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			site := fmt.Sprintf("site%d", i)
			tc.setup(t, site)
			for _, cl := range claims {
				id := fmt.Sprintf("t-%d-%s", i, cl.kind)
				ok, err := cl.claim(site, id)
				switch {
				case tc.live && (!ok || err != nil):
					t.Errorf("%s claimed by a live site: %v, %v; want it claimed", cl.kind, ok, err)
				case !tc.live && (ok || !errors.Is(err, ErrNotLive) || !errors.Is(err, errs.ErrUnavailable)):
					t.Errorf("%s claimed by a site that is not live: %v, %v; want ErrNotLive", cl.kind, ok, err)
				}
				if got := cl.written(t, id); got != tc.live {
					t.Errorf("%s: claim written = %v, want %v", cl.kind, got, tc.live)
				}
			}
		})
	}
	// A claim that loses to another site's is no error.
	for _, site := range []string{"first", "late"} {
		if _, err := s.Join(ctx, api.Site{Name: site}, 30*time.Second, log); err != nil {
			t.Fatal(err)
		}
	}
	r := tickRun("sch", 1795300060, api.StatePending)
	r.Site = "first"
	if ok, err := s.ClaimRun(ctx, r); !ok || err != nil {
		t.Fatalf("first claim: %v %v", ok, err)
	}
	r.Site = "late"
	if ok, err := s.ClaimRun(ctx, r); ok || err != nil {
		t.Fatalf("second claim of a tick: %v %v; want false, nil", ok, err)
	}
}

// TestHolds checks the promise behind the runner's fence on output: Holds
// says nil only while the stored record is the same attempt at this site,
// running (or still pending, when etcd missed its start), and the site's
// record lives under its lease, both read in one transaction; in every
// other case it is ErrNotHeld, of kind errs.ErrChanged, so that the output
// is discarded.
func TestHolds(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, c := newStore(t)
	here := joinSite(t, s, "here")
	gone := joinSite(t, s, "gone")
	revokeBehindItsBack(t, c, gone)
	running := func(id, site string) api.Run {
		r := held(id, site, api.StateRunning)
		r.MaxAttempts = 2
		return r
	}
	tests := []struct {
		name   string
		member *Membership
		stored func(r *api.Run) // the record as etcd has it; nil: none
		held   bool
	}{
		{"running here, same attempt", here, func(*api.Run) {}, true},
		{"another attempt since", here, func(r *api.Run) { r.Attempt = 2 }, false},
		{"lost and waiting for a site", here, func(r *api.Run) {
			r.Site, r.State, r.Attempt, r.Target = "", api.StatePending, 2, &toolspec.Target{Mode: toolspec.TargetAny}
		}, false},
		{"lost for good", here, func(r *api.Run) { r.State = api.StateLost }, false},
		{"held by another site", here, func(r *api.Run) { r.Site = "other" }, false},
		{"its start not recorded (etcd was away)", here, func(r *api.Run) { r.State = api.StatePending }, true},
		{"ended", here, func(r *api.Run) { r.State = api.StateSucceeded }, false},
		{"record gone", here, nil, false},
		{"the site's lease expired", gone, func(*api.Run) {}, false},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			run := running(fmt.Sprintf("t-%d", i), tc.member.site.Name)
			if tc.stored != nil {
				stored := run
				tc.stored(&stored)
				if err := s.CreateRun(ctx, stored); err != nil {
					t.Fatal(err)
				}
			}
			err := tc.member.Holds(ctx, run)
			if tc.held && err != nil {
				t.Fatalf("Holds = %v, want nil", err)
			}
			if !tc.held && (!errors.Is(err, ErrNotHeld) || !errors.Is(err, errs.ErrChanged)) {
				t.Fatalf("Holds = %v, want ErrNotHeld", err)
			}
		})
	}
}

// TestSaveRunRefusesALostRun checks that a run settled as lost for good
// cannot be rewritten by the site that lost it: its attempt is over.
func TestSaveRunRefusesALostRun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newStore(t)
	run := held("t-1", "dead", api.StateRunning)
	if err := s.CreateRun(ctx, run); err != nil {
		t.Fatal(err)
	}
	if lost, ok, err := s.LoseRun(ctx, run.ID, "dead", testNow); !ok || err != nil || lost.State != api.StateLost {
		t.Fatalf("lose: %+v %v %v", lost, ok, err)
	}
	run.State = api.StateSucceeded
	if err := s.SaveRun(ctx, run); !errors.Is(err, ErrNotHeld) {
		t.Fatalf("save of a lost run by its site: %v, want ErrNotHeld", err)
	}
	if got, _ := s.Run(ctx, run.ID); got.State != api.StateLost {
		t.Fatalf("run = %s, want lost", got.State)
	}
}

// TestLeaseValidByOwnClock checks that a site counts its lease valid, by
// its own clock, until a TTL after its last renewal was sent and not
// after, and that Keep's renewals, timed by the same clock, extend it and
// wake those that wait on the renewed channel.
func TestLeaseValidByOwnClock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, clock := testEtcdClient(t), clockwork.NewFakeClock()
	s := New(c, Options{Prefix: "/mao/", Timeout: 2 * time.Second, Clock: clock})
	const ttl = 3 * time.Second
	m, err := s.Join(ctx, api.Site{Name: "s1"}, ttl, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Valid(); err != nil {
		t.Fatalf("valid right after joining: %v", err)
	}
	clock.Advance(ttl - time.Millisecond)
	if _, err := m.Valid(); err != nil {
		t.Fatalf("valid just before the TTL: %v", err)
	}
	clock.Advance(time.Millisecond)
	renewed, err := m.Valid()
	if !errors.Is(err, ErrLeaseLapsed) || !errors.Is(err, errs.ErrUnavailable) {
		t.Fatalf("a TTL after the grant: %v, want ErrLeaseLapsed", err)
	}
	keepCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); m.Keep(keepCtx, time.Second, func() {}, func() {}) }()
	defer func() { stop(); <-done }()
	waitCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := clock.BlockUntilContext(waitCtx, 1); err != nil { // Keep waits for its next renewal
		t.Fatal(err)
	}
	clock.Advance(ttl / 3)
	select {
	case <-renewed:
	case <-waitCtx.Done():
		t.Fatal("no renewal woke the waiter")
	}
	if _, err := m.Valid(); err != nil {
		t.Fatalf("valid after a renewal: %v", err)
	}
}

// testEtcdClient is newStore's etcd client alone.
func testEtcdClient(t *testing.T) *clientv3.Client {
	t.Helper()
	_, c := newStore(t)
	return c
}
