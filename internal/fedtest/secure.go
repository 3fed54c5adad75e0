package fedtest

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/mao-research/mao/internal/testenv"
	"github.com/mao-research/mao/orchestrator/pki"
)

// Secure is a federation of sites on embedded etcd members, as a lab
// runs one: the first founds it (its certificates, etcd's auth), the
// others join only through join tokens that `maoctl federation add-site`
// prints, and every etcd connection is mutual TLS.
type Secure struct {
	Sites []*Site
	// Endpoint is the first site's etcd client URL.
	Endpoint string
	// JoinConfig is the config the last site joined with: its token is
	// used up.
	JoinConfig string
}

// StartSecure starts a site per name, the first founding the federation
// and each other joining it once the one before is a healthy voting
// member. Sites have a lease of leaseTTL.
func StartSecure(t testing.TB, bins Binaries, leaseTTL time.Duration, names ...string) *Secure {
	t.Helper()
	free := func() string { return "https://" + testenv.ClosedPort(t) }
	f := &Secure{Endpoint: free()}
	first := Start(t, bins, names[0], SiteConfig(names[0], "%DIR%", "", leaseTTL,
		"\n[etcd]\nclient_url = "+f.Endpoint+"\npeer_url = "+free()+"\n"))
	f.Sites = append(f.Sites, first)
	for _, name := range names[1:] {
		printed := bins.Ctl(t, first.Addr, "federation", "add-site", name, "--peer-url", free(), "--client-url", free())
		if !strings.Contains(printed, "join_token = maojoin1.") || strings.Contains(printed, "initial_cluster") {
			t.Fatalf("add-site printed:\n%s", printed)
		}
		// The printed lines, plus what is the site's own: its data
		// directory, lease and API address.
		config := strings.Replace(printed, "[site]\n", "[site]\ndata_dir = %DIR%\nlease_ttl = "+leaseTTL.String()+"\n", 1) +
			"\n[api]\nlisten = 127.0.0.1:0\n\n[runs]\nshutdown_grace = 5s\nstop_grace = 1s\n"
		f.Sites = append(f.Sites, Start(t, bins, name, config))
		f.awaitVoters(t)
		f.JoinConfig = config
	}
	return f
}

// awaitVoters waits until every site's member is a healthy voter.
func (f *Secure) awaitVoters(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	Eventually(t, 60*time.Second, "the members all healthy voters", func() bool {
		fed, err := f.Sites[0].Client.Federation(ctx)
		if err != nil || len(fed.Members) != len(f.Sites) || fed.Leader == "" {
			return false
		}
		for _, m := range fed.Members {
			if m.Learner || m.Health != "ok" {
				return false
			}
		}
		return true
	})
}

// Client returns an etcd client to the first site's member with a
// certificate of its pki directory (pki.SiteCertFile and its key for the
// site's own access, pki.RootCertFile for etcd's root), closed when the
// test ends.
func (f *Secure) Client(t testing.TB, certFile, keyFile string) *clientv3.Client {
	t.Helper()
	cfg, err := pki.Dir(filepath.Join(f.Sites[0].Dir, "pki")).ClientTLS(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{f.Endpoint}, TLS: cfg, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
