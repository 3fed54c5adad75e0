package maoctl

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/mao-research/mao/api"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// asMaoctlEnv makes the test binary behave as maoctl, for the completion
// script test.
const asMaoctlEnv = "MAOCTL_TEST_AS_MAOCTL"

func TestMain(m *testing.M) {
	if os.Getenv(asMaoctlEnv) == "1" {
		err := Run(context.Background(), os.Args[1:], os.Stdout, os.Stderr)
		PrintError(os.Stderr, err)
		os.Exit(ExitCode(err))
	}
	os.Exit(m.Run())
}

// secretToken must never appear in any output.
const secretToken = "s3cret-t0ken"

// cliCase is a sequence of command lines run against one fresh fake
// orchestrator (MAO_ADDR points at it). In arguments, $TMP is a temporary
// directory and $CLOSED a loopback address nobody listens on. The transcript
// is compared with testdata/<name>.golden.
type cliCase struct {
	name  string
	setup func(t *testing.T, f *fakeOrchestrator, tmp string)
	stdin string // the standard input of each command
	cmds  [][]string
	exits []int // the expected exit status of each command
}

func cmds(lines ...[]string) [][]string { return lines }

func TestCommands(t *testing.T) {
	cases := []cliCase{
		{name: "help", cmds: cmds(
			nil,
			[]string{"tool"},
			[]string{"tool", "run", "--help"},
			[]string{"run", "logs", "-h"},
			[]string{"help", "dataset", "clone"},
			[]string{"site"},
			[]string{"federation"},
			[]string{"federation", "add-site", "--help"},
			[]string{"tool", "series", "--help"},
			[]string{"notify"},
			[]string{"notify", "list", "-h"},
			[]string{"help", "notify", "test"},
			[]string{"detector"},
			[]string{"detector", "check", "--help"},
		), exits: []int{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},

		{name: "help-schedule", cmds: cmds(
			[]string{"schedule"},
			[]string{"tool", "schedule", "--help"},
			[]string{"schedule", "update", "--help"},
			[]string{"help", "tool", "list-scheduled"},
			[]string{"help", "tool", "stop"},
			[]string{"run", "list", "-h"},
		), exits: []int{0, 0, 0, 0, 0, 0}},

		{name: "tool-list", cmds: cmds(
			[]string{"tool", "list"},
			[]string{"tool", "list", "-o", "json"},
			[]string{"--output=json", "tool", "list"},
		), exits: []int{0, 0, 0}},
		{name: "tool-list-empty", setup: func(t *testing.T, f *fakeOrchestrator, _ string) {
			f.tools = map[string]api.Tool{}
		}, cmds: cmds(
			[]string{"tool", "list"},
			[]string{"tool", "list", "-o", "json"},
		), exits: []int{0, 0}},
		{name: "tool-show", cmds: cmds(
			[]string{"tool", "show", "code-stats"},
			[]string{"tool", "show", "gh-crawler"},
			[]string{"tool", "show", "code-stats", "--output", "json"},
			[]string{"tool", "show", "nope"},
			[]string{"tool", "show"},
		), exits: []int{0, 0, 0, 1, 2}},
		{name: "tool-get", cmds: cmds(
			[]string{"tool", "get"},
			[]string{"tool", "get", "--name", "gh-crawler"},
			[]string{"tool", "get", "slow-tool", "-o", "json"},
			[]string{"tool", "get", "a", "--name", "b"},
		), exits: []int{0, 0, 0, 2}},

		{name: "tool-register-yaml", cmds: cmds(
			[]string{"tool", "register", "-f", "testdata/tool-full.yaml"},
			[]string{"tool", "show", "stats-weekly"},
		), exits: []int{0, 0}},
		{name: "tool-register-json", cmds: cmds(
			[]string{"tool", "add", "--file", "testdata/tool-record.json", "-o", "json"},
		), exits: []int{0}},
		{name: "tool-register-file-override", cmds: cmds(
			[]string{"tool", "register", "-f", "testdata/tool-full.yaml", "--name", "stats-daily", "--timeout", "30m",
				"--env", "LANGS=rust", "--env", "EXTRA=a=b", "--memory", "1GiB", "--command", "/stats"},
			[]string{"tool", "show", "stats-daily", "-o", "json"},
		), exits: []int{0, 0}},
		{name: "tool-register-flags", cmds: cmds(
			[]string{"tool", "register", "--name", "flagged", "--author", "Grace H", "--image", "busybox:1",
				"--data-repo", "https://git.example.org/data/flagged.git", "--code-repo", "https://git.example.org/tools/flagged",
				"--artefact", "counts", "--description", "two\nlines", "--command", "sh", "--command", "-c",
				"--command", "echo hi, there", "--env", "A=1", "--env", "B=x,y", "--input-dataset", "linux-src",
				"--timeout", "10m", "--cpus", "0.5", "--memory", "64MiB", "--network", "none"},
			[]string{"tool", "show", "flagged"},
		), exits: []int{0, 0}},
		{name: "tool-register-predecessor-flags", cmds: cmds(
			[]string{"tool", "add", "--name", "old", "--author", "lab", "--image", "busybox",
				"--data_repo", "https://git.example.org/data/old.git", "--code_repo", "https://git.example.org/tools/old", "--artefact", "x"},
			[]string{"tool", "show", "old", "-o", "json"},
		), exits: []int{0, 0}},
		{name: "tool-register-positional", cmds: cmds(
			[]string{"tool", "add", "classic", "Ada R", "mao/classic:1", "https://git.example.org/data/classic.git",
				"https://git.example.org/tools/classic", "classic output"},
			[]string{"tool", "show", "classic"},
			[]string{"tool", "register", "classic2", "lab", "busybox", "https://git.example.org/data/c2.git", "", "",
				"--description", "positional plus a flag", "--artefact", "overridden"},
			[]string{"tool", "show", "classic2", "-o", "json"},
		), exits: []int{0, 0, 0, 0}},
		{name: "tool-register-errors", cmds: cmds(
			[]string{"tool", "register", "--name", "Bad/Name", "--image", "Busy Box", "--timeout", "soon"},
			[]string{"tool", "add", "gh-crawler", "Ada", "busybox", "https://git.example.org/data/gh.git", "", ""},
			[]string{"tool", "register"},
			[]string{"tool", "register", "a", "b", "c"},
			[]string{"tool", "register", "-f", "testdata/tool-full.yaml", "extra"},
			[]string{"tool", "register", "-f", "testdata/tool-typo.yaml"},
			[]string{"tool", "register", "-f", "testdata/missing.yaml"},
			[]string{"tool", "register", "--name", "x", "--env", "NOVALUE"},
			[]string{"tool", "register", "--data-repo", "a", "--data_repo", "b"},
			[]string{"tool", "register", "--cpus", "many"},
		), exits: []int{1, 1, 2, 2, 2, 1, 1, 2, 2, 2}},
		{name: "tool-remove", cmds: cmds(
			[]string{"tool", "remove", "slow-tool"},
			[]string{"tool", "remove", "broken-image", "-o", "json"},
			[]string{"tool", "list"},
			[]string{"tool", "remove", "slow-tool"},
		), exits: []int{0, 0, 0, 1}},

		{name: "tool-run", cmds: cmds(
			[]string{"tool", "run", "gh-crawler"},
			[]string{"tool", "run", "code-stats", "-o", "json"},
			[]string{"tool", "run", "gh-crawler", "-q"},
			[]string{"run", "list"},
			[]string{"tool", "run", "nope"},
			[]string{"tool", "run"},
		), exits: []int{0, 0, 0, 0, 1, 2}},
		{name: "tool-run-target", cmds: cmds(
			[]string{"tool", "run", "gh-crawler", "--any"},
			[]string{"tool", "run", "gh-crawler", "--label", "zone=eu", "--label", "gpu=a100"},
			[]string{"tool", "run", "gh-crawler", "--all"},
			[]string{"tool", "run", "code-stats", "--all", "--label", "gpu=a100", "-o", "json"},
			[]string{"tool", "run", "gh-crawler", "--site", "lab-b", "--retries", "2"},
			[]string{"tool", "run", "gh-crawler", "--all", "--label", "zone=eu", "-q"},
			[]string{"run", "list"},
			[]string{"run", "show", "r-0004"},
			[]string{"run", "show", "r-0008"},
			[]string{"run", "show", "r-0009"},
		), exits: []int{0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
		{name: "tool-run-target-errors", cmds: cmds(
			[]string{"tool", "run", "gh-crawler", "--site", "lab-b", "--any"},
			[]string{"tool", "run", "gh-crawler", "--any", "--all"},
			[]string{"tool", "run", "gh-crawler", "--all", "--site", "lab-a", "--any"},
			[]string{"tool", "run", "gh-crawler", "--all", "--follow"},
			[]string{"tool", "run", "gh-crawler", "--label", "zone=eu", "--all", "-f"},
			[]string{"tool", "run", "gh-crawler", "--label", "novalue"},
			[]string{"tool", "run", "gh-crawler", "--label", "bad key=x"},
			[]string{"tool", "run", "gh-crawler", "--retries", "-1"},
			[]string{"tool", "run", "gh-crawler", "--retries", "many"},
			[]string{"tool", "run", "gh-crawler", "--retries", "101"},
			[]string{"tool", "run", "gh-crawler", "--site", "Bad/Name"},
			[]string{"tool", "run", "gh-crawler", "--site", "lab-c"},
			[]string{"tool", "run", "gh-crawler", "--site", "nope"},
			[]string{"tool", "run", "gh-crawler", "--site", "lab-b", "--label", "zone=us"},
			[]string{"tool", "run", "gh-crawler", "--all", "--label", "zone=mars"},
			[]string{"run", "list"},
		), exits: []int{2, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 0}},
		{name: "tool-run-follow-any", setup: seedFederation, cmds: cmds(
			[]string{"tool", "run", "gh-crawler", "--any", "--follow"},
			[]string{"run", "show", "r-0008"},
		), exits: []int{0, 0}},
		{name: "tool-run-follow-lost", setup: seedFederation, cmds: cmds(
			[]string{"tool", "run", "gpu-train", "--label", "gpu=a100", "-f"},
			[]string{"tool", "run", "gpu-train", "--site", "lab-a", "--follow", "-q"},
			[]string{"run", "list", "--tool", "gpu-train"},
		), exits: []int{1, 1, 0}},
		{name: "tool-run-follow-succeeded", cmds: cmds(
			[]string{"tool", "run", "gh-crawler", "--follow"},
			[]string{"run", "show", "r-0004"},
		), exits: []int{0, 0}},
		{name: "tool-run-follow-exit-3", cmds: cmds(
			[]string{"tool", "run", "--follow", "code-stats"},
		), exits: []int{3}},
		{name: "tool-run-follow-timed-out", cmds: cmds(
			[]string{"tool", "run", "slow-tool", "-f"},
		), exits: []int{124}},
		{name: "tool-run-follow-pull-failed", cmds: cmds(
			[]string{"tool", "run", "broken-image", "--follow"},
			[]string{"run", "show", "r-0004"},
		), exits: []int{1, 0}},

		{name: "tool-series", cmds: cmds(
			[]string{"tool", "series", "gh-crawler"},
			[]string{"tool", "series", "gh-crawler", "--site", "lab-a", "--all-points"},
			[]string{"tool", "series", "code-stats", "--metric", "go_lines"},
			[]string{"tool", "series", "gh-crawler", "--site", "lab-b", "-o", "json"},
			[]string{"tool", "series", "gh-crawler", "--metric", "nothing"},
			[]string{"tool", "series", "gh-crawler", "--metric", "nothing", "-o", "json"},
			[]string{"tool", "series", "nope"},
			[]string{"tool", "series"},
		), exits: []int{0, 0, 0, 0, 0, 0, 1, 2}},

		{name: "detector-check", stdin: "value\n3\n3.2\n2.9\n3.1\n3\n2.8\n9.5\n3\n", cmds: cmds(
			[]string{"detector", "check", "testdata/detector-flat-jump.csv"},
			[]string{"detector", "check", "testdata/detector-predecessor.csv", "--column", "control", "--method", "gain", "--threshold", "6"},
			[]string{"detector", "check", "testdata/detector-predecessor.csv", "--column", "3", "--method", "gain"},
			[]string{"detector", "check", "-", "--method", "zscore", "--window", "4", "--min-history", "3", "--direction", "up", "-o", "json"},
			[]string{"--addr", "$CLOSED", "detector", "check", "-", "--floor", "10", "--min-history", "3"},
		), exits: []int{0, 0, 0, 0, 0}},
		{name: "detector-check-errors", cmds: cmds(
			[]string{"detector", "check", "testdata/detector-bad-cell.csv"},
			[]string{"detector", "check", "testdata/detector-predecessor.csv", "--column", "commits"},
			[]string{"detector", "check", "testdata/missing.csv"},
			[]string{"detector", "check", "-"},
			[]string{"detector", "check", "testdata/detector-flat-jump.csv", "--method", "median", "--window", "2",
				"--threshold", "-1", "--direction", "sideways", "--floor", "-0.5", "--column", "0"},
			[]string{"detector", "check", "testdata/detector-flat-jump.csv", "--method", "gain", "--min-history", "1"},
			[]string{"detector", "check", "testdata/detector-flat-jump.csv", "--window", "many"},
			[]string{"detector", "check"},
			[]string{"detector", "check", "a.csv", "b.csv"},
		), exits: []int{1, 1, 1, 1, 2, 2, 2, 2, 2}},

		{name: "notify-list", cmds: cmds(
			[]string{"notify", "list"},
			[]string{"notify", "list", "--tool", "gh-crawler", "--limit", "2"},
			[]string{"notify", "list", "--limit", "1", "-o", "json"},
			[]string{"notify", "list", "--tool", "nothing"},
			[]string{"notify", "list", "--tool", "nothing", "-o", "json"},
			[]string{"notify", "list", "--limit", "0"},
		), exits: []int{0, 0, 0, 0, 0, 2}},
		{name: "notify-test", cmds: cmds(
			[]string{"notify", "test"},
			[]string{"notify", "test", "https://hooks.example.org/services/" + secretToken},
			[]string{"notify", "test", "https://mao:" + secretToken + "@down.example.org:9/notify"},
			[]string{"notify", "test", "https://hooks.example.org/services/" + secretToken, "-o", "json"},
			[]string{"notify", "test", "https://hooks.example.org/services/" + secretToken, "extra"},
			[]string{"notify", "test", "ftp://mao:" + secretToken + "@files.example.org/"},
			[]string{"notify", "list", "--limit", "5"},
		), exits: []int{1, 0, 1, 0, 2, 1, 0}},
		{name: "notify-test-no-channels", setup: func(t *testing.T, f *fakeOrchestrator, _ string) {
			f.channels = nil
		}, cmds: cmds(
			[]string{"notify", "test"},
		), exits: []int{1}},

		{name: "dataset-list-show-get", cmds: cmds(
			[]string{"dataset", "list"},
			[]string{"dataset", "list", "-o", "json"},
			[]string{"dataset", "show", "linux-src"},
			[]string{"dataset", "show", "gh-data", "-o", "json"},
			[]string{"dataset", "show", "nope"},
			[]string{"dataset", "get"},
			[]string{"dataset", "get", "--name", "linux-src"},
			[]string{"dataset", "get", "gh-data"},
		), exits: []int{0, 0, 0, 0, 1, 0, 0, 0}},
		{name: "dataset-register", cmds: cmds(
			[]string{"dataset", "register", "-f", "testdata/dataset.yaml"},
			[]string{"dataset", "register", "-f", "testdata/dataset.yaml", "--name", "census-stable", "--branch", "stable"},
			[]string{"dataset", "register", "--name", "flagged", "--url", "ssh://git@git.example.org/flagged.git",
				"--branch", "dev", "--owner", "me", "--description", "from flags"},
			[]string{"dataset", "add", "classic", "https://git.example.org/classic.git"},
			[]string{"dataset", "add", "classic2", "https://git.example.org/classic2.git", "--owner", "lab", "-o", "json"},
			[]string{"dataset", "list"},
		), exits: []int{0, 0, 0, 0, 0, 0}},
		{name: "dataset-register-errors", cmds: cmds(
			[]string{"dataset", "register", "--name", "Bad", "--url", "http://example.org/x", "--branch", "a..b"},
			[]string{"dataset", "add", "linux-src", "https://git.example.org/other.git"},
			[]string{"dataset", "register"},
			[]string{"dataset", "add", "a", "b", "c"},
			[]string{"dataset", "register", "-f", "testdata/dataset.yaml", "x", "y"},
		), exits: []int{1, 1, 2, 2, 2}},
		{name: "dataset-remove", cmds: cmds(
			[]string{"dataset", "remove", "gh-data"},
			[]string{"dataset", "list"},
			[]string{"dataset", "remove", "gh-data"},
		), exits: []int{0, 0, 1}},
		{name: "dataset-clone", setup: seedGitDatasets, cmds: cmds(
			[]string{"dataset", "clone", "local", "$TMP/out"},
			[]string{"dataset", "clone", "local-v2", "$TMP/out-v2", "-o", "json"},
			[]string{"dataset", "clone", "local", "$TMP/out"},
			[]string{"dataset", "clone", "local", "$TMP/out/data.csv"},
			[]string{"dataset", "clone", "nope", "$TMP/nope"},
			[]string{"dataset", "clone", "unreachable", "$TMP/unreachable"},
			[]string{"dataset", "clone", "local", "$TMP/unreachable"}, // the failed clone left nothing behind
			[]string{"dataset", "clone"},
		), exits: []int{0, 0, 1, 1, 1, 1, 0, 2}},
		{name: "dataset-clone-default-dir", setup: func(t *testing.T, f *fakeOrchestrator, tmp string) {
			seedGitDatasets(t, f, tmp)
			work := filepath.Join(tmp, "work")
			if err := os.MkdirAll(filepath.Join(work, "empty"), 0o755); err != nil {
				t.Fatal(err)
			}
			t.Chdir(work)
		}, cmds: cmds(
			[]string{"dataset", "clone", "local"},
			[]string{"dataset", "clone", "local-v2", "empty"},
		), exits: []int{0, 0}},

		{name: "run-list", cmds: cmds(
			[]string{"run", "list"},
			[]string{"run", "list", "--tool", "code-stats"},
			[]string{"run", "list", "-o", "json", "--tool", "code-stats"},
			[]string{"run", "list", "--tool", "nothing"},
		), exits: []int{0, 0, 0, 0}},
		{name: "run-show", cmds: cmds(
			[]string{"run", "show", "r-0001"},
			[]string{"run", "show", "r-0002"},
			[]string{"run", "show", "r-0003"},
			[]string{"run", "show", "r-0002", "-o", "json"},
			[]string{"run", "show", "r-9999"},
		), exits: []int{0, 0, 0, 0, 1}},
		{name: "run-logs", cmds: cmds(
			[]string{"run", "logs", "r-0001"},
			[]string{"run", "logs", "r-0001", "--tail", "3"},
			[]string{"run", "logs", "--tail=1", "r-0002"},
			[]string{"run", "logs", "r-0001", "--tail", "-1"},
			[]string{"run", "logs", "r-9999"},
			[]string{"tool", "run", "gh-crawler"},
			[]string{"run", "logs", "r-0004", "--follow"},
			[]string{"run", "list", "--tool", "gh-crawler"},
		), exits: []int{0, 0, 0, 2, 1, 0, 0, 0}},

		{name: "run-show-verdicts", setup: seedVerdicts, cmds: cmds(
			[]string{"run", "show", "r-0201"},
			[]string{"run", "show", "r-0202"},
			[]string{"run", "show", "r-0203"},
			[]string{"run", "show", "r-0204"},
			[]string{"run", "show", "r-0201", "-o", "json"},
		), exits: []int{0, 0, 0, 0, 0}},

		{name: "run-list-federation", setup: seedFederation, cmds: cmds(
			[]string{"run", "list"},
			[]string{"run", "show", "r-0101"},
			[]string{"run", "show", "r-0102"},
			[]string{"run", "show", "r-0103"},
			[]string{"run", "show", "r-0104"},
			[]string{"run", "show", "r-0102", "-o", "json"},
		), exits: []int{0, 0, 0, 0, 0, 0}},

		{name: "run-list-scheduled", setup: seedSchedules, cmds: cmds(
			[]string{"run", "list"},
			[]string{"run", "list", "--schedule", "gh-crawler-daily-3f2a"},
			[]string{"run", "list", "--schedule", "gh-crawler-every-5d10", "-o", "json"},
			[]string{"run", "list", "--tool", "code-stats", "--schedule", "code-stats-weekly-81c0"},
			[]string{"run", "list", "--schedule", "nope"},
		), exits: []int{0, 0, 0, 0, 0}},
		{name: "run-show-scheduled", setup: seedSchedules, cmds: cmds(
			[]string{"run", "show", "gh-crawler-daily-3f2a-20250314T1100Z"},
			[]string{"run", "show", "gh-crawler-daily-3f2a-20250314T1100Z", "-o", "json"},
			[]string{"run", "show", "gh-crawler-daily-3f2a-20250312T1100Z"},
			[]string{"run", "show", "gh-crawler-daily-3f2a-20250313T1100Z"},
			[]string{"run", "show", "gh-crawler-every-5d10-20250314T1200Z"},
			[]string{"run", "show", "gh-crawler-every-5d10-20250314T1220Z"},
		), exits: []int{0, 0, 0, 0, 0, 0}},

		{name: "tool-schedule", cmds: cmds(
			[]string{"tool", "schedule", "gh-crawler", "daily"},
			[]string{"tool", "schedule", "code-stats", "weekly", "--weekday", "fri", "--at", "06:00", "--tz", "America/New_York", "-o", "json"},
			[]string{"tool", "schedule", "gh-crawler", "@every 10m", "--overlap", "allow", "--catchup", "skip"},
			[]string{"tool", "schedule", "--tz", "Asia/Kolkata", "code-stats", "15 */6 * * *", "--deadline", "6h",
				"--retries", "2", "--retry-delay", "5m", "--env", "A=1", "--env", "B=x=y"},
			[]string{"tool", "schedule", "slow-tool", "monthly", "--at", "23:59", "--tz", "UTC"},
			[]string{"tool", "schedule", "slow-tool", "@hourly", "--tz", "Asia/Kolkata"},
			[]string{"schedule", "list"},
			[]string{"schedule", "show", "code-stats-cron-3f2d"},
		), exits: []int{0, 0, 0, 0, 0, 0, 0, 0}},
		{name: "tool-schedule-errors", cmds: cmds(
			[]string{"tool", "schedule", "gh-crawler", "61 * * * *"},
			[]string{"tool", "schedule", "gh-crawler", "daily", "--at", "25:00", "--overlap", "sometimes", "--catchup", "all",
				"--retries", "101", "--deadline", "soon", "--retry-delay", "-1m", "--env", "1BAD=x"},
			[]string{"tool", "schedule", "gh-crawler", "weekly", "--weekday", "someday", "--tz", "Mars/Olympus_Mons"},
			[]string{"tool", "schedule", "gh-crawler", "@every 10m", "--at", "06:00"},
			[]string{"tool", "schedule", "gh-crawler", "@every 90ms"},
			[]string{"tool", "schedule", "nope", "daily"},
			[]string{"tool", "schedule", "gh-crawler"},
			[]string{"tool", "schedule"},
			[]string{"tool", "schedule", "gh-crawler", "@every", "10m"},
			[]string{"tool", "schedule", "gh-crawler", "daily", "--env", "NOVALUE"},
			[]string{"tool", "schedule", "gh-crawler", "daily", "--retries", "many"},
			[]string{"schedule", "list"},
		), exits: []int{1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 0}},

		{name: "tool-schedule-target", cmds: cmds(
			[]string{"tool", "schedule", "gh-crawler", "daily", "--all", "--label", "zone=eu"},
			[]string{"tool", "schedule", "code-stats", "weekly", "--site", "lab-b", "-o", "json"},
			[]string{"tool", "schedule", "gh-crawler", "@every 10m", "--label", "gpu=a100"},
			[]string{"tool", "schedule", "slow-tool", "daily", "--any"},
			[]string{"tool", "schedule", "slow-tool", "daily"},
			[]string{"tool", "schedule", "gh-crawler", "daily", "--any", "--site", "lab-a"},
			[]string{"tool", "schedule", "gh-crawler", "daily", "--label", "x"},
			[]string{"tool", "schedule", "gh-crawler", "daily", "--site", "Bad/Name"},
			[]string{"schedule", "list"},
			[]string{"schedule", "show", "gh-crawler-daily-3f2a"},
		), exits: []int{0, 0, 0, 0, 0, 2, 2, 1, 0, 0}},

		{name: "schedule-list", setup: seedSchedules, cmds: cmds(
			[]string{"schedule", "list"},
			[]string{"schedule", "list", "--tool", "gh-crawler"},
			[]string{"schedule", "list", "--tool", "code-stats", "-o", "json"},
			[]string{"schedule", "list", "--tool", "nothing"},
			[]string{"schedule", "list", "--tool", "nothing", "-o", "json"},
			[]string{"tool", "list-scheduled"},
			[]string{"tool", "list-scheduled", "--tool", "gh-crawler", "-o", "json"},
			[]string{"schedule", "list", "extra"},
		), exits: []int{0, 0, 0, 0, 0, 0, 0, 2}},
		{name: "schedule-show", setup: seedSchedules, cmds: cmds(
			[]string{"schedule", "show", "gh-crawler-daily-3f2a"},
			[]string{"schedule", "show", "code-stats-weekly-81c0"},
			[]string{"schedule", "show", "gh-crawler-every-5d10"},
			[]string{"schedule", "show", "old-tool-cron-0b7e"},
			[]string{"schedule", "show", "gh-crawler-daily-3f2a", "-o", "json"},
			[]string{"schedule", "show", "nope"},
			[]string{"schedule", "show"},
		), exits: []int{0, 0, 0, 0, 0, 1, 2}},
		{name: "schedule-pause-resume-remove", setup: seedSchedules, cmds: cmds(
			[]string{"schedule", "pause", "gh-crawler-daily-3f2a"},
			[]string{"schedule", "pause", "gh-crawler-every-5d10", "-o", "json"},
			[]string{"schedule", "pause", "old-tool-cron-0b7e"},
			[]string{"schedule", "list"},
			[]string{"schedule", "resume", "gh-crawler-daily-3f2a"},
			[]string{"schedule", "resume", "code-stats-weekly-81c0", "-o", "json"},
			[]string{"schedule", "remove", "old-tool-cron-0b7e"},
			[]string{"schedule", "remove", "gh-crawler-every-5d10", "-o", "json"},
			[]string{"tool", "stop", "code-stats-weekly-81c0"},
			[]string{"schedule", "list"},
			[]string{"run", "list", "--schedule", "old-tool-cron-0b7e"},
			[]string{"schedule", "pause", "nope"},
			[]string{"schedule", "resume", "nope"},
			[]string{"schedule", "remove", "nope"},
			[]string{"tool", "stop", "nope", "-o", "json"},
			[]string{"tool", "stop"},
			[]string{"schedule", "pause", "a", "b"},
		), exits: []int{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2}},
		{name: "schedule-update", setup: seedSchedules, cmds: cmds(
			[]string{"schedule", "update", "gh-crawler-daily-3f2a", "--at", "07:45", "--env", "DEPTH=shallow", "--env", "NEW=1",
				"--unset-env", "TOKEN_FILE", "--retries", "0"},
			[]string{"schedule", "show", "gh-crawler-daily-3f2a"},
			[]string{"schedule", "update", "gh-crawler-every-5d10", "--spec", "@every 1h", "--catchup", "once", "-o", "json"},
			[]string{"schedule", "update", "gh-crawler-daily-3f2a", "--spec", "0 3 * * *"},
			[]string{"schedule", "update", "gh-crawler-daily-3f2a", "--spec", "0 3 * * *", "--at", "", "--tz", "Asia/Kolkata"},
			[]string{"schedule", "update", "code-stats-weekly-81c0", "--weekday", "sun"},
			[]string{"schedule", "update", "old-tool-cron-0b7e", "--spec", "0 25 * * *"},
			[]string{"schedule", "list"},
			[]string{"schedule", "update", "gh-crawler-daily-3f2a"},
			[]string{"schedule", "update", "nope", "--at", "01:00"},
			[]string{"schedule", "update", "gh-crawler-daily-3f2a", "--env", "BAD"},
			[]string{"schedule", "update", "--at", "01:00"},
		), exits: []int{0, 0, 0, 1, 0, 0, 1, 0, 2, 1, 2, 2}},

		{name: "schedule-update-target", setup: seedSchedules, cmds: cmds(
			[]string{"schedule", "update", "gh-crawler-daily-3f2a", "--all", "--label", "zone=eu"},
			[]string{"schedule", "show", "gh-crawler-daily-3f2a"},
			[]string{"schedule", "update", "code-stats-weekly-81c0", "--label", "gpu=a100"},
			[]string{"schedule", "update", "old-tool-cron-0b7e", "--any"},
			[]string{"schedule", "update", "gh-crawler-every-5d10", "--site", "lab-b", "-o", "json"},
			[]string{"schedule", "list"},
			[]string{"schedule", "update", "gh-crawler-daily-3f2a", "--all", "--site", "lab-a"},
			[]string{"schedule", "update", "gh-crawler-daily-3f2a", "--label", "=x"},
		), exits: []int{0, 0, 0, 0, 0, 0, 2, 2}},

		{name: "site-list", cmds: cmds(
			[]string{"site", "list"},
			[]string{"site", "list", "-o", "json"},
			[]string{"site", "show", "lab-a"},
			[]string{"site", "show", "lab-c"},
			[]string{"site", "show", "lab-b", "-o", "json"},
			[]string{"site", "show", "nope"},
			[]string{"site", "show"},
		), exits: []int{0, 0, 0, 0, 0, 1, 2}},
		{name: "site-list-empty", setup: func(t *testing.T, f *fakeOrchestrator, _ string) {
			f.sites = nil
		}, cmds: cmds(
			[]string{"site", "list"},
			[]string{"site", "list", "-o", "json"},
		), exits: []int{0, 0}},

		{name: "federation-status", cmds: cmds(
			[]string{"federation", "status"},
			[]string{"federation", "status", "-o", "json"},
			[]string{"federation", "status", "extra"},
		), exits: []int{0, 0, 2}},
		{name: "federation-status-no-leader", setup: func(t *testing.T, f *fakeOrchestrator, _ string) {
			f.federation.Leader = ""
			f.federation.Members[0].Leader = false
			f.federation.Members[1].Health = "context deadline exceeded"
			f.federation.Members[1].Version = ""
			f.federation.Members = append(f.federation.Members, api.Member{ID: "a1b2c3d4e5f60002", Name: "lab-c",
				PeerURLs: []string{"http://10.0.0.9:2380"}, Health: "not started"})
		}, cmds: cmds(
			[]string{"federation", "status"},
		), exits: []int{0}},
		{name: "federation-add-remove-site", cmds: cmds(
			[]string{"federation", "add-site", "lab-c", "--peer-url", "http://10.0.0.9:2380", "--client-url", "http://10.0.0.9:2379"},
			[]string{"federation", "status"},
			[]string{"federation", "add-site", "lab-d", "--peer-url", "http://10.0.0.10:2380", "-o", "json"},
			[]string{"federation", "remove-site", "lab-d"},
			[]string{"federation", "remove-site", "lab-c", "-o", "json"},
			[]string{"federation", "status"},
			[]string{"federation", "remove-site", "lab-d"},
			[]string{"federation", "add-site", "lab-b", "--peer-url", "http://10.0.0.7:2380"},
			[]string{"federation", "add-site", "lab-e", "--peer-url", "10.0.0.11"},
			[]string{"federation", "add-site", "lab-e"},
			[]string{"federation", "add-site", "--peer-url", "http://10.0.0.11:2380"},
			[]string{"federation", "remove-site"},
			[]string{"federation", "frob"},
		), exits: []int{0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2}},
		{name: "health", cmds: cmds(
			[]string{"health"},
			[]string{"health", "-o", "json"},
		), exits: []int{0, 0}},
		{name: "health-degraded", setup: func(t *testing.T, f *fakeOrchestrator, _ string) {
			f.health = api.Health{Status: "degraded", Site: "lab-a", Etcd: "ok", Docker: "cannot reach /var/run/docker.sock"}
		}, cmds: cmds(
			[]string{"health"},
		), exits: []int{1}},

		{name: "error-unauthorized", setup: func(t *testing.T, f *fakeOrchestrator, _ string) {
			f.token = secretToken
		}, cmds: cmds(
			[]string{"tool", "list"},
			[]string{"--token", "wrong", "tool", "list"},
			[]string{"tool", "list", "--token", secretToken},
		), exits: []int{1, 1, 0}},
		{name: "error-unavailable", setup: func(t *testing.T, f *fakeOrchestrator, _ string) {
			f.unavailable = "the registry (etcd) is unreachable; try again later"
		}, cmds: cmds(
			[]string{"tool", "list"},
		), exits: []int{1}},
		{name: "error-unreachable", cmds: cmds(
			[]string{"--addr", "$CLOSED", "tool", "list"},
			[]string{"run", "show", "r-0001", "--addr", "http://$CLOSED"},
		), exits: []int{1, 1}},
		{name: "error-usage", cmds: cmds(
			[]string{"frob"},
			[]string{"tool", "frob"},
			[]string{"tool", "list", "--bogus"},
			[]string{"--bogus", "tool", "list"},
			[]string{"tool", "list", "extra"},
			[]string{"-o", "yaml", "tool", "list"},
			[]string{"--addr", "ftp://127.0.0.1:1", "tool", "list"},
		), exits: []int{2, 2, 2, 2, 2, 2, 2}},

		{name: "completion", cmds: cmds(
			[]string{"completion", "bash"},
			[]string{"completion", "zsh"},
			[]string{"completion", "fish"},
			[]string{"completion", "tcsh"},
			[]string{"--generate-bash-completion"},
			[]string{"tool", "--generate-bash-completion"},
			[]string{"run", "logs", "--generate-bash-completion"},
			[]string{"schedule", "--generate-bash-completion"},
			[]string{"tool", "schedule", "--generate-bash-completion"},
			[]string{"schedule", "update", "--generate-bash-completion"},
			[]string{"run", "list", "--generate-bash-completion"},
			[]string{"tool", "run", "--generate-bash-completion"},
			[]string{"federation", "--generate-bash-completion"},
			[]string{"federation", "add-site", "--generate-bash-completion"},
			[]string{"tool", "series", "--generate-bash-completion"},
			[]string{"notify", "--generate-bash-completion"},
			[]string{"notify", "list", "--generate-bash-completion"},
			[]string{"detector", "--generate-bash-completion"},
			[]string{"detector", "check", "--generate-bash-completion"},
		), exits: []int{0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
	}
	goldenDir, err := filepath.Abs("testdata") // some cases change directory
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if len(tc.exits) != len(tc.cmds) {
				t.Fatalf("case has %d commands but %d exit statuses", len(tc.cmds), len(tc.exits))
			}
			f, srv := newFake(t)
			tmp := t.TempDir()
			closed := closedAddr(t)
			t.Setenv("MAO_ADDR", srv.URL)
			t.Setenv("MAO_TOKEN", "")
			if tc.setup != nil {
				tc.setup(t, f, tmp)
			}
			expand := strings.NewReplacer("$TMP", tmp, "$CLOSED", closed)
			normalize := strings.NewReplacer(srv.URL, "$ADDR", strings.TrimPrefix(srv.URL, "http://"), "$ADDR", tmp, "$TMP", closed, "$CLOSED")

			var transcript strings.Builder
			for i, cmd := range tc.cmds {
				args := make([]string, len(cmd))
				for j, a := range cmd {
					args[j] = expand.Replace(a)
				}
				stdout, stderr, code := runMaoctl(t, context.Background(), tc.stdin, args...)
				if code != tc.exits[i] {
					t.Errorf("maoctl %q: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", cmd, code, tc.exits[i], stdout, stderr)
				}
				if strings.Contains(stdout+stderr, secretToken) {
					t.Errorf("maoctl %q printed the token", cmd)
				}
				if code != 0 && code == exitUsage && strings.Contains(stdout, "USAGE") {
					t.Errorf("maoctl %q dumped usage on a usage error", cmd)
				}
				writeTranscript(&transcript, cmd, normalize.Replace(stdout), normalize.Replace(stderr), code)
			}
			checkGolden(t, filepath.Join(goldenDir, tc.name+".golden"), transcript.String())
		})
	}
}

// runMaoctl runs one command line the way cmd/maoctl does, with stdin as
// its standard input.
func runMaoctl(t *testing.T, ctx context.Context, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(ctx, args, strings.NewReader(stdin), &out, &errOut)
	PrintError(&errOut, err)
	return out.String(), errOut.String(), ExitCode(err)
}

func writeTranscript(w *strings.Builder, cmd []string, stdout, stderr string, code int) {
	quoted := make([]string, len(cmd))
	for i, a := range cmd {
		if a == "" || strings.ContainsAny(a, " \n\"'") {
			a = fmt.Sprintf("%q", a)
		}
		quoted[i] = a
	}
	fmt.Fprintln(w, strings.Join(append([]string{"$ maoctl"}, quoted...), " "))
	for _, s := range []struct{ name, text string }{{"stdout", stdout}, {"stderr", stderr}} {
		if s.text == "" {
			continue
		}
		fmt.Fprintf(w, "-- %s --\n%s", s.name, s.text)
		if !strings.HasSuffix(s.text, "\n") {
			w.WriteString("\n-- (no final newline) --\n")
		}
	}
	fmt.Fprintf(w, "-- exit %d --\n\n", code)
}

func checkGolden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (go test -update rewrites it)\n--- got:\n%s\n--- want:\n%s", path, got, want)
	}
}

// closedAddr is a loopback host:port that nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// seedGitDatasets creates a git repository under tmp with a commit on
// master and one more on branch v2 (fixed contents and times, so fixed
// hashes), and registers it as datasets "local" and "local-v2", plus
// "unreachable" pointing at a path that does not exist.
func seedGitDatasets(t *testing.T, f *fakeOrchestrator, tmp string) {
	t.Helper()
	src := filepath.Join(tmp, "src")
	repo, err := git.PlainInit(src, false)
	if err != nil {
		t.Fatal(err)
	}
	wt, err := repo.Worktree()
	if err != nil {
		t.Fatal(err)
	}
	commit := func(file, content, msg string) plumbing.Hash {
		t.Helper()
		if err := os.WriteFile(filepath.Join(src, file), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := wt.Add(file); err != nil {
			t.Fatal(err)
		}
		sig := &object.Signature{Name: "Lab", Email: "lab@example.org", When: *at(0)}
		h, err := wt.Commit(msg, &git.CommitOptions{Author: sig, Committer: sig})
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	commit("data.csv", "region,count\nnorth,1\n", "first data")
	if err := wt.Checkout(&git.CheckoutOptions{Branch: plumbing.NewBranchReferenceName("v2"), Create: true}); err != nil {
		t.Fatal(err)
	}
	commit("data.csv", "region,count\nnorth,2\n", "second data")
	if err := wt.Checkout(&git.CheckoutOptions{Branch: plumbing.NewBranchReferenceName("master")}); err != nil {
		t.Fatal(err)
	}
	f.datasets["local"] = api.Dataset{Name: "local", URL: "file://" + src}
	f.datasets["local-v2"] = api.Dataset{Name: "local-v2", URL: "file://" + src, Branch: "v2"}
	f.datasets["unreachable"] = api.Dataset{Name: "unreachable", URL: "file://" + filepath.Join(tmp, "no-such-repo")}
}

// lineWriter reports the first write that completes a line.
type lineWriter struct {
	buf   bytes.Buffer
	first chan struct{}
}

func (w *lineWriter) Write(p []byte) (int, error) {
	had := bytes.Contains(w.buf.Bytes(), []byte("\n"))
	w.buf.Write(p)
	if !had && bytes.Contains(w.buf.Bytes(), []byte("\n")) {
		close(w.first)
	}
	return len(p), nil
}

// TestToolRunFollowStreams checks that --follow prints log lines while the
// run is still going, and that interrupting it leaves the run alone.
func TestToolRunFollowStreams(t *testing.T) {
	tests := []struct {
		name      string
		interrupt bool
		wantExit  int
		wantErr   string
	}{
		{name: "to the end", wantExit: 0},
		{name: "interrupted", interrupt: true, wantExit: exitInterrupted, wantErr: "maoctl: stopped following run r-0004, which goes on at site lab-a"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, srv := newFake(t)
			hold := make(chan struct{})
			script := f.scripts["gh-crawler"]
			script.hold = hold
			f.scripts["gh-crawler"] = script

			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			out := &lineWriter{first: make(chan struct{})}
			var errOut bytes.Buffer
			done := make(chan error, 1)
			go func() {
				done <- Run(ctx, []string{"--addr", srv.URL, "tool", "run", "gh-crawler", "--follow"}, out, &errOut)
			}()

			select {
			case <-out.first:
			case err := <-done:
				t.Fatalf("Run returned %v before printing a log line", err)
			case <-time.After(30 * time.Second):
				t.Fatal("no log line within 30s")
			}
			f.mu.Lock()
			state := f.runs[len(f.runs)-1].rec.State
			f.mu.Unlock()
			if state != api.StateRunning {
				t.Fatalf("the first log line came once the run was %s; want it while running", state)
			}
			if tc.interrupt {
				cancel()
			} else {
				close(hold)
			}
			err := <-done
			PrintError(&errOut, err)
			if got := ExitCode(err); got != tc.wantExit {
				t.Errorf("exit %d, want %d (err %v)", got, tc.wantExit, err)
			}
			if tc.interrupt {
				if !strings.Contains(errOut.String(), tc.wantErr) {
					t.Errorf("stderr %q does not contain %q", errOut.String(), tc.wantErr)
				}
				return
			}
			if want := f.scripts["gh-crawler"].log; out.buf.String() != want {
				t.Errorf("stdout %q, want the whole log %q", out.buf.String(), want)
			}
			if !strings.HasSuffix(errOut.String(), "run r-0004 succeeded (exit 0) in 6s\n") {
				t.Errorf("stderr %q lacks the summary line", errOut.String())
			}
		})
	}
}
