package main

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// build compiles the orchestrator binary into a temporary directory.
func build(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "orchestrator")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.ini")
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestBadConfigRefusesToStart(t *testing.T) {
	bin := build(t)
	tests := []struct {
		name    string
		config  string
		mention []string
	}{
		{"malformed line", "[site]\nname = ok\nthis line is wrong\n", []string{"config.ini:3", "malformed line"}},
		{"unknown key", "[site]\nnmae = typo\n", []string{"config.ini:2", "site.nmae"}},
		{"unknown section", "[sight]\nname = x\n", []string{"config.ini:1", "sight"}},
		{"bad values together", "[api]\nlisten = 8080\n[site]\nlease_ttl = soon\n", []string{"api.listen", "site.lease_ttl"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(bin, "-config", writeConfig(t, tc.config))
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 2 {
				t.Fatalf("exit: %v, want code 2\n%s", err, out)
			}
			for _, m := range tc.mention {
				if !strings.Contains(string(out), m) {
					t.Errorf("output does not mention %q:\n%s", m, out)
				}
			}
		})
	}
}

func TestSIGTERMStopsCleanly(t *testing.T) {
	bin := build(t)
	dir := t.TempDir()
	cfg := writeConfig(t, "[site]\nname = sigterm\ndata_dir = "+dir+"\n[etcd]\nclient_url = https://127.0.0.1:0\npeer_url = https://127.0.0.1:0\n[api]\nlisten = 127.0.0.1:0\n")
	cmd := exec.Command(bin, "-config", cfg)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlives the test
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	watchdog := time.AfterFunc(2*time.Minute, func() { cmd.Process.Kill() }) // a hung daemon fails the test, not CI
	defer watchdog.Stop()
	lines := bufio.NewScanner(stderr)
	ready := regexp.MustCompile(`orchestrator ready.* api=(http://\S+)`)
	var addr string
	var log strings.Builder
	for addr == "" && lines.Scan() {
		log.WriteString(lines.Text() + "\n")
		if m := ready.FindStringSubmatch(lines.Text()); m != nil {
			addr = m[1]
		}
	}
	if addr == "" {
		t.Fatalf("never ready:\n%s", log.String())
	}
	resp, err := http.Get(addr + "/api/v1/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("health: %d", resp.StatusCode)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(stderr)
	log.Write(rest)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, log.String())
	}
	if !strings.Contains(log.String(), "msg=stopped") {
		t.Fatalf("no clean stop in the log:\n%s", log.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "api.addr")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("api.addr left behind: %v", err)
	}
}

// TestFederationFlagsRefuse: the flags of the federation's voters refuse
// what they cannot do, before anything is changed: -leave with
// -force-new-cluster (a usage error, 2), a witness that has no join token
// (it founds no federation), -leave and -force-new-cluster at a site with
// no etcd data, and a witness on an external etcd.
func TestFederationFlagsRefuse(t *testing.T) {
	bin := build(t)
	site := func(extra string) string {
		return writeConfig(t, "[site]\nname = w\ndata_dir = "+t.TempDir()+"\n"+extra)
	}
	tests := []struct {
		name    string
		args    []string
		code    int
		mention string
	}{
		{"leave and force", []string{"-leave", "-force-new-cluster", "-config", site("")}, 2, "do not go together"},
		{"a witness without a token", []string{"-witness", "-config", site("")}, 1, "joins a federation, and founds none"},
		{"a witness on an external etcd", []string{"-witness", "-config", site("[etcd]\nendpoints = http://127.0.0.1:1\n")}, 1, "etcd.endpoints must be empty"},
		{"leave without a member", []string{"-leave", "-config", site("")}, 1, "no etcd member to take out"},
		{"force without data", []string{"-force-new-cluster", "-config", site("")}, 1, "it has none"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := exec.Command(bin, tc.args...).CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != tc.code || !strings.Contains(string(out), tc.mention) {
				t.Fatalf("exit %v, want %d mentioning %q:\n%s", err, tc.code, tc.mention, out)
			}
		})
	}
}
