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
	"github.com/mao-research/mao/orchestrator/runs"
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
		User: "", Timeout: "1m30s", SpecRevision: 17, Version: "9.9.9"}
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

// TestReplay checks a replay over real clones: it runs the original's
// snapshot in the original's image (by digest), with the original's
// MAO_RUN_ID and the tool's current secret, on a scratch checkout of the
// data repository at the original's commit before; it leaves the site's
// clone alone; and it compares its output with the original's commit:
// reproduced when the tool is deterministic, else the differing files
// with sizes and hashes. The original's commit was never pushed: the
// scratch comes from the site's own clone.
func TestReplay(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// write is what the tool writes; n counts its runs (1: the
		// original).
		write       func(n int) map[string]string
		wantVerdict string
		wantDiffs   []string
	}{
		{"deterministic", func(int) map[string]string {
			return map[string]string{"out/a.csv": "1,2\n", "b.txt": "same"}
		}, api.ReplayReproduced, nil},
		{"output holds the time", func(n int) map[string]string {
			return map[string]string{"out/a.csv": "1,2\n", "stamp.txt": fmt.Sprintf("run at %d", n)}
		}, api.ReplayDiffers, []string{"stamp.txt"}},
		{"a file the original did not write", func(n int) map[string]string {
			if n == 1 {
				return map[string]string{"a.txt": "x"}
			}
			return map[string]string{"a.txt": "x", "extra.txt": "y"}
		}, api.ReplayDiffers, []string{"extra.txt"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			url := testenv.GitRepo(t, nil)
			logs, err := runlog.Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			dataDir := t.TempDir()
			var runsMade int
			rt := &fakeContainers{onRun: func(spec container.Spec) {
				runsMade++
				for p, content := range tt.write(runsMade) {
					path := filepath.Join(spec.Mounts[0].Source, p)
					if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
						t.Error(err)
					}
					if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
						t.Error(err)
					}
				}
			}}
			tool := toolspec.Tool{Name: "t", Author: "a", Image: "img:1", DataRepo: url, Network: "none",
				Command: []string{"go"}, Env: map[string]string{"TOKEN": "old"}, SecretEnv: []string{"TOKEN"}}
			reg := &fakeRegistry{tools: map[string]toolspec.Tool{"t": tool}}
			rec := &fakeRecords{}
			r := New(reg, rec, rt, realGit{Repos: gitrepo.New(gitrepo.Options{})}, Options{Site: "s1", DataDir: dataDir, Logs: logs})
			ctx := context.Background()
			started, err := r.Start(ctx, "t", "")
			if err != nil {
				t.Fatal(err)
			}
			r.Shutdown(ctx)
			orig := rec.last(started.ID)
			if orig.State != api.StateSucceeded {
				t.Fatalf("original %s: %s", orig.State, orig.Reason)
			}
			// The secret changed since; a run after the original moved the
			// site's clone on.
			tool.Env["TOKEN"] = "new"
			r = New(reg, rec, rt, realGit{Repos: gitrepo.New(gitrepo.Options{})}, Options{Site: "s1", DataDir: dataDir, Logs: logs})
			if _, err := r.Start(ctx, "t", ""); err != nil {
				t.Fatal(err)
			}
			r.Shutdown(ctx)
			r = New(reg, rec, rt, realGit{Repos: gitrepo.New(gitrepo.Options{})}, Options{Site: "s1", DataDir: dataDir, Logs: logs})
			now := time.Now()
			replay := runs.NewReplay(runs.Manual("t", now), orig, runs.Ask{Site: "s1"}, now)
			if err := r.Create(ctx, replay, tool); err != nil {
				t.Fatal(err)
			}
			r.Shutdown(ctx)
			got := rec.last(replay.ID)
			if got.State != api.StateSucceeded || got.Replay == nil {
				t.Fatalf("replay %s: %s (%+v)", got.State, got.Reason, got.Replay)
			}
			spec := rt.specs[len(rt.specs)-1]
			if spec.Labels[LabelRun] != replay.ID {
				t.Fatalf("the last container was %s's", spec.Labels[LabelRun])
			}
			env := strings.Join(spec.Env, " ")
			if spec.Image != "sha256:img:1@sha256:d" || !strings.Contains(env, "MAO_RUN_ID="+orig.ID) || !strings.Contains(env, "TOKEN=new") {
				t.Errorf("the replay's container: image %s, env %s; want the original's image by digest, run ID and today's secret", spec.Image, env)
			}
			if !strings.Contains(got.Replay.Note, "TOKEN") {
				t.Errorf("the replay does not say where its secret came from: %q", got.Replay.Note)
			}
			if got.Replay.Verdict != tt.wantVerdict {
				t.Errorf("verdict %s; want %s (%+v)", got.Replay.Verdict, tt.wantVerdict, got.Replay)
			}
			var paths []string
			for _, d := range got.Replay.Differences {
				paths = append(paths, d.Path)
				if d.Replay == nil || len(d.Replay.SHA256) != 64 || (d.Original != nil && d.Original.SHA256 == d.Replay.SHA256) {
					t.Errorf("difference %s: %+v / %+v", d.Path, d.Original, d.Replay)
				}
			}
			if fmt.Sprint(paths) != fmt.Sprint(tt.wantDiffs) {
				t.Errorf("differences %v; want %v", paths, tt.wantDiffs)
			}
			// Nothing of the replay is kept: the site's clone is where the
			// run after the original left it, and the scratch is gone.
			if got.DataCommitAfter != "" || got.Verdicts != nil {
				t.Errorf("the replay recorded a commit %q or verdicts %v", got.DataCommitAfter, got.Verdicts)
			}
			if left, _ := os.ReadDir(filepath.Join(dataDir, replaysDir)); len(left) != 0 {
				t.Errorf("scratch left: %v", left)
			}
		})
	}
}

// TestReplayOfARebasedRun checks a replay of a run whose commit was rebased
// when it was pushed and is in no clone any more: it starts from the
// parent of the pushed copy (from the remote) and compares with that copy,
// saying so.
func TestReplayOfARebasedRun(t *testing.T) {
	t.Parallel()
	// The remote holds the pushed copy: out/a.csv on top of the initial
	// commit (not a bare repository: testenv.GitRepo's work tree).
	url := testenv.GitRepo(t, nil)
	remote := strings.TrimPrefix(url, "file://")
	if err := os.MkdirAll(filepath.Join(remote, "out"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(remote, "out", "a.csv"), []byte("1,2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"add", "out"}, {"-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-q", "-m", "pushed copy"}} {
		if out, err := exec.Command("git", append([]string{"-C", remote}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	head, err := exec.Command("git", "-C", remote, "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatal(err)
	}
	pushed := strings.TrimSpace(string(head))
	logs, err := runlog.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	rt := &fakeContainers{onRun: func(spec container.Spec) {
		dir := spec.Mounts[0].Source
		if err := os.MkdirAll(filepath.Join(dir, "out"), 0o755); err != nil {
			t.Error(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "out", "a.csv"), []byte("1,2\n"), 0o644); err != nil {
			t.Error(err)
		}
	}}
	tool := toolspec.Tool{Name: "t", Author: "a", Image: "img:1", DataRepo: url, Network: "none"}
	reg := &fakeRegistry{tools: map[string]toolspec.Tool{"t": tool}}
	rec := &fakeRecords{}
	r := New(reg, rec, rt, realGit{Repos: gitrepo.New(gitrepo.Options{})}, Options{Site: "s1", DataDir: t.TempDir(), Logs: logs})
	orig := api.Run{ID: "t-1700000000-000001", Tool: "t", Site: "s1", State: api.StateSucceeded, Trigger: api.TriggerManual,
		Image: "img:1", ImageID: "sha256:" + strings.Repeat("ab", 32), Network: "none", DataRepo: url,
		DataCommitBefore: strings.Repeat("f", 40), DataCommitAfter: strings.Repeat("e", 40), CreatedAt: time.Unix(1700000000, 0).UTC(),
		Spec: &api.RunSpec{Timeout: "1h0m0s"}, Push: &api.Push{State: api.PushPushed, Branch: "master", Commit: pushed}}
	now := time.Now()
	replay := runs.NewReplay(runs.Manual("t", now), orig, runs.Ask{Site: "s1"}, now)
	if err := r.Create(context.Background(), replay, tool); err != nil {
		t.Fatal(err)
	}
	r.Shutdown(context.Background())
	got := rec.last(replay.ID)
	if got.State != api.StateSucceeded || got.Replay == nil || got.Replay.Verdict != api.ReplayReproduced ||
		!strings.Contains(got.Replay.Note, "rebased when pushed") {
		t.Fatalf("replay %s %q: %+v", got.State, got.Reason, got.Replay)
	}
}
