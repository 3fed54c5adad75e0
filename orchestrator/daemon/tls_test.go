package daemon

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/internal/testenv"
	"github.com/mao-research/mao/orchestrator/config"
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

// TestAPIOverTLSWithScopedTokens runs a site whose API serves HTTPS and
// takes named tokens of different scopes: the address it publishes is
// https, /healthz needs no token, a run token runs but does not register,
// and the run records who asked for it.
func TestAPIOverTLSWithScopedTokens(t *testing.T) {
	ca, cert, key := testenv.TLSFiles(t)
	cfg := testenv.SiteConfig(t, "https-site", nil)
	cfg.API.TLSCertFile, cfg.API.TLSKeyFile = cert, key
	cfg.API.Tokens = []config.Token{
		{Name: "ada", Scope: config.ScopeAdmin, Secret: "admin-0123456789abcdef", Key: "tokens.ada"},
		{Name: "ci", Scope: config.ScopeRun, Secret: "run-0123456789abcdef", Key: "tokens.ci"},
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	startSite(t, cfg)
	addr := apiAddr(t, cfg)
	if !strings.HasPrefix(addr, "https://127.0.0.1:") {
		t.Fatalf("published address %s, want https", addr)
	}
	pem, err := os.ReadFile(ca)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	ctx := context.Background()
	admin, _ := api.NewClient(addr, "admin-0123456789abcdef", hc)
	ci, _ := api.NewClient(addr, "run-0123456789abcdef", hc)

	resp, err := hc.Get(addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("GET /healthz without a token: %d", resp.StatusCode)
	}
	var apiErr *api.Error
	if _, err := ci.RegisterTool(ctx, tool("t1", "127.0.0.1:9/missing:1", "file:///nowhere")); !errors.As(err, &apiErr) || apiErr.Status != http.StatusForbidden {
		t.Fatalf("register with scope run: %v, want 403", err)
	}
	if _, err := admin.RegisterTool(ctx, tool("t1", "127.0.0.1:9/missing:1", "file:///nowhere")); err != nil {
		t.Fatal(err)
	}
	runs, err := ci.RunTool(ctx, "t1", api.RunRequest{})
	if err != nil || len(runs) != 1 || runs[0].RequestedBy != "ci" {
		t.Fatalf("run: %+v %v, want requested_by ci", runs, err)
	}
	stored, err := ci.Run(ctx, runs[0].ID)
	if err != nil || stored.RequestedBy != "ci" {
		t.Fatalf("stored run: %+v %v", stored, err)
	}
}
