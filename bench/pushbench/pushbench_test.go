// Package pushbench measures how runs' results reach their data
// repositories, each figure beside the git CLI doing the same in the same
// run, against the same git server (git daemon on loopback):
//
//   - BenchmarkRunToPush: from a run's end to its push done, over 50 runs
//     of a real orchestrator, against `git push` of the same commit;
//   - BenchmarkBigRepository: sync, commit and push of one run's 10 new
//     files into a repository of 100,000 files and 1 GiB (gitrepo), against
//     `git pull`, `git add`, `git commit` and `git push`;
//   - BenchmarkBacklog: 100 unpushed commits flushed in one push, against
//     `git push` of the same commits.
//
// Run (see bench/README.md for the flags):
//
//	MAO_REQUIRE_DOCKER=1 go test -run '^$' -bench . -benchtime 1x -timeout 60m ./bench/pushbench/
package pushbench

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/internal/fedtest"
	"github.com/mao-research/mao/internal/gitserver"
	"github.com/mao-research/mao/internal/testenv"
	"github.com/mao-research/mao/orchestrator/gitrepo"
)

var (
	runs    = flag.Int("pushbench.runs", 50, "BenchmarkRunToPush: runs")
	files   = flag.Int("pushbench.files", 100000, "BenchmarkBigRepository: files in the repository")
	sizeMiB = flag.Int("pushbench.size-mib", 1024, "BenchmarkBigRepository: their total size, MiB")
	reps    = flag.Int("pushbench.reps", 5, "BenchmarkBigRepository and BenchmarkBacklog: timed repetitions")
	backlog = flag.Int("pushbench.backlog", 100, "BenchmarkBacklog: unpushed commits")
)

// git runs the git CLI in dir with no configuration of the machine or the
// user, and returns its standard output.
func git(b *testing.B, dir string, args ...string) string {
	b.Helper()
	if dir != "" {
		args = append([]string{"-C", dir}, args...)
	}
	cmd := exec.Command("git", args...)
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_TERMINAL_PROMPT=0",
		"GIT_AUTHOR_NAME=cli", "GIT_AUTHOR_EMAIL=cli@localhost", "GIT_COMMITTER_NAME=cli", "GIT_COMMITTER_EMAIL=cli@localhost")
	out, err := cmd.CombinedOutput()
	if err != nil {
		b.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// timed runs f and returns how long it took.
func timed(f func()) time.Duration {
	start := time.Now()
	f()
	return time.Since(start)
}

func percentile(d []time.Duration, p float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

// line prints one figure of mao beside the CLI's, with their ratio.
func line(what string, ours, cli time.Duration) {
	fmt.Printf("  %-34s mao %10s   git CLI %10s   ratio %.2f\n", what, ms(ours), ms(cli), float64(ours)/float64(cli))
}

// baseline makes name.git on the server a copy of data.git as it is now,
// for the CLI to push the same commits to.
func baseline(b *testing.B, repos *gitserver.Repos, name string) {
	b.Helper()
	dst := filepath.Join(repos.Root, name+".git")
	git(b, "", "clone", "-q", "--bare", filepath.Join(repos.Root, "data.git"), dst)
	git(b, dst, "config", "receive.denyNonFastForwards", "true")
}

// BenchmarkRunToPush runs a tool (one new file per run) 50 times, one
// after another, at an orchestrator process whose tool pushes to a
// repository served by git daemon, and takes from each run's record and
// log: from the commit kept (the runner queues it: its log record) to
// push done (the record's pushed_at), and from the run's finished_at to
// pushed_at. Baseline, after each run: `git push` by the git CLI of the
// same commit (fetched first, untimed) to a copy of the repository on the
// same server. It prints p50 and p99 of each, and the ratios. Target:
// ratio ≤ 1.5.
func BenchmarkRunToPush(b *testing.B) {
	n := max(*runs, 2)
	bins, image := fedtest.Build(b), testenv.BuildTestImage(b)
	cluster := testenv.EtcdCluster(b, 1)
	repos := gitserver.New(b)
	repos.Bare(b, "data", nil)
	baseline(b, repos, "baseline")
	server := repos.Daemon(b)
	site := fedtest.Start(b, bins, "bench", fedtest.SiteConfig("bench", "%DIR%", "", 10*time.Second,
		fmt.Sprintf("\n[etcd]\nendpoints = %s\n", strings.Join(cluster.Endpoints(), ", "))))
	records := fedtest.WatchRuns(b, cluster.Client(b))
	ctx := context.Background()
	tool := api.Tool{Name: "marker", Author: "pushbench", Image: image, DataRepo: server + "data.git", Network: "none", Command: []string{"-mark"}}
	if _, err := site.Client.RegisterTool(ctx, tool); err != nil {
		b.Fatal(err)
	}
	cli := filepath.Join(b.TempDir(), "cli")
	git(b, "", "init", "-q", cli)
	var fromCommit, fromFinish, cliPush []time.Duration
	for i := range n + 1 { // the first is a warm-up: it clones
		started, err := site.Client.RunTool(ctx, "marker", api.RunRequest{})
		if err != nil {
			b.Fatal(err)
		}
		id := started[0].ID
		queued, err := site.Await(60*time.Second, func(r fedtest.Record) bool {
			return r.Msg == "queued a run's commit for its data repository" && r.Attrs["run"] == id
		})
		if err != nil {
			b.Fatal(err)
		}
		run := records.Until(60*time.Second, "run "+id+" pushed", func(m map[string]api.Run) bool {
			p := m[id].Push
			return m[id].FinishedAt != nil && p != nil && p.State.Done()
		})[id]
		if run.Push.State != api.PushPushed {
			b.Fatalf("run %s: push %+v", id, run.Push)
		}
		git(b, cli, "fetch", "-q", server+"data.git", "main") // the run's commit is its head
		took := timed(func() { git(b, cli, "push", "-q", server+"baseline.git", run.Push.Commit+":refs/heads/main") })
		if i == 0 {
			continue
		}
		fromCommit = append(fromCommit, run.Push.PushedAt.Sub(queued.Time))
		fromFinish = append(fromFinish, run.Push.PushedAt.Sub(*run.FinishedAt))
		cliPush = append(cliPush, took)
	}
	fmt.Printf("BenchmarkRunToPush: %d runs, one new file each, git daemon on loopback\n", n)
	for _, p := range []float64{0.5, 0.99} {
		line(fmt.Sprintf("p%.0f commit kept -> push done", p*100), percentile(fromCommit, p), percentile(cliPush, p))
		line(fmt.Sprintf("p%.0f finished_at -> pushed_at", p*100), percentile(fromFinish, p), percentile(cliPush, p))
	}
	b.ReportMetric(float64(percentile(fromCommit, 0.5))/float64(percentile(cliPush, 0.5)), "p50-ratio")
	b.ReportMetric(float64(percentile(fromCommit, 0.99))/float64(percentile(cliPush, 0.99)), "p99-ratio")
}

// bigRepository fills the bare repository data.git with files files
// of size bytes in all (random content, 1,000 directories), in one commit,
// through git fast-import.
func bigRepository(b *testing.B, repos *gitserver.Repos, files int, size int64) {
	b.Helper()
	bare := filepath.Join(repos.Root, "data.git")
	cmd := exec.Command("git", "-C", bare, "fast-import", "--quiet")
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null")
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriterSize(in, 1<<20)
	src := rand.NewChaCha8([32]byte{7})
	buf := make([]byte, size/int64(files)+1)
	head := strings.TrimSpace(git(b, bare, "rev-parse", "refs/heads/main"))
	fmt.Fprintf(w, "commit refs/heads/main\ncommitter bench <bench@localhost> 1700000000 +0000\ndata 4\nbig\nfrom %s\n", head)
	for i := range files {
		n := size / int64(files)
		if int64(i) < size%int64(files) {
			n++
		}
		src.Read(buf[:n])
		fmt.Fprintf(w, "M 100644 inline d%03d/f%06d.bin\ndata %d\n", i%1000, i, n)
		w.Write(buf[:n])
		w.WriteString("\n")
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	in.Close()
	if err := cmd.Wait(); err != nil {
		b.Fatal(err)
	}
}

// newFiles writes one run's 10 new files (4 KiB each) into dir.
func newFiles(b *testing.B, dir string, run int) []string {
	b.Helper()
	var names []string
	for i := range 10 {
		name := fmt.Sprintf("runs/r%04d/out-%02d.csv", run, i)
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(strings.Repeat(fmt.Sprintf("%d,%d\n", run, i), 512)), 0o644); err != nil {
			b.Fatal(err)
		}
		names = append(names, name)
	}
	return names
}

// BenchmarkBigRepository: a repository of 100,000 files and 1 GiB (flags
// -pushbench.files and -pushbench.size-mib) served by git daemon; mao's
// clone of it (gitrepo.Sync) and the git CLI's. Then, reps times after a
// warm-up, a run's 10 new files are written into each (untimed) and timed:
// mao's Sync + Commit + Push (gitrepo, as the runner and the outbox do:
// Commit finds what changed by comparing the work tree with the index, by
// stat, reading only new or changed files), against the CLI's `git pull
// --ff-only` + `git add -A` + `git commit` + `git push`, and the CLI
// staging only the 10 named files (`git add FILES`), to a copy of the
// repository on the same server. It prints the medians and each part of
// mao's. Target: ≤ 2× the CLI.
func BenchmarkBigRepository(b *testing.B) {
	nFiles, size := max(*files, 1000), int64(max(*sizeMiB, 1))<<20
	repos := gitserver.New(b)
	repos.Bare(b, "data", nil)
	gen := timed(func() { bigRepository(b, repos, nFiles, size) })
	baseline(b, repos, "baseline")
	server := repos.Daemon(b)
	work := b.TempDir()
	r := gitrepo.New(gitrepo.Options{MaxOutputFiles: 1 << 30, MaxOutputBytes: 1 << 40})
	ours := filepath.Join(work, "mao", "data")
	ctx := context.Background()
	cloneMao := timed(func() {
		if _, _, err := r.Sync(ctx, ours, server+"data.git", ""); err != nil {
			b.Fatal(err)
		}
	})
	cli := filepath.Join(work, "cli")
	cloneCLI := timed(func() { git(b, "", "clone", "-q", server+"baseline.git", cli) })
	fmt.Printf("BenchmarkBigRepository: %d files, %d MiB (generated in %s); clone: mao %s, git CLI %s\n",
		nFiles, size>>20, gen.Round(time.Millisecond), cloneMao.Round(time.Millisecond), cloneCLI.Round(time.Millisecond))

	var sync, commit, push, maoAll, cliAll, cliNamed []time.Duration
	for i := range *reps + 1 { // the first is a warm-up
		newFiles(b, ours, 2*i)
		var s, c, p time.Duration
		all := timed(func() {
			s = timed(func() {
				if _, _, err := r.Sync(ctx, ours, server+"data.git", ""); err != nil {
					b.Fatal(err)
				}
			})
			c = timed(func() {
				if _, got, err := r.Commit(ctx, ours, fmt.Sprintf("run %d", i), nil); err != nil || len(got) != 10 {
					b.Fatalf("commit: %v, %d files", err, len(got))
				}
			})
			p = timed(func() {
				if res, err := r.Push(ctx, ours, gitrepo.PushOptions{}); err != nil || res.Sent != 1 {
					b.Fatalf("push: %+v %v", res, err)
				}
			})
		})
		named := newFiles(b, cli, 2*i)
		cliA := timed(func() {
			git(b, cli, "pull", "-q", "--ff-only")
			git(b, cli, "add", "-A")
			git(b, cli, "commit", "-q", "-m", fmt.Sprintf("run %d", 2*i))
			git(b, cli, "push", "-q")
		})
		named = newFiles(b, cli, 2*i+1)
		cliN := timed(func() {
			git(b, cli, "pull", "-q", "--ff-only")
			git(b, cli, append([]string{"add", "--"}, named...)...)
			git(b, cli, "commit", "-q", "-m", fmt.Sprintf("run %d", 2*i+1))
			git(b, cli, "push", "-q")
		})
		if i == 0 {
			fmt.Printf("  warm-up: mao %s (sync %s, commit %s, push %s), git CLI add -A %s, add FILES %s\n",
				ms(all), ms(s), ms(c), ms(p), ms(cliA), ms(cliN))
			continue
		}
		sync, commit, push = append(sync, s), append(commit, c), append(push, p)
		maoAll, cliAll, cliNamed = append(maoAll, all), append(cliAll, cliA), append(cliNamed, cliN)
	}
	fmt.Printf("  medians of %d: mao sync %s, commit %s, push %s\n", *reps, ms(percentile(sync, 0.5)), ms(percentile(commit, 0.5)), ms(percentile(push, 0.5)))
	line("sync+commit+push vs add -A", percentile(maoAll, 0.5), percentile(cliAll, 0.5))
	line("sync+commit+push vs add FILES", percentile(maoAll, 0.5), percentile(cliNamed, 0.5))
	b.ReportMetric(float64(percentile(maoAll, 0.5))/float64(percentile(cliAll, 0.5)), "ratio-add-A")
	b.ReportMetric(float64(percentile(maoAll, 0.5))/float64(percentile(cliNamed, 0.5)), "ratio-add-files")
}

// BenchmarkBacklog: 100 runs' commits (one new file each) wait in a
// clone while the remote is down (gitrepo); the remote comes back and one
// Push flushes them, timed, counting the server's connections, which must
// be one, and the attempts. Baseline: `git push` by the git CLI of the
// same 100 commits, from the same clone's git directory, to a copy of the
// repository as it was, on the same server. reps times, medians.
func BenchmarkBacklog(b *testing.B) {
	n := max(*backlog, 1)
	var ours, cli []time.Duration
	for rep := range max(*reps, 1) {
		repos := gitserver.New(b)
		repos.Bare(b, "data", nil)
		baseline(b, repos, "baseline")
		server, gate := repos.GatedDaemon(b)
		dir := filepath.Join(b.TempDir(), "data")
		r := gitrepo.New(gitrepo.Options{})
		ctx := context.Background()
		if _, _, err := r.Sync(ctx, dir, server+"data.git", ""); err != nil {
			b.Fatal(err)
		}
		gate.Down()
		for i := range n {
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("run-%04d.csv", i)), []byte(fmt.Sprintf("%d\n", i)), 0o644); err != nil {
				b.Fatal(err)
			}
			if _, _, err := r.Commit(ctx, dir, fmt.Sprintf("run %d", i), nil); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := r.Push(ctx, dir, gitrepo.PushOptions{}); err == nil {
			b.Fatal("a push to a remote that is down landed")
		}
		gate.Up()
		before := gate.Connections()
		var res gitrepo.PushResult
		took := timed(func() {
			var err error
			if res, err = r.Push(ctx, dir, gitrepo.PushOptions{}); err != nil {
				b.Fatal(err)
			}
		})
		conns := gate.Connections() - before
		if res.Sent != n || res.Attempts != 1 || conns != 1 {
			b.Fatalf("flushed %d of %d commits in %d attempts over %d connections; want all in one", res.Sent, n, res.Attempts, conns)
		}
		tookCLI := timed(func() { git(b, "", "--git-dir", gitrepo.GitDir(dir), "push", "-q", server+"baseline.git", "main:main") })
		if rep == 0 {
			fmt.Printf("BenchmarkBacklog: %d commits flushed in one push (%d connection, %d attempt)\n", res.Sent, conns, res.Attempts)
		}
		ours, cli = append(ours, took), append(cli, tookCLI)
	}
	line(fmt.Sprintf("median of %d flushes", len(ours)), percentile(ours, 0.5), percentile(cli, 0.5))
	b.ReportMetric(float64(percentile(ours, 0.5))/float64(percentile(cli, 0.5)), "ratio")
}
