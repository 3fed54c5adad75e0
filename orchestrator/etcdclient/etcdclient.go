package etcdclient

import (
	"crypto/x509"
	"fmt"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/mao-research/mao/orchestrator/config"
)

// Config returns the client configuration for endpoints (e.Endpoints, or
// the embedded member's) with e's dial timeout and, when e names TLS files,
// a TLS configuration that trusts e.CAFile (else the system's roots) and
// presents e.CertFile and e.KeyFile. Without TLS files an https endpoint is
// verified against the system's roots. The client logs nothing.
func Config(e config.Etcd, endpoints []string) (clientv3.Config, error) {
	c := clientv3.Config{Endpoints: endpoints, DialTimeout: e.DialTimeout, Logger: zap.NewNop()}
	if !e.TLS() {
		return c, nil
	}
	info := transport.TLSInfo{TrustedCAFile: e.CAFile, CertFile: e.CertFile, KeyFile: e.KeyFile, Logger: zap.NewNop()}
	tls, err := info.ClientConfig()
	if err != nil {
		return clientv3.Config{}, fmt.Errorf("etcd client TLS: %w", err)
	}
	if e.CAFile != "" && tls.RootCAs.Equal(x509.NewCertPool()) {
		return clientv3.Config{}, fmt.Errorf("etcd client TLS: %s holds no PEM certificate", e.CAFile)
	}
	c.TLS = tls
	return c, nil
}
