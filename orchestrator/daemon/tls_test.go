package daemon

import (
	"context"
	"testing"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/internal/testenv"
)

// TestExternalEtcdWithClientTLS runs a site against an external etcd that
// serves https and asks for client certificates.
func TestExternalEtcdWithClientTLS(t *testing.T) {
	ca, cert, key := testenv.TLSFiles(t)
	cluster := testenv.EtcdCluster(t, 1, testenv.WithClientTLS(ca, cert, key))
	cfg := testenv.SiteConfig(t, "tls-site", cluster.Endpoints())
	cfg.Etcd.CAFile, cfg.Etcd.CertFile, cfg.Etcd.KeyFile = ca, cert, key
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	s := startSite(t, cfg)
	ctx := context.Background()
	if _, err := s.client.RegisterDataset(ctx, api.Dataset{Name: "over-tls", URL: "file:///d"}); err != nil {
		t.Fatal(err)
	}
	sites, err := s.client.Sites(ctx)
	if err != nil || len(sites) != 1 || !sites[0].Live {
		t.Fatalf("sites: %+v %v", sites, err)
	}
	h, err := s.client.Health(ctx)
	if err != nil || h.Etcd != "ok" {
		t.Fatalf("health: %+v %v", h, err)
	}
}
