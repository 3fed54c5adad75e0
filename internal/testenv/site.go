package testenv

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/mao-research/mao/orchestrator/config"
)

// SiteConfig is an orchestrator config for a test site: free loopback ports,
// a temporary data directory and short grace periods. With no endpoints the
// site runs the embedded etcd.
func SiteConfig(t testing.TB, site string, endpoints []string) config.Config {
	t.Helper()
	cfg := config.Default()
	dir := t.TempDir()
	cfg.Site.Name, cfg.Site.DataDir, cfg.Site.HostDataDir = site, dir, dir
	cfg.Site.LeaseTTL = 2 * time.Second
	cfg.Runs.LogDir = filepath.Join(dir, "logs")
	cfg.Runs.ShutdownGrace, cfg.Runs.StopGrace = 10*time.Second, time.Second
	cfg.Etcd.Endpoints = endpoints
	cfg.Etcd.ClientURL, cfg.Etcd.PeerURL = "https://127.0.0.1:0", "https://127.0.0.1:0"
	cfg.API.Listen = "127.0.0.1:0"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}
