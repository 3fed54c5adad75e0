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

	if _, _, err := s.AddLearner(ctx, m.Name, "http://127.0.0.1:2380"); !errors.Is(err, errs.ErrExists) {
		t.Errorf("a member's name: %v, want errs.ErrExists", err)
	}
	if _, _, err := s.AddLearner(ctx, "b", m.PeerURLs[0]); !errors.Is(err, errs.ErrExists) {
		t.Errorf("a member's peer URL: %v, want errs.ErrExists", err)
	}
	if err := s.RemoveSite(ctx, "nope"); !errors.Is(err, errs.ErrNotFound) {
		t.Errorf("remove an unknown site: %v, want errs.ErrNotFound", err)
	}
	if f, err := s.Federation(ctx); err != nil || len(f.Members) != 1 {
		t.Fatalf("the refused requests changed the cluster: %+v, %v", f, err)
	}
}

// TestAddLearnerToOneMember adds a second member to a cluster of one, the
// usual way a federation grows. The new member is a learner until it
// promotes itself, so the cluster keeps its quorum meanwhile. Each call is
// bounded by a short store timeout, so that the test cannot hang.
func TestAddLearnerToOneMember(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := oneMember(t, time.Second)
	before, err := s.Federation(ctx)
	if err != nil {
		t.Fatal(err)
	}
	peer := testenv.FreeURL(t)
	initial, others, err := s.AddLearner(ctx, "b", peer)
	if err != nil {
		t.Fatal(err)
	}
	first := before.Members[0]
	want := strings.Join(slices.Sorted(slices.Values([]string{"b=" + peer, first.Name + "=" + first.PeerURLs[0]})), ",")
	if initial != want || !slices.Equal(others, first.ClientURLs) {
		t.Errorf("initial cluster %q, others %v; want %q, %v", initial, others, want, first.ClientURLs)
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
	if _, _, err := s.AddLearner(ctx, "c", testenv.FreeURL(t)); !errors.Is(err, errs.ErrInUse) {
		t.Errorf("a second add before b started: %v, want errs.ErrInUse", err)
	}
	var added api.Member
	for _, m := range f.Members {
		if m.Name == "" {
			added = m
		}
	}
	if !added.Learner || !slices.Equal(added.PeerURLs, []string{peer}) || added.Health != "not started" {
		t.Errorf("the added member: %+v", added)
	}
	if err := s.RemoveSite(ctx, added.ID); err != nil {
		t.Errorf("remove b, never started, by ID: %v", err)
	}
}

// TestAddLearnerAndRemoveSite works on a cluster of three, which keeps its quorum
// while an added member has not started.
func TestAddLearnerAndRemoveSite(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := New(testenv.EtcdCluster(t, 3).Client(t), Options{Prefix: "/mao/", Timeout: 5 * time.Second})
	peer := testenv.FreeURL(t)
	if _, _, err := s.AddLearner(ctx, "d", peer); err != nil {
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
	if _, _, err := s.AddLearner(ctx, "e", testenv.FreeURL(t)); !errors.Is(err, errs.ErrInUse) {
		t.Fatalf("a second add before d started: %v, want errs.ErrInUse", err)
	}
	// Not started, it has no name yet: it is removed by its ID, which
	// the refusal by name gives.
	if err := s.RemoveSite(ctx, "d"); !errors.Is(err, errs.ErrNotFound) || !strings.Contains(err.Error(), m.ID+" (peer "+peer+")") {
		t.Fatalf("remove d by name before it started: %v; want not found, naming member %s", err, m.ID)
	}
	if err := s.RemoveSite(ctx, m.ID); err != nil {
		t.Fatalf("remove d, never started, by ID %s: %v", m.ID, err)
	}
	if m := added(); m != nil {
		t.Fatalf("removed member still listed: %+v", m)
	}
}
