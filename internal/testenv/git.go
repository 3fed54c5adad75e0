package testenv

import (
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// GitRepo creates a git repository with one commit (a README) in a
// temporary directory and returns its file:// URL.
func GitRepo(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	repo, err := git.PlainInit(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	w, err := repo.Worktree()
	if err != nil {
		t.Fatal(err)
	}
	if files == nil {
		files = map[string]string{"README": "test data repository\n"}
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Add(name); err != nil {
			t.Fatal(err)
		}
	}
	sig := &object.Signature{Name: "test", Email: "test@localhost", When: time.Now()}
	if _, err := w.Commit("initial", &git.CommitOptions{Author: sig}); err != nil {
		t.Fatal(err)
	}
	AsRemote(t, repo)
	return "file://" + dir
}

// AsRemote makes a repository with a work tree take pushes as a bare one
// does: a push moves the checked-out branch too (its files stay as they
// are; receive.denyCurrentBranch=ignore), and is refused unless it is a
// fast-forward (receive.denyNonFastForwards), as every test remote.
func AsRemote(t testing.TB, repo *git.Repository) {
	t.Helper()
	cfg, err := repo.Config()
	if err != nil {
		t.Fatal(err)
	}
	cfg.Raw.Section("receive").SetOption("denyCurrentBranch", "ignore").SetOption("denyNonFastForwards", "true")
	if err := repo.SetConfig(cfg); err != nil {
		t.Fatal(err)
	}
}

// ClosedPort returns a loopback address on which nothing listens.
func ClosedPort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
