package store

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/internal/testenv"
	"github.com/mao-research/mao/orchestrator/errs"
	"github.com/mao-research/mao/orchestrator/etcdembed"
	"github.com/mao-research/mao/orchestrator/pki"
	"github.com/mao-research/mao/toolspec"
)

func newStore(t *testing.T) (*Store, *clientv3.Client) {
	t.Helper()
	c := testenv.EtcdClient(t)
	return New(c, Options{Prefix: "/mao/", Timeout: 2 * time.Second}), c
}

func tool(name, input string) toolspec.Tool {
	return toolspec.Tool{Name: name, Author: "a", Image: "busybox", DataRepo: "file:///r", InputDataset: input}
}

func TestRegistry(t *testing.T) {
	ctx := context.Background()
	s, c := newStore(t)
	steps := []struct {
		name string
		do   func() error
		want error
	}{
		{"create dataset", func() error { return s.CreateDataset(ctx, toolspec.Dataset{Name: "ds", URL: "file:///d"}) }, nil},
		{"duplicate dataset", func() error { return s.CreateDataset(ctx, toolspec.Dataset{Name: "ds", URL: "file:///e"}) }, errs.ErrExists},
		{"create tool", func() error { return s.CreateTool(ctx, tool("t1", "")) }, nil},
		{"duplicate tool", func() error { return s.CreateTool(ctx, tool("t1", "")) }, errs.ErrExists},
		{"tool with input", func() error { return s.CreateTool(ctx, tool("t2", "ds")) }, nil},
		{"dataset in use", func() error { return s.DeleteDataset(ctx, "ds") }, errs.ErrInUse},
		{"unknown tool", func() error { _, err := s.Tool(ctx, "nope"); return err }, errs.ErrNotFound},
		{"delete unknown tool", func() error { return s.DeleteTool(ctx, "nope") }, errs.ErrNotFound},
		{"delete unknown dataset", func() error { return s.DeleteDataset(ctx, "nope") }, errs.ErrNotFound},
		{"delete tool", func() error { return s.DeleteTool(ctx, "t2") }, nil},
		{"dataset no longer in use", func() error { return s.DeleteDataset(ctx, "ds") }, nil},
	}
	for _, st := range steps {
		if err := st.do(); !errors.Is(err, st.want) {
			t.Fatalf("%s: err = %v, want %v", st.name, err, st.want)
		}
	}
	var ve *toolspec.ValidationError
	if err := s.CreateTool(ctx, tool("t3", "missing")); !errors.As(err, &ve) || ve.Fields[0].Field != "input_dataset" {
		t.Fatalf("tool with unknown input dataset: %v", err)
	}
	if r, _ := c.Get(ctx, "/mao/tools/t3"); len(r.Kvs) != 0 {
		t.Fatal("a rejected tool was written")
	}
	tools, err := s.Tools(ctx)
	if err != nil || len(tools) != 1 || tools[0].Name != "t1" {
		t.Fatalf("tools = %v, %v", tools, err)
	}
	got, err := s.Tool(ctx, "t1")
	if err != nil || got.Image != "busybox" {
		t.Fatalf("tool = %+v, %v", got, err)
	}
}

func TestRuns(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i, r := range []api.Run{
		{ID: "a-1", Tool: "a", State: api.StatePending, CreatedAt: base},
		{ID: "b-1", Tool: "b", State: api.StatePending, CreatedAt: base.Add(time.Minute)},
		{ID: "a-2", Tool: "a", State: api.StatePending, CreatedAt: base.Add(2 * time.Minute)},
	} {
		if err := s.CreateRun(ctx, r); err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
	}
	if err := s.CreateRun(ctx, api.Run{ID: "a-1"}); !errors.Is(err, errs.ErrExists) {
		t.Fatalf("duplicate run id: %v", err)
	}
	r, _ := s.Run(ctx, "a-1")
	r.State = api.StateSucceeded
	if err := s.SaveRun(ctx, r); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		tool string
		want []string
	}{
		{"", []string{"a-2", "b-1", "a-1"}},
		{"a", []string{"a-2", "a-1"}},
		{"zzz", nil},
	}
	for _, tc := range tests {
		runs, _, err := s.RunPage(ctx, api.RunFilter{Tool: tc.tool})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, r := range runs {
			ids = append(ids, r.ID)
		}
		if len(ids) != len(tc.want) || (len(ids) > 0 && ids[0] != tc.want[0]) || (len(ids) > 1 && ids[1] != tc.want[1]) {
			t.Errorf("Runs(%q) = %v, want %v", tc.tool, ids, tc.want)
		}
	}
	if got, _ := s.Run(ctx, "a-1"); got.State != api.StateSucceeded {
		t.Fatalf("saved state = %s", got.State)
	}
	// UpdateRun changes a record by a function, in a compare-and-swap.
	got, err := s.UpdateRun(ctx, "a-1", func(r api.Run) (api.Run, error) {
		r.Push = &api.Push{State: api.PushPushed, Branch: "main", Commit: "c1", QueuedAt: base}
		return r, nil
	})
	if stored, _ := s.Run(ctx, "a-1"); err != nil || got.Push == nil || stored.Push == nil || stored.Push.Commit != "c1" {
		t.Fatalf("UpdateRun = %+v, %v; stored %+v", got, err, stored.Push)
	}
	refused := errors.New("no")
	if _, err := s.UpdateRun(ctx, "a-1", func(r api.Run) (api.Run, error) { return r, refused }); !errors.Is(err, refused) {
		t.Fatalf("UpdateRun with a refusal: %v", err)
	}
	if _, err := s.UpdateRun(ctx, "nope", func(r api.Run) (api.Run, error) { return r, nil }); !errors.Is(err, errs.ErrNotFound) {
		t.Fatalf("UpdateRun of no run: %v", err)
	}
}

func TestMembership(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	m, err := s.Join(ctx, api.Site{Name: "s1", APIAddr: "127.0.0.1:1"}, 2*time.Second, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	keepCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); m.Keep(keepCtx, 100*time.Millisecond, func() {}, func() {}) }()
	sites, err := s.Sites(ctx)
	if err != nil || len(sites) != 1 || sites[0].Name != "s1" {
		t.Fatalf("sites = %v, %v", sites, err)
	}
	stop()
	<-done
	if err := m.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	if sites, _ := s.Sites(ctx); len(sites) != 0 {
		t.Fatalf("sites after leave = %v", sites)
	}
}

func TestUnavailable(t *testing.T) {
	srv, err := etcdembed.Start(context.Background(), etcdembed.Options{Dir: t.TempDir(), ClientURL: "http://127.0.0.1:0", PeerURL: "http://127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: srv.Endpoints(), DialTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	srv.Close()
	s := New(c, Options{Prefix: "/mao/", Timeout: 500 * time.Millisecond})
	ctx := context.Background()
	for name, call := range map[string]func() error{
		"create": func() error { return s.CreateDataset(ctx, toolspec.Dataset{Name: "d", URL: "file:///d"}) },
		"get":    func() error { _, err := s.Tool(ctx, "t"); return err },
		"list":   func() error { _, err := s.Tools(ctx); return err },
		"delete": func() error { return s.DeleteTool(ctx, "t") },
	} {
		if err := call(); !errors.Is(err, ErrUnavailable) {
			t.Errorf("%s with etcd stopped: %v, want ErrUnavailable", name, err)
		}
	}
}

func TestSiteNamesAreUnique(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	log := slog.New(slog.DiscardHandler)
	first, err := s.Join(ctx, api.Site{Name: "s1", APIAddr: "http://127.0.0.1:1"}, 2*time.Second, log)
	if err != nil {
		t.Fatal(err)
	}
	keepCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); first.Keep(keepCtx, 100*time.Millisecond, func() {}, func() {}) }()
	// A second orchestrator with the same name waits for the lease, which
	// the first keeps alive, and gives up.
	if _, err := s.Join(ctx, api.Site{Name: "s1"}, 2*time.Second, log); !errors.Is(err, errs.ErrExists) ||
		!strings.Contains(err.Error(), "http://127.0.0.1:1") {
		t.Fatalf("second join: %v", err)
	}
	// Once the first stops renewing (a crash: no revoke), the name frees
	// within the TTL and a new life of the site joins.
	stop()
	<-done
	again, err := s.Join(ctx, api.Site{Name: "s1", APIAddr: "http://127.0.0.1:2"}, 2*time.Second, log)
	if err != nil {
		t.Fatalf("join after the old lease expired: %v", err)
	}
	if err := again.Leave(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestKeepAfterLeaseExpiry checks that a site whose lease expired (here:
// revoked behind its back) learns that it lost its runs (lost, before
// anything else), registers again, says so (rejoined), and claims again.
func TestKeepAfterLeaseExpiry(t *testing.T) {
	ctx := context.Background()
	s, c := newStore(t)
	m, err := s.Join(ctx, api.Site{Name: "s1"}, 2*time.Second, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	events := make(chan string, 2)
	keepCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.Keep(keepCtx, 50*time.Millisecond, func() { events <- "lost" }, func() { events <- "rejoined" })
	}()
	defer func() { stop(); <-done }()
	old := clientv3.LeaseID(m.lease.Load())
	if _, err := c.Revoke(ctx, old); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"lost", "rejoined"} {
		select {
		case got := <-events:
			if got != want {
				t.Fatalf("Keep said %s, want %s", got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("Keep did not say %s", want)
		}
	}
	// The site's record is back under a new lease, and it claims.
	if sites, err := s.Sites(ctx); err != nil || len(sites) != 1 {
		t.Fatalf("sites = %v, %v", sites, err)
	}
	if _, err := m.Valid(); err != nil {
		t.Fatalf("lease after registering again: %v", err)
	}
	r := tickRun("sch", 1795300000, api.StatePending)
	r.Site = "s1"
	if ok, err := s.ClaimRun(ctx, r); !ok || err != nil {
		t.Fatalf("claim after registering again: %v %v", ok, err)
	}
}

// TestJoinGrantByTheStoresClock stores a join grant whose expiry the
// site's clock set, a clock far from the real time: it lives under a lease
// of its remaining time by that clock, and is taken once.
func TestJoinGrantByTheStoresClock(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2025, 3, 14, 12, 26, 0, 0, time.UTC) // long before the real time
	s := New(testenv.EtcdClient(t), Options{Prefix: "/mao/", Timeout: 2 * time.Second, Clock: clockwork.NewFakeClockAt(now)})
	g := pki.JoinGrant{ID: "0123456789abcdef", Site: "lab-b", SecretHash: pki.SecretHash("s"), IssuedBy: "lab-a", ExpiresAt: now.Add(time.Hour)}
	if err := s.SaveJoinGrant(ctx, g); err != nil {
		t.Fatalf("save a grant good for an hour by the store's clock: %v", err)
	}
	if got, err := s.TakeJoinGrant(ctx, g.ID, func(pki.JoinGrant) error { return nil }); err != nil || got.Site != "lab-b" {
		t.Fatalf("take it: %+v, %v", got, err)
	}
	if _, err := s.TakeJoinGrant(ctx, g.ID, func(pki.JoinGrant) error { return nil }); !errors.Is(err, errs.ErrNotFound) {
		t.Fatalf("take it again: %v, want not found", err)
	}
	g.ID, g.ExpiresAt = "fedcba9876543210", now.Add(-time.Minute)
	if err := s.SaveJoinGrant(ctx, g); err == nil {
		t.Fatal("a grant that expired by the store's clock was stored")
	}
}
