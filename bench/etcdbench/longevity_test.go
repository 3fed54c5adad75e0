package etcdbench

import (
	"context"
	"flag"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/dustin/go-humanize"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/orchestrator/etcdembed"
	"github.com/mao-research/mao/orchestrator/store"
)

var longevityDays = flag.Int("longevity.days", 30, "days of runs BenchmarkLongevity simulates")

// BenchmarkLongevity simulates, as fast as the machine allows, a month of
// one tool every minute at one site plus 20 daily tools at 3 sites,
// through the store's own code as the scheduler and the runner call it:
// each tick claimed (its run and index entry), recorded running and
// succeeded with a provenance snapshot, its value appended to the
// detector series, and its schedule's history pruned to 100. It prints
// the embedded member's database size and the part in use before and
// after a compaction and defragmentation, half-way and at the end, the
// bytes per run, and the days to etcd's 2 GiB quota without compaction.
// Target: the size after compaction levels off (the same half-way and at
// the end), under 256 MB.
//
//	go test -run '^$' -bench Longevity -benchtime 1x ./bench/etcdbench/
func BenchmarkLongevity(b *testing.B) {
	ctx := context.Background()
	srv, err := etcdembed.Start(ctx, etcdembed.Options{Name: "longevity", Dir: filepath.Join(b.TempDir(), "etcd"),
		ClientURL: "http://127.0.0.1:0", PeerURL: "http://127.0.0.1:0"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(srv.Close)
	c, err := clientv3.New(clientv3.Config{Endpoints: srv.Endpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	st := store.New(c, store.Options{Timeout: 30 * time.Second})
	sites := []string{"lab-a", "lab-b", "lab-c"}
	for _, s := range sites {
		if _, err := c.Put(ctx, "/mao/sites/"+s, fmt.Sprintf(`{"name":%q,"api_addr":"http://127.0.0.1:1"}`, s)); err != nil {
			b.Fatal(err)
		}
	}
	space := func() store.Space {
		sp, err := st.MemberSpace(ctx, srv.Endpoints()[0])
		if err != nil {
			b.Fatal(err)
		}
		return sp
	}
	shrink := func() store.Space {
		if err := st.Compact(ctx, space().Revision); err != nil {
			b.Fatal(err)
		}
		if err := st.Defragment(ctx, srv.Endpoints()[0]); err != nil {
			b.Fatal(err)
		}
		return space()
	}
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	runs := 0
	tick := func(tool, site, schedule string, at time.Time) {
		r := api.Run{ID: fmt.Sprintf("%s-%d", schedule, at.Unix()), Tool: tool, Site: site, State: api.StatePending,
			Trigger: api.TriggerSchedule, Image: "lab/" + tool + ":1", Network: "none", DataRepo: "https://git.example.org/data/" + tool + ".git",
			Schedule: schedule, ScheduledTime: &at, Attempt: 1, MaxAttempts: 1, CreatedAt: at}
		if ok, err := st.ClaimRun(ctx, r); err != nil || !ok {
			b.Fatalf("claim %s: %v %v", r.ID, ok, err)
		}
		r.State, r.StartedAt = api.StateRunning, &at
		r.ImageID = "sha256:" + fmt.Sprintf("%064x", 1)
		r.Spec = &api.RunSpec{Command: []string{"crawl", "--since", "yesterday"}, Env: map[string]string{"ORG": "lab", "TOKEN": "***"},
			SecretEnv: []string{"TOKEN"}, Memory: 4 << 30, Timeout: "1h0m0s", SpecRevision: 7, Version: "0.1.0-dev"}
		if err := st.SaveRun(ctx, r); err != nil {
			b.Fatal(err)
		}
		end := at.Add(30 * time.Second)
		code := 0
		r.State, r.FinishedAt, r.ExitCode = api.StateSucceeded, &end, &code
		r.DataCommitBefore, r.DataCommitAfter = fmt.Sprintf("%040x", runs), fmt.Sprintf("%040x", runs+1)
		r.Files, r.FilesTotal = []string{fmt.Sprintf("out/%d.csv", at.Unix()), fmt.Sprintf("control-%d.csv", at.Unix())}, 2
		if _, err := st.UpdateSeries(ctx, tool, site, "control", 1000, func(s api.Series) (api.Series, error) {
			s.Points = append(s.Points, api.SeriesPoint{Run: r.ID, Time: at, Value: float64(runs % 17)})
			return s, nil
		}); err != nil {
			b.Fatal(err)
		}
		if err := st.SaveRun(ctx, r); err != nil {
			b.Fatal(err)
		}
		if _, err := st.PruneSchedule(ctx, schedule, 100); err != nil {
			b.Fatal(err)
		}
		runs++
	}
	b.ResetTimer()
	began := time.Now()
	var half store.Space
	var halfRuns int
	for day := range *longevityDays {
		for m := range 24 * 60 {
			at := start.AddDate(0, 0, day).Add(time.Duration(m) * time.Minute)
			tick("minutely", "lab-a", "minutely-every-0001", at)
			if m == 12*60 {
				for i := range 20 {
					for _, s := range sites {
						tool := fmt.Sprintf("daily%02d", i)
						tick(tool, s, fmt.Sprintf("%s-daily-%s", tool, s), at)
					}
				}
			}
		}
		if day == *longevityDays/2-1 {
			before := space()
			half, halfRuns = shrink(), runs
			b.Logf("day %d: %d runs, database %s (%s in use) before compaction, %s after",
				day+1, runs, humanize.IBytes(uint64(before.Size)), humanize.IBytes(uint64(before.InUse)), humanize.IBytes(uint64(half.Size)))
		}
	}
	took := time.Since(began)
	b.StopTimer()
	before := space()
	after := shrink()
	perRun := float64(before.Size-half.Size) / float64(runs-halfRuns)
	perDay := float64(runs) / float64(*longevityDays)
	fmt.Printf("longevity: %d days simulated in %s: %d runs (one tool every minute, 20 daily tools at 3 sites)\n",
		*longevityDays, took.Round(time.Second), runs)
	fmt.Printf("  database at the end, never compacted since day %d: %s (%s in use)\n", *longevityDays/2,
		humanize.IBytes(uint64(before.Size)), humanize.IBytes(uint64(before.InUse)))
	fmt.Printf("  after compaction and defragmentation: day %d %s, day %d %s (target: the same, under 256 MB)\n",
		*longevityDays/2, humanize.IBytes(uint64(half.Size)), *longevityDays, humanize.IBytes(uint64(after.Size)))
	fmt.Printf("  growth without compaction: %.0f bytes per run, %s per day; days to the 2 GiB quota: %.0f\n",
		perRun, humanize.IBytes(uint64(perRun*perDay)), float64(2<<30)/(perRun*perDay))
	b.ReportMetric(float64(after.Size), "steady-bytes")
	b.ReportMetric(perRun, "bytes/run")
}
