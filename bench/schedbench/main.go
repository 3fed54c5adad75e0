// Command schedbench measures an orchestrator's scheduler: memory, idle CPU
// and load time with many schedules, and how late its ticks start their
// containers, each next to a baseline from the same run (the orchestrator
// without schedules, bare Docker Engine API calls). See bench/README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/client"
	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/internal/benchproc"
	"github.com/mao-research/mao/toolspec"
)

const (
	rssTarget       = 150_000_000 // bytes, with the schedules loaded
	latenessAllowed = 50 * time.Millisecond
)

type options struct {
	bin, image            string
	schedules, samples    int
	ticking               int
	settle, idle, tickFor time.Duration
}

func main() {
	var o options
	flag.StringVar(&o.bin, "orchestrator", "bin/orchestrator", "orchestrator binary")
	flag.StringVar(&o.image, "image", "mao-examples/file-count:latest", "a trivial tool image (make example-image)")
	flag.IntVar(&o.schedules, "schedules", 1000, "schedules to create on one site")
	flag.DurationVar(&o.settle, "settle", 3*time.Second, "wait before each idle measurement")
	flag.DurationVar(&o.idle, "idle", 10*time.Second, "window of each idle CPU measurement")
	flag.DurationVar(&o.tickFor, "tick-for", 60*time.Second, "how long the @every 1s schedules tick")
	flag.IntVar(&o.ticking, "ticking", 1, "@every 1s schedules that tick at once, each of its own tool (1: as in the issue's run next to Ofelia)")
	flag.IntVar(&o.samples, "samples", 30, "bare create+start samples, half before and half after the ticks")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, o)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "schedbench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	dir, err := os.MkdirTemp("", "mao-schedbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	dc, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return fmt.Errorf("docker client: %w", err)
	}
	defer dc.Close()
	if _, err := dc.ImageInspect(ctx, o.image); err != nil {
		return fmt.Errorf("image %s (make example-image): %w", o.image, err)
	}
	if err := manySchedules(ctx, o, filepath.Join(dir, "many")); err != nil {
		return err
	}
	return tickLateness(ctx, o, dc, filepath.Join(dir, "ticks"))
}

// manySchedules measures an orchestrator with no schedules, then with
// o.schedules that do not fire; restarts time the loading of each.
func manySchedules(ctx context.Context, o options, dir string) error {
	fresh, err := start(ctx, o.bin, dir)
	if err != nil {
		return err
	}
	defer fresh.Stop()
	if err := registerTool(ctx, fresh.Client, "bench", filepath.Join(dir, "data.git"), o.image); err != nil {
		return err
	}
	// Restarted like the full one below, so that both loads include the
	// embedded etcd's recovery of its data.
	fresh.Stop()
	empty, err := start(ctx, o.bin, dir)
	if err != nil {
		return err
	}
	defer empty.Stop()
	cpu0, rss0, err := idleUse(ctx, empty, o.settle, o.idle)
	if err != nil {
		return err
	}
	begin := time.Now()
	for i := range o.schedules {
		if _, err := empty.Client.CreateSchedule(ctx, farSchedule("bench", begin, i)); err != nil {
			return fmt.Errorf("create schedule %d: %w", i, err)
		}
	}
	creation := time.Since(begin)
	cpuN, rssN, err := idleUse(ctx, empty, o.settle, o.idle)
	if err != nil {
		return err
	}
	empty.Stop()
	full, err := start(ctx, o.bin, dir)
	if err != nil {
		return err
	}
	defer full.Stop()

	n := fmt.Sprintf("%d schedules", o.schedules)
	row := "%-44s %12s %15s %7s\n"
	fmt.Printf("== %s on one site (baseline: the same orchestrator with 0 schedules) ==\n", n)
	fmt.Printf(row, "", "0 schedules", n, "ratio")
	fmt.Printf(row, "RSS (VmRSS)", mb(rss0), mb(rssN), ratio(float64(rssN), float64(rss0)))
	fmt.Printf(row, fmt.Sprintf("idle CPU over %s, %% of one core", o.idle),
		fmt.Sprintf("%.2f%%", cpu0*100), fmt.Sprintf("%.2f%%", cpuN*100), ratio(cpuN, cpu0))
	fmt.Printf(row, `restart: process start to "scheduler ready"`, ms(empty.Load), ms(full.Load),
		ratio(float64(full.Load), float64(empty.Load)))
	fmt.Printf(row, "  the scheduler's own took=", empty.Took, full.Took, "")
	fmt.Printf("creating %s through the API, one at a time: %s (%s each)\n",
		n, ms(creation), ms(creation/time.Duration(max(o.schedules, 1))))
	fmt.Printf("RSS with %s: %s (%s the target of <= %s)\n\n", n, mb(rssN), verdict(rssN <= rssTarget), mb(rssTarget))
	return nil
}

// farSchedule returns the i-th of a mix of daily, weekly, monthly and cron
// schedules, each ticking only at one UTC time of day between one and 23
// hours after now, so that none fires during the benchmark.
func farSchedule(tool string, now time.Time, i int) api.Schedule {
	at := now.UTC().Add(time.Hour + time.Duration(i*7%(22*60))*time.Minute)
	s := api.Schedule{Tool: tool, TZ: "UTC", At: at.Format("15:04")}
	switch i % 4 {
	case 0:
		s.Spec = "daily"
	case 1:
		s.Spec, s.Weekday = "weekly", strings.ToLower(time.Weekday(i % 7).String()[:3])
	case 2:
		s.Spec = "monthly"
	default:
		s.Spec, s.At = fmt.Sprintf("%d %d * * 1-5", at.Minute(), at.Hour()), ""
	}
	return s
}

// tickLateness runs o.ticking "@every 1s" schedules on a fresh
// orchestrator and compares how late their containers start with bare
// create+start calls, and their containers' create-to-destroy times, as
// the engine's events give them, with bare containers'.
func tickLateness(ctx context.Context, o options, dc *client.Client, dir string) error {
	p, err := start(ctx, o.bin, dir)
	if err != nil {
		return err
	}
	defer p.Stop()
	bareData := filepath.Join(dir, "bare-data")
	if err := os.MkdirAll(bareData, 0o755); err != nil {
		return err
	}
	stop, err := containerLives(ctx, dc, o.image)
	if err != nil {
		return err
	}
	defer func() { _, _ = stop() }() // on an error before the end
	bare, bareIDs, err := createStart(ctx, dc, o.image, bareData, o.samples/2)
	if err != nil {
		return err
	}
	var ids []string
	for i := range max(o.ticking, 1) {
		tool := fmt.Sprintf("tick-%c", 'a'+i)
		if err := registerTool(ctx, p.Client, tool, filepath.Join(dir, tool+".git"), o.image); err != nil {
			return err
		}
		s, err := p.Client.CreateSchedule(ctx, api.Schedule{Tool: tool, Spec: "@every 1s", Overlap: toolspec.OverlapAllow})
		if err != nil {
			return fmt.Errorf("create schedule: %w", err)
		}
		ids = append(ids, s.ID)
	}
	if err := sleep(ctx, o.tickFor); err != nil {
		return err
	}
	for _, id := range ids {
		if _, err := p.Client.PauseSchedule(ctx, id); err != nil {
			return fmt.Errorf("pause %s: %w", id, err)
		}
	}
	runs, err := endedRuns(ctx, p.Client)
	if err != nil {
		return err
	}
	after, afterIDs, err := createStart(ctx, dc, o.image, bareData, o.samples-o.samples/2)
	if err != nil {
		return err
	}
	life, err := stop()
	if err != nil {
		return err
	}
	reportLateness(o, runs, append(bare, after...))
	var maoLife, bareLife []time.Duration
	isBare := map[string]bool{}
	for _, id := range append(bareIDs, afterIDs...) {
		isBare[id] = true
	}
	for id, l := range life {
		switch {
		case isBare[id]:
			bareLife = append(bareLife, l.took)
		case strings.HasPrefix(l.name, "mao-"): // a run's (runner.ContainerName)
			maoLife = append(maoLife, l.took)
		}
	}
	row := "%-56s %5v %9v %9v %9v\n"
	fmt.Printf("\ncontainer create to destroy (the engine's events)\n")
	fmt.Printf(row, "", "n", "p50", "p99", "max")
	fmt.Printf(row, "mao's runs", len(maoLife), ms(q(maoLife, 0.5)), ms(q(maoLife, 0.99)), ms(q(maoLife, 1)))
	fmt.Printf(row, "bare create, start, wait, remove", len(bareLife), ms(q(bareLife, 0.5)), ms(q(bareLife, 0.99)), ms(q(bareLife, 1)))
	fmt.Printf("create-to-destroy p50 ratio to bare: %s\n", ratio(float64(q(maoLife, 0.5)), float64(q(bareLife, 0.5))))
	return nil
}

// life is a container's name and time from create to destroy.
type life struct {
	name string
	took time.Duration
}

// containerLives follows the engine's container events until stop is
// called, and then returns each container's life, by ID. It returns once
// the stream is connected, and stop once it has reported every container
// removed before: each makes a container of image, removes it and waits
// for the stream to report it gone (the engine reports in order).
func containerLives(ctx context.Context, dc *client.Client, image string) (stop func() (map[string]life, error), err error) {
	ctx, cancel := context.WithCancel(ctx)
	msgs, errs := dc.Events(ctx, events.ListOptions{Filters: filters.NewArgs(filters.Arg("type", string(events.ContainerEventType)),
		filters.Arg("event", string(events.ActionCreate)), filters.Arg("event", string(events.ActionDestroy)))})
	var mu sync.Mutex
	created, lives := map[string]int64{}, map[string]life{}
	changed := make(chan struct{})
	failed := make(chan error, 1)
	go func() {
		for {
			select {
			case m := <-msgs:
				mu.Lock()
				switch m.Action {
				case events.ActionCreate:
					created[m.Actor.ID] = m.TimeNano
				case events.ActionDestroy:
					if at, ok := created[m.Actor.ID]; ok {
						lives[m.Actor.ID] = life{name: m.Actor.Attributes["name"], took: time.Duration(m.TimeNano - at)}
					}
				}
				close(changed)
				changed = make(chan struct{})
				mu.Unlock()
			case err := <-errs:
				if ctx.Err() != nil {
					err = nil
				}
				failed <- err
				return
			}
		}
	}()
	// seen waits up to d for the stream to report container id created
	// (gone false) or removed (gone true).
	seen := func(id string, gone bool, d time.Duration) (bool, error) {
		deadline := time.After(d)
		for {
			mu.Lock()
			_, ok := created[id]
			if gone {
				_, ok = lives[id]
				delete(lives, id)
			}
			wait := changed
			mu.Unlock()
			if ok {
				return true, nil
			}
			select {
			case <-wait:
			case err := <-failed:
				failed <- err // for stop
				if err == nil {
					err = ctx.Err()
				}
				return false, fmt.Errorf("the engine's events: %w", err)
			case <-deadline:
				return false, nil
			}
		}
	}
	// mark makes a container and removes it, once the stream has reported
	// it; a container made before the stream is connected goes unseen, and
	// another is made.
	mark := func() error {
		for range 20 {
			c, err := dc.ContainerCreate(ctx, &container.Config{Image: image}, &container.HostConfig{NetworkMode: "none"}, nil, nil, "")
			if err != nil {
				return fmt.Errorf("a marker container: %w", err)
			}
			ok, err := seen(c.ID, false, time.Second)
			if rmErr := dc.ContainerRemove(context.WithoutCancel(ctx), c.ID, container.RemoveOptions{Force: true}); err == nil {
				err = rmErr
			}
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			if ok, err = seen(c.ID, true, 10*time.Second); err != nil || !ok {
				return errors.Join(err, errors.New("the engine's event stream did not report a marker container gone within 10 s"))
			}
			return nil
		}
		return errors.New("the engine's event stream reported none of 20 marker containers")
	}
	// stop may be called again (deferred, for the error paths): the
	// second call returns nothing.
	var stopped bool
	stop = func() (map[string]life, error) {
		if stopped {
			return nil, nil
		}
		stopped = true
		err := mark()
		cancel()
		if ferr := <-failed; err == nil && ferr != nil { // the reader has returned
			err = fmt.Errorf("the engine's events: %w", ferr)
		}
		if err != nil {
			return nil, err
		}
		return maps.Clone(lives), nil
	}
	if err := mark(); err != nil {
		_, _ = stop()
		return nil, err
	}
	return stop, nil
}

// reportLateness prints how late the runs' containers started after their
// ticks, split at the run's start (once its data repository is locked),
// next to the bare create+start times.
func reportLateness(o options, runs []api.Run, bare []time.Duration) {
	var late, toStart, toContainer []time.Duration
	notStarted := map[api.RunState]int{}
	for _, r := range runs {
		if r.ContainerStartedAt == nil || r.StartedAt == nil || r.ScheduledTime == nil {
			notStarted[r.State]++
			continue
		}
		late = append(late, r.ContainerStartedAt.Sub(*r.ScheduledTime))
		toStart = append(toStart, r.StartedAt.Sub(*r.ScheduledTime))
		toContainer = append(toContainer, r.ContainerStartedAt.Sub(*r.StartedAt))
	}
	fmt.Printf("== tick lateness: %d schedule(s) @every 1s, overlap allow, for %s (baseline: bare Docker Engine API) ==\n", max(o.ticking, 1), o.tickFor)
	row := "%-56s %5v %9v %9v %9v %9v\n"
	fmt.Printf(row, "", "n", "p50", "p90", "p99", "max")
	for _, r := range []struct {
		name string
		d    []time.Duration
	}{
		{"lateness: container_started_at - scheduled_time", late},
		{"  part: started_at - scheduled_time (claim, lock)", toStart},
		{"  part: container_started_at - started_at (git, docker)", toContainer},
		{"bare ContainerCreate+ContainerStart", bare},
	} {
		fmt.Printf(row, r.name, len(r.d), ms(q(r.d, 0.5)), ms(q(r.d, 0.9)), ms(q(r.d, 0.99)), ms(q(r.d, 1)))
	}
	if len(notStarted) > 0 {
		fmt.Printf("runs whose container never started, by state: %v\n", notStarted)
	}
	diff := q(late, 0.99) - q(bare, 0.99)
	fmt.Printf("lateness p99 - create+start p99: %s (%s the target of <= %s)\n",
		ms(diff), verdict(len(late) > 0 && diff <= latenessAllowed), ms(latenessAllowed))
}

// endedRuns waits until no run is under way and returns them all.
func endedRuns(ctx context.Context, c *api.Client) ([]api.Run, error) {
	for deadline := time.Now().Add(time.Minute); ; {
		list, err := c.Runs(ctx, api.RunFilter{})
		if err != nil {
			return nil, fmt.Errorf("list runs: %w", err)
		}
		runs := list.Items
		if !slices.ContainsFunc(runs, func(r api.Run) bool { return !r.State.Terminal() }) {
			return runs, nil
		}
		if time.Now().After(deadline) {
			return nil, errors.New("runs still under way a minute after pausing their schedules")
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return nil, err
		}
	}
}

// createStart times n bare ContainerCreate+ContainerStart calls for image
// with network none and dataDir bind-mounted like a tool's data, removing
// each container once it has exited.
func createStart(ctx context.Context, dc *client.Client, image, dataDir string, n int) ([]time.Duration, []string, error) {
	cfg := &container.Config{Image: image}
	hc := &container.HostConfig{NetworkMode: "none",
		Mounts: []mount.Mount{{Type: mount.TypeBind, Source: dataDir, Target: toolspec.DataMount}}}
	var took []time.Duration
	var ids []string
	for range n {
		begin := time.Now()
		c, err := dc.ContainerCreate(ctx, cfg, hc, nil, nil, "")
		if err != nil {
			return nil, nil, fmt.Errorf("bare create: %w", err)
		}
		ids = append(ids, c.ID)
		err = dc.ContainerStart(ctx, c.ID, container.StartOptions{})
		took = append(took, time.Since(begin))
		if err == nil {
			exited, failed := dc.ContainerWait(ctx, c.ID, container.WaitConditionNotRunning)
			select {
			case <-exited:
			case err = <-failed:
			}
		}
		err = errors.Join(err, dc.ContainerRemove(context.WithoutCancel(ctx), c.ID, container.RemoveOptions{Force: true}))
		if err != nil {
			return nil, nil, fmt.Errorf("bare container %s: %w", c.ID, err)
		}
	}
	return took, ids, nil
}

// start runs an orchestrator on free loopback ports with its data and
// config in dir, and waits until its API and its scheduler are ready.
func start(ctx context.Context, bin, dir string) (*benchproc.Proc, error) {
	cfg := filepath.Join(dir, "config.ini")
	ini := fmt.Sprintf("[site]\nname = bench\ndata_dir = %s\ntimezone = UTC\n[etcd]\nclient_url = https://127.0.0.1:0\n"+
		"peer_url = https://127.0.0.1:0\n[api]\nlisten = 127.0.0.1:0\n[schedules]\nhistory = 100000\n", filepath.Join(dir, "site"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(cfg, []byte(ini), 0o644); err != nil {
		return nil, err
	}
	return benchproc.Start(ctx, bin, cfg)
}

// idleUse waits settle, then returns the CPU the orchestrator used over
// window as a fraction of one core, and its resident memory in bytes.
func idleUse(ctx context.Context, p *benchproc.Proc, settle, window time.Duration) (cpu float64, rss int64, err error) {
	if err := sleep(ctx, settle); err != nil {
		return 0, 0, err
	}
	begin := time.Now()
	ticks0, _, err := p.Usage()
	if err == nil {
		err = sleep(ctx, window)
	}
	if err != nil {
		return 0, 0, err
	}
	ticks1, rss, err := p.Usage()
	// /proc counts CPU time in USER_HZ, which is 100 on Linux.
	return float64(ticks1-ticks0) / 100 / time.Since(begin).Seconds(), rss, err
}

// registerTool creates a git repository with one empty commit at repo and
// registers a tool of image with it as data repository.
func registerTool(ctx context.Context, c *api.Client, name, repo, image string) error {
	for _, args := range [][]string{
		{"init", "-q", "-b", "main", repo},
		{"-C", repo, "-c", "user.name=schedbench", "-c", "user.email=bench@localhost", "commit", "-q", "--allow-empty", "-m", "initial"},
	} {
		if out, err := exec.CommandContext(ctx, "git", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("git %s: %w\n%s", strings.Join(args, " "), err, out)
		}
	}
	_, err := c.RegisterTool(ctx, api.Tool{Name: name, Author: "schedbench", Image: image,
		DataRepo: "file://" + repo, Network: "none", Artefact: "benchmark"})
	if err != nil {
		return fmt.Errorf("register tool %s: %w", name, err)
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// q is the p-quantile of d by nearest rank; it sorts d.
func q(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	return d[int(p*float64(len(d)-1)+0.5)]
}

func ratio(a, b float64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", a/b)
}

func verdict(ok bool) string { return map[bool]string{true: "meets", false: "MISSES"}[ok] }

func ms(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d.Microseconds())/1000) }

func mb(b int64) string { return fmt.Sprintf("%.1f MB", float64(b)/1e6) }
