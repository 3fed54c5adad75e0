package store

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/internal/testenv"
	"github.com/mao-research/mao/orchestrator/errs"
)

// TestJoinRecognisesItsPreviousLife checks the promise that a site
// restarting after a crash starts at once: the record its previous life
// left (same instance, its lease still alive, as an embedded etcd's
// restart makes it) is taken over without waiting, its lease revoked, and
// the new life claims; a record of another instance, or of none (an older
// version), still holds the name until its lease expires, and Join then
// refuses with errs.ErrExists.
func TestJoinRecognisesItsPreviousLife(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, c := newStore(t)
	log := slog.New(slog.DiscardHandler)
	const longTTL = 30 * time.Second
	prev, err := s.Join(ctx, api.Site{Name: "s1", Instance: "i1", APIAddr: "http://127.0.0.1:1"}, longTTL, log)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	again, err := s.Join(ctx, api.Site{Name: "s1", Instance: "i1", APIAddr: "http://127.0.0.1:2"}, longTTL, log)
	if err != nil {
		t.Fatalf("join of the next life: %v", err)
	}
	t.Cleanup(func() { again.Leave(context.Background()) })
	if took := time.Since(start); took >= longTTL {
		t.Fatalf("the next life waited %s, as for the old lease", took)
	}
	if ttl, err := c.TimeToLive(ctx, clientv3.LeaseID(prev.lease.Load())); err != nil || ttl.TTL != -1 {
		t.Fatalf("the previous life's lease: TTL %v, %v; want revoked", ttl, err)
	}
	if sites, err := s.Sites(ctx); err != nil || len(sites) != 1 || sites[0].APIAddr != "http://127.0.0.1:2" {
		t.Fatalf("sites = %+v, %v", sites, err)
	}
	r := tickRun("sch", 1795300000, api.StatePending)
	r.Site = "s1"
	if ok, err := s.ClaimRun(ctx, r); !ok || err != nil {
		t.Fatalf("claim by the new life: %v %v", ok, err)
	}
	for _, tc := range []struct{ name, instance string }{
		{"another instance", "i2"},
		{"no instance", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Join(ctx, api.Site{Name: "s1", Instance: tc.instance}, 2*time.Second, log)
			if !errors.Is(err, errs.ErrExists) || !strings.Contains(err.Error(), `instance "i1"`) {
				t.Fatalf("join: %v, want errs.ErrExists naming the holder's instance", err)
			}
		})
	}
	if sites, _ := s.Sites(ctx); len(sites) != 1 || sites[0].APIAddr != "http://127.0.0.1:2" {
		t.Fatalf("the live life lost its record: %+v", sites)
	}
}

// TestSeenIsRewrittenRarely keeps a site's lease for an hour of its clock
// and checks that its lasting record (sites-seen) was rewritten once per
// SeenEvery, not at every renewal, and once more as it left.
func TestSeenIsRewrittenRarely(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	clock := clockwork.NewFakeClock()
	s := New(testenv.EtcdClient(t), Options{Prefix: "/seen-" + t.Name() + "/", Timeout: 5 * time.Second, Clock: clock})
	const ttl = time.Minute
	m, err := s.Join(ctx, api.Site{Name: "s1"}, ttl, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	kept := make(chan struct{})
	go func() { defer close(kept); m.Keep(ctx, time.Second, func() {}, func() {}) }()
	version := func() int64 {
		t.Helper()
		resp, err := s.c.Get(ctx, s.key(seenDir, "s1"))
		if err != nil || len(resp.Kvs) != 1 {
			t.Fatalf("sites-seen/s1: %v, %v", resp, err)
		}
		return resp.Kvs[0].Version
	}
	for elapsed := time.Duration(0); elapsed < time.Hour; elapsed += ttl / 3 {
		if err := clock.BlockUntilContext(ctx, 1); err != nil { // Keep waits for its next renewal
			t.Fatal(err)
		}
		clock.Advance(ttl / 3)
	}
	if err := clock.BlockUntilContext(ctx, 1); err != nil {
		t.Fatal(err)
	}
	want := 1 + int64(time.Hour/SeenEvery) // the join's, then one per SeenEvery
	if v := version(); v != want {
		t.Errorf("sites-seen/s1 written %d times in an hour of renewals every %s; want %d", v, ttl/3, want)
	}
	cancel()
	<-kept
	if err := m.Leave(context.Background()); err != nil {
		t.Fatal(err)
	}
	resp, err := s.c.Get(context.Background(), s.key(seenDir, "s1"))
	if err != nil || len(resp.Kvs) != 1 || resp.Kvs[0].Version != want+1 {
		t.Fatalf("after Leave: %v, %v; want version %d", resp, err, want+1)
	}
}
