// Package fedbench measures the federation: how fast a registration at one
// site reaches another site's watch, against a raw etcd watch on the same
// cluster, and how soon a killed site's run starts again elsewhere. Run:
//
//	go test -run '^$' -bench . -benchtime 1x ./bench/fedbench/
package fedbench

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/internal/fedtest"
	"github.com/mao-research/mao/internal/testenv"
)

// sites starts n orchestrator processes over a new 3-member etcd cluster.
func sites(b *testing.B, n int, ttl time.Duration) (*testenv.Cluster, []*fedtest.Site) {
	bins := fedtest.Build(b)
	cluster := testenv.EtcdCluster(b, 3)
	etcd := fmt.Sprintf("\n[etcd]\nendpoints = %s\n", strings.Join(cluster.Endpoints(), ", "))
	var out []*fedtest.Site
	for i := range n {
		name := fmt.Sprintf("b%d", i+1)
		out = append(out, fedtest.Start(b, bins, name, fedtest.SiteConfig(name, "%DIR%", "", ttl, etcd)))
	}
	return cluster, out
}

func percentile(d []time.Duration, p float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

// BenchmarkPropagation times 200 tool registrations at site A until site
// B's registry watch has applied them (B logs each change with its time),
// interleaved with 200 raw puts until a raw watch on the same cluster sees
// them.
func BenchmarkPropagation(b *testing.B) {
	const n = 200
	cluster, s := sites(b, 2, 10*time.Second)
	a, bSite := s[0], s[1]
	writer, watcher := cluster.Client(b), cluster.Client(b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	raw := watcher.Watch(ctx, "/bench/raw/", clientv3.WithPrefix())
	image := testenv.BuildTestImage(b)
	repo := testenv.GitRepo(b, nil)
	var ours, base []time.Duration
	for b.Loop() {
		ours, base = ours[:0], base[:0]
		for i := range n {
			name := fmt.Sprintf("prop-%d-%d", time.Now().UnixNano(), i)
			start := time.Now()
			if _, err := writer.Put(ctx, "/bench/raw/"+name, "{}"); err != nil {
				b.Fatal(err)
			}
			<-raw
			base = append(base, time.Since(start))

			start = time.Now()
			tool := api.Tool{Name: name, Author: "bench", Image: image, DataRepo: repo, Network: "none"}
			if _, err := a.Client.RegisterTool(ctx, tool); err != nil {
				b.Fatal(err)
			}
			rec, err := bSite.Await(10*time.Second, func(r fedtest.Record) bool {
				return r.Msg == "registry changed" && r.Attrs["name"] == name
			})
			if err != nil {
				b.Fatal(err)
			}
			ours = append(ours, rec.Time.Sub(start))
		}
	}
	p50, p99 := percentile(ours, 0.5), percentile(ours, 0.99)
	r50, r99 := percentile(base, 0.5), percentile(base, 0.99)
	b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(p99)/float64(r99), "p99-ratio")
	fmt.Printf("propagation over %d registrations (tool register at A -> B's watch applied it):\n", n)
	fmt.Printf("  mao:        p50 %6.2f ms  p99 %6.2f ms\n", ms(p50), ms(p99))
	fmt.Printf("  raw watch:  p50 %6.2f ms  p99 %6.2f ms  (put at one client -> watch event at another)\n", ms(r50), ms(r99))
	fmt.Printf("  ratio:      p50 %.2f  p99 %.2f   targets: p99 <= 50 ms, ratio <= 2\n", float64(p50)/float64(r50), float64(p99)/float64(r99))
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// BenchmarkFailover kills (SIGKILL) the site running an --any run with a
// retry, and times until another site has started the run's next attempt,
// with the default lease TTL; three times.
func BenchmarkFailover(b *testing.B) {
	const ttl, rounds = 10 * time.Second, 3
	cluster, s := sites(b, 2, ttl)
	runs := fedtest.WatchRuns(b, cluster.Client(b))
	image := testenv.BuildTestImage(b)
	ctx := context.Background()
	var took []time.Duration
	for b.Loop() {
		took = took[:0]
		for round := range rounds {
			// A tool per round: runs of one tool at one site take turns
			// with its clone, and the previous round's run still runs.
			tool := api.Tool{Name: fmt.Sprintf("long-%d", round), Author: "bench", Image: image, DataRepo: testenv.GitRepo(b, nil),
				Network: "none", Command: []string{"-lines", "1", "-sleep", "60s"}}
			if _, err := s[0].Client.RegisterTool(ctx, tool); err != nil {
				b.Fatal(err)
			}
			started, err := s[0].Client.RunTool(ctx, tool.Name, api.RunRequest{Target: &api.Target{Mode: "any"}, Retries: 1})
			if err != nil {
				b.Fatal(err)
			}
			id := started[0].ID
			first := runs.Until(30*time.Second, "the run started", func(m map[string]api.Run) bool {
				return m[id].State == api.StateRunning
			})[id]
			var victim *fedtest.Site
			for _, site := range s {
				if site.Name == first.Site {
					victim = site
				}
			}
			killed := victim.Kill()
			next := runs.Until(ttl+30*time.Second, "the run started again elsewhere", func(m map[string]api.Run) bool {
				return m[id].Attempt == 2 && m[id].State == api.StateRunning
			})[id]
			took = append(took, next.StartedAt.Sub(killed))
			victim.Restart()
		}
	}
	worst := slices.Max(took)
	b.ReportMetric(worst.Seconds(), "worst-s")
	fmt.Printf("failover over %d kills (SIGKILL of the site running an --any run -> its next attempt started at another site):\n", rounds)
	for i, d := range took {
		fmt.Printf("  kill %d: %.2f s\n", i+1, d.Seconds())
	}
	fmt.Printf("  worst %.2f s; lease TTL %s; target <= TTL + 2 s = %s (ratio %.2f)\n", worst.Seconds(), ttl, ttl+2*time.Second,
		worst.Seconds()/(ttl+2*time.Second).Seconds())
}
