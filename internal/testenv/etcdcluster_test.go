package testenv

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/mao-research/mao/orchestrator/etcdembed"
)

// put writes key=value through cli within timeout.
func put(cli *clientv3.Client, key, value string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_, err := cli.Put(ctx, key, value)
	return err
}

// mustGet fails the test unless a linearizable read of key through cli
// returns want.
func mustGet(t *testing.T, cli *clientv3.Client, key, want string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := cli.Get(ctx, key)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	if len(r.Kvs) != 1 || string(r.Kvs[0].Value) != want {
		t.Fatalf("get %s = %v, want %q", key, r.Kvs, want)
	}
}

func memberClient(t *testing.T, endpoint string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// addMember adds a member with peerURL. etcd refuses while its members
// have been connected for less than 5s (a new cluster), so it retries on
// "unhealthy cluster".
func addMember(ctx context.Context, t *testing.T, cli *clientv3.Client, peerURL string) *clientv3.MemberAddResponse {
	t.Helper()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		added, err := cli.MemberAdd(ctx, []string{peerURL})
		if !errors.Is(err, rpctypes.ErrUnhealthy) {
			if err != nil {
				t.Fatal(err)
			}
			return added
		}
		select {
		case <-ctx.Done():
			t.Fatalf("add member: %v", err)
		case <-tick.C:
		}
	}
}

func TestEtcdClusterQuorum(t *testing.T) {
	c := EtcdCluster(t, 3)
	cli := c.Client(t)
	steps := []struct {
		name     string
		do       func()
		writable bool
	}{
		{"all members", func() {}, true},
		{"one member stopped", func() { c.Stop(0) }, true},
		{"two members down: no quorum", func() { c.Kill(1) }, false},
		{"both started again", func() { c.Start(0); c.Start(1) }, true},
	}
	for i, s := range steps {
		s.do()
		key := "/quorum/" + string(rune('a'+i))
		timeout := 10 * time.Second
		if !s.writable {
			timeout = 2 * time.Second
		}
		err := put(cli, key, s.name, timeout)
		if (err == nil) != s.writable {
			t.Fatalf("%s: put err = %v, want writable %v", s.name, err, s.writable)
		}
		if s.writable {
			mustGet(t, cli, key, s.name)
		}
	}
	// The killed member caught up with what it missed.
	mustGet(t, memberClient(t, c.Endpoints()[1]), "/quorum/b", "one member stopped")
}

// TestEmbeddedMemberJoins adds a member to a running cluster the way a new
// federation site does, starts it with etcdembed, and restarts it.
func TestEmbeddedMemberJoins(t *testing.T) {
	c := EtcdCluster(t, 3)
	cli := c.Client(t)
	if err := put(cli, "/join/before", "v", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	peer := FreeURL(t)
	added := addMember(ctx, t, cli, peer)
	var initial []string
	for _, m := range added.Members {
		name := m.Name
		if m.ID == added.Member.ID {
			name = "new-site"
		}
		for _, u := range m.PeerURLs {
			initial = append(initial, name+"="+u)
		}
	}
	opts := etcdembed.Options{
		Name: "new-site", Dir: filepath.Join(t.TempDir(), "etcd"), ClientURL: FreeURL(t), PeerURL: peer,
		InitialCluster: strings.Join(initial, ","), ClusterState: "existing",
	}
	// The restart finds the data directory and ignores the initial cluster.
	for _, round := range []string{"join", "restart"} {
		s, err := etcdembed.Start(ctx, opts)
		if err != nil {
			t.Fatalf("%s: %v", round, err)
		}
		own := memberClient(t, s.Endpoints()[0])
		mustGet(t, own, "/join/before", "v")
		if err := put(own, "/join/"+round, round, 10*time.Second); err != nil {
			t.Fatalf("%s: %v", round, err)
		}
		mustGet(t, cli, "/join/"+round, round)
		s.Close()
	}
	list, err := cli.MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range list.Members {
		names = append(names, m.Name)
	}
	if len(names) != 4 || !strings.Contains(strings.Join(names, ","), "new-site") {
		t.Fatalf("members = %q, want the three and new-site", names)
	}
}
