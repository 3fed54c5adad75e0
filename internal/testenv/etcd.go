package testenv

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/mao-research/mao/orchestrator/etcdembed"
)

// Etcd starts an embedded etcd member on free loopback ports in a temporary
// directory, stopped when the test ends. It returns the client endpoints.
func Etcd(t testing.TB) []string {
	t.Helper()
	s, err := etcdembed.Start(context.Background(), etcdembed.Options{
		Dir:       t.TempDir(),
		ClientURL: "http://127.0.0.1:0",
		PeerURL:   "http://127.0.0.1:0",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	t.Log("mao-integration: etcd")
	return s.Endpoints()
}

// EtcdClient starts an embedded member and returns a client for it.
func EtcdClient(t testing.TB) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: Etcd(t), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
