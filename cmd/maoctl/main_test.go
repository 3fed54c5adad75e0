package main

import (
	"bytes"
	"errors"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// runAsMainEnv makes the test binary run main, so that the tests see real
// exit statuses and output streams.
const runAsMainEnv = "MAOCTL_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runAsMainEnv) == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

func TestExitStatusAndStreams(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		args       []string
		wantExit   int
		wantStdout string // a substring; "" means stdout must be empty
		wantStderr string // the whole of stderr
	}{
		{name: "help", args: []string{"--help"}, wantStdout: "maoctl - "},
		{name: "completion", args: []string{"completion", "bash"}, wantStdout: "complete -o default -F _maoctl_complete maoctl"},
		{name: "unreachable", args: []string{"--addr", closed, "tool", "list"}, wantExit: 1,
			wantStderr: "maoctl: cannot reach the orchestrator at " + closed + ": dial tcp " + closed +
				": connect: connection refused (is the orchestrator running? set --addr or MAO_ADDR)\n"},
		{name: "usage", args: []string{"tool", "list", "--bogus"}, wantExit: 2,
			wantStderr: "maoctl: tool list: flag provided but not defined: --bogus (see maoctl tool list --help)\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], tc.args...)
			cmd.Env = append(os.Environ(), runAsMainEnv+"=1", "MAO_ADDR=", "MAO_TOKEN=",
				"GORACE="+os.Getenv("GORACE")+" atexit_sleep_ms=0") // a -race binary otherwise lingers 1s at exit
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			code := 0
			var exitErr *exec.ExitError
			if errors.As(err, &exitErr) {
				code = exitErr.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.wantExit {
				t.Errorf("exit %d, want %d (stderr %q)", code, tc.wantExit, stderr.String())
			}
			if stderr.String() != tc.wantStderr {
				t.Errorf("stderr %q, want %q", stderr.String(), tc.wantStderr)
			}
			if (tc.wantStdout == "") != (stdout.Len() == 0) || !strings.Contains(stdout.String(), tc.wantStdout) {
				t.Errorf("stdout %q, want it to contain %q", stdout.String(), tc.wantStdout)
			}
		})
	}
}
