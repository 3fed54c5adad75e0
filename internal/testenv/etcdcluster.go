package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/mao-research/mao/orchestrator/config"
	"github.com/mao-research/mao/orchestrator/etcdclient"
)

// How long a member may take to become ready, and to exit after a signal.
const (
	memberReadyTimeout = 30 * time.Second
	memberStopTimeout  = 20 * time.Second
)

// memberBinary builds ./etcdmember once per test binary and returns its
// path. It is the package's only mutable state: a build shared by every
// cluster of the test binary, so that each one does not link etcd again.
var memberBinary = sync.OnceValues(func() (string, error) {
	dir, err := memberBinaryDir()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "etcdmember")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = filepath.Join(RepoRoot(), "internal", "testenv", "etcdmember")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", &buildError{what: "go build etcdmember", out: out, err: err}
	}
	return bin, nil
})

// memberBinaryDir is a new directory for the member binary: inside go
// test's work directory (go-build*/bNNN/, where the test binary runs from),
// which go test removes when it ends, or, for a test binary run by hand, in
// the system's temporary directory, where it stays.
func memberBinaryDir() (string, error) {
	parent := ""
	if exe, err := os.Executable(); err == nil && strings.HasPrefix(filepath.Base(filepath.Dir(filepath.Dir(exe))), "go-build") {
		parent = filepath.Dir(exe)
	}
	return os.MkdirTemp(parent, "etcdmember-")
}

// Cluster is a cluster of etcd members, each a separate process (see
// ./etcdmember) on loopback ports, started by EtcdCluster. Start, Stop
// and Kill fail the test that called EtcdCluster, so they must be called
// from its goroutine, not from a subtest's.
type Cluster struct {
	t       testing.TB
	bin     string
	tls     config.Etcd // the TLS files of WithClientTLS, if any
	members []*member
}

type member struct {
	name, clientURL, peerURL string
	logFile                  string
	args                     []string // etcdmember's flags, the same at every start
	cmd                      *exec.Cmd
	done                     chan struct{} // closed when cmd has exited; nil when never started
	err                      error         // cmd.Wait's result, set before done is closed
}

func (m *member) running() bool {
	if m.done == nil {
		return false
	}
	select {
	case <-m.done:
		return false
	default:
		return true
	}
}

// ClusterOption changes how EtcdCluster starts its members.
type ClusterOption func(*Cluster)

// WithClientTLS makes the members serve clients over https with the
// certificate certFile and its key keyFile, and accept only clients with a
// certificate that caFile signed: the files TLSFiles returns. Cluster.Client
// uses the same files.
func WithClientTLS(caFile, certFile, keyFile string) ClusterOption {
	return func(c *Cluster) {
		c.tls.CAFile, c.tls.CertFile, c.tls.KeyFile = caFile, certFile, keyFile
	}
}

// EtcdCluster starts a new cluster of n etcd members on free loopback ports
// and waits until every member serves clients and knows the leader. It
// kills the members when the test ends, and then, if the test failed, logs
// the end of each member's log.
func EtcdCluster(t testing.TB, n int, opts ...ClusterOption) *Cluster {
	t.Helper()
	bin, err := memberBinary()
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{t: t, bin: bin}
	for _, o := range opts {
		o(c)
	}
	dir := t.TempDir() // before the cleanup, so that it is removed after it
	t.Cleanup(c.cleanup)
	// A free port can be taken by another process before the member binds
	// it; then the whole cluster starts again on other ports.
	for attempt := 1; ; attempt++ {
		err := c.bootstrap(filepath.Join(dir, strconv.Itoa(attempt)), n)
		if err == nil {
			break
		}
		c.killAll()
		if !errors.Is(err, errPortInUse) || attempt == 3 {
			t.Fatal(err)
		}
		t.Logf("etcd cluster: %v; starting again on other ports", err)
	}
	t.Log("mao-integration: etcd")
	return c
}

var errPortInUse = errors.New("a port is in use")

// bootstrap starts n new members in a new directory and waits for them.
func (c *Cluster) bootstrap(dir string, n int) error {
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	scheme := "http"
	if c.tls.TLS() {
		scheme = "https"
	}
	c.members = make([]*member, n)
	initial := make([]string, n)
	for i := range c.members {
		m := &member{name: fmt.Sprintf("member-%d", i), clientURL: scheme + "://" + ClosedPort(c.t), peerURL: FreeURL(c.t)}
		m.logFile = filepath.Join(dir, m.name+".log")
		c.members[i] = m
		initial[i] = m.name + "=" + m.peerURL
	}
	for _, m := range c.members {
		m.args = []string{
			"-name", m.name, "-dir", filepath.Join(dir, m.name), "-log-file", m.logFile,
			"-client-url", m.clientURL, "-peer-url", m.peerURL,
			"-initial-cluster", strings.Join(initial, ","), "-cluster-state", "new", "-stdin-lifeline",
		}
		if c.tls.TLS() {
			m.args = append(m.args, "-cert-file", c.tls.CertFile, "-key-file", c.tls.KeyFile,
				"-trusted-ca-file", c.tls.CAFile, "-client-cert-auth")
		}
		if err := c.start(m); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), memberReadyTimeout)
	defer cancel()
	for _, m := range c.members {
		if err := c.waitReady(ctx, m); err != nil {
			return err
		}
	}
	return nil
}

// start starts m's process.
func (c *Cluster) start(m *member) error {
	log, err := os.OpenFile(m.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer log.Close() // the process has its own copy
	cmd := exec.Command(c.bin, m.args...)
	cmd.Stdout, cmd.Stderr = log, log
	// The member stops when this pipe closes (-stdin-lifeline): when it
	// exits, or when the test binary dies without stopping it. The pipe is
	// closed after Wait.
	if _, err := cmd.StdinPipe(); err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start etcd %s: %w", m.name, err)
	}
	done := make(chan struct{})
	m.cmd, m.done, m.err = cmd, done, nil
	// Ends when the process exits: stop, kill or cleanup sees to it.
	go func() {
		m.err = cmd.Wait()
		close(done)
	}()
	return nil
}

// waitReady polls m until it answers and knows the cluster's leader.
func (c *Cluster) waitReady(ctx context.Context, m *member) error {
	cli, err := c.newClient(m.clientURL)
	if err != nil {
		return fmt.Errorf("etcd %s: %w", m.name, err)
	}
	defer cli.Close()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		sctx, cancel := context.WithTimeout(ctx, time.Second)
		st, err := cli.Status(sctx, m.clientURL)
		cancel()
		if err == nil && st.Leader != 0 {
			return nil
		}
		select {
		case <-m.done:
			log := tail(m.logFile)
			if strings.Contains(log, "address already in use") {
				return fmt.Errorf("etcd %s: %w", m.name, errPortInUse)
			}
			return fmt.Errorf("etcd %s exited (%v) before it was ready; its log ends:\n%s", m.name, m.err, log)
		case <-ctx.Done():
			if err == nil {
				err = errors.New("no leader")
			}
			return fmt.Errorf("etcd %s not ready after %s: %v; its log ends:\n%s", m.name, memberReadyTimeout, err, tail(m.logFile))
		case <-tick.C:
		}
	}
}

func (c *Cluster) newClient(endpoints ...string) (*clientv3.Client, error) {
	e := c.tls
	e.DialTimeout = 5 * time.Second
	cfg, err := etcdclient.Config(e, endpoints)
	if err != nil {
		return nil, err
	}
	return clientv3.New(cfg)
}

// Endpoints are the members' client URLs, running or not.
func (c *Cluster) Endpoints() []string {
	urls := make([]string, len(c.members))
	for i, m := range c.members {
		urls[i] = m.clientURL
	}
	return urls
}

// Name is member i's name.
func (c *Cluster) Name(i int) string { return c.members[i].name }

// PeerURL is the URL on which member i listens for its peers.
func (c *Cluster) PeerURL(i int) string { return c.members[i].peerURL }

// Client returns a client of every member (with the TLS files of
// WithClientTLS), closed when the test ends.
func (c *Cluster) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	cli, err := c.newClient(c.Endpoints()...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// Stop sends member i SIGTERM and waits until it has exited; it fails the
// test if the member does not exit cleanly.
func (c *Cluster) Stop(i int) {
	c.t.Helper()
	m := c.runningMember(i)
	if err := m.stop(syscall.SIGTERM); err != nil {
		c.t.Fatal(err)
	}
	if m.err != nil {
		c.t.Fatalf("etcd %s exited with %v after SIGTERM; its log ends:\n%s", m.name, m.err, tail(m.logFile))
	}
}

// Kill kills member i (SIGKILL) and waits until it has exited.
func (c *Cluster) Kill(i int) {
	c.t.Helper()
	if err := c.runningMember(i).stop(syscall.SIGKILL); err != nil {
		c.t.Fatal(err)
	}
}

// Start starts stopped or killed member i again, with its data directory
// and ports, and waits until it serves clients and knows the leader (which
// needs a quorum of members running).
func (c *Cluster) Start(i int) {
	c.t.Helper()
	m := c.members[i]
	if m.running() {
		c.t.Fatalf("Start(%d): etcd %s is running", i, m.name)
	}
	if err := c.start(m); err != nil {
		c.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), memberReadyTimeout)
	defer cancel()
	if err := c.waitReady(ctx, m); err != nil {
		c.t.Fatal(err)
	}
}

func (c *Cluster) runningMember(i int) *member {
	c.t.Helper()
	m := c.members[i]
	if !m.running() {
		c.t.Fatalf("etcd %s (member %d) is not running", m.name, i)
	}
	return m
}

// stop sends m sig and waits until it has exited, killing it when it has
// not within memberStopTimeout.
func (m *member) stop(sig syscall.Signal) error {
	if err := m.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal etcd %s: %w", m.name, err)
	}
	select {
	case <-m.done:
		return nil
	case <-time.After(memberStopTimeout):
		_ = m.cmd.Process.Kill()
		<-m.done
		return fmt.Errorf("etcd %s did not exit within %s of %v; its log ends:\n%s", m.name, memberStopTimeout, sig, tail(m.logFile))
	}
}

// killAll kills the running members and waits until they have exited.
// Killing is quick where SIGTERM is not: a stopping leader tries for
// seconds to hand over to members that are stopping too.
func (c *Cluster) killAll() {
	for _, m := range c.members {
		if m.running() {
			if err := m.stop(syscall.SIGKILL); err != nil {
				c.t.Log(err)
			}
		}
	}
}

func (c *Cluster) cleanup() {
	c.killAll()
	if c.t.Failed() {
		for _, m := range c.members {
			c.t.Logf("etcd %s log ends:\n%s", m.name, tail(m.logFile))
		}
	}
}

// tail returns the last lines of a log file, or why it cannot.
func tail(file string) string {
	data, err := os.ReadFile(file)
	if err != nil {
		return err.Error()
	}
	lines := bytes.Split(bytes.TrimSpace(data), []byte("\n"))
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// FreeURL returns an http:// URL on a loopback port that nothing listens
// on at the moment, e.g. for an etcd member's peer or client URL. Another
// process may take the port before it is used.
func FreeURL(t testing.TB) string {
	t.Helper()
	return "http://" + ClosedPort(t)
}
