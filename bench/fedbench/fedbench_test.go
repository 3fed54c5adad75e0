// Package fedbench measures the federation: how fast a registration at one
// site reaches another site's watch, against a raw etcd watch on the same
// cluster, how soon a killed or frozen site's run starts again elsewhere,
// how soon a killed site on its embedded etcd is ready again, and what a
// site does without quorum for two minutes. Run:
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
	"github.com/mao-research/mao/orchestrator/pki"
)

// sites starts n orchestrator processes over a new 3-member etcd cluster.
func sites(b *testing.B, bins fedtest.Binaries, n int, ttl time.Duration) (*testenv.Cluster, []*fedtest.Site) {
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

// federation is one of the two federations BenchmarkPropagation compares:
// site a registers, site b's registry watch applies; a raw writer puts and
// a raw watcher sees, on the same etcd cluster.
type federation struct {
	name            string
	a, b            *fedtest.Site
	writer, watcher *clientv3.Client
	rawPrefix       string
	raw             clientv3.WatchChan
	ours, base      []time.Duration
}

// BenchmarkPropagation times 1,000 tool registrations at site A until site
// B's registry watch has applied them (B logs each change with its time),
// interleaved with 1,000 raw puts until a raw watch on the same cluster sees
// them, on two federations at once, taken in turn:
//   - plaintext: two sites on a 3-member etcd cluster of their own, with
//     neither TLS nor auth (how every federation ran before certificates);
//   - mtls+auth: three sites on their embedded members, joined through
//     join tokens, every etcd connection mutual TLS and etcd's auth on;
//     the raw puts and watch use the first site's own certificate (its
//     role-limited etcd user).
func BenchmarkPropagation(b *testing.B) {
	const n = 1000
	bins := fedtest.Build(b)
	cluster, plain := sites(b, bins, 2, 10*time.Second)
	secure := fedtest.StartSecure(b, bins, 10*time.Second, "m1", "m2", "m3")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	feds := []*federation{
		{name: "plaintext", a: plain[0], b: plain[1], writer: cluster.Client(b), watcher: cluster.Client(b), rawPrefix: "/bench/raw/"},
		{name: "mtls+auth", a: secure.Sites[0], b: secure.Sites[1], rawPrefix: "/mao/bench-raw/",
			writer:  secure.Client(b, pki.SiteCertFile, pki.SiteKeyFile),
			watcher: secure.Client(b, pki.SiteCertFile, pki.SiteKeyFile)},
	}
	for _, f := range feds {
		f.raw = f.watcher.Watch(ctx, f.rawPrefix, clientv3.WithPrefix())
	}
	image := testenv.BuildTestImage(b)
	repo := testenv.GitRepo(b, nil)
	for b.Loop() {
		for _, f := range feds {
			f.ours, f.base = f.ours[:0], f.base[:0]
		}
		for i := range n {
			for _, f := range feds {
				name := fmt.Sprintf("prop-%d-%d", time.Now().UnixNano(), i)
				start := time.Now()
				if _, err := f.writer.Put(ctx, f.rawPrefix+name, "{}"); err != nil {
					b.Fatalf("%s: %v", f.name, err)
				}
				<-f.raw
				f.base = append(f.base, time.Since(start))

				start = time.Now()
				tool := api.Tool{Name: name, Author: "bench", Image: image, DataRepo: repo, Network: "none"}
				if _, err := f.a.Client.RegisterTool(ctx, tool); err != nil {
					b.Fatalf("%s: %v", f.name, err)
				}
				rec, err := f.b.Await(10*time.Second, func(r fedtest.Record) bool {
					return r.Msg == "registry changed" && r.Attrs["name"] == name
				})
				if err != nil {
					b.Fatalf("%s: %v", f.name, err)
				}
				f.ours = append(f.ours, rec.Time.Sub(start))
			}
		}
	}
	fmt.Printf("propagation over %d registrations (tool register at A -> B's watch applied it), two federations taken in turn:\n", n)
	for _, f := range feds {
		p50, p99 := percentile(f.ours, 0.5), percentile(f.ours, 0.99)
		r50, r99 := percentile(f.base, 0.5), percentile(f.base, 0.99)
		fmt.Printf("  %s:\n", f.name)
		fmt.Printf("    mao:        p50 %6.2f ms  p99 %6.2f ms\n", ms(p50), ms(p99))
		fmt.Printf("    raw watch:  p50 %6.2f ms  p99 %6.2f ms  (put at one client -> watch event at another)\n", ms(r50), ms(r99))
		fmt.Printf("    ratio:      p50 %.2f  p99 %.2f   targets: p99 <= 50 ms, ratio <= 2\n", float64(p50)/float64(r50), float64(p99)/float64(r99))
	}
	plainP99, secureP99 := percentile(feds[0].ours, 0.99), percentile(feds[1].ours, 0.99)
	fmt.Printf("  mtls+auth / plaintext, mao p99: %.2f   target <= 1.3\n", float64(secureP99)/float64(plainP99))
	b.ReportMetric(float64(secureP99.Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(secureP99)/float64(plainP99), "secure/plain-p99")
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// runAnywhere registers tool at the first of two sites and asks for an
// --any run of it with one retry; once a site runs it (the record says
// running), it returns the run's ID, that site and the other.
func runAnywhere(b *testing.B, s []*fedtest.Site, runs *fedtest.Runs, tool api.Tool) (id string, holder, other *fedtest.Site) {
	b.Helper()
	ctx := context.Background()
	if _, err := s[0].Client.RegisterTool(ctx, tool); err != nil {
		b.Fatal(err)
	}
	started, err := s[0].Client.RunTool(ctx, tool.Name, api.RunRequest{Target: &api.Target{Mode: "any"}, Retries: 1})
	if err != nil {
		b.Fatal(err)
	}
	id = started[0].ID
	first := runs.Until(30*time.Second, "the run started", func(m map[string]api.Run) bool {
		return m[id].State == api.StateRunning
	})[id]
	if s[0].Name == first.Site {
		return id, s[0], s[1]
	}
	return id, s[1], s[0]
}

// BenchmarkFailover kills (SIGKILL) the site running an --any run with a
// retry, and times until another site has started the run's next attempt,
// with the default lease TTL; three times.
func BenchmarkFailover(b *testing.B) {
	const ttl, rounds = 10 * time.Second, 3
	cluster, s := sites(b, fedtest.Build(b), 2, ttl)
	runs := fedtest.WatchRuns(b, cluster.Client(b))
	image := testenv.BuildTestImage(b)
	var took []time.Duration
	for b.Loop() {
		took = took[:0]
		for round := range rounds {
			// A tool per round: runs of one tool at one site take turns
			// with its clone, and the previous round's run still runs.
			tool := api.Tool{Name: fmt.Sprintf("long-%d", round), Author: "bench", Image: image, DataRepo: testenv.GitRepo(b, nil),
				Network: "none", Command: []string{"-lines", "1", "-sleep", "60s"}}
			id, victim, _ := runAnywhere(b, s, runs, tool)
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

// median is the middle of d (the upper one of an even count).
func median(d []time.Duration) time.Duration { return percentile(d, 0.5) }

// BenchmarkRestartAfterKill kills (SIGKILL) a site on its default embedded
// etcd (free ports) and starts it again, ten times, and prints, for each
// start, restart-to-ready (process start → "orchestrator ready") next to
// the embedded etcd's own start in the same start (process start →
// "embedded etcd started"), and their medians and maxima. Target: each
// start at most 2 s beyond etcd's.
func BenchmarkRestartAfterKill(b *testing.B) {
	const ttl, rounds = 10 * time.Second, 10 // the default lease
	bins := fedtest.Build(b)
	site := fedtest.Start(b, bins, "restarts", fedtest.SiteConfig("restarts", "%DIR%", "", ttl,
		"\n[etcd]\nclient_url = https://127.0.0.1:0\npeer_url = https://127.0.0.1:0\n"))
	site.AwaitStart()
	var ready, etcd, beyond []time.Duration
	waited := 0
	for b.Loop() {
		ready, etcd, beyond, waited = ready[:0], etcd[:0], beyond[:0], 0
		for range rounds {
			site.Kill()
			site.Restart()
			st := site.AwaitStart()
			ready, etcd, beyond = append(ready, st.Ready), append(etcd, st.Etcd), append(beyond, st.Beyond())
			if st.Waited || !st.Revoked {
				waited++
			}
		}
	}
	fmt.Printf("restart after SIGKILL on the embedded etcd, %d restarts (lease TTL %s):\n", rounds, ttl)
	for i := range ready {
		fmt.Printf("  restart %2d: ready after %6.0f ms; etcd started after %6.0f ms; beyond etcd %6.0f ms\n",
			i+1, ms(ready[i]), ms(etcd[i]), ms(beyond[i]))
	}
	fmt.Printf("  restart-to-ready: median %6.0f ms  max %6.0f ms\n", ms(median(ready)), ms(slices.Max(ready)))
	fmt.Printf("  etcd's own start: median %6.0f ms  max %6.0f ms\n", ms(median(etcd)), ms(slices.Max(etcd)))
	fmt.Printf("  beyond etcd:      median %6.0f ms  max %6.0f ms   target <= 2000 ms; starts that waited for the old lease: %d\n",
		ms(median(beyond)), ms(slices.Max(beyond)), waited)
	b.ReportMetric(slices.Max(beyond).Seconds(), "max-beyond-etcd-s")
}

// BenchmarkFailoverAfterSIGSTOP freezes (SIGSTOP) the site running an
// --any run with a retry, of a tool that writes its output and a control
// value and then sleeps 12 s, once the run is running, and times until
// another site has started the run's next attempt, with the default lease
// TTL; three times. The frozen site is thawed (SIGCONT) once attempt 2
// has succeeded, by when attempt 1's container has ended well; the
// benchmark prints whether the thawed site committed anything of the lost
// attempt to its clone or appended it to its series.
func BenchmarkFailoverAfterSIGSTOP(b *testing.B) {
	const ttl, rounds = 10 * time.Second, 3
	cluster, s := sites(b, fedtest.Build(b), 2, ttl)
	runs := fedtest.WatchRuns(b, cluster.Client(b))
	image := testenv.BuildTestImage(b)
	ctx := context.Background()
	var took []time.Duration
	var leaked []string
	for b.Loop() {
		took, leaked = took[:0], leaked[:0]
		for round := range rounds {
			tool := api.Tool{Name: fmt.Sprintf("frozen-%d", round), Author: "bench", Image: image, DataRepo: testenv.GitRepo(b, nil),
				Network: "none", Command: []string{"-lines", "1", "-mark", "-control", "1", "-sleep", "12s"}}
			id, victim, survivor := runAnywhere(b, s, runs, tool)
			// The sites have no federation certificates here: the log is
			// read at the site that holds it.
			fedtest.AwaitOutput(b, victim.Client, id, "line 1") // attempt 1's container runs
			frozen := victim.Freeze()
			next := runs.Until(ttl+30*time.Second, "the run started again elsewhere", func(m map[string]api.Run) bool {
				return m[id].Attempt == 2 && m[id].State == api.StateRunning
			})[id]
			took = append(took, next.StartedAt.Sub(frozen))
			runs.Until(60*time.Second, "attempt 2 succeeded", func(m map[string]api.Run) bool { return m[id].State == api.StateSucceeded })
			victim.Drain()
			victim.Thaw()
			if _, err := victim.Await(60*time.Second, func(r fedtest.Record) bool {
				return r.Msg == "run ended" && r.Attrs["run"] == id
			}); err != nil {
				b.Fatal(err)
			}
			for _, subject := range victim.Commits(tool.Name) {
				// Its clone may hold the survivor's pushed commit of
				// attempt 2: only its own count.
				if strings.Contains(subject, id) && strings.HasSuffix(subject, " at site "+victim.Name) {
					leaked = append(leaked, fmt.Sprintf("commit %q at %s", subject, victim.Name))
				}
			}
			series, err := survivor.Client.Series(ctx, tool.Name, "control", victim.Name)
			if err != nil {
				b.Fatal(err)
			}
			for _, sr := range series.Items {
				for _, p := range sr.Points {
					if p.Run == id {
						leaked = append(leaked, fmt.Sprintf("series point of %s at %s", id, victim.Name))
					}
				}
			}
		}
	}
	worst := slices.Max(took)
	b.ReportMetric(worst.Seconds(), "worst-s")
	fmt.Printf("failover over %d freezes (SIGSTOP of the site running an --any run past its lease -> its next attempt started at another site):\n", rounds)
	for i, d := range took {
		fmt.Printf("  freeze %d: %.2f s\n", i+1, d.Seconds())
	}
	fmt.Printf("  worst %.2f s; lease TTL %s; target <= TTL + 1 s = %s (ratio %.2f)\n", worst.Seconds(), ttl, ttl+time.Second,
		worst.Seconds()/(ttl+time.Second).Seconds())
	if len(leaked) == 0 {
		fmt.Printf("  output of the lost attempts kept by the thawed sites: none (no commit in their clones, no series point)\n")
	} else {
		fmt.Printf("  output of the lost attempts kept by the thawed sites: %s\n", strings.Join(leaked, "; "))
		b.Errorf("the thawed site kept output of a lost attempt: %v", leaked)
	}
}

// BenchmarkWorkWithoutQuorum gives one site (default lease TTL and
// request timeout) three --site schedules of its own, @every 5s, each of a
// tool with its own data repository, stops two of the three etcd members
// for two minutes, starts them again, and prints: the ticks due without
// quorum and how many of them ran at the site (their container started,
// and they succeeded), the records the site journaled meanwhile (its
// health just before the quorum came back), and the time to replay them:
// from the quorum's return until every record of those ticks was in etcd
// (a watch of /mao/runs/), until the site said it was online again, and
// the replay's own part (from its first write to etcd to its last, as the
// site logs it).
func BenchmarkWorkWithoutQuorum(b *testing.B) {
	const ttl, every, outage, schedules = 10 * time.Second, 5 * time.Second, 2 * time.Minute, 3
	cluster, s := sites(b, fedtest.Build(b), 1, ttl)
	site := s[0]
	runs := fedtest.WatchRuns(b, cluster.Client(b))
	image := testenv.BuildTestImage(b)
	ctx := context.Background()
	var ids []string
	for i := range schedules {
		tool := api.Tool{Name: fmt.Sprintf("own-%d", i+1), Author: "bench", Image: image, DataRepo: testenv.GitRepo(b, nil),
			Network: "none", Command: []string{"-mark", "-control", "1"}}
		if _, err := site.Client.RegisterTool(ctx, tool); err != nil {
			b.Fatal(err)
		}
		sch, err := site.Client.CreateSchedule(ctx, api.Schedule{Tool: tool.Name, Spec: "@every " + every.String(), Overlap: "allow",
			Target: api.Target{Mode: "site", Site: site.Name}})
		if err != nil {
			b.Fatal(err)
		}
		ids = append(ids, sch.ID)
	}
	tickIDs := func(from, to time.Time) []string {
		var out []string
		for tick := from.Truncate(every).Add(every); !tick.After(to); tick = tick.Add(every) {
			for _, id := range ids {
				out = append(out, fmt.Sprintf("%s-%d", id, tick.Unix()))
			}
		}
		return out
	}
	recorded := func(want []string, ran func(api.Run) bool) func(map[string]api.Run) bool {
		return func(m map[string]api.Run) bool {
			for _, id := range want {
				if r, ok := m[id]; !ok || !r.State.Terminal() || ran != nil && !ran(r) {
					return false
				}
			}
			return true
		}
	}
	var due, ran []string
	var journaled int
	var toEtcd, toOnline time.Duration
	var replay string
	for b.Loop() {
		warm := time.Now()
		runs.Until(60*time.Second, "a tick of each schedule before the outage", recorded(tickIDs(warm, warm.Add(every)), nil))
		cluster.Stop(1)
		cluster.Stop(2)
		lostAt := time.Now()
		time.Sleep(outage) // the outage itself
		h, err := site.Client.Health(ctx)
		if err != nil {
			b.Fatal(err)
		}
		journaled = h.Journaled
		site.Drain()
		cluster.Start(1)
		cluster.Start(2)
		backAt := time.Now()
		due = tickIDs(lostAt, backAt)
		m := runs.Until(5*time.Minute, "every tick due without quorum recorded in etcd", recorded(due, nil))
		toEtcd = time.Since(backAt)
		online, err := site.Await(2*time.Minute, func(r fedtest.Record) bool {
			return r.Msg == "etcd answers again and the journal is replayed: the site is online"
		})
		if err != nil {
			b.Fatal(err)
		}
		toOnline, replay = online.Time.Sub(backAt), fmt.Sprint(online.Attrs["replay_took"])
		ran = ran[:0]
		for _, id := range due {
			if r := m[id]; r.State == api.StateSucceeded && r.ContainerStartedAt != nil && r.Trigger == api.TriggerSchedule {
				ran = append(ran, id)
			}
		}
	}
	fmt.Printf("quorum lost for %s with %d --site schedules @every %s at one site (lease TTL %s, request timeout 5s):\n",
		outage, schedules, every, ttl)
	fmt.Printf("  ticks due without quorum: %d; run on time at the site (container started, succeeded): %d\n", len(due), len(ran))
	fmt.Printf("  records journaled (health just before the quorum came back): %d\n", journaled)
	fmt.Printf("  after the quorum came back: every tick's record in etcd after %.2f s; site online (journal replayed) after %.2f s; the replay itself took %s\n",
		toEtcd.Seconds(), toOnline.Seconds(), replay)
	b.ReportMetric(float64(len(ran)), "ticks-run")
	b.ReportMetric(float64(journaled), "records-journaled")
	b.ReportMetric(toOnline.Seconds(), "replayed-s")
	if len(ran) != len(due) {
		b.Errorf("%d of %d ticks due without quorum did not run on time", len(due)-len(ran), len(due))
	}
}
