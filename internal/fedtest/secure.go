package fedtest

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/internal/testenv"
	"github.com/mao-research/mao/orchestrator/pki"
)

// Secure is a federation of sites on embedded etcd members, as a lab
// runs one: the first founds it (its certificates, etcd's auth), the
// others (sites and witnesses) join only through join tokens that
// `maoctl federation add-site` prints, and every etcd connection is
// mutual TLS.
type Secure struct {
	Sites []*Site // in the order they joined, witnesses too
	// Endpoint is the first site's etcd client URL.
	Endpoint string
	// JoinConfig is the config the last site joined with: its token is
	// used up.
	JoinConfig string

	bins     Binaries
	leaseTTL time.Duration
}

// StartSecure starts a site per name, the first founding the federation
// and each other joining it once the one before has joined and the
// members vote as the voter policy says (Join). Sites have a lease of
// leaseTTL.
func StartSecure(t testing.TB, bins Binaries, leaseTTL time.Duration, names ...string) *Secure {
	t.Helper()
	f := &Secure{Endpoint: freeURL(t), bins: bins, leaseTTL: leaseTTL}
	first := Start(t, bins, names[0], SiteConfig(names[0], "%DIR%", "", leaseTTL,
		"\n[etcd]\nclient_url = "+f.Endpoint+"\npeer_url = "+freeURL(t)+"\n"))
	f.Sites = append(f.Sites, first)
	for _, name := range names[1:] {
		f.Join(t, name)
	}
	return f
}

// freeURL is an https URL on a loopback port nobody listens on.
func freeURL(t testing.TB) string { return "https://" + testenv.ClosedPort(t) }

// Join has a new site join: add-site at a site that is up prints its
// lines, the site adds its own (data directory, lease, API address) and
// starts. It returns once every member is healthy and the voters are as
// many as the policy gives (AwaitMembers).
func (f *Secure) Join(t testing.TB, name string) *Site { return f.join(t, name) }

// AddWitness has a witness join as a site does (Join), started with
// orchestrator -witness.
func (f *Secure) AddWitness(t testing.TB, name string) *Site { return f.join(t, name, "-witness") }

func (f *Secure) join(t testing.TB, name string, args ...string) *Site {
	t.Helper()
	printed := f.bins.Ctl(t, f.Up().Addr, "federation", "add-site", name, "--peer-url", freeURL(t), "--client-url", freeURL(t))
	if !strings.Contains(printed, "join_token = maojoin1.") || strings.Contains(printed, "initial_cluster") {
		t.Fatalf("add-site printed:\n%s", printed)
	}
	config := strings.Replace(printed, "[site]\n", "[site]\ndata_dir = %DIR%\nlease_ttl = "+f.leaseTTL.String()+"\n", 1) +
		"\n[api]\nlisten = 127.0.0.1:0\n\n[runs]\nshutdown_grace = 5s\nstop_grace = 1s\n"
	s := Start(t, f.bins, name, config, args...)
	f.Sites = append(f.Sites, s)
	f.JoinConfig = config
	f.AwaitMembers(t, len(f.Sites))
	return s
}

// Up is the first site that is up and has an API (not a witness).
func (f *Secure) Up() *Site {
	for _, s := range f.Sites {
		if s.Up() && !s.witness {
			return s
		}
	}
	panic("no site of the federation is up")
}

// Voters is how many of n members vote under the default voter policy
// (federation.max_voters = 3): the largest odd number at most n and 3.
func Voters(n int) int { return min(3, n-(1-n%2)) }

// AwaitMembers waits until the federation, asked at a site that is up,
// has n members, all healthy, a leader, and Voters(n) voters; it returns
// the federation as that site showed it.
func (f *Secure) AwaitMembers(t testing.TB, n int) api.Federation {
	t.Helper()
	var fed api.Federation
	Eventually(t, 90*time.Second, fmt.Sprintf("%d healthy members, %d of them voters", n, Voters(n)), func() bool {
		var err error
		fed, err = f.Up().Client.Federation(context.Background())
		if err != nil || len(fed.Members) != n || fed.Leader == "" || fed.Voters != Voters(n) {
			return false
		}
		for _, m := range fed.Members {
			if m.Health != "ok" {
				return false
			}
		}
		return true
	})
	return fed
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
