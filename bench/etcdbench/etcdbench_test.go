// Package etcdbench measures what mutual TLS and etcd's auth cost a site's
// writes: 1,000 sequential puts through one client to an embedded member
// as a site runs it (mutual TLS, auth on, the site's role-limited user),
// against the same member without auth, and against one with neither (how
// sites ran before certificates), interleaved in the same run. Run:
//
//	go test -run '^$' -bench . -benchtime 1x ./bench/etcdbench/
package etcdbench

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/mao-research/mao/orchestrator/etcdembed"
	"github.com/mao-research/mao/orchestrator/pki"
	"github.com/mao-research/mao/orchestrator/store"
)

// member is one embedded etcd member and a client to it, as a site
// would use it.
type member struct {
	name   string
	client *clientv3.Client
	prefix string
	took   []time.Duration
}

// start starts a member alone in a new cluster, on free loopback ports,
// with certificates when secure and etcd's auth on when auth.
func start(b *testing.B, name string, secure, auth bool) *member {
	b.Helper()
	ctx := context.Background()
	dir := b.TempDir()
	opts := etcdembed.Options{Name: name, Dir: filepath.Join(dir, "etcd"),
		ClientURL: "http://127.0.0.1:0", PeerURL: "http://127.0.0.1:0"}
	d := pki.Dir(filepath.Join(dir, "pki"))
	if secure {
		if _, err := d.Ensure(pki.Site{Name: name, Hosts: []string{"127.0.0.1"}}, true, time.Now()); err != nil {
			b.Fatal(err)
		}
		opts.ClientURL, opts.PeerURL = "https://127.0.0.1:0", "https://127.0.0.1:0"
		opts.TLS = &etcdembed.TLS{CertFile: d.Path(pki.SiteCertFile), KeyFile: d.Path(pki.SiteKeyFile),
			ClientCAFile: d.Path(pki.ClientsCAFile), PeerCAFile: d.Path(pki.CACertFile)}
	}
	srv, err := etcdembed.Start(ctx, opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(srv.Close)
	connect := func(cert, key string) *clientv3.Client {
		cfg := clientv3.Config{Endpoints: srv.Endpoints(), DialTimeout: 5 * time.Second}
		if secure {
			if cfg.TLS, err = d.ClientTLS(cert, key); err != nil {
				b.Fatal(err)
			}
		}
		c, err := clientv3.New(cfg)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { c.Close() })
		return c
	}
	site := connect(pki.SiteCertFile, pki.SiteKeyFile)
	if auth {
		admin := connect(pki.RootCertFile, pki.RootKeyFile)
		st := store.New(site, store.Options{Prefix: "/mao/", Timeout: 5 * time.Second, Admin: admin})
		if err := st.SetUpAuth(ctx, name); err != nil {
			b.Fatal(err)
		}
	}
	return &member{name: name, client: site, prefix: "/mao/bench/" + name + "/"}
}

// BenchmarkSequentialWrites puts 1,000 keys one after another on each
// member, in rounds of 100 taken in turn, so that the machine's load
// falls on all alike.
func BenchmarkSequentialWrites(b *testing.B) {
	const writes, round = 1000, 100
	members := []*member{
		start(b, "plaintext-no-auth", false, false),
		start(b, "mtls-no-auth", true, false),
		start(b, "mtls-auth", true, true),
	}
	ctx := context.Background()
	value := string(make([]byte, 512)) // about a run record's size
	for _, m := range members {        // connections and first requests out of the way
		if _, err := m.client.Put(ctx, m.prefix+"warm", value); err != nil {
			b.Fatalf("%s: %v", m.name, err)
		}
	}
	for b.Loop() {
		for _, m := range members {
			m.took = m.took[:0]
		}
		for i := 0; i < writes; i += round {
			for _, m := range members {
				for j := i; j < i+round; j++ {
					start := time.Now()
					if _, err := m.client.Put(ctx, fmt.Sprintf("%s%06d", m.prefix, j), value); err != nil {
						b.Fatalf("%s: %v", m.name, err)
					}
					m.took = append(m.took, time.Since(start))
				}
			}
		}
	}
	base := members[0]
	fmt.Printf("%d sequential etcd puts of 512 bytes through one client, embedded single member, in rounds of %d taken in turn:\n", writes, round)
	for _, m := range members {
		total := sum(m.took)
		fmt.Printf("  %-18s total %7.1f ms  p50 %6.3f ms  p99 %6.3f ms  ratio to plaintext: total %.2f  p99 %.2f\n", m.name,
			ms(total), ms(percentile(m.took, 0.5)), ms(percentile(m.took, 0.99)),
			float64(total)/float64(sum(base.took)), float64(percentile(m.took, 0.99))/float64(percentile(base.took, 0.99)))
	}
	secure := members[len(members)-1]
	b.ReportMetric(float64(sum(secure.took))/float64(sum(base.took)), "mtls+auth/plain")
}

func sum(d []time.Duration) (t time.Duration) {
	for _, x := range d {
		t += x
	}
	return t
}

func percentile(d []time.Duration, p float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
