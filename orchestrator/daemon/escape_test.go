package daemon

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/internal/testenv"
	"github.com/mao-research/mao/orchestrator/gitrepo"
)

// TestToolCannotWriteOutsideItsClone replays, through a real container,
// what a network: none tool did to make the orchestrator commit into
// another repository of the host: its data folder gets a .git that
// redirects elsewhere. The run fails with the reason, and neither that
// repository nor anything outside the clone changes; a link is committed
// as a link.
func TestToolCannotWriteOutsideItsClone(t *testing.T) {
	image := testenv.BuildTestImage(t)
	cfg := testenv.SiteConfig(t, "site-a", testenv.Etcd(t))
	cfg.Runs.MaxOutputFiles = 50
	s := startSite(t, cfg)
	ctx := context.Background()

	// A bare repository that other sites clone, and a secret, on the host.
	upstream := testenv.GitRepo(t, map[string]string{"shared.txt": "shared"})
	bare := filepath.Join(t.TempDir(), "shared.git")
	if out, err := exec.Command("git", "clone", "--quiet", "--bare", strings.TrimPrefix(upstream, "file://"), bare).CombinedOutput(); err != nil {
		t.Fatalf("git clone --bare: %v\n%s", err, out)
	}
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	refsBefore := gitOut(t, bare, "for-each-ref")

	many := []string{}
	for i := range 60 {
		many = append(many, "-write", fmt.Sprintf("out/f%02d.csv=%d", i, i))
	}
	tests := []struct {
		tool   api.Tool
		state  api.RunState
		reason string
		files  []string
	}{
		{tool("gitdir-redirect", image, testenv.GitRepo(t, nil), "-control", "1", "-write", ".git=gitdir: "+bare+"\n"),
			api.StateFailed, "output refused: .git is named like .git", nil},
		{tool("own-git-config", image, testenv.GitRepo(t, nil), "-write", ".git/config=[core]\n\tworktree = /\n",
			"-link", ".git/objects="+filepath.Join(bare, "objects")),
			api.StateFailed, "output refused: .git is named like .git", nil},
		{tool("too-many-files", image, testenv.GitRepo(t, nil), many...),
			api.StateFailed, "the run wrote more than max_output_files = 50", nil},
		{tool("links-out", image, testenv.GitRepo(t, nil), "-link", "leak="+secret),
			api.StateSucceeded, "", []string{"leak"}},
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
			if tc.state == api.StateSucceeded && !slices.Equal(run.Files, tc.files) {
				t.Errorf("files %q, want %q", run.Files, tc.files)
			}
			clone := filepath.Join(s.cfg.Site.DataDir, "repos", tc.tool.Name)
			if _, err := os.Lstat(filepath.Join(clone, ".git")); err == nil {
				t.Error("the tool's .git is still in the clone")
			}
			if st := gitOut(t, gitrepo.GitDir(clone), "--work-tree="+clone, "status", "--porcelain"); st != "" {
				t.Errorf("the clone is not clean:\n%s", st)
			}
		})
	}
	if got := gitOut(t, bare, "for-each-ref"); got != refsBefore {
		t.Errorf("the other repository's refs changed:\n%s\nwere\n%s", got, refsBefore)
	}
	gitOut(t, bare, "fsck", "--strict")
	if b, err := os.ReadFile(secret); err != nil || string(b) != "secret" {
		t.Errorf("the secret changed: %q, %v", b, err)
	}
}

func gitOut(t *testing.T, gitDir string, args ...string) string {
	t.Helper()
	out, err := exec.Command("git", append([]string{"--git-dir=" + gitDir}, args...)...).Output()
	if err != nil {
		t.Fatalf("git %s: %v", strings.Join(args, " "), err)
	}
	return string(out)
}
