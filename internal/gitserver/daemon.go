package gitserver

import (
	"bytes"
	"errors"
	"net"
	"os/exec"
	"sync"
	"testing"
)

// Daemon serves the repositories over git:// with `git daemon`, pushes
// included (receive-pack enabled), and returns the base URL:
// git://127.0.0.1:PORT/ (a repository is at BASE + name + ".git"). The
// test's own listener accepts each connection and hands it to a `git
// daemon --inetd`, so that no port is raced for.
func (r *Repos) Daemon(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var failures []string
	serve(t, ln, func(conn net.Conn) {
		if msg := r.inetd(conn.(*net.TCPConn)); msg != "" {
			mu.Lock()
			failures = append(failures, msg)
			mu.Unlock()
		}
	})
	t.Cleanup(func() {
		for _, f := range failures {
			t.Logf("git daemon: %s", f)
		}
	})
	return "git://" + ln.Addr().String() + "/"
}

// inetd serves one connection with `git daemon --inetd` and returns its
// error output, if it failed.
func (r *Repos) inetd(conn *net.TCPConn) string {
	defer conn.Close()
	f, err := conn.File() // a duplicate the child reads and writes
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	cmd := exec.Command("git", "daemon", "--inetd", "--export-all", "--enable=receive-pack",
		"--base-path="+r.Root, r.Root)
	cmd.Env = gitEnv()
	var stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = f, f, &stderr
	if err := cmd.Run(); err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return stderr.String()
		}
		return err.Error()
	}
	return ""
}

// serve accepts connections on ln and handles each in a goroutine of its
// own, until the test ends: then it closes ln and waits for them.
func serve(t testing.TB, ln net.Listener, handle func(net.Conn)) {
	var served sync.WaitGroup
	served.Add(1)
	go func() {
		defer served.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return // the listener was closed
			}
			served.Add(1)
			go func() {
				defer served.Done()
				handle(conn)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		served.Wait()
	})
}
