package gitserver

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mao-research/mao/internal/testenv"
)

// Repos is a directory of bare repositories that the servers serve.
type Repos struct {
	Root string
}

// New returns an empty directory of repositories, removed when the test
// ends.
func New(t testing.TB) *Repos {
	t.Helper()
	return &Repos{Root: t.TempDir()}
}

// Bare creates the bare repository name.git with one commit on main that
// holds files (a README when files is nil), and returns its path. Pushes
// that are not fast-forwards are refused.
func (r *Repos) Bare(t testing.TB, name string, files map[string]string) string {
	t.Helper()
	bare := filepath.Join(r.Root, name+".git")
	runGit(t, "", "init", "-q", "--bare", "-b", "main", bare)
	runGit(t, bare, "config", "receive.denyNonFastForwards", "true")
	runGit(t, bare, "config", "receive.denyDeletes", "true")
	runGit(t, bare, "config", "http.receivepack", "true")
	work := t.TempDir()
	runGit(t, "", "clone", "-q", bare, work)
	if files == nil {
		files = map[string]string{"README": "test data repository\n"}
	}
	for path, content := range files {
		full := filepath.Join(work, filepath.FromSlash(path))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	runGit(t, work, "add", "-A")
	runGit(t, work, "-c", "user.name=gitserver", "-c", "user.email=gitserver@localhost", "commit", "-q", "-m", "initial")
	runGit(t, work, "push", "-q", "origin", "HEAD:main")
	return bare
}

// Log returns the subjects of the commits on branch of the repository
// name, newest first, and whether the branch exists.
func (r *Repos) Log(t testing.TB, name, branch string) ([]string, bool) {
	t.Helper()
	bare := filepath.Join(r.Root, name+".git")
	if err := exec.Command("git", "-C", bare, "rev-parse", "--verify", "-q", "refs/heads/"+branch).Run(); err != nil {
		return nil, false
	}
	out := runGit(t, bare, "log", "--format=%s", "refs/heads/"+branch)
	return strings.Split(strings.TrimSpace(out), "\n"), true
}

// Git runs git in the repository name and returns its standard output.
func (r *Repos) Git(t testing.TB, name string, args ...string) string {
	t.Helper()
	return runGit(t, filepath.Join(r.Root, name+".git"), args...)
}

// runGit runs the git CLI in dir ("" for the current directory), with no
// configuration of the machine or the user, and fails the test if it
// fails.
func runGit(t testing.TB, dir string, args ...string) string {
	t.Helper()
	if dir != "" {
		args = append([]string{"-C", dir}, args...)
	}
	cmd := exec.Command("git", args...)
	cmd.Env = gitEnv()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// gitEnv is an environment for git that ignores the machine's and the
// user's configuration.
func gitEnv() []string {
	return append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_TERMINAL_PROMPT=0")
}

// Down returns a git:// URL of a remote that is down: a loopback port on
// which nothing listens.
func Down(t testing.TB, name string) string {
	t.Helper()
	return "git://" + testenv.ClosedPort(t) + "/" + name + ".git"
}
