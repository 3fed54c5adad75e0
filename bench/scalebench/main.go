// Command scalebench measures mao with a large history: -tools tools and
// -runs run records, written through the store's own code into an etcd
// member of its own, then read by an orchestrator (on that etcd, as an
// external cluster) and by maoctl. It prints each figure next to its
// target, and tool list next to etcdctl's read of the same keys in the same
// run. See bench/README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/internal/benchproc"
	"github.com/mao-research/mao/orchestrator/etcdembed"
	"github.com/mao-research/mao/orchestrator/store"
	"github.com/mao-research/mao/toolspec"
)

type options struct {
	orchestrator, maoctl, etcdctl string
	tools, runs, workers, repeat  int
}

func main() {
	var o options
	flag.StringVar(&o.orchestrator, "orchestrator", "bin/orchestrator", "the orchestrator binary")
	flag.StringVar(&o.maoctl, "maoctl", "bin/maoctl", "the maoctl binary")
	flag.StringVar(&o.etcdctl, "etcdctl", "bin/etcdctl", "the etcdctl binary (the baseline of tool list)")
	flag.IntVar(&o.tools, "tools", 10000, "tools to register")
	flag.IntVar(&o.runs, "runs", 1000000, "run records to write")
	flag.IntVar(&o.workers, "workers", 32, "concurrent writers while seeding")
	flag.IntVar(&o.repeat, "repeat", 7, "times each command is timed (the median is printed)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "scalebench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	dir, err := os.MkdirTemp("", "scalebench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	srv, err := etcdembed.Start(ctx, etcdembed.Options{Name: "scale", Dir: filepath.Join(dir, "etcd"),
		ClientURL: "http://127.0.0.1:0", PeerURL: "http://127.0.0.1:0", QuotaBytes: 8 << 30})
	if err != nil {
		return err
	}
	defer srv.Close()
	endpoint := srv.Endpoints()[0]
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second})
	if err != nil {
		return err
	}
	defer c.Close()
	st := store.New(c, store.Options{Timeout: time.Minute})

	// An empty federation first: the restart figures to compare with.
	empty, err := restarts(ctx, o, dir, endpoint, 3)
	if err != nil {
		return fmt.Errorf("restart, empty: %w", err)
	}
	began := time.Now()
	if err := seed(ctx, o, st); err != nil {
		return err
	}
	fmt.Printf("seeded %d tools and %d runs in %s\n", o.tools, o.runs, time.Since(began).Round(time.Second))
	full, err := restarts(ctx, o, dir, endpoint, 3)
	if err != nil {
		return fmt.Errorf("restart, full: %w", err)
	}
	p, err := start(ctx, o.orchestrator, dir, endpoint)
	if err != nil {
		return err
	}
	defer p.Stop()

	tool := fmt.Sprintf("t%05d", o.tools/2)
	type row struct {
		what   string
		args   []string
		target time.Duration
	}
	rows := []row{
		{"run list --limit 1", []string{"run", "list", "--limit", "1"}, 0},
		{"run list --limit 50", []string{"run", "list", "--limit", "50"}, 50 * time.Millisecond},
		{"run list --limit 50 -o json", []string{"-o", "json", "run", "list", "--limit", "50"}, 0},
		{"run list --tool " + tool, []string{"run", "list", "--tool", tool}, 50 * time.Millisecond},
		{"run list --state running --limit 50", []string{"run", "list", "--state", "running", "--limit", "50"}, 0},
		{"site list", []string{"site", "list"}, 50 * time.Millisecond},
		{"tool list", []string{"tool", "list"}, 0},
	}
	fmt.Printf("\n%d tools, %d runs: maoctl against the orchestrator, median of %d\n", o.tools, o.runs, o.repeat)
	fmt.Printf("%-40s %10s %10s %s\n", "command", "time", "target", "")
	var toolList time.Duration
	for _, r := range rows {
		d, err := timed(ctx, o.repeat, o.maoctl, append([]string{"--addr", p.Addr}, r.args...)...)
		if err != nil {
			return fmt.Errorf("maoctl %s: %w", r.what, err)
		}
		target, mark := "", ""
		if r.target > 0 {
			target, mark = ms(r.target), verdict(d <= r.target)
		}
		if r.what == "tool list" {
			toolList = d
		}
		fmt.Printf("%-40s %10s %10s %s\n", r.what, ms(d), target, mark)
	}
	raw, err := timed(ctx, o.repeat, o.etcdctl, "--endpoints", endpoint, "get", "--prefix", "/mao/tools/")
	if err != nil {
		return fmt.Errorf("etcdctl: %w (build it: GOBIN=$PWD/bin go install go.etcd.io/etcd/etcdctl/v3@v3.7.3)", err)
	}
	fmt.Printf("%-40s %10s\n", "etcdctl get --prefix /mao/tools/", ms(raw))
	fmt.Printf("%-40s %10s %10s %s\n", "tool list / etcdctl", ratio(toolList, raw), "1.50", verdict(float64(toolList) <= 1.5*float64(raw)))

	fmt.Printf("\nrestart (process start to API and scheduler ready), median of 3, and RSS once ready\n")
	fmt.Printf("%-40s %10s %10s\n", "", "empty", "full")
	fmt.Printf("%-40s %10s %10s %10s %s\n", "restart", ms(empty.load), ms(full.load), "1500ms", verdict(full.load <= 1500*time.Millisecond))
	fmt.Printf("%-40s %10s %10s %10s %s\n", "RSS", mb(empty.rss), mb(full.rss), "150.0 MB", verdict(full.rss <= 150e6))
	return nil
}

// seed writes the tools and runs through the store, with o.workers
// writers: the runs spread over the year up to now, over every tool, a
// tenth by hand, at three sites; one in 10,000 still running, the rest
// ended.
func seed(ctx context.Context, o options, st *store.Store) error {
	var next atomic.Int64
	work := func(n int, each func(i int) error) error {
		next.Store(0)
		var wg sync.WaitGroup
		errs := make(chan error, o.workers)
		for range o.workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := int(next.Add(1) - 1); i < n && ctx.Err() == nil; i = int(next.Add(1) - 1) {
					if err := each(i); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		return errors.Join(ctx.Err(), <-errs)
	}
	if err := work(o.tools, func(i int) error {
		return st.CreateTool(ctx, toolspec.Tool{Name: fmt.Sprintf("t%05d", i), Author: "bench", Image: "lab/crawler:1",
			DataRepo: fmt.Sprintf("https://git.example.org/data/t%05d.git", i), Network: "none",
			Description: "a tool of the scale benchmark", Env: map[string]string{"MODE": "full"}})
	}); err != nil {
		return fmt.Errorf("seed tools: %w", err)
	}
	start := time.Now().UTC().Add(-365 * 24 * time.Hour) // a year that ends now
	step := 365 * 24 * time.Hour / time.Duration(max(o.runs, 1))
	sites := []string{"lab-a", "lab-b", "lab-c"}
	var done atomic.Int64
	progress := time.NewTicker(30 * time.Second)
	defer progress.Stop()
	go func() {
		for range progress.C {
			fmt.Printf("  %d runs written\n", done.Load())
		}
	}()
	if err := work(o.runs, func(i int) error {
		at := start.Add(time.Duration(i) * step)
		tool := fmt.Sprintf("t%05d", i%o.tools)
		r := api.Run{Tool: tool, Site: sites[i%3], State: api.StateSucceeded, Image: "lab/crawler:1", Network: "none",
			DataRepo: "https://git.example.org/data/" + tool + ".git", Attempt: 1, MaxAttempts: 1, CreatedAt: at,
			StartedAt: &at, FinishedAt: &at, ExitCode: new(int), ImageID: "sha256:" + strings.Repeat("ab", 32),
			DataCommitBefore: strings.Repeat("1", 40), DataCommitAfter: strings.Repeat("2", 40)}
		if i%10 == 0 {
			r.ID, r.Trigger = fmt.Sprintf("%s-%d-%06x", tool, at.Unix(), i%0xffffff), api.TriggerManual
		} else {
			r.ID, r.Trigger, r.Schedule, r.ScheduledTime = fmt.Sprintf("%s-daily-0000-%d", tool, at.Unix()), api.TriggerSchedule, tool+"-daily-0000", &at
		}
		if i%10000 == 5 {
			r.State, r.FinishedAt, r.ExitCode = api.StateRunning, nil, nil
		}
		if err := st.CreateRun(ctx, r); err != nil {
			return err
		}
		done.Add(1)
		return nil
	}); err != nil {
		return fmt.Errorf("seed runs: %w", err)
	}
	return nil
}

// restarted is the median of a few restarts.
type restarted struct {
	load time.Duration
	rss  int64
}

// restarts starts the orchestrator n times on the same data and returns
// the median time to ready and resident memory.
func restarts(ctx context.Context, o options, dir, endpoint string, n int) (restarted, error) {
	var loads []time.Duration
	var rsss []int64
	for range n {
		p, err := start(ctx, o.orchestrator, dir, endpoint)
		if err != nil {
			return restarted{}, err
		}
		_, rss, err := p.Usage()
		p.Stop()
		if err != nil {
			return restarted{}, err
		}
		loads, rsss = append(loads, p.Load), append(rsss, rss)
	}
	slices.Sort(loads)
	slices.Sort(rsss)
	return restarted{load: loads[n/2], rss: rsss[n/2]}, nil
}

// start runs an orchestrator of site "scale" on the etcd at endpoint, its
// data in dir, and waits until its API and its scheduler are ready.
func start(ctx context.Context, bin, dir, endpoint string) (*benchproc.Proc, error) {
	cfg := filepath.Join(dir, "config.ini")
	ini := fmt.Sprintf("[site]\nname = scale\ndata_dir = %s\ntimezone = UTC\n[etcd]\nendpoints = %s\n[api]\nlisten = 127.0.0.1:0\n",
		filepath.Join(dir, "site"), endpoint)
	if err := os.WriteFile(cfg, []byte(ini), 0o644); err != nil {
		return nil, err
	}
	return benchproc.Start(ctx, bin, cfg)
}

// timed runs a command n times and returns the median wall time.
func timed(ctx context.Context, n int, bin string, args ...string) (time.Duration, error) {
	var ds []time.Duration
	for range n {
		began := time.Now()
		out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
		if err != nil {
			return 0, fmt.Errorf("%w: %s", err, out[:min(len(out), 2000)])
		}
		ds = append(ds, time.Since(began))
	}
	slices.Sort(ds)
	return ds[n/2], nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d.Microseconds())/1000) }

func mb(b int64) string { return fmt.Sprintf("%.1f MB", float64(b)/1e6) }

func ratio(a, b time.Duration) string { return fmt.Sprintf("%.2f", float64(a)/float64(b)) }

func verdict(ok bool) string { return map[bool]string{true: "meets", false: "MISSES"}[ok] }
