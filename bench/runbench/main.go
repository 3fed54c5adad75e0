// Command runbench compares a tool run through mao (`maoctl tool run
// --follow`) with a bare `docker run --rm` of the same image, interleaved in
// one process so that both see the same machine. See bench/README.md.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	maoctl := flag.String("maoctl", "bin/maoctl", "maoctl binary")
	orchestrator := flag.String("orchestrator", "bin/orchestrator", "orchestrator binary")
	image := flag.String("image", "mao-examples/file-count:latest", "a trivial tool image (make example-image)")
	n := flag.Int("n", 20, "runs of each kind (at least 10)")
	warmup := flag.Int("warmup", 2, "untimed runs of each kind first")
	flag.Parse()
	if err := run(*maoctl, *orchestrator, *image, max(*n, 10), *warmup); err != nil {
		fmt.Fprintln(os.Stderr, "runbench:", err)
		os.Exit(1)
	}
}

func run(maoctl, orchestrator, image string, n, warmup int) error {
	dir, err := os.MkdirTemp("", "mao-runbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if out, err := exec.Command("docker", "image", "inspect", image).CombinedOutput(); err != nil {
		return fmt.Errorf("image %s is not there (make example-image): %v\n%s", image, err, out)
	}
	stop, addr, err := startOrchestrator(orchestrator, dir)
	if err != nil {
		return err
	}
	defer stop()
	dataRepo := filepath.Join(dir, "data.git")
	if err := gitRepo(dataRepo); err != nil {
		return err
	}
	env := append(os.Environ(), "MAO_ADDR="+addr)
	if out, err := command(env, maoctl, "tool", "register", "--name", "bench", "--author", "runbench", "--image", image,
		"--data-repo", "file://"+dataRepo, "--network", "none", "--artefact", "benchmark").CombinedOutput(); err != nil {
		return fmt.Errorf("register: %v\n%s", err, out)
	}
	bareData := filepath.Join(dir, "bare-data")
	if err := os.MkdirAll(bareData, 0o755); err != nil {
		return err
	}
	mao := func() error {
		return command(env, maoctl, "tool", "run", "bench", "--follow").Run()
	}
	bare := func() error {
		return command(env, "docker", "run", "--rm", "--network", "none", "-v", bareData+":/usr/src/app/data", image).Run()
	}
	for range warmup {
		if err := mao(); err != nil {
			return fmt.Errorf("warm-up maoctl run: %w", err)
		}
		if err := bare(); err != nil {
			return fmt.Errorf("warm-up docker run: %w", err)
		}
	}
	var maoTimes, bareTimes []time.Duration
	for i := range n {
		// Alternate which goes first, so neither always follows the other.
		first, second := mao, bare
		firstT, secondT := &maoTimes, &bareTimes
		if i%2 == 1 {
			first, second, firstT, secondT = bare, mao, &bareTimes, &maoTimes
		}
		for _, step := range []struct {
			f func() error
			t *[]time.Duration
		}{{first, firstT}, {second, secondT}} {
			start := time.Now()
			if err := step.f(); err != nil {
				return fmt.Errorf("run %d: %w", i, err)
			}
			*step.t = append(*step.t, time.Since(start))
		}
	}
	report(n, maoTimes, bareTimes)
	return nil
}

func command(env []string, name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Env = env
	return cmd
}

// startOrchestrator runs an orchestrator on free loopback ports and waits
// for its "ready" log line.
func startOrchestrator(bin, dir string) (stop func(), addr string, err error) {
	cfg := filepath.Join(dir, "config.ini")
	ini := fmt.Sprintf("[site]\nname = bench\ndata_dir = %s\n[etcd]\nclient_url = https://127.0.0.1:0\npeer_url = https://127.0.0.1:0\n[api]\nlisten = 127.0.0.1:0\n", filepath.Join(dir, "site"))
	if err := os.WriteFile(cfg, []byte(ini), 0o644); err != nil {
		return nil, "", err
	}
	cmd := exec.Command(bin, "-config", cfg)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, "", err
	}
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	stop = func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}
	ready := regexp.MustCompile(`orchestrator ready.* api=(http://\S+)`)
	lines := bufio.NewScanner(stderr)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	found := make(chan string, 1)
	go func() {
		for lines.Scan() {
			if m := ready.FindStringSubmatch(lines.Text()); m != nil {
				found <- m[1]
				break
			}
		}
		for lines.Scan() { // keep draining so the daemon never blocks on stderr
		}
	}()
	select {
	case addr = <-found:
		return stop, addr, nil
	case <-ctx.Done():
		stop()
		return nil, "", errors.New("the orchestrator did not become ready within a minute")
	}
}

func gitRepo(dir string) error {
	for _, args := range [][]string{
		{"init", "-q", "-b", "main", dir},
		{"-C", dir, "-c", "user.name=runbench", "-c", "user.email=bench@localhost", "commit", "-q", "--allow-empty", "-m", "initial"},
	} {
		if out, err := exec.Command("git", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	return nil
}

func report(n int, mao, bare []time.Duration) {
	slices.Sort(mao)
	slices.Sort(bare)
	q := func(d []time.Duration, p float64) time.Duration { return d[int(p*float64(len(d)-1)+0.5)] }
	row := func(name string, d []time.Duration) {
		fmt.Printf("%-44s %9s %9s %9s\n", name, ms(q(d, 0.5)), ms(q(d, 0.9)), ms(d[0]))
	}
	fmt.Printf("runs of each kind: %d (interleaved, after warm-up)\n", n)
	fmt.Printf("%-44s %9s %9s %9s\n", "", "median", "p90", "min")
	row("maoctl tool run --follow (mao)", mao)
	row("docker run --rm (baseline)", bare)
	ratio := float64(q(mao, 0.5)) / float64(q(bare, 0.5))
	verdict := "meets"
	if ratio > 1.15 {
		verdict = "MISSES"
	}
	fmt.Printf("ratio of medians mao/docker: %.3f (%s the target of <= 1.15)\n", ratio, verdict)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d.Microseconds())/1000) }
