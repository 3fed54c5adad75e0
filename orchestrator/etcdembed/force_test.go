package etcdembed

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// freeURL is an http URL on a loopback port that was free a moment ago.
func freeURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return "http://" + ln.Addr().String()
}

func client(t *testing.T, endpoints []string) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestForceNewCluster: the voter of a cluster whose other member is gone
// starts again as a cluster of itself alone, with its data, and takes
// writes; a learner is refused before etcd starts (etcd would panic with
// no voter left), and so is a member with no data.
func TestForceNewCluster(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	aPeer, bPeer := freeURL(t), freeURL(t)
	a := Options{Name: "a", Dir: filepath.Join(dir, "a"), ClientURL: freeURL(t), PeerURL: aPeer}
	srvA, err := Start(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	ca := client(t, srvA.Endpoints())
	if _, err := ca.MemberAddAsLearner(ctx, []string{bPeer}); err != nil {
		t.Fatal(err)
	}
	b := Options{Name: "b", Dir: filepath.Join(dir, "b"), ClientURL: freeURL(t), PeerURL: bPeer,
		InitialCluster: "a=" + aPeer + ",b=" + bPeer, ClusterState: "existing"}
	srvB, err := Start(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.Put(ctx, "/kept", "yes"); err != nil {
		t.Fatal(err)
	}
	if !srvB.Learner() {
		t.Fatal("b is not a learner")
	}
	srvB.Close()
	srvA.Close()

	b.ForceNewCluster, b.InitialCluster, b.ClusterState = true, "", ""
	if _, err := Start(ctx, b); !errors.Is(err, ErrLearner) {
		t.Fatalf("force a new cluster from the learner: %v, want ErrLearner", err)
	}
	if _, err := Start(ctx, Options{Name: "c", Dir: filepath.Join(dir, "c"), ForceNewCluster: true}); err == nil ||
		!strings.Contains(err.Error(), "no member's data") {
		t.Fatalf("force a new cluster with no data: %v", err)
	}

	a.ForceNewCluster = true
	srvA, err = Start(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	defer srvA.Close()
	c := client(t, srvA.Endpoints())
	members, err := c.MemberList(ctx)
	if err != nil || len(members.Members) != 1 || members.Members[0].Name != "a" {
		t.Fatalf("members after the forced start: %v, %v", members, err)
	}
	if r, err := c.Get(ctx, "/kept"); err != nil || len(r.Kvs) != 1 {
		t.Fatalf("the data before: %v, %v", r, err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := c.Put(wctx, "/after", "yes"); err != nil {
		t.Fatalf("a write after the forced start: %v", err)
	}
}
