package store

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/internal/testenv"
	"github.com/mao-research/mao/orchestrator/errs"
	"github.com/mao-research/mao/orchestrator/etcdembed"
	"github.com/mao-research/mao/toolspec"
)

// oneMember starts an embedded member alone in a new cluster, on ports
// chosen before it starts, as a site's config names them, and returns a
// store over it whose requests time out after timeout.
func oneMember(t *testing.T, timeout time.Duration) *Store {
	t.Helper()
	srv, err := etcdembed.Start(context.Background(), etcdembed.Options{Name: "a", Dir: t.TempDir(),
		ClientURL: testenv.FreeURL(t), PeerURL: testenv.FreeURL(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	c, err := clientv3.New(clientv3.Config{Endpoints: srv.Endpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return New(c, Options{Prefix: "/mao/", Timeout: timeout})
}

// checkAlone checks a federation of one healthy member.
func checkAlone(t *testing.T, f api.Federation) {
	t.Helper()
	if len(f.Members) != 1 || f.ClusterID == "" || f.ClusterID == "0" {
		t.Fatalf("federation %+v", f)
	}
	m := f.Members[0]
	if m.Health != "ok" || !m.Leader || f.Leader != m.Name || m.Name == "" || m.Version == "" ||
		len(m.ClientURLs) == 0 || len(m.PeerURLs) == 0 || m.ID == "" {
		t.Errorf("member %+v (leader %q)", m, f.Leader)
	}
}

// TestFederationWithPortZero: a site alone may let its embedded member
// listen on a free port (client_url port 0).
func TestFederationWithPortZero(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	f, err := s.Federation(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	checkAlone(t, f)
}

func TestFederationOfOneMember(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := oneMember(t, 2*time.Second)
	f, err := s.Federation(ctx)
	if err != nil {
		t.Fatal(err)
	}
	checkAlone(t, f)
	m := f.Members[0]

	good := api.AddSiteRequest{Name: "b", PeerURL: "http://127.0.0.1:2380"}
	tests := []struct {
		name   string
		req    func(r *api.AddSiteRequest)
		fields []string
	}{
		{"bad name", func(r *api.AddSiteRequest) { r.Name = "B site" }, []string{"name"}},
		{"no scheme", func(r *api.AddSiteRequest) { r.PeerURL = "127.0.0.1:2380" }, []string{"peer_url"}},
		{"no port", func(r *api.AddSiteRequest) { r.PeerURL = "http://127.0.0.1" }, []string{"peer_url"}},
		{"a path", func(r *api.AddSiteRequest) { r.PeerURL = "http://127.0.0.1:2380/etcd" }, []string{"peer_url"}},
		{"not http", func(r *api.AddSiteRequest) { r.ClientURL = "unix://127.0.0.1:2379" }, []string{"client_url"}},
		{"everything", func(r *api.AddSiteRequest) { *r = api.AddSiteRequest{Name: "-", PeerURL: "x", ClientURL: "y"} },
			[]string{"name", "peer_url", "client_url"}},
	}
	for _, tc := range tests {
		req := good
		tc.req(&req)
		_, err := s.AddSite(ctx, req)
		var ve *toolspec.ValidationError
		if !errors.As(err, &ve) {
			t.Errorf("%s: %v, want a validation error", tc.name, err)
			continue
		}
		var fields []string
		for _, f := range ve.Fields {
			fields = append(fields, f.Field)
		}
		if !slices.Equal(fields, tc.fields) {
			t.Errorf("%s: fields %v, want %v", tc.name, fields, tc.fields)
		}
	}
	if _, err := s.AddSite(ctx, api.AddSiteRequest{Name: m.Name, PeerURL: "http://127.0.0.1:2380"}); !errors.Is(err, errs.ErrExists) {
		t.Errorf("a member's name: %v, want errs.ErrExists", err)
	}
	if _, err := s.AddSite(ctx, api.AddSiteRequest{Name: "b", PeerURL: m.PeerURLs[0]}); !errors.Is(err, errs.ErrExists) {
		t.Errorf("a member's peer URL: %v, want errs.ErrExists", err)
	}
	if err := s.RemoveSite(ctx, "nope"); !errors.Is(err, errs.ErrNotFound) {
		t.Errorf("remove an unknown site: %v, want errs.ErrNotFound", err)
	}
	if f, err := s.Federation(ctx); err != nil || len(f.Members) != 1 {
		t.Fatalf("the refused requests changed the cluster: %+v, %v", f, err)
	}
}

// TestAddSiteToOneMember adds a second member to a cluster of one, the
// usual way a federation grows. The new member is a learner until it
// promotes itself, so the cluster keeps its quorum meanwhile. Each call is
// bounded by a short store timeout, so that the test cannot hang.
func TestAddSiteToOneMember(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := oneMember(t, time.Second)
	before, err := s.Federation(ctx)
	if err != nil {
		t.Fatal(err)
	}
	peer := testenv.FreeURL(t)
	res, err := s.AddSite(ctx, api.AddSiteRequest{Name: "b", PeerURL: peer})
	if err != nil {
		t.Fatal(err)
	}
	if res.Member.Name != "b" || res.Member.ID == "" || !slices.Equal(res.Member.PeerURLs, []string{peer}) ||
		res.Member.Health != "not started" {
		t.Errorf("member %+v", res.Member)
	}
	first := before.Members[0]
	want := strings.Join(slices.Sorted(slices.Values([]string{"b=" + peer, first.Name + "=" + first.PeerURLs[0]})), ",")
	if res.InitialCluster != want {
		t.Errorf("initial cluster %q, want %q", res.InitialCluster, want)
	}
	for _, line := range []string{"name = b", "prefix = /mao/", "client_url = http://127.0.0.1:2379", "peer_url = " + peer,
		"initial_cluster = " + want, "cluster_state = existing"} {
		if !strings.Contains(res.Config, line+"\n") {
			t.Errorf("config lacks %q:\n%s", line, res.Config)
		}
	}

	// b is a learner: the cluster keeps its quorum of one, so it still
	// writes, lists and can remove b, which has not started.
	f, err := s.Federation(ctx)
	if err != nil || len(f.Members) != 2 {
		t.Fatalf("federation after the add: %+v, %v; want two members", f, err)
	}
	if err := s.CreateDataset(ctx, toolspec.Dataset{Name: "after-add", URL: "file:///d"}); err != nil {
		t.Errorf("a write after the add: %v", err)
	}
	if _, err := s.AddSite(ctx, api.AddSiteRequest{Name: "c", PeerURL: testenv.FreeURL(t)}); !errors.Is(err, errs.ErrInUse) {
		t.Errorf("a second add before b started: %v, want errs.ErrInUse", err)
	}
	for _, m := range f.Members {
		if m.Name == "" && !m.Learner {
			t.Errorf("the added member is not a learner: %+v", m)
		}
	}
	if err := s.RemoveSite(ctx, res.Member.ID); err != nil {
		t.Errorf("remove b, never started, by ID: %v", err)
	}
}

// TestAddAndRemoveSite works on a cluster of three, which keeps its quorum
// while an added member has not started.
func TestAddAndRemoveSite(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := New(testenv.EtcdCluster(t, 3).Client(t), Options{Prefix: "/mao/", Timeout: 5 * time.Second})
	peer := testenv.FreeURL(t)
	if _, err := s.AddSite(ctx, api.AddSiteRequest{Name: "d", PeerURL: peer}); err != nil {
		t.Fatal(err)
	}
	added := func() *api.Member {
		t.Helper()
		f, err := s.Federation(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range f.Members {
			if slices.Contains(m.PeerURLs, peer) {
				return &m
			}
		}
		return nil
	}
	m := added()
	if m == nil || m.Health != "not started" {
		t.Fatalf("the added member: %+v", m)
	}
	if _, err := s.AddSite(ctx, api.AddSiteRequest{Name: "e", PeerURL: testenv.FreeURL(t)}); !errors.Is(err, errs.ErrInUse) {
		t.Fatalf("a second add before d started: %v, want errs.ErrInUse", err)
	}
	// Not started, it has no name yet: it is removed by its ID.
	if err := s.RemoveSite(ctx, m.ID); err != nil {
		t.Fatalf("remove d, never started, by ID %s: %v", m.ID, err)
	}
	if m := added(); m != nil {
		t.Fatalf("removed member still listed: %+v", m)
	}
}
