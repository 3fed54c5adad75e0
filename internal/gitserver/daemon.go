package gitserver

import (
	"bytes"
	"errors"
	"net"
	"os/exec"
	"sync"
	"sync/atomic"
	"testing"
)

// Daemon serves the repositories over git:// with `git daemon`, pushes
// included (receive-pack enabled), and returns the base URL:
// git://127.0.0.1:PORT/ (a repository is at BASE + name + ".git"). The
// test's own listener accepts each connection and hands it to a `git
// daemon --inetd`, so that no port is raced for.
func (r *Repos) Daemon(t testing.TB) string {
	t.Helper()
	base, _ := r.GatedDaemon(t)
	return base
}

// Gate switches a GatedDaemon down and up, and counts its connections.
type Gate struct {
	down        atomic.Bool
	connections atomic.Int64
}

// Down makes the daemon close every connection at once, as a remote that
// is down (but whose address stays the same) does; Up serves again.
func (g *Gate) Down() { g.down.Store(true) }

// Up serves again.
func (g *Gate) Up() { g.down.Store(false) }

// Connections counts the connections served while up.
func (g *Gate) Connections() int64 { return g.connections.Load() }

// GatedDaemon is Daemon with a Gate: the test takes the remote down and
// brings it back at the same address.
func (r *Repos) GatedDaemon(t testing.TB) (string, *Gate) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &Gate{}
	var mu sync.Mutex
	var failures []string
	serve(t, ln, func(conn net.Conn) {
		if g.down.Load() {
			conn.Close()
			return
		}
		g.connections.Add(1)
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
	return "git://" + ln.Addr().String() + "/", g
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
