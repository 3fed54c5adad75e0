package runner

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/internal/testenv"
	"github.com/mao-research/mao/orchestrator/container"
	"github.com/mao-research/mao/orchestrator/gitrepo"
	"github.com/mao-research/mao/orchestrator/runlog"
	"github.com/mao-research/mao/toolspec"
)

// realGit is gitrepo, telling when a commit starts.
type realGit struct {
	*gitrepo.Repos
	committing chan struct{} // receives when Commit starts, if not nil
}

func (g realGit) Commit(ctx context.Context, dir, msg string, keep func() error) (string, []string, error) {
	if g.committing != nil {
		g.committing <- struct{}{}
	}
	return g.Repos.Commit(ctx, dir, msg, keep)
}

// TestRunOutputWithGit runs the runner over real clones (gitrepo): a tool
// whose output is refused, or whose commit is stopped midway, fails with
// the reason; nothing is committed and the clone is left clean (at once,
// or by the next sync).
func TestRunOutputWithGit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts gitrepo.Options
		// tool is what the tool does in its data folder; bare is a
		// repository it aims at.
		tool func(t *testing.T, data, bare string)
		// stop, if set, stops the run once its commit has started.
		stop       func(r *Runner)
		wantReason string
	}{
		{"over max_output_files", gitrepo.Options{MaxOutputFiles: 5}, func(t *testing.T, data, _ string) {
			writeFiles(t, data, 10)
		}, nil, "commit the run's output: commit DIR: output refused: the run wrote more than max_output_files = 5"},
		{"over max_output_bytes", gitrepo.Options{MaxOutputBytes: 100}, func(t *testing.T, data, _ string) {
			if err := os.WriteFile(filepath.Join(data, "big.csv"), make([]byte, 101), 0o644); err != nil {
				t.Fatal(err)
			}
		}, nil, "the run wrote more than max_output_bytes = 100 bytes"},
		{"a .git redirecting to another repository", gitrepo.Options{}, func(t *testing.T, data, bare string) {
			if err := os.WriteFile(filepath.Join(data, ".git"), []byte("gitdir: "+bare+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, nil, "output refused: .git is named like .git"},
		{"shutdown during a large commit", gitrepo.Options{}, func(t *testing.T, data, _ string) {
			writeFiles(t, data, 20000)
		}, func(r *Runner) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel() // the grace is over
			r.Shutdown(ctx)
		}, "interrupted while committing the run's output: the orchestrator shut down"},
		{"the site lost the run during a large commit", gitrepo.Options{}, func(t *testing.T, data, _ string) {
			writeFiles(t, data, 20000)
		}, func(r *Runner) {
			r.Abandon(errors.New("the site's lease expired"))
		}, "interrupted while committing the run's output: the site's lease expired"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			url := testenv.GitRepo(t, nil)
			bare := filepath.Join(t.TempDir(), "other.git")
			if err := os.Mkdir(bare, 0o755); err != nil {
				t.Fatal(err)
			}
			logs, err := runlog.Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			dataDir := t.TempDir()
			g := realGit{Repos: gitrepo.New(tt.opts)}
			if tt.stop != nil {
				g.committing = make(chan struct{}, 1)
			}
			rt := &fakeContainers{onRun: func(spec container.Spec) { tt.tool(t, spec.Mounts[0].Source, bare) }}
			reg := &fakeRegistry{tools: map[string]toolspec.Tool{
				"t": {Name: "t", Author: "a", Image: "img:1", DataRepo: url, Network: "none"},
			}}
			rec := &fakeRecords{}
			r := New(reg, rec, rt, g, Options{Site: "s1", DataDir: dataDir, Logs: logs})
			run, err := r.Start(context.Background(), "t", "")
			if err != nil {
				t.Fatal(err)
			}
			if tt.stop != nil {
				<-g.committing
				start := time.Now()
				tt.stop(r)
				t.Logf("stopped the run in %v", time.Since(start))
			}
			r.Shutdown(context.Background())

			got := rec.last(run.ID)
			clone := filepath.Join(dataDir, "repos", "t")
			want := strings.ReplaceAll(tt.wantReason, "DIR", clone)
			if got.State != api.StateFailed || !strings.Contains(got.Reason, want) {
				t.Fatalf("run %s %q; want failed with %q", got.State, got.Reason, want)
			}
			if got.DataCommitAfter != got.DataCommitBefore {
				t.Errorf("the run committed %s", got.DataCommitAfter)
			}
			// What the run left, the next sync discards (if the runner
			// could not), and the clone is at the commit it started from.
			head, _, err := gitrepo.New(gitrepo.Options{}).Sync(context.Background(), clone, url, "")
			if err != nil || head != got.DataCommitBefore {
				t.Fatalf("Sync = %s, %v; want %s", head, err, got.DataCommitBefore)
			}
			entries, err := os.ReadDir(clone)
			if err != nil || len(entries) != 1 || entries[0].Name() != "README" {
				t.Errorf("the clone holds %v (%v), want only README", entries, err)
			}
			if others, _ := os.ReadDir(bare); len(others) != 0 {
				t.Errorf("the other repository was written to: %v", others)
			}
		})
	}
}

func writeFiles(t *testing.T, dir string, n int) {
	t.Helper()
	for i := range n {
		p := filepath.Join(dir, "out", fmt.Sprintf("%03d", i/500), fmt.Sprintf("%05d.csv", i))
		if i%500 == 0 {
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(p, []byte(fmt.Sprint(i)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestProvenance checks what a successful run records of what produced its
// output: its commit's message carries the Mao-* trailers that git reads
// (git log --format=%(trailers)), and its record the snapshot of what ran,
// with the tool's secret env values as *** and the schedule's env in.
func TestProvenance(t *testing.T) {
	t.Parallel()
	url := testenv.GitRepo(t, nil)
	logs, err := runlog.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dataDir := t.TempDir()
	rt := &fakeContainers{onRun: func(spec container.Spec) {
		if err := os.WriteFile(filepath.Join(spec.Mounts[0].Source, "out.csv"), []byte("1\n"), 0o644); err != nil {
			t.Error(err)
		}
	}}
	tool := toolspec.Tool{Name: "t", Author: "a", Image: "img:1", DataRepo: url, Network: "none",
		Command: []string{"crawl", "--deep"}, Env: map[string]string{"TOKEN": "s3cret", "ORG": "lab"},
		SecretEnv: []string{"TOKEN"}, Resources: &toolspec.Resources{CPUs: 0.5, Memory: "64MiB"}, Timeout: "90s", Revision: 17}
	reg := &fakeRegistry{tools: map[string]toolspec.Tool{"t": tool}}
	rec := &fakeRecords{}
	r := New(reg, rec, rt, realGit{Repos: gitrepo.New(gitrepo.Options{})}, Options{Site: "s1", DataDir: dataDir, Logs: logs, Version: "9.9.9"})
	run, err := r.Start(context.Background(), "t", "")
	if err != nil {
		t.Fatal(err)
	}
	r.Shutdown(context.Background())
	got := rec.last(run.ID)
	if got.State != api.StateSucceeded {
		t.Fatalf("run %s: %s", got.State, got.Reason)
	}
	wantSpec := api.RunSpec{Command: []string{"crawl", "--deep"}, Env: map[string]string{"TOKEN": "***", "ORG": "lab"},
		SecretEnv: []string{"TOKEN"}, Resources: &toolspec.Resources{CPUs: 0.5, Memory: "64MiB"}, Memory: 64 << 20,
		User: got.Spec.User, Timeout: "1m30s", SpecRevision: 17, Version: "9.9.9"}
	if got.Spec == nil || !reflect.DeepEqual(*got.Spec, wantSpec) {
		t.Errorf("snapshot %+v; want %+v", got.Spec, wantSpec)
	}
	if env := fmt.Sprint(rt.specs[0].Env); !strings.Contains(env, "TOKEN=s3cret") {
		t.Errorf("the container's env %s lacks the secret's value", env)
	}
	clone := filepath.Join(dataDir, "repos", "t")
	out, err := exec.Command("git", "--git-dir", gitrepo.GitDir(clone), "log", "-1", "--format=%(trailers)", got.DataCommitAfter).CombinedOutput()
	if err != nil {
		t.Fatalf("git log: %v: %s", err, out)
	}
	want := fmt.Sprintf("Mao-Run: %s\nMao-Tool: t\nMao-Site: s1\nMao-Scheduled-Time: %s\nMao-Image: img:1@sha256:d\n"+
		"Mao-Spec-Revision: 17\nMao-Version: 9.9.9\n\n", run.ID, got.CreatedAt.UTC().Format(time.RFC3339))
	if string(out) != want {
		t.Errorf("trailers:\n%s\nwant:\n%s", out, want)
	}
}
