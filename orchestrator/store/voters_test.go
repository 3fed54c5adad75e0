package store

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/mao-research/mao/internal/testenv"
	"github.com/mao-research/mao/orchestrator/errs"
)

// TestLockVoters: the voters' lock has one holder at a time; another is
// refused with errs.ErrInUse, naming the holder, until it is released.
func TestLockVoters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := oneMember(t, 2*time.Second)
	unlock, err := s.LockVoters(ctx, "lab-a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.LockVoters(ctx, "lab-b"); !errors.Is(err, errs.ErrInUse) || !strings.Contains(err.Error(), "held by lab-a") {
		t.Fatalf("a second holder: %v, want in use, held by lab-a", err)
	}
	unlock()
	unlock, err = s.LockVoters(ctx, "lab-b")
	if err != nil {
		t.Fatalf("after the release: %v", err)
	}
	unlock()
}

// TestFederationVotersAndWitness: federation status counts the voters,
// marks a witness's member, and gives each member's database size; a
// witness whose member is gone already (a forced new cluster removed it)
// is removed by its record alone.
func TestFederationVotersAndWitness(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := oneMember(t, 2*time.Second)
	if err := s.SaveWitness(ctx, "a", "test"); err != nil {
		t.Fatal(err)
	}
	f, err := s.Federation(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m := f.Members[0]
	if f.Voters != 1 || !m.Witness || m.DBSize <= 0 || m.DBSizeInUse <= 0 || m.DBSizeInUse > m.DBSize || len(m.Alarms) != 0 || m.Health != "ok" {
		t.Fatalf("federation %+v, member %+v", f, m)
	}
	if err := s.SaveWitness(ctx, "gone-w", "test"); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveSite(ctx, "gone-w"); err != nil {
		t.Fatalf("remove a witness without a member: %v", err)
	}
	if err := s.RemoveSite(ctx, "gone-w"); !errors.Is(err, errs.ErrNotFound) {
		t.Fatalf("remove it again: %v, want not found", err)
	}
}

// TestPromoteAndRemoveMember: a learner that has started is promoted (a
// voter is promoted again without an error), the member count and voters
// follow, a running member is not removed by remove-site (its
// orchestrator runs), and RemoveMember takes it out.
func TestPromoteAndRemoveMember(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cluster := testenv.EtcdCluster(t, 3)
	s := New(cluster.Client(t), Options{Prefix: "/mao/", Timeout: 5 * time.Second})
	f, err := s.Federation(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if f.Voters != 3 || f.Leader == "" {
		t.Fatalf("federation %+v", f)
	}
	if err := s.PromoteMember(ctx, f.Members[0].ID); err != nil {
		t.Errorf("promote a voter: %v", err)
	}
	if err := s.PromoteMember(ctx, "zz"); !errors.Is(err, errs.ErrNotFound) {
		t.Errorf("promote a bad ID: %v", err)
	}
	victim := f.Members[2]
	if err := s.RemoveSite(ctx, victim.Name); !errors.Is(err, errs.ErrInUse) || !strings.Contains(err.Error(), "answers") {
		t.Fatalf("remove-site of a running member: %v, want in use", err)
	}
	if err := s.RemoveMember(ctx, victim.ID); err != nil {
		t.Fatal(err)
	}
	if f, err = s.Federation(ctx); err != nil || len(f.Members) != 2 || f.Voters != 2 {
		t.Fatalf("after the removal: %+v, %v", f, err)
	}
	if err := s.RemoveMember(ctx, victim.ID); err != nil {
		t.Errorf("remove it again: %v", err)
	}
}

// TestFederationFromTheLocalMember: when no member answers a member list
// (no quorum; a learner answers none at all), federation status shows
// the members as the site's own member knows them, unreachable, with no
// leader.
func TestFederationFromTheLocalMember(t *testing.T) {
	t.Parallel()
	closed := "http://" + testenv.ClosedPort(t)
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{closed}, DialTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	local := func() ([]*etcdserverpb.Member, uint64) {
		return []*etcdserverpb.Member{{ID: 0xb, Name: "b", ClientURLs: []string{closed}, IsLearner: true}, {ID: 0xa, Name: "a", ClientURLs: []string{closed}}}, 7
	}
	s := New(c, Options{Timeout: 500 * time.Millisecond, LocalMembers: local})
	f, err := s.Federation(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if f.ClusterID != "7" || f.Leader != "" || f.Voters != 1 || len(f.Members) != 2 || f.Members[0].Name != "a" ||
		!f.Members[1].Learner || !strings.HasPrefix(f.Members[0].Health, "unreachable") {
		t.Fatalf("federation %+v", f)
	}
}
