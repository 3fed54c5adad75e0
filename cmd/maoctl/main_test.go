package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/internal/testenv"
	"github.com/mao-research/mao/internal/testsite"
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

// TestExitStatusOfRuns runs the binary against a real orchestrator that
// runs the tool's container: the tool's exit code becomes maoctl's, and
// an interrupt (SIGINT) stops the follow, not the run.
func TestExitStatusOfRuns(t *testing.T) {
	site := testsite.Start(t, testsite.Options{Docker: true})
	image := testenv.BuildTestImage(t)
	tests := []struct {
		name      string
		args      []string // the tool's
		timeout   string
		interrupt bool
		wantExit  int
		// wantStdout and wantStderr are the whole streams, RUN standing
		// for the run's ID.
		wantStdout, wantStderr string
	}{
		{name: "exit-3", args: []string{"-exit", "3"}, wantExit: 3,
			wantStdout: "exiting with 3\n[mao] run RUN failed: exit code 3\n",
			wantStderr: "run RUN of exit-3 started at site lab-a\nrun RUN failed (exit 3) in 0s: exit code 3\n"},
		{name: "interrupted", args: []string{"-sleep", "60s"}, timeout: "5s", interrupt: true, wantExit: 130,
			wantStdout: "sleeping 1m0s\n",
			wantStderr: "run RUN of interrupted started at site lab-a\n" +
				"maoctl: stopped following run RUN, which goes on at site lab-a (see maoctl run show RUN): " +
				"read logs of run RUN: interrupt signal received\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			site.Tool(t, api.Tool{Name: tc.name, Author: "tests", Image: image, DataRepo: testenv.GitRepo(t, nil),
				Command: tc.args, Network: "none", Timeout: tc.timeout})
			cmd := exec.Command(os.Args[0], "tool", "run", tc.name, "--follow")
			cmd.Env = append(os.Environ(), runAsMainEnv+"=1", "MAO_ADDR="+site.Addr, "MAO_TOKEN=",
				"GORACE="+os.Getenv("GORACE")+" atexit_sleep_ms=0")
			stdoutPipe, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			stdout := bufio.NewReader(stdoutPipe)
			first, err := stdout.ReadString('\n') // the container is running once its log has a line
			if err != nil {
				t.Fatalf("no log line: %v (stderr %q)", err, stderr.String())
			}
			if tc.interrupt {
				if err := cmd.Process.Signal(os.Interrupt); err != nil {
					t.Fatal(err)
				}
			}
			rest, err := io.ReadAll(stdout)
			if err != nil {
				t.Fatal(err)
			}
			err = cmd.Wait()
			var exitErr *exec.ExitError
			code := 0
			if errors.As(err, &exitErr) {
				code = exitErr.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}

			runs, _, err := site.Store.RunPage(context.Background(), api.RunFilter{Tool: tc.name})
			if err != nil || len(runs) != 1 {
				t.Fatalf("runs of %s: %v, %v", tc.name, runs, err)
			}
			id := runs[0].ID
			if code != tc.wantExit {
				t.Errorf("exit %d, want %d (stderr %q)", code, tc.wantExit, stderr.String())
			}
			if want := strings.ReplaceAll(tc.wantStdout, "RUN", id); first+string(rest) != want {
				t.Errorf("stdout %q, want %q", first+string(rest), want)
			}
			if want := strings.ReplaceAll(tc.wantStderr, "RUN", id); stderr.String() != want {
				t.Errorf("stderr %q, want %q", stderr.String(), want)
			}
			if tc.interrupt {
				// The run went on: it ends at its timeout, not at the
				// interrupt.
				run := site.WaitRun(t, id, func(r api.Run) bool { return r.State.Terminal() })
				if run.State != api.StateTimedOut {
					t.Errorf("the run ended %s (%s); want timed out", run.State, run.Reason)
				}
			}
		})
	}
}
