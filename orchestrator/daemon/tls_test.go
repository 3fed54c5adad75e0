package daemon

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"os"
	"path/filepath"
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
	if err != nil || len(sites.Items) != 1 || !sites.Items[0].Live {
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
	addr, hc := startHTTPSSite(t, cfg, ca)
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

// TestAPIOverTLSWithTheSiteCertificate runs a site with [api] tls = true
// and no certificate files: the API serves HTTPS with the site's own
// certificate, which a client verifies with the federation's CA
// (<data_dir>/pki/ca.crt), and a client that does not trust that CA is
// refused.
func TestAPIOverTLSWithTheSiteCertificate(t *testing.T) {
	cfg := testenv.SiteConfig(t, "site-cert", testenv.Etcd(t))
	cfg.API.UseTLS = true
	addr, hc := startHTTPSSite(t, cfg, filepath.Join(cfg.Site.DataDir, "pki", "ca.crt"))
	c, _ := api.NewClient(addr, "", hc)
	if _, err := c.Health(context.Background()); err != nil {
		t.Fatalf("health over https, trusting the federation's CA: %v", err)
	}
	stranger, _ := api.NewClient(addr, "", &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: x509.NewCertPool()}}})
	var unknown x509.UnknownAuthorityError
	if _, err := stranger.Health(context.Background()); !errors.As(err, &unknown) {
		t.Fatalf("health trusting no one: %v, want an unknown authority", err)
	}
}

// startHTTPSSite starts a site whose API serves HTTPS and returns the
// address it publishes, which must be https, and a client that trusts
// the CA certificate in caFile (which the site may write at its start).
func startHTTPSSite(t *testing.T, cfg config.Config, caFile string) (string, *http.Client) {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	startSite(t, cfg)
	addr := apiAddr(t, cfg)
	if !strings.HasPrefix(addr, "https://127.0.0.1:") {
		t.Fatalf("published address %s, want https", addr)
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return addr, &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}
