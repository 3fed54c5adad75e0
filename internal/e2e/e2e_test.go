package e2e

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/mao-research/mao/internal/testenv"
	"github.com/mao-research/mao/maoctl"
	"github.com/mao-research/mao/orchestrator/daemon"
)

// site starts an orchestrator on the embedded etcd, the zero-config default,
// and returns a function that runs maoctl against it.
func site(t *testing.T) func(args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cfg := testenv.SiteConfig(t, "e2e", nil)
	d, err := daemon.Start(ctx, cfg, daemon.Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		if err := d.Wait(); err != nil {
			t.Errorf("orchestrator stopped with %v", err)
		}
	})
	addr, err := os.ReadFile(filepath.Join(cfg.Site.DataDir, daemon.AddrFile))
	if err != nil {
		t.Fatal(err)
	}
	return func(args ...string) (string, string, int) {
		var out, errOut bytes.Buffer
		err := maoctl.Run(context.Background(), append([]string{"--addr", strings.TrimSpace(string(addr))}, args...), &out, &errOut)
		maoctl.PrintError(&errOut, err)
		return out.String(), errOut.String(), maoctl.ExitCode(err)
	}
}

// TestDemo is what `make demo` does, through maoctl: the example tool reads
// its input dataset and commits its counts into its data repository.
func TestDemo(t *testing.T) {
	image := testenv.ExampleImage(t, "file-count")
	ctl := site(t)
	examples := filepath.Join(testenv.RepoRoot(), "examples", "file-count")
	input := testenv.GitRepo(t, map[string]string{"a.csv": "1", "b.csv": "2", "c.json": "{}"})
	data := testenv.GitRepo(t, nil)
	steps := []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"dataset", "register", "-f", filepath.Join(examples, "dataset.yaml"), "--url", input}, 0, "registered dataset example-input"},
		{[]string{"tool", "register", "-f", filepath.Join(examples, "tool.yaml"), "--data-repo", data, "--image", image}, 0, "registered tool file-count"},
		{[]string{"tool", "run", "file-count", "--follow"}, 0, "counted 3 files in /usr/src/app/input"},
		{[]string{"run", "list", "--tool", "file-count"}, 0, "succeeded"},
		{[]string{"dataset", "clone", "example-input", filepath.Join(t.TempDir(), "clone")}, 0, ""},
	}
	for _, st := range steps {
		out, errOut, code := ctl(st.args...)
		if code != st.code || !strings.Contains(out+errOut, st.out) {
			t.Fatalf("maoctl %s: exit %d, want %d with %q\nstdout:\n%s\nstderr:\n%s", strings.Join(st.args, " "), code, st.code, st.out, out, errOut)
		}
	}
	out, _, _ := ctl("run", "list", "--tool", "file-count", "-o", "json")
	id := between(out, `"id": "`, `"`)
	show, errOut, code := ctl("run", "show", id)
	for _, want := range []string{`State:\s+succeeded`, `Exit code:\s+0`, "control-", "counts/", "wrote control-"} {
		if code != 0 || !regexp.MustCompile(want).MatchString(show) {
			t.Fatalf("run show lacks %q (exit %d):\n%s%s", want, code, show, errOut)
		}
	}
}

func TestFollowExitsWithTheToolsCode(t *testing.T) {
	image := testenv.BuildTestImage(t)
	ctl := site(t)
	tests := []struct {
		name    string
		args    []string
		code    int
		summary string
	}{
		{"ok", []string{"--command", "-lines", "--command", "2"}, 0, "succeeded"},
		{"three", []string{"--command", "-exit", "--command", "3"}, 3, "failed (exit 3)"},
		{"slow", []string{"--command", "-sleep", "--command", "30s", "--timeout", "1s"}, 124, "timed out after 1s"},
		{"absent", []string{"--image", "127.0.0.1:9/missing:1"}, 1, "pull 127.0.0.1:9/missing:1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			register := append([]string{"tool", "register", "--name", tc.name, "--author", "e2e", "--image", image,
				"--data-repo", testenv.GitRepo(t, nil), "--network", "none"}, tc.args...)
			if _, errOut, code := ctl(register...); code != 0 {
				t.Fatalf("register: %s", errOut)
			}
			out, errOut, code := ctl("tool", "run", tc.name, "--follow")
			if code != tc.code || !strings.Contains(errOut, tc.summary) {
				t.Fatalf("exit %d, want %d; stderr %q should mention %q\nstdout:\n%s", code, tc.code, errOut, tc.summary, out)
			}
			if strings.Count(errOut, "\n") > 3 {
				t.Errorf("more than a start line and a summary on stderr:\n%s", errOut)
			}
		})
	}
}

func TestUnknownNamesAndUnreachable(t *testing.T) {
	ctl := site(t)
	for _, args := range [][]string{{"tool", "show", "nope"}, {"dataset", "show", "nope"}, {"tool", "run", "nope"}, {"run", "show", "nope"}} {
		_, errOut, code := ctl(args...)
		if code != 1 || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "nope") {
			t.Errorf("maoctl %v: exit %d, stderr %q; want one line naming it", args, code, errOut)
		}
	}
	var out, errOut bytes.Buffer
	err := maoctl.Run(context.Background(), []string{"--addr", testenv.ClosedPort(t), "tool", "list"}, &out, &errOut)
	maoctl.PrintError(&errOut, err)
	if maoctl.ExitCode(err) != 1 || strings.Count(errOut.String(), "\n") != 1 {
		t.Fatalf("unreachable orchestrator: exit %d, stderr %q", maoctl.ExitCode(err), errOut.String())
	}
}

// between returns the text after the first start and before the next end.
func between(s, start, end string) string {
	_, after, _ := strings.Cut(s, start)
	v, _, _ := strings.Cut(after, end)
	return v
}
