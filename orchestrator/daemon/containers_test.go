package daemon

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/internal/testenv"
)

// A run's container is held in by the site's limits and has no way to
// more privileges: what the tool reads inside it.
func TestContainerLimitsAndPrivileges(t *testing.T) {
	image := testenv.BuildTestImage(t)
	cfg := testenv.SiteConfig(t, "site-a", testenv.Etcd(t))
	cfg.Runs.PidsLimit, cfg.Runs.DefaultMemory = 64, 256<<20
	s := startSite(t, cfg)
	ctx := context.Background()

	bare := tool("bare", image, testenv.GitRepo(t, nil), "-limits", "-caps")
	ownMemory := tool("own-memory", image, testenv.GitRepo(t, nil), "-limits")
	ownMemory.Resources = &api.Resources{Memory: "512MiB"} // above the site's default: the tool's wins
	bomb := tool("fork-bomb", image, testenv.GitRepo(t, nil), "-fork", "500")
	for _, tl := range []api.Tool{bare, ownMemory, bomb} {
		if _, err := s.client.RegisterTool(ctx, tl); err != nil {
			t.Fatal(err)
		}
	}

	run, log := s.runToEnd(t, "bare")
	if run.State != api.StateSucceeded {
		t.Fatalf("bare: %s %q\n%s", run.State, run.Reason, log)
	}
	for _, want := range []string{
		"memory.limit=268435456\n", "pids.max=64\n", "NoNewPrivs: 1\n",
		"CapEff: 000000000000000b\n", "CapBnd: 000000000000000b\n", // CHOWN, DAC_OVERRIDE, FOWNER
	} {
		if !strings.Contains(log, want) {
			t.Errorf("a tool without resources: its log lacks %q:\n%s", want, log)
		}
	}

	run, log = s.runToEnd(t, "own-memory")
	if run.State != api.StateSucceeded || !strings.Contains(log, "memory.limit=536870912\n") {
		t.Errorf("a tool with its own memory: %s %q\n%s", run.State, run.Reason, log)
	}

	start := time.Now()
	run, log = s.runToEnd(t, "fork-bomb")
	m := regexp.MustCompile(`started (\d+) of 500\n`).FindStringSubmatch(log)
	if run.State != api.StateSucceeded || m == nil {
		t.Fatalf("fork bomb: %s %q\n%s", run.State, run.Reason, log)
	}
	if n, _ := strconv.Atoi(m[1]); n == 0 || n >= 64 {
		t.Errorf("the fork bomb started %d processes; want fewer than the pids limit 64", n)
	}
	if elapsed := time.Since(start); elapsed > time.Minute {
		t.Errorf("the fork bomb's run took %v", elapsed)
	}
	if n := containersOf(t, run.ID); n != 0 {
		t.Errorf("%d containers of the fork bomb remain", n)
	}
	// The site goes on running tools.
	if run, log := s.runToEnd(t, "bare"); run.State != api.StateSucceeded {
		t.Errorf("after the fork bomb: %s %q\n%s", run.State, run.Reason, log)
	}
}

// listenOnce accepts one connection on loopback and sends what it reads
// first.
func listenOnce(t *testing.T) (addr string, got <-chan string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	lines := make(chan string, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		line, _ := bufio.NewReader(conn).ReadString('\n')
		lines <- line
	}()
	return ln.Addr().String(), lines
}

// Tools on the host network: refused at a site that does not allow them,
// both when they are registered there and when they would run there; run
// at a site that allows them. The registry is shared: a tool registered
// through the allowing site is still refused at the other.
func TestHostNetworkNeedsTheSitesConsent(t *testing.T) {
	image := testenv.BuildTestImage(t)
	endpoints := testenv.Etcd(t)
	strict := startSite(t, testenv.SiteConfig(t, "strict", endpoints))
	cfg := testenv.SiteConfig(t, "lenient", endpoints)
	cfg.Runs.AllowHostNetwork = true
	lenient := startSite(t, cfg)
	ctx := context.Background()

	addr, got := listenOnce(t)
	hostTool := tool("on-host", image, testenv.GitRepo(t, nil), "-dial", addr)
	hostTool.Network = "host"

	_, err := strict.client.RegisterTool(ctx, hostTool)
	var apiErr *api.Error
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusBadRequest || len(apiErr.Details) != 1 ||
		!strings.HasPrefix(apiErr.Details[0], "network: ") || !strings.Contains(apiErr.Details[0], "[runs] allow_host_network") {
		t.Fatalf("registering a host-network tool at a site that does not allow it: %v (%+v); want 400 naming network", err, apiErr)
	}
	if _, err := strict.client.Tool(ctx, "on-host"); err == nil {
		t.Fatal("the refused tool was registered")
	}

	if _, err := lenient.client.RegisterTool(ctx, hostTool); err != nil {
		t.Fatal(err)
	}
	run, log := lenient.runToEnd(t, "on-host")
	if run.State != api.StateSucceeded || run.Network != "host" {
		t.Fatalf("at the site that allows it: %s %q, network %q\n%s", run.State, run.Reason, run.Network, log)
	}
	select {
	case line := <-got:
		if line != "hello from testtool\n" {
			t.Errorf("the tool sent %q", line)
		}
	case <-time.After(10 * time.Second):
		t.Error("the tool on the host network did not reach the host's loopback")
	}

	// The other site sees the tool (the registry is shared) but will not run it.
	waitFor(t, func() bool { _, err := strict.client.Tool(ctx, "on-host"); return err == nil })
	run, log = strict.runToEnd(t, "on-host")
	if run.State != api.StateFailed || run.ExitCode != nil || !strings.Contains(run.Reason, "network host") ||
		!strings.Contains(run.Reason, "allow_host_network = true in the [runs] section") || !strings.Contains(log, run.Reason) {
		t.Fatalf("at the site that does not allow it: %s %q\n%s", run.State, run.Reason, log)
	}
	if n := containersOf(t, run.ID); n != 0 {
		t.Errorf("%d containers of the refused run", n)
	}
}

// waitFor polls cond for up to 10s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
	}
}

// A tool's user runs its container; whatever the container wrote, as
// root or as that user, belongs to the orchestrator's user, without setuid
// bits, when it is committed.
func TestToolUserAndFileOwnership(t *testing.T) {
	image := testenv.BuildTestImage(t)
	s := startSite(t, testenv.SiteConfig(t, "site-a", testenv.Etcd(t)))
	ctx := context.Background()
	root := os.Geteuid() == 0
	me := fmt.Sprintf("uid=%d gid=%d", os.Getuid(), os.Getgid())

	asUser := tool("as-user", image, testenv.GitRepo(t, nil), "-whoami", "-writes", "-control", "5")
	asUser.User = "2000:2001"
	asImage := tool("as-image", image, testenv.GitRepo(t, nil), "-whoami", "-control", "6")
	if root {
		asImage.Command = append(asImage.Command, "-writes", "-setuid-file", "planted", "-give", "given.txt")
	}
	for _, tl := range []api.Tool{asUser, asImage} {
		if _, err := s.client.RegisterTool(ctx, tl); err != nil {
			t.Fatal(err)
		}
	}

	if !root {
		// An orchestrator that is not root runs tools as itself, and
		// refuses another user.
		run, log := s.runToEnd(t, "as-image")
		if run.State != api.StateSucceeded || !strings.Contains(log, me+"\n") {
			t.Fatalf("as-image at an orchestrator that is not root: %s %q\n%s", run.State, run.Reason, log)
		}
		run, log = s.runToEnd(t, "as-user")
		if run.State != api.StateFailed || !strings.Contains(run.Reason, "is not root") {
			t.Fatalf("as-user at an orchestrator that is not root: %s %q\n%s", run.State, run.Reason, log)
		}
		return
	}

	for _, tc := range []struct{ tool, whoami string }{{"as-user", "uid=2000 gid=2001"}, {"as-image", "uid=0 gid=0"}} {
		run, log := s.runToEnd(t, tc.tool)
		if run.State != api.StateSucceeded || !strings.Contains(log, tc.whoami+"\n") || strings.Contains(log, "ERROR") {
			t.Fatalf("%s: %s %q\n%s", tc.tool, run.State, run.Reason, log)
		}
		clone := filepath.Join(s.cfg.Site.DataDir, "repos", tc.tool)
		if len(run.Files) == 0 {
			t.Fatalf("%s committed nothing", tc.tool)
		}
		for _, f := range run.Files {
			info, err := os.Lstat(filepath.Join(clone, f))
			if err != nil {
				t.Fatal(err)
			}
			st := info.Sys().(*syscall.Stat_t)
			if st.Uid != uint32(os.Getuid()) || st.Gid != uint32(os.Getgid()) || info.Mode()&(fs.ModeSetuid|fs.ModeSetgid) != 0 {
				t.Errorf("%s: committed %s is %d:%d %s; want the orchestrator's %s, no setuid or setgid",
					tc.tool, f, st.Uid, st.Gid, info.Mode(), me)
			}
		}
		if files := strings.Join(run.Files, " "); tc.tool == "as-image" && (!strings.Contains(files, "planted") || !strings.Contains(files, "given.txt")) {
			t.Errorf("as-image: files %v lack the planted setuid file or the given one", run.Files)
		}
	}
}
