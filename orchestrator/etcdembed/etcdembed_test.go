package etcdembed

import (
	"context"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

func TestStartOnFreePorts(t *testing.T) {
	ctx := context.Background()
	s, err := Start(ctx, Options{Dir: t.TempDir(), ClientURL: "http://127.0.0.1:0", PeerURL: "http://127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, err := clientv3.New(clientv3.Config{Endpoints: s.Endpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Put(ctx, "/k", "v"); err != nil {
		t.Fatal(err)
	}
	r, err := c.Get(ctx, "/k")
	if err != nil || len(r.Kvs) != 1 || string(r.Kvs[0].Value) != "v" {
		t.Fatalf("get: %v %v", r, err)
	}
}

func TestStartRejects(t *testing.T) {
	tests := []struct {
		name string
		o    Options
		want string
	}{
		{"bad client URL", Options{ClientURL: "::"}, "not a URL"},
		{"unknown cluster state", Options{ClusterState: "join"}, `cluster state "join"`},
		{"joining without the initial cluster", Options{ClusterState: "existing"}, "needs the initial cluster"},
		{"free peer port in a cluster", Options{
			Name: "b", PeerURL: "http://127.0.0.1:0",
			InitialCluster: "a=http://127.0.0.1:2380,b=http://127.0.0.1:0", ClusterState: "existing",
		}, "port 0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.o.Dir = t.TempDir()
			_, err := Start(context.Background(), tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}
