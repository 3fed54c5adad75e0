package maoctl

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mao-research/mao/api"
)

func TestHoistFlags(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"tool list", "tool list"},
		{"tool list -o json", "-o json tool list"},
		{"tool run NAME --follow", "tool run --follow NAME"},
		{"tool run NAME -f -o json --addr x", "-o json --addr x tool run -f NAME"},
		{"--output=json run logs ID --tail 3", "--output=json run logs --tail 3 ID"},
		{"run logs ID --tail=3 --follow", "run logs --tail=3 --follow ID"},
		{"tool register a b c --env K=V --env L=W", "tool register --env K=V --env L=W a b c"},
		{"tool get --name x", "tool get --name x"},
		{"tool show -- -odd", "tool show -- -odd"},
		{"tool show x -- --follow", "tool show -- x --follow"},
		{"run list --tool list", "run list --tool list"},
		{"tool --help", "tool --help"},
		{"tool show x --bogus", "tool show --bogus x"},
		{"frob tool list", "frob tool list"},
		{"tool run --generate-bash-completion", "tool run --generate-bash-completion"},
		{"tool schedule x daily --at 06:30 --env K=V -o json", "-o json tool schedule --at 06:30 --env K=V x daily"},
		{"schedule update ID --retries 2 --unset-env K", "schedule update --retries 2 --unset-env K ID"},
		{"schedule list --tool schedule", "schedule list --tool schedule"},
		{"tool schedule list weekly", "tool schedule list weekly"},
		{"run list --schedule ID --tool T", "run list --schedule ID --tool T"},
		{"tool run x -f --generate-bash-completion", "tool run -f x --generate-bash-completion"},
		{"tool run x --all --label k=v --retries 2", "tool run --all --label k=v --retries 2 x"},
		{"tool run site --site site -q", "tool run --site site -q site"},
		{"federation add-site lab-c --peer-url http://h:2380 -o json", "-o json federation add-site --peer-url http://h:2380 lab-c"},
		{"detector check - --method gain --threshold 6", "detector check --method gain --threshold 6 -"},
		{"tool series x --all-points --metric m", "tool series --all-points --metric m x"},
	}
	app := (&ctl{}).app()
	for _, tc := range tests {
		got := strings.Join(hoistFlags(app, strings.Fields(tc.in)), " ")
		if got != tc.want {
			t.Errorf("hoistFlags(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestExitCode(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"success", nil, 0},
		{"tool exit code", &RunExitError{Code: 3}, 3},
		{"wrapped run error", fmt.Errorf("x: %w", &RunExitError{Code: 124}), 124},
		{"usage", usageErrorf("bad"), 2},
		{"interrupted", fmt.Errorf("follow: %w", context.Canceled), 130},
		{"api error", &api.Error{Status: 404, ErrorBody: api.ErrorBody{Message: "gone"}}, 1},
		{"other", errors.New("boom"), 1},
	}
	for _, tc := range tests {
		if got := ExitCode(tc.err); got != tc.want {
			t.Errorf("%s: ExitCode(%v) = %d, want %d", tc.name, tc.err, got, tc.want)
		}
	}
}

func TestPrintError(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"nil", nil, ""},
		{"run exit is reported by the command", &RunExitError{Run: api.Run{ID: "r-1", State: api.StateFailed}, Code: 1}, ""},
		{"plain", errors.New("boom"), "maoctl: boom\n"},
		{"details", fmt.Errorf("register: %w", &api.Error{Status: 400, ErrorBody: api.ErrorBody{
			Code: api.CodeInvalid, Message: "invalid tool", Details: []string{"name: is required", "image: is required"}}}),
			"maoctl: register: invalid tool\n  name: is required\n  image: is required\n"},
		{"unauthorized", &api.Error{Status: 401, ErrorBody: api.ErrorBody{Message: "no token"}},
			"maoctl: no token (check --token or MAO_TOKEN)\n"},
	}
	for _, tc := range tests {
		var b strings.Builder
		PrintError(&b, tc.err)
		if b.String() != tc.want {
			t.Errorf("%s: PrintError wrote %q, want %q", tc.name, b.String(), tc.want)
		}
	}
}

// TestBashCompletionScript loads the bash script into a real bash and asks
// it to complete, with this test binary standing in for maoctl.
func TestBashCompletionScript(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash:", err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	if err := os.Symlink(self, filepath.Join(bin, "maoctl")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		line string // the words typed, the last one being completed
		want string
	}{
		{"maoctl t", "tool"},
		{"maoctl tool re", "register remove"},
		{"maoctl dataset ", "register list show remove clone get --help -h"},
		{"maoctl run logs --f", "--follow"},
		{"maoctl -o json tool run x --", "--site --any --all --label --retries --follow --quiet --raw --help"},
		{"maoctl tool run x --a", "--any --all"},
		{"maoctl f", "federation"},
		{"maoctl federation add-site x --", "--peer-url --client-url --help"},
		{"maoctl tool s", "show schedule series stop"},
		{"maoctl n", "notify"},
		{"maoctl notify ", "list test --help -h"},
		{"maoctl tool series x --", "--metric --site --all-points --svg --help"},
		{"maoctl detector check x.csv --m", "--method --min-history"},
		{"maoctl schedule ", "list show update pause resume remove --help -h"},
		{"maoctl tool schedule x daily --re", "--retries --retry-delay"},
		{"maoctl schedule update ID --u", "--unset-env"},
		{"maoctl run list --s", "--schedule --state --site --since"},
	}
	for _, tc := range tests {
		t.Run(tc.line, func(t *testing.T) {
			script := bashCompletion + `
COMP_WORDS=(` + tc.line + `)
[[ "` + tc.line + `" == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
_maoctl_complete
echo "${COMPREPLY[*]}"
`
			cmd := exec.Command(bash, "--norc", "--noprofile", "-c", script)
			cmd.Env = append(os.Environ(), asMaoctlEnv+"=1", "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"),
				"GORACE="+os.Getenv("GORACE")+" atexit_sleep_ms=0") // a -race binary otherwise lingers 1s at exit
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("bash: %v\n%s", err, out)
			}
			if got := strings.TrimSpace(string(out)); got != tc.want {
				t.Errorf("completions %q, want %q", got, tc.want)
			}
		})
	}
}

// TestFinished checks the summary line and exit status of a followed run
// for each way it ends. The transcripts (TestCommands) show these against
// a real orchestrator, but for a run lost with its site: its log stays at
// that site, which is down, so a follower gets an error before the end.
func TestFinished(t *testing.T) {
	start, end := at(0), at(95)
	tests := []struct {
		name     string
		run      api.Run
		wantLine string
		wantCode int
	}{
		{"succeeded", api.Run{ID: "r-1", State: api.StateSucceeded, ExitCode: intPtr(0), StartedAt: start, FinishedAt: end},
			"run r-1 succeeded (exit 0) in 1m35s", 0},
		{"exit code", api.Run{ID: "r-1", State: api.StateFailed, ExitCode: intPtr(3), Reason: "exit code 3", StartedAt: start, FinishedAt: end},
			"run r-1 failed (exit 3) in 1m35s: exit code 3", 3},
		{"lost", api.Run{ID: "r-1", State: api.StateLost, StartedAt: start, FinishedAt: end,
			Reason: "lost: site lab-b stopped renewing its lease (it stopped, or lost etcd) while it held the run"},
			"run r-1 lost in 1m35s: lost: site lab-b stopped renewing its lease (it stopped, or lost etcd) while it held the run", 1},
		{"timed out", api.Run{ID: "r-1", State: api.StateTimedOut, ExitCode: intPtr(2), StartedAt: start, FinishedAt: end},
			"run r-1 timed out (exit 2) in 1m35s", 124},
	}
	for _, tc := range tests {
		var stderr strings.Builder
		c := &ctl{stderr: &stderr}
		err := c.finished(tc.run)
		if got := ExitCode(err); got != tc.wantCode {
			t.Errorf("%s: exit %d, want %d", tc.name, got, tc.wantCode)
		}
		if got := stderr.String(); got != tc.wantLine+"\n" {
			t.Errorf("%s: printed %q, want %q", tc.name, got, tc.wantLine+"\n")
		}
	}
}

// TestRedactError checks that notify test hides the URL it was given in
// an error answer that quotes it. The orchestrator scrubs its own
// messages (the transcripts check that no secret is printed), so only a
// careless one would: this is maoctl's own guard.
func TestRedactError(t *testing.T) {
	const raw = "generic+http://mao:" + secretToken + "@127.0.0.1:9/notify"
	err := redactError(&api.Error{Status: 400, ErrorBody: api.ErrorBody{Code: api.CodeInvalid,
		Message: "invalid channel " + raw, Details: []string{"url: " + raw + " is not usable"}}}, raw)
	var b strings.Builder
	PrintError(&b, err)
	if want := "maoctl: invalid channel ***\n  url: *** is not usable\n"; b.String() != want {
		t.Errorf("printed %q, want %q", b.String(), want)
	}
	if got := redact("Post "+raw+": refused", raw, "generic+http://mao:***@127.0.0.1:9/notify"); strings.Contains(got, secretToken) {
		t.Errorf("redact left the secret in %q", got)
	}
}

// TestWhereARunWaits checks how a run is placed before a site has taken
// it: a run sent to one site names it, one for any eligible site says so.
func TestWhereARunWaits(t *testing.T) {
	tests := []struct {
		run         api.Run
		site, where string
	}{
		{api.Run{Site: "lab-a", State: api.StateRunning}, "lab-a", "at site lab-a"},
		{api.Run{State: api.StatePending, Target: &api.Target{Mode: "site", Site: "lab-b"}}, "(waits for lab-b)", "at site lab-b"},
		{api.Run{State: api.StatePending, Target: &api.Target{Mode: "any"}}, "(any eligible)", "at the eligible site that claims it"},
	}
	for _, tc := range tests {
		if got := runSite(tc.run); got != tc.site {
			t.Errorf("runSite(%+v) = %q, want %q", tc.run, got, tc.site)
		}
		if got := runWhere(tc.run); got != tc.where {
			t.Errorf("runWhere(%+v) = %q, want %q", tc.run, got, tc.where)
		}
	}
}
