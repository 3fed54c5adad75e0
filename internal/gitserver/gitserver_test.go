package gitserver

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// TestServers checks each way of serving against the git CLI, as a user
// would push: a clone, a fast-forward push that lands, a forced push that
// is refused, and a client without the right credentials refused; and
// that go-git, which mao uses, clones from each.
func TestServers(t *testing.T) {
	repos := New(t)
	repos.Bare(t, "data", map[string]string{"README": "hello\n"})
	ssh := repos.SSH(t)
	const user, password = "ada", "s3cret-pw"
	httpBase := repos.HTTP(t, user, password)
	sshCommand := "ssh -i " + ssh.KeyFile + " -o IdentitiesOnly=yes -o UserKnownHostsFile=" + ssh.KnownHosts + " -o StrictHostKeyChecking=yes"
	tests := []struct {
		name   string
		url    string
		env    []string
		bad    string   // a URL that must be refused
		badEnv []string // with these variables
		goAuth func(t *testing.T) transport.AuthMethod
	}{
		{name: "git daemon", url: repos.Daemon(t) + "data.git", bad: Down(t, "data")},
		{name: "http-backend", url: WithUser(httpBase+"data.git", user, password), bad: WithUser(httpBase+"data.git", user, "wrong"),
			goAuth: func(*testing.T) transport.AuthMethod { return &githttp.BasicAuth{Username: user, Password: password} }},
		{name: "ssh", url: ssh.Base + "data.git", env: []string{"GIT_SSH_COMMAND=" + sshCommand},
			bad: ssh.Base + "data.git", badEnv: []string{"GIT_SSH_COMMAND=ssh -o IdentitiesOnly=yes -i /dev/null -o UserKnownHostsFile=" + ssh.KnownHosts},
			goAuth: func(t *testing.T) transport.AuthMethod {
				auth, err := gitssh.NewPublicKeysFromFile("git", ssh.KeyFile, "")
				if err != nil {
					t.Fatal(err)
				}
				if auth.HostKeyCallback, err = knownhosts.New(ssh.KnownHosts); err != nil {
					t.Fatal(err)
				}
				return auth
			}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			work := filepath.Join(t.TempDir(), "work")
			run(t, "", tc.env, "clone", "-q", tc.url, work)
			file := filepath.Join(work, tc.name+".txt")
			if err := os.WriteFile(file, []byte("pushed\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			run(t, work, nil, "add", "-A")
			run(t, work, nil, "-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-q", "-m", "push over "+tc.name)
			run(t, work, tc.env, "push", "-q", "origin", "HEAD:main")
			if log, _ := repos.Log(t, "data", "main"); log[0] != "push over "+tc.name || len(log) != i+2 {
				t.Fatalf("main after the push: %v", log)
			}
			// A rewritten history is refused: no force push lands.
			run(t, work, nil, "-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-q", "--amend", "-m", "rewritten")
			if out, err := try(work, tc.env, "push", "-q", "--force", "origin", "HEAD:main"); err == nil {
				t.Fatalf("a forced push landed:\n%s", out)
			}
			if out, err := try("", tc.badEnv, "ls-remote", tc.bad); err == nil {
				t.Fatalf("%s answered a client without credentials:\n%s", tc.bad, out)
			}
			opts := &git.CloneOptions{URL: tc.url}
			if tc.goAuth != nil {
				opts.URL, opts.Auth = stripUser(tc.url), tc.goAuth(t)
			}
			if _, err := git.PlainClone(t.TempDir(), false, opts); err != nil {
				t.Fatalf("go-git clone of %s: %v", opts.URL, err)
			}
		})
	}
}

func stripUser(u string) string {
	if i := strings.Index(u, "@"); i > 0 && strings.HasPrefix(u, "http") {
		return u[:strings.Index(u, "//")+2] + u[i+1:]
	}
	return u
}

func run(t *testing.T, dir string, env []string, args ...string) {
	t.Helper()
	if out, err := try(dir, env, args...); err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func try(dir string, env []string, args ...string) (string, error) {
	if dir != "" {
		args = append([]string{"-C", dir}, args...)
	}
	cmd := exec.Command("git", args...)
	cmd.Env = append(gitEnv(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}
