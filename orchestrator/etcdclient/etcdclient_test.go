package etcdclient_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/mao-research/mao/internal/testenv"
	"github.com/mao-research/mao/orchestrator/config"
	"github.com/mao-research/mao/orchestrator/etcdclient"
)

func TestConfig(t *testing.T) {
	ca, cert, key := testenv.TLSFiles(t)
	notPEM := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	endpoints := []string{"https://127.0.0.1:2379"}
	tests := []struct {
		name    string
		e       config.Etcd
		tls     bool // want a TLS config
		wantErr bool
	}{
		{name: "no TLS files", e: config.Etcd{DialTimeout: 3 * time.Second}},
		{name: "all TLS files", e: config.Etcd{DialTimeout: time.Second, CAFile: ca, CertFile: cert, KeyFile: key}, tls: true},
		{name: "CA only", e: config.Etcd{CAFile: ca}, tls: true},
		{name: "client certificate only", e: config.Etcd{CertFile: cert, KeyFile: key}, tls: true},
		{name: "certificate without key", e: config.Etcd{CertFile: cert}, wantErr: true},
		{name: "missing CA file", e: config.Etcd{CAFile: ca + ".missing"}, wantErr: true},
		{name: "CA file that is not PEM", e: config.Etcd{CAFile: notPEM}, wantErr: true},
		{name: "key of another certificate", e: config.Etcd{CertFile: cert, KeyFile: ca}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := etcdclient.Config(tc.e, endpoints)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want an error: %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if len(c.Endpoints) != 1 || c.Endpoints[0] != endpoints[0] || c.DialTimeout != tc.e.DialTimeout || c.Logger == nil {
				t.Errorf("config = %+v", c)
			}
			if (c.TLS != nil) != tc.tls {
				t.Errorf("TLS = %v, want one: %v", c.TLS, tc.tls)
			}
			if tc.e.CertFile != "" && (c.TLS == nil || c.TLS.GetClientCertificate == nil && len(c.TLS.Certificates) == 0) {
				t.Error("TLS config has no client certificate")
			}
		})
	}
}

// TestTLSCluster connects to an etcd member that serves clients over TLS
// and requires a client certificate from the test CA.
func TestTLSCluster(t *testing.T) {
	ca, cert, key := testenv.TLSFiles(t)
	otherCA, otherCert, otherKey := testenv.TLSFiles(t)
	cluster := testenv.EtcdCluster(t, 1, testenv.WithClientTLS(ca, cert, key))
	tests := []struct {
		name string
		e    config.Etcd
		ok   bool
	}{
		{"CA and client certificate", config.Etcd{CAFile: ca, CertFile: cert, KeyFile: key}, true},
		{"no TLS files: the system does not trust the test CA", config.Etcd{}, false},
		{"no client certificate", config.Etcd{CAFile: ca}, false},
		{"client certificate of another CA", config.Etcd{CAFile: ca, CertFile: otherCert, KeyFile: otherKey}, false},
		{"server not trusted", config.Etcd{CAFile: otherCA, CertFile: cert, KeyFile: key}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.e.DialTimeout = time.Second
			cfg, err := etcdclient.Config(tc.e, cluster.Endpoints())
			if err != nil {
				t.Fatal(err)
			}
			cli, err := clientv3.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer cli.Close()
			timeout := 10 * time.Second
			if !tc.ok {
				timeout = 2 * time.Second // a refused handshake is retried until the deadline
			}
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			_, err = cli.Put(ctx, "/tls/"+tc.name, "v")
			if (err == nil) != tc.ok {
				t.Fatalf("put err = %v, want success: %v", err, tc.ok)
			}
		})
	}
}
