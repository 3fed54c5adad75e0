package daemon

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage/filesystem"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/internal/testenv"
	"github.com/mao-research/mao/orchestrator/config"
	"github.com/mao-research/mao/orchestrator/gitrepo"
	"github.com/mao-research/mao/orchestrator/runner"
)

type site struct {
	d      *Daemon
	client *api.Client
	cfg    config.Config
	stop   func() error // shuts the daemon down and returns Wait's error
}

func startSite(t *testing.T, cfg config.Config) *site {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d, err := Start(ctx, cfg, Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		return d.Wait()
	}
	t.Cleanup(func() { stop() })
	client, err := api.NewClient(apiAddr(t, cfg), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	return &site{d: d, client: client, cfg: cfg, stop: stop}
}

// apiAddr is the address a started site wrote into its data directory.
func apiAddr(t *testing.T, cfg config.Config) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(cfg.Site.DataDir, AddrFile))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// runToEnd starts a run, follows its log to the end and returns the final
// record and the log.
func (s *site) runToEnd(t *testing.T, tool string) (api.Run, string) {
	t.Helper()
	ctx := context.Background()
	runs, err := s.client.RunTool(ctx, tool, api.RunRequest{})
	if err != nil {
		t.Fatalf("run %s: %v", tool, err)
	}
	run := runs[0]
	var log bytes.Buffer
	if err := s.client.RunLogs(ctx, run.ID, api.LogOptions{Follow: true}, &log); err != nil {
		t.Fatalf("follow %s: %v", run.ID, err)
	}
	run, err = s.client.Run(ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !run.State.Terminal() {
		t.Fatalf("run %s is %s after its log ended", run.ID, run.State)
	}
	return run, log.String()
}

func containersOf(t *testing.T, runID string) int {
	t.Helper()
	list, err := testenv.Docker(t).ContainerList(context.Background(), container.ListOptions{
		All: true, Filters: filters.NewArgs(filters.Arg("label", runner.LabelRun+"="+runID))})
	if err != nil {
		t.Fatal(err)
	}
	return len(list)
}

func tool(name, image, dataRepo string, args ...string) api.Tool {
	return api.Tool{Name: name, Author: "tests", Image: image, DataRepo: dataRepo, Artefact: "test output",
		Command: args, Network: "none", Timeout: "2m"}
}

func TestRuns(t *testing.T) {
	image := testenv.BuildTestImage(t)
	s := startSite(t, testenv.SiteConfig(t, "site-a", testenv.Etcd(t)))
	ctx := context.Background()
	if _, err := s.client.RegisterDataset(ctx, api.Dataset{Name: "inputs", URL: testenv.GitRepo(t, map[string]string{"input.csv": "1\n"})}); err != nil {
		t.Fatal(err)
	}
	withInput := tool("reads-input", image, testenv.GitRepo(t, nil), "-input")
	withInput.InputDataset = "inputs"
	timesOut := tool("sleeps", image, testenv.GitRepo(t, nil), "-sleep", "60s")
	timesOut.Timeout = "1s"
	tests := []struct {
		tool      api.Tool
		state     api.RunState
		exitCode  int // -1: none
		reason    string
		logHas    string
		committed bool
	}{
		{tool("succeeds", image, testenv.GitRepo(t, nil), "-lines", "3", "-control", "42"), api.StateSucceeded, 0, "", "line 3\n", true},
		{tool("exits-3", image, testenv.GitRepo(t, nil), "-control", "1", "-exit", "3"), api.StateFailed, 3, "exit code 3", "exiting with 3", false},
		{timesOut, api.StateTimedOut, -1, "timed out after 1s", "sleeping 1m0s", false},
		{tool("unreachable", image, "git://"+testenv.ClosedPort(t)+"/data.git"), api.StateFailed, -1, "connection refused", "connection refused", false},
		{tool("no-image", "127.0.0.1:9/missing:1", testenv.GitRepo(t, nil)), api.StateFailed, -1, "pull 127.0.0.1:9/missing:1", "pull", false},
		{withInput, api.StateSucceeded, 0, "", "input: input.csv", false},
	}
	for _, tc := range tests {
		t.Run(tc.tool.Name, func(t *testing.T) {
			if _, err := s.client.RegisterTool(ctx, tc.tool); err != nil {
				t.Fatal(err)
			}
			run, log := s.runToEnd(t, tc.tool.Name)
			if run.State != tc.state || !strings.Contains(run.Reason, tc.reason) {
				t.Fatalf("state %s reason %q, want %s %q\nlog:\n%s", run.State, run.Reason, tc.state, tc.reason, log)
			}
			if tc.exitCode >= 0 && (run.ExitCode == nil || *run.ExitCode != tc.exitCode) {
				t.Errorf("exit code %v, want %d", run.ExitCode, tc.exitCode)
			}
			if !strings.Contains(log, tc.logHas) {
				t.Errorf("log does not contain %q:\n%s", tc.logHas, log)
			}
			if n := containersOf(t, run.ID); n != 0 {
				t.Errorf("%d containers of the run remain", n)
			}
			if got := run.DataCommitAfter != run.DataCommitBefore; got != tc.committed {
				t.Errorf("committed = %v (%s → %s), want %v", got, run.DataCommitBefore, run.DataCommitAfter, tc.committed)
			}
			if tc.committed && (len(run.Files) != 1 || !strings.HasPrefix(run.Files[0], "control-")) {
				t.Errorf("files %v", run.Files)
			}
			if run.ImageID == "" && tc.state == api.StateSucceeded {
				t.Errorf("no image ID recorded")
			}
		})
	}
	// The failed run's control file was discarded, not left for the next commit.
	clone := filepath.Join(s.cfg.Site.DataDir, "repos", "exits-3")
	if entries, _ := os.ReadDir(clone); len(entries) != 1 { // README; the git directory is outside the work tree
		t.Errorf("failed run's output left in the clone: %v", entries)
	}
}

func TestConcurrentRunsShareOneClone(t *testing.T) {
	image := testenv.BuildTestImage(t)
	s := startSite(t, testenv.SiteConfig(t, "site-a", testenv.Etcd(t)))
	if _, err := s.client.RegisterTool(context.Background(), tool("counter", image, testenv.GitRepo(t, nil), "-control", "7")); err != nil {
		t.Fatal(err)
	}
	const n = 4
	results := make(chan api.Run, n)
	for range n {
		go func() {
			run, _ := s.runToEnd(t, "counter")
			results <- run
		}()
	}
	commits := map[string]bool{}
	for range n {
		run := <-results
		if run.State != api.StateSucceeded || len(run.Files) != 1 {
			t.Fatalf("run %s: %s %q files %v", run.ID, run.State, run.Reason, run.Files)
		}
		commits[run.DataCommitAfter] = true
	}
	if len(commits) != n {
		t.Fatalf("%d distinct commits for %d runs", len(commits), n)
	}
	clone := filepath.Join(s.cfg.Site.DataDir, "repos", "counter")
	repo, err := git.Open(filesystem.NewStorage(osfs.New(gitrepo.GitDir(clone)), cache.NewObjectLRUDefault()), osfs.New(clone))
	if err != nil {
		t.Fatal(err)
	}
	iter, err := repo.Log(&git.LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	count := 0
	iter.ForEach(func(*object.Commit) error { count++; return nil })
	if count != n+1 {
		t.Fatalf("clone has %d commits, want %d", count, n+1)
	}
}

func TestShutdownRecordsRunningRuns(t *testing.T) {
	image := testenv.BuildTestImage(t)
	endpoints := testenv.Etcd(t)
	cfg := testenv.SiteConfig(t, "site-a", endpoints)
	cfg.Runs.ShutdownGrace = 200 * time.Millisecond
	s := startSite(t, cfg)
	ctx := context.Background()
	if _, err := s.client.RegisterTool(ctx, tool("long", image, testenv.GitRepo(t, nil), "-sleep", "60s")); err != nil {
		t.Fatal(err)
	}
	runs, err := s.client.RunTool(ctx, "long", api.RunRequest{})
	if err != nil {
		t.Fatal(err)
	}
	run := runs[0]
	// Follow the log until the tool says it sleeps: then it is running.
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(s.client.RunLogs(ctx, run.ID, api.LogOptions{Follow: true}, pw)) }()
	buf := make([]byte, 4096)
	var seen string
	for !strings.Contains(seen, "sleeping") {
		n, err := pr.Read(buf)
		if err != nil {
			t.Fatalf("log ended before the tool slept: %q %v", seen, err)
		}
		seen += string(buf[:n])
	}
	go io.Copy(io.Discard, pr)
	if err := s.stop(); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: endpoints})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	resp, err := c.Get(ctx, "/mao/runs/"+run.ID)
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("run record: %v %v", resp, err)
	}
	if got := string(resp.Kvs[0].Value); !strings.Contains(got, `"state":"failed"`) || !strings.Contains(got, "shut down") {
		t.Fatalf("run record after shutdown: %s", got)
	}
	if n := containersOf(t, run.ID); n != 0 {
		t.Fatalf("%d containers remain after shutdown", n)
	}
	if resp, _ := c.Get(ctx, "/mao/sites/", clientv3.WithPrefix()); len(resp.Kvs) != 0 {
		t.Fatalf("site record survived a clean shutdown")
	}
}
