package maoctl

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/internal/testenv"
	"github.com/mao-research/mao/internal/testsite"
	"github.com/mao-research/mao/orchestrator/config"
	"github.com/mao-research/mao/orchestrator/etcdembed"
	"github.com/mao-research/mao/orchestrator/pki"
)

// commandCases are the golden transcripts of TestCommands.
func commandCases() []cliCase {
	return []cliCase{
		{name: "help", noSite: true, cmds: cmds(
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

		{name: "help-schedule", noSite: true, cmds: cmds(
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
		// Values under the federation's keys that are not valid records
		// (a collaborator's etcdctl put): every list leaves them out and
		// says so, health is degraded, federation check lists them all.
		{name: "invalid-records", setup: seedInvalid, cmds: cmds(
			[]string{"tool", "list"},
			[]string{"tool", "list", "-o", "json"},
			[]string{"dataset", "list"},
			[]string{"run", "list"},
			[]string{"site", "list"},
			[]string{"schedule", "list"},
			[]string{"health"},
			[]string{"federation", "check"},
			[]string{"federation", "check", "-o", "json"},
		), exits: []int{0, 0, 0, 0, 0, 0, 1, 1, 1}},
		{name: "tool-list-empty", bare: true, cmds: cmds(
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

		// The runs start at lab-a, which cannot reach Docker: they fail at
		// their image.
		{name: "tool-run", runnable: true, cmds: cmds(
			[]string{"tool", "run", "gh-crawler"},
			[]string{"tool", "run", "code-stats", "-o", "json"},
			[]string{"tool", "run", "gh-crawler", "-q"},
			[]string{"run", "list"},
			[]string{"run", "show", "$RUN2"},
			[]string{"tool", "run", "nope"},
			[]string{"tool", "run"},
		), exits: []int{0, 0, 0, 0, 0, 1, 2}},
		{name: "tool-run-target", cmds: cmds(
			[]string{"tool", "run", "gh-crawler", "--any"},
			[]string{"tool", "run", "gh-crawler", "--label", "zone=eu", "--label", "gpu=a100"},
			[]string{"tool", "run", "gh-crawler", "--all"},
			[]string{"tool", "run", "code-stats", "--all", "--label", "gpu=a100", "-o", "json"},
			[]string{"tool", "run", "gh-crawler", "--site", "lab-b", "--retries", "2"},
			[]string{"tool", "run", "gh-crawler", "--all", "--label", "zone=eu", "-q"},
			[]string{"run", "list"},
			[]string{"run", "show", "$RUN1"},
			[]string{"run", "show", "$RUN3-lab-a"},
			[]string{"run", "show", "$RUN5"},
			[]string{"run", "show", "$RUN6-lab-a"},
		), exits: []int{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
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
			[]string{"tool", "run", "gh-crawler", "--site", "lab-c"}, // down: the run waits for it
			[]string{"tool", "run", "gh-crawler", "--site", "nope"},
			[]string{"tool", "run", "gh-crawler", "--site", "lab-b", "--label", "zone=us"},
			[]string{"tool", "run", "gh-crawler", "--all", "--label", "zone=mars"},
			[]string{"tool", "run", "gh-crawler", "--all", "--label", "zone=us"}, // lab-c is gone
			[]string{"run", "list"},
		), exits: []int{2, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 0, 1, 1, 1, 1, 0}},
		// lab-a has the tool's image, so it claims the runs any site, a
		// site with its labels, or lab-a alone may run, and their logs are
		// followed from the request on (the follower waits for the claim).
		{name: "tool-run-follow-any", docker: true, bare: true, setup: seedDockerTools, cmds: cmds(
			[]string{"tool", "run", "gh-crawler", "--any", "--follow"},
			[]string{"run", "show", "$RUN1"},
			[]string{"tool", "run", "gh-crawler", "--label", "zone=eu", "--follow"},
			[]string{"tool", "run", "code-stats", "--site", "lab-a", "-f", "-q"},
		), exits: []int{0, 0, 0, 3}},
		// lab-b claims the gpu run, starts it and stops renewing its lease:
		// lab-a settles the run as lost. Its log stays at lab-b, which is
		// down. The run sent to lab-a fails at its image (no Docker).
		{name: "tool-run-follow-lost", atLabC: seedFederationAtC, setup: seedFederation, cmds: cmds(
			[]string{"tool", "run", "gpu-train", "--label", "gpu=a100", "-q"},
			[]string{"run", "show", "$RUN1"},
			[]string{"run", "logs", "$RUN1", "--follow"},
			[]string{"tool", "run", "gpu-train", "--site", "lab-a", "--follow"},
			[]string{"run", "list", "--tool", "gpu-train"},
		), exits: []int{0, 0, 1, 1, 0}, after: map[int]action{0: {
			note: "lab-b claims run $RUN1, starts it, and stops renewing its lease",
			do:   loseAtLabB,
		}}},
		{name: "tool-run-follow-succeeded", docker: true, bare: true, setup: seedDockerTools, cmds: cmds(
			[]string{"tool", "run", "gh-crawler", "--follow"},
			[]string{"run", "show", "$RUN1"},
		), exits: []int{0, 0}},
		{name: "tool-run-follow-exit-3", docker: true, bare: true, setup: seedDockerTools, cmds: cmds(
			[]string{"tool", "run", "--follow", "code-stats"},
		), exits: []int{3}},
		{name: "tool-run-follow-timed-out", docker: true, bare: true, setup: seedDockerTools, cmds: cmds(
			[]string{"tool", "run", "slow-tool", "-f", "-q"},
		), exits: []int{124}},
		{name: "tool-run-follow-pull-failed", docker: true, bare: true, setup: seedDockerTools, cmds: cmds(
			[]string{"tool", "run", "broken-image", "--follow"},
			[]string{"run", "show", "$RUN1"},
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
			[]string{"tool", "series", "gh-crawler", "--svg", "$TMP/gh-crawler.svg"},
			[]string{"tool", "series", "gh-crawler", "--metric", "nothing", "--svg", "$TMP/nothing.svg"},
		), exits: []int{0, 0, 0, 0, 0, 0, 1, 2, 0, 1}, after: map[int]action{8: {
			note: "the plot: one line per site's series, its spikes red",
			do: func(t *testing.T, e *env) {
				b, err := os.ReadFile(filepath.Join(e.tmp, "gh-crawler.svg"))
				if err != nil {
					t.Fatal(err)
				}
				list, err := e.site.AdminClient(t).Series(context.Background(), "gh-crawler", "", "")
				if err != nil {
					t.Fatal(err)
				}
				shape, spikes := parseSVG(t, b), 0
				for _, s := range list.Items {
					for _, p := range s.Points {
						if p.Spike {
							spikes++
						}
					}
				}
				if shape.classes["series"] != len(list.Items) || shape.classes["spike"] != spikes || shape.classes["band"] == 0 {
					t.Errorf("the plot has %v; the API has %d series with %d spikes", shape.classes, len(list.Items), spikes)
				}
			}}}},

		{name: "detector-check", noSite: true, stdin: "value\n3\n3.2\n2.9\n3.1\n3\n2.8\n9.5\n3\n", cmds: cmds(
			[]string{"detector", "check", "testdata/detector-flat-jump.csv"},
			[]string{"detector", "check", "testdata/detector-predecessor.csv", "--column", "control", "--method", "gain", "--threshold", "6"},
			[]string{"detector", "check", "testdata/detector-predecessor.csv", "--column", "3", "--method", "gain"},
			[]string{"detector", "check", "-", "--method", "zscore", "--window", "4", "--min-history", "3", "--direction", "up", "-o", "json"},
			[]string{"--addr", "$CLOSED", "detector", "check", "-", "--floor", "10", "--min-history", "3"},
		), exits: []int{0, 0, 0, 0, 0}},
		{name: "detector-check-errors", noSite: true, cmds: cmds(
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
		// $HOOK is a webhook on loopback, $DOWN a loopback port nobody
		// listens on; the site's channels are one of each. The test to the
		// site's channels comes last: its two messages are recorded at
		// the same (fake) time, in no particular order.
		{name: "notify-test", options: siteChannels, cmds: cmds(
			[]string{"notify", "test", "generic+http://$HOOK/hooks/" + secretToken + "?template=json"},
			[]string{"notify", "test", "generic+http://mao:" + secretToken + "@$DOWN/notify"},
			[]string{"notify", "test", "generic+http://$HOOK/hooks/" + secretToken + "?template=json", "-o", "json"},
			[]string{"notify", "test", "generic+http://$HOOK/hooks/" + secretToken, "extra"},
			[]string{"notify", "test", "ftp://mao:" + secretToken + "@files.example.org/"},
			[]string{"notify", "list", "--limit", "5"},
			[]string{"notify", "test"},
		), exits: []int{0, 1, 0, 2, 1, 0, 1}, after: map[int]action{6: {do: func(t *testing.T, e *env) {
			if got := len(e.hook.messages()); got != 3 {
				t.Errorf("the webhook got %d messages, want 3: %q", got, e.hook.messages())
			}
		}}}},
		{name: "notify-test-no-channels", cmds: cmds(
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
		{name: "dataset-clone-default-dir", serial: true, setup: func(t *testing.T, e *env) {
			seedGitDatasets(t, e)
			work := filepath.Join(e.tmp, "work")
			if err := os.MkdirAll(filepath.Join(work, "empty"), 0o755); err != nil {
				t.Fatal(err)
			}
			t.Chdir(work)
		}, cmds: cmds(
			[]string{"dataset", "clone", "local"},
			[]string{"dataset", "clone", "local-v2", "empty"},
		), exits: []int{0, 0}},

		// A collaborator clones a tool's data (every branch, the sites'
		// mao/<site> too) and keeps the clone up to date; a clone with
		// commits or changes of its own, or untracked files where new ones
		// go, is left as it is.
		{name: "tool-data", serial: true, setup: seedToolData, cmds: cmds(
			[]string{"tool", "data", "results"},
			[]string{"tool", "data", "results"},
			[]string{"tool", "data", "results", "-o", "json"},
			[]string{"tool", "data", "results", "empty"},
			[]string{"tool", "data", "results", "notes"},
			[]string{"tool", "data", "elsewhere", "results"},
			[]string{"tool", "data", "elsewhere", "$TMP/work/elsewhere"},
			[]string{"tool", "data", "results"},
			[]string{"tool", "data", "results", "empty"},
			[]string{"tool", "data", "results", "empty"},
			[]string{"tool", "data", "results", "empty"},
			[]string{"tool", "data", "nope"},
			[]string{"tool", "data"},
		), exits: []int{0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 0, 1, 2}, after: map[int]action{
			0: {do: func(t *testing.T, e *env) {
				repo, err := git.PlainOpen(filepath.Join(e.tmp, "work", "results"))
				if err != nil {
					t.Fatal(err)
				}
				if _, err := repo.Reference(plumbing.NewRemoteReferenceName("origin", "mao/lab-b"), false); err != nil {
					t.Errorf("the clone lacks lab-b's branch: %v", err)
				}
			}},
			1: {note: "a site pushes another run's result", do: func(t *testing.T, e *env) {
				openGitSource(t, filepath.Join(e.tmp, "data")).commit("lab-a/run-3.csv", "count\n3\n", "mao: run results-3 of results at site lab-a")
			}},
			6: {note: "the clone in results gets a commit of its own, and a site pushes another run's result", do: func(t *testing.T, e *env) {
				openGitSource(t, filepath.Join(e.tmp, "work", "results")).commit("mine.txt", "mine\n", "my own notes")
				openGitSource(t, filepath.Join(e.tmp, "data")).commit("lab-a/run-4.csv", "count\n4\n", "mao: run results-4 of results at site lab-a")
			}},
			7: {note: "README is edited in the clone in empty", do: func(t *testing.T, e *env) {
				writeFile(t, filepath.Join(e.tmp, "work", "empty", "README"), "my edit\n")
			}},
			8: {note: "README is as it was, and an untracked lab-a/run-4.csv is where the new file goes", do: func(t *testing.T, e *env) {
				checkFile(t, filepath.Join(e.tmp, "work", "empty", "README"), "my edit\n")
				writeFile(t, filepath.Join(e.tmp, "work", "empty", "README"), "results of the results tool\n")
				writeFile(t, filepath.Join(e.tmp, "work", "empty", "lab-a", "run-4.csv"), "mine\n")
			}},
			9: {note: "the untracked file is moved away", do: func(t *testing.T, e *env) {
				p := filepath.Join(e.tmp, "work", "empty", "lab-a", "run-4.csv")
				checkFile(t, p, "mine\n")
				if err := os.Rename(p, filepath.Join(e.tmp, "work", "run-4.csv")); err != nil {
					t.Fatal(err)
				}
			}},
			10: {do: func(t *testing.T, e *env) {
				checkFile(t, filepath.Join(e.tmp, "work", "empty", "lab-a", "run-4.csv"), "count\n4\n")
			}},
		}},

		{name: "run-list", cmds: cmds(
			[]string{"run", "list"},
			[]string{"run", "list", "--tool", "code-stats"},
			[]string{"run", "list", "-o", "json", "--tool", "code-stats"},
			[]string{"run", "list", "--tool", "nothing"},
		), exits: []int{0, 0, 0, 0}},
		// lab-b is a real orchestrator here, which serves the log of the run
		// it holds (lab-a passes the request on).
		{name: "run-show", realLabB: true, cmds: cmds(
			[]string{"run", "show", run1},
			[]string{"run", "show", run2},
			[]string{"run", "show", run3},
			[]string{"run", "show", run2, "-o", "json"},
			[]string{"run", "show", "gh-crawler-1741944360-nope"},
		), exits: []int{0, 0, 0, 0, 1}},
		// What a replay refuses (internal/fedtest's TestReplay replays at a
		// site with Docker): run1's snapshot has a secret that gh-crawler's
		// record no longer holds.
		{name: "run-replay", cmds: cmds(
			[]string{"run", "replay", run1},
			[]string{"run", "replay", run2},
			[]string{"run", "replay", run3},
			[]string{"run", "replay", "gh-crawler-1741944360-nope"},
			[]string{"run", "replay", run1, "-f", "-q"},
			[]string{"run", "replay"},
		), exits: []int{1, 1, 1, 1, 2, 2}},
		{name: "run-provenance", cmds: cmds(
			[]string{"run", "provenance", run1},
			[]string{"run", "provenance", run1, "-o", "json"},
			[]string{"run", "provenance", run2},
			[]string{"run", "provenance", run3}, // a record without a snapshot
			[]string{"run", "provenance", "gh-crawler-1741944360-nope"},
			[]string{"run", "provenance"},
		), exits: []int{0, 0, 0, 1, 1, 2}},
		{name: "run-logs", realLabB: true, runnable: true, cmds: cmds(
			[]string{"run", "logs", run1},
			[]string{"run", "logs", run1, "--tail", "3"},
			[]string{"run", "logs", "--tail=1", run2},
			[]string{"run", "logs", run1, "--tail", "-1"},
			[]string{"run", "logs", "gh-crawler-1741944360-nope"},
			[]string{"run", "logs", run3},                         // running: what it has written so far
			[]string{"run", "logs", run1, "--tail", "2", "--raw"}, // not a terminal: the same bytes either way
			[]string{"tool", "run", "gh-crawler"},
			[]string{"run", "logs", "$RUN1", "--follow"},
			[]string{"run", "list", "--tool", "gh-crawler"},
		), exits: []int{0, 0, 0, 2, 1, 0, 0, 0, 0, 0}},
		// lab-b is only a record here: lab-a cannot reach it for logs.
		{name: "run-logs-unreachable-site", cmds: cmds(
			[]string{"run", "logs", run2},
			[]string{"run", "show", run2},
		), exits: []int{1, 0}},

		{name: "run-show-verdicts", setup: seedVerdicts, cmds: cmds(
			[]string{"run", "show", runSpike},
			[]string{"run", "show", runMixed},
			[]string{"run", "show", runNoData},
			[]string{"run", "show", runFlatHit},
			[]string{"run", "show", runSpike, "-o", "json"},
		), exits: []int{0, 0, 0, 0, 0}},

		{name: "run-push", setup: seedPushes, cmds: cmds(
			[]string{"run", "list", "--tool", "code-stats"},
			[]string{"run", "list", "--push", "pending"},
			[]string{"run", "list", "--push", "failed"},
			[]string{"run", "list", "--push", "pushed"},
			[]string{"run", "list", "--push", "conflict", "-o", "json"},
			[]string{"run", "list", "--push", "conflict", "--tool", "gh-crawler"},
			[]string{"run", "list", "--push", "lost"},
			[]string{"run", "show", runPushPending},
			[]string{"run", "show", runPushPushed},
			[]string{"run", "show", runPushConflict},
			[]string{"run", "show", runPushFailed},
			[]string{"run", "show", runPushOff},
			[]string{"run", "show", runPushFailed, "-o", "json"},
		), exits: []int{0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0}},

		{name: "run-list-federation", atLabC: seedFederationAtC, setup: seedFederation, cmds: cmds(
			[]string{"run", "list"},
			[]string{"run", "show", runLost},
			[]string{"run", "show", runRetried},
			[]string{"run", "show", runWaiting},
			[]string{"run", "show", runAtB},
			[]string{"run", "show", runRetried, "-o", "json"},
		), exits: []int{0, 0, 0, 0, 0, 0}},

		{name: "run-list-scheduled", setup: seedSchedules, cmds: cmds(
			[]string{"run", "list"},
			[]string{"run", "list", "--schedule", "gh-crawler-daily-3f2a"},
			[]string{"run", "list", "--schedule", "gh-crawler-every-5d10", "-o", "json"},
			[]string{"run", "list", "--tool", "code-stats", "--schedule", "code-stats-weekly-81c0"},
			[]string{"run", "list", "--schedule", "nope"},
		), exits: []int{0, 0, 0, 0, 0}},
		{name: "run-show-scheduled", setup: seedSchedules, cmds: cmds(
			[]string{"run", "show", tickDailyRetrying},
			[]string{"run", "show", tickDailyRetrying, "-o", "json"},
			[]string{"run", "show", tickDailyOnTime},
			[]string{"run", "show", tickDailyLate},
			[]string{"run", "show", tickEveryMissed},
			[]string{"run", "show", tickEverySkipped},
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
			[]string{"schedule", "show", "$SCHED4"},
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
			[]string{"tool", "schedule", "broken-image", "daily"}, // any, as --any: one tool, so the list's order is fixed
			[]string{"tool", "schedule", "gh-crawler", "daily", "--any", "--site", "lab-a"},
			[]string{"tool", "schedule", "gh-crawler", "daily", "--label", "x"},
			[]string{"tool", "schedule", "gh-crawler", "daily", "--site", "Bad/Name"},
			[]string{"schedule", "list"},
			[]string{"schedule", "show", "$SCHED1"},
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
		// A site always lists itself.
		{name: "site-list-alone", bare: true, cmds: cmds(
			[]string{"site", "list"},
			[]string{"site", "list", "-o", "json"},
		), exits: []int{0, 0}},

		{name: "federation-status", options: advertisedPorts, cmds: cmds(
			[]string{"federation", "status"},
			[]string{"federation", "status", "-o", "json"},
			[]string{"federation", "status", "extra"},
		), exits: []int{0, 0, 2}},
		// A site on a cluster of three etcd members, two of them stopped:
		// no leader.
		{name: "federation-status-no-leader", bare: true, noSettle: true, options: etcdCluster(3), setup: stopMembers(1, 2), cmds: cmds(
			[]string{"federation", "status"},
			[]string{"federation", "status", "-o", "json"},
		), exits: []int{1, 1}},
		// add-site issues a join token and adds no etcd member: the site
		// named gets its member when it joins with the token. $PEER_D and
		// the like are loopback ports nobody listens on.
		{name: "federation-add-remove-site", options: advertisedPorts, setup: peers, cmds: cmds(
			[]string{"federation", "add-site", "lab-d", "--peer-url", "https://$PEER_D", "--client-url", "https://$CLIENT_D"},
			[]string{"federation", "status"},
			[]string{"federation", "add-site", "lab-e", "--peer-url", "https://$PEER_E", "-o", "json"},
			// No member: the site joins with the token before it connects,
			// and opens the federation's etcd with its site certificate.
			[]string{"federation", "add-site", "lab-f"},
			[]string{"federation", "remove-site", "lab-d"},
			[]string{"federation", "remove-site", "lab-b"},
			[]string{"federation", "remove-site", "lab-c"},
			[]string{"site", "list"},
			[]string{"federation", "add-site", "lab-e", "--peer-url", "http://$PEER_E"},
			[]string{"federation", "add-site", "lab-e", "--peer-url", "127.0.0.1"},
			[]string{"federation", "add-site", "Lab E", "--peer-url", "https://lab-e.example.org:2380/etcd"},
			// No token for the name of a live site, nor this one's: whoever
			// joined with one would get a certificate in that site's name.
			[]string{"federation", "add-site", "lab-b"},
			[]string{"federation", "add-site", "lab-a", "--peer-url", "https://$PEER_E"},
			[]string{"federation", "add-site", "lab-e", "--client-url", "https://$CLIENT_D"},
			[]string{"federation", "add-site", "--peer-url", "https://$PEER_E"},
			[]string{"federation", "remove-site"},
			[]string{"federation", "frob"},
		), exits: []int{0, 0, 0, 0, 1, 1, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 2}},
		// lab-d joined with a token and a member of its own, but never
		// started: its member is a learner with no name, which remove-site
		// takes by its ID ($MEMBER_D).
		{name: "federation-unstarted-member", options: advertisedPorts, setup: joinedNeverStarted("lab-d", "$PEER_D", "$CLIENT_D", "$MEMBER_D"), cmds: cmds(
			[]string{"federation", "status"},
			[]string{"federation", "remove-site", "lab-d"},
			[]string{"federation", "remove-site", "$MEMBER_D", "-o", "json"},
			[]string{"federation", "status"},
			[]string{"federation", "remove-site", "$MEMBER_D"},
		), exits: []int{0, 1, 0, 0, 1}},
		// A federation made before the voter policy, whose two sites both
		// vote (old-b's member was added as a voter): status warns of the
		// even number, and a new member (a witness, say) would make three.
		{name: "federation-two-voters", bare: true, options: advertisedPorts, setup: legacyVoter("old-b"), cmds: cmds(
			[]string{"federation", "status"},
			[]string{"federation", "add-site", "lab-w", "--peer-url", "https://$PEER_W", "--client-url", "https://$CLIENT_W"},
			[]string{"federation", "add-site", "old-b", "--peer-url", "https://$PEER_W"},
			[]string{"federation", "remove-site", "old-b"},
		), exits: []int{0, 0, 1, 1}},
		// The same with federation.max_voters = 1: a new member would stay
		// a learner, and add-site warns that two voters stay.
		{name: "federation-two-voters-max-one", bare: true, options: func(t *testing.T, e *env, o *testsite.Options) {
			advertisedPorts(t, e, o)
			o.MaxVoters = 1
		}, setup: legacyVoter("old-b"), cmds: cmds(
			[]string{"federation", "add-site", "lab-w", "--peer-url", "https://$PEER_W", "--client-url", "https://$CLIENT_W"},
		), exits: []int{0}},
		// lab-a leaves the federation of lab-a and old-b: federation leave
		// names the site asked, which answers at once and then stops and
		// leaves.
		{name: "federation-leave", bare: true, noSettle: true, options: advertisedPorts, setup: legacyVoter("old-b"), cmds: cmds(
			[]string{"federation", "leave", "old-b"},
			[]string{"federation", "leave"},
			[]string{"federation", "leave", "lab-a"},
		), exits: []int{1, 2, 0}, after: map[int]action{2: {
			note: "lab-a stops and leaves: old-b's member is the cluster's only one, and lab-a's record and etcd user are gone",
			do:   leftFor("old-b"),
		}}},
		// lab-a alone cannot leave: there is no federation to leave.
		{name: "federation-leave-alone", options: advertisedPorts, cmds: cmds(
			[]string{"federation", "leave", "lab-a"},
		), exits: []int{1}},
		// A collaborator's read-only certificate for the federation's etcd:
		// the files it writes and the etcdctl line that uses them. The
		// certificate is signed at the real time (TLS checks it against
		// that), so its expiry is not the site's clock's.
		{name: "federation-credentials", cmds: cmds(
			[]string{"federation", "credentials", "ada", "--read-only", "--out", "$TMP/ada"},
			[]string{"federation", "credentials", "ada"},
			[]string{"federation", "credentials", "--read-only"},
			[]string{"federation", "credentials", "Ada Lovelace", "--read-only", "--out", "$TMP/lovelace"},
		), exits: []int{0, 2, 2, 1}, after: map[int]action{0: {
			note: "with ada's files, etcd lets ada read the prefix, and neither write it nor read outside it",
			do:   readOnly("$TMP/ada", "ada"),
		}}},
		{name: "health", docker: true, bare: true, cmds: cmds(
			[]string{"health"},
			[]string{"health", "-o", "json"},
		), exits: []int{0, 0}},
		// The site's Docker host is a socket that does not exist.
		{name: "health-degraded", bare: true, cmds: cmds(
			[]string{"health"},
		), exits: []int{1}},
		// The site's etcd has lost its quorum (two members of three
		// stopped): the site is offline; site list shows its own row, from
		// what it knows of itself, and says so.
		{name: "offline", bare: true, noSettle: true, options: etcdCluster(3), setup: stopMembers(1, 2), cmds: cmds(
			[]string{"health"},
			[]string{"site", "list"},
			[]string{"site", "list", "-o", "json"},
		), exits: []int{1, 0, 0}},

		{name: "error-unauthorized", options: func(t *testing.T, e *env, o *testsite.Options) {
			o.Tokens = []config.Token{{Name: "ci", Scope: config.ScopeAdmin, Secret: secretToken}}
		}, cmds: cmds(
			[]string{"tool", "list"},
			[]string{"--token", "wrong", "tool", "list"},
			[]string{"tool", "list", "--token", secretToken},
		), exits: []int{1, 1, 0}},
		// Named tokens of each scope: a command that needs more than the
		// token's scope gets 403, which names the scope it needs. A run
		// records the name of the token that asked for it.
		{name: "error-forbidden", runnable: true, options: scopedTokens, cmds: cmds(
			[]string{"--token", "$READ", "run", "list", "--tool", "code-stats"},
			[]string{"--token", "$READ", "tool", "run", "gh-crawler"},
			[]string{"--token", "$RUN", "tool", "run", "gh-crawler", "-q"},
			[]string{"--token", "$READ", "run", "show", "$RUN1", "-o", "json"},
			[]string{"--token", "$RUN", "tool", "remove", "slow-tool"},
			[]string{"--token", "$RUN", "notify", "test", "generic+http://$CLOSED/hook"},
			[]string{"--token", "$RUN", "federation", "add-site", "lab-d"},
			[]string{"--token", "$READ", "federation", "credentials", "ada", "--read-only", "--out", "$TMP/ada"},
			[]string{"--token", "$ADMIN", "tool", "remove", "slow-tool"},
		), exits: []int{0, 1, 0, 0, 1, 1, 1, 1, 0}},
		// The API serves HTTPS with a certificate of a private authority:
		// --ca-file trusts it.
		{name: "api-tls", bare: true, options: func(t *testing.T, e *env, o *testsite.Options) { o.APITLS = true },
			setup: func(t *testing.T, e *env) { e.norm.setVar("$CA", e.site.APICAFile) }, cmds: cmds(
				[]string{"tool", "list"},
				[]string{"--ca-file", "$CA", "tool", "list"},
			), exits: []int{1, 0}},
		// The site's etcd (one member) stops.
		{name: "error-unavailable", bare: true, noSettle: true, options: etcdCluster(1), setup: stopMembers(0), cmds: cmds(
			[]string{"tool", "list"},
		), exits: []int{1}},
		{name: "error-unreachable", noSite: true, cmds: cmds(
			[]string{"--addr", "$CLOSED", "tool", "list"},
			[]string{"run", "show", run1, "--addr", "http://$CLOSED"},
		), exits: []int{1, 1}},
		{name: "error-usage", noSite: true, cmds: cmds(
			[]string{"frob"},
			[]string{"tool", "frob"},
			[]string{"tool", "list", "--bogus"},
			[]string{"--bogus", "tool", "list"},
			[]string{"tool", "list", "extra"},
			[]string{"-o", "yaml", "tool", "list"},
			[]string{"--addr", "ftp://127.0.0.1:1", "tool", "list"},
		), exits: []int{2, 2, 2, 2, 2, 2, 2}},

		{name: "completion", noSite: true, cmds: cmds(
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
}

// seedDockerTools registers tools that really run, on the locally built
// test image (internal/testenv/testtool) with file:// data repositories:
//   - gh-crawler prints three lines and writes a file named after its run;
//   - code-stats exits with code 3;
//   - slow-tool sleeps past its timeout of 2s;
//   - broken-image names an image at a loopback registry nobody runs.
func seedDockerTools(t *testing.T, e *env) {
	t.Helper()
	image := testenv.BuildTestImage(t)
	e.norm.name(image, "$TEST_IMAGE") // tagged with a hash of the test tool's code
	tool := func(name string, args ...string) api.Tool {
		return api.Tool{Name: name, Author: "lab", Image: image, DataRepo: fixedRepo(t, e, name+"-data", "README", name+"\n"),
			Artefact: "test output", Command: args, Network: "none"}
	}
	slow := tool("slow-tool", "-sleep", "60s")
	slow.Timeout = "2s"
	broken := tool("broken-image")
	broken.Image = e.addr(testenv.ClosedPort(t), "$REGISTRY") + "/missing:1"
	for _, tl := range []api.Tool{tool("gh-crawler", "-lines", "3", "-mark"), tool("code-stats", "-exit", "3"), slow, broken} {
		e.site.Tool(t, tl)
	}
}

// loseAtLabB acts for lab-b: it claims the run the case's first command
// requested, records it running, and leaves the federation without ending
// it; then it waits until lab-a has settled the run.
func loseAtLabB(t *testing.T, e *env) {
	t.Helper()
	id := e.norm.expand("$RUN1")
	run := e.site.ClaimAs(t, id, "lab-b")
	started := e.site.Now()
	run.State, run.StartedAt = api.StateRunning, &started
	e.site.SaveAs(t, run)
	e.other["lab-b"].Leave(t)
	e.site.WaitRun(t, id, func(r api.Run) bool { return r.State.Terminal() })
}

// scopedTokens gives the site a named token of each scope: ops (admin),
// reader (read) and ci (run), which command lines name $ADMIN, $READ and
// $RUN.
func scopedTokens(t *testing.T, e *env, o *testsite.Options) {
	for _, tok := range []config.Token{
		{Name: "ops", Scope: config.ScopeAdmin, Secret: secretToken + "-admin"},
		{Name: "reader", Scope: config.ScopeRead, Secret: secretToken + "-read"},
		{Name: "ci", Scope: config.ScopeRun, Secret: secretToken + "-run"},
	} {
		o.Tokens = append(o.Tokens, tok)
		e.norm.name(tok.Secret, "$"+strings.ToUpper(strings.TrimPrefix(tok.Secret, secretToken+"-")))
	}
}

// siteChannels gives the site two channels: a webhook on loopback ($HOOK)
// and a loopback port nobody listens on ($DOWN).
func siteChannels(t *testing.T, e *env, o *testsite.Options) {
	t.Helper()
	var hook string
	e.hook, hook = newReceiver(t)
	e.addr(hook, "$HOOK")
	down := e.addr(testenv.ClosedPort(t), "$DOWN")
	o.NotifyURLs = []string{"generic+http://" + hook + "/site/" + secretToken + "?template=json", "generic+http://mao:" + secretToken + "@" + down + "/site"}
}

// advertisedPorts makes the site's etcd member advertise the free ports it
// listens on, as in a real federation; its ID and the cluster's are
// random then.
func advertisedPorts(t *testing.T, e *env, o *testsite.Options) {
	o.AdvertisedPorts = true
}

// etcdCluster makes the site use a cluster of n etcd member processes
// instead of its embedded member; their IDs and the cluster's are random.
func etcdCluster(n int) func(*testing.T, *env, *testsite.Options) {
	return func(t *testing.T, e *env, o *testsite.Options) {
		t.Helper()
		e.cluster = testenv.EtcdCluster(t, n)
		o.Etcd, o.RequestTimeout = e.cluster.Endpoints(), time.Second
		c := e.cluster.Client(t)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp, err := c.MemberList(ctx)
		if err != nil {
			t.Fatal(err)
		}
		e.norm.randomMember(fmt.Sprintf("%x", resp.Header.ClusterId))
		for _, m := range resp.Members {
			e.norm.randomMember(fmt.Sprintf("%x", m.ID))
		}
		for i := range n {
			e.addr(e.cluster.Endpoints()[i], fmt.Sprintf("$ETCD%d", i))
			e.addr(e.cluster.PeerURL(i), fmt.Sprintf("$PEER%d", i))
		}
	}
}

// stopMembers kills the etcd members of the site's cluster, and waits
// until the first member left running has no leader, if it has none now:
// a leader that lost its quorum steps down after an election timeout.
func stopMembers(members ...int) func(*testing.T, *env) {
	return func(t *testing.T, e *env) {
		t.Helper()
		left := -1
		for i := range e.cluster.Endpoints() {
			if !slices.Contains(members, i) {
				left = i
				break
			}
		}
		var lost clientv3.WatchChan
		if left >= 0 {
			c, err := clientv3.New(clientv3.Config{Endpoints: e.cluster.Endpoints()[left : left+1], DialTimeout: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			// The member ends a watch that requires a leader once it has
			// none.
			lost = c.Watch(clientv3.WithRequireLeader(ctx), "/mao-test/no-leader")
		}
		for _, i := range members {
			e.cluster.Kill(i)
		}
		if lost == nil {
			return
		}
		for resp := range lost {
			if err := resp.Err(); err != nil {
				if !errors.Is(err, rpctypes.ErrNoLeader) {
					t.Fatalf("waiting for etcd to lose its leader: %v", err)
				}
				return
			}
		}
		t.Fatal("the etcd member left did not lose its leader within a minute")
	}
}

// readOnly checks the credentials that federation credentials wrote into
// dir for name against the site's etcd: its files are the owner's alone,
// and the certificate reads the prefix but can neither write it nor read
// outside it.
func readOnly(dir, name string) func(*testing.T, *env) {
	return func(t *testing.T, e *env) {
		t.Helper()
		dir := e.norm.expand(dir)
		for _, f := range []string{"ca.crt", name + ".crt", name + ".key"} {
			if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Mode().Perm() != 0o600 {
				t.Errorf("%s: %v, %v; want a file of mode 0600", f, st, err)
			}
		}
		info := transport.TLSInfo{CertFile: filepath.Join(dir, name+".crt"), KeyFile: filepath.Join(dir, name+".key"),
			TrustedCAFile: filepath.Join(dir, "ca.crt")}
		cfg, err := info.ClientConfig()
		if err != nil {
			t.Fatal(err)
		}
		c, err := clientv3.New(clientv3.Config{Endpoints: e.site.Endpoints, TLS: cfg, DialTimeout: 10 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		prefix := e.site.Config.Etcd.Prefix
		if r, err := c.Get(ctx, prefix+"tools/", clientv3.WithPrefix()); err != nil || len(r.Kvs) == 0 {
			t.Errorf("%s gets the tools: %v, %v; want them", name, r, err)
		}
		if _, err := c.Put(ctx, prefix+"tools/intruder", "{}"); !errors.Is(err, rpctypes.ErrPermissionDenied) {
			t.Errorf("%s puts a tool: %v; want permission denied", name, err)
		}
		if _, err := c.Get(ctx, "/elsewhere/"); !errors.Is(err, rpctypes.ErrPermissionDenied) {
			t.Errorf("%s gets outside the prefix: %v; want permission denied", name, err)
		}
	}
}

// joinedNeverStarted names loopback ports nobody listens on peer and
// client, has site name join lab-a's federation with a member at them
// that never starts, and names the member's ID member, for command lines.
func joinedNeverStarted(name, peer, client, member string) func(*testing.T, *env) {
	return func(t *testing.T, e *env) {
		t.Helper()
		peerURL, clientURL := "https://"+e.addr(testenv.ClosedPort(t), peer), "https://"+e.addr(testenv.ClosedPort(t), client)
		e.site.JoinWithoutStarting(t, name, peerURL, clientURL)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp, err := e.site.Etcd.MemberList(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range resp.Members {
			if slices.Contains(m.PeerURLs, peerURL) {
				e.norm.setVar(member, fmt.Sprintf("%x", m.ID))
				e.norm.randomMember(fmt.Sprintf("%x", m.ID))
				return
			}
		}
		t.Fatalf("no etcd member has peer URL %s", peerURL)
	}
}

// peers names loopback ports nobody listens on for members added in a
// case.
func peers(t *testing.T, e *env) {
	t.Helper()
	for _, name := range []string{"$PEER_D", "$CLIENT_D", "$PEER_E"} {
		e.addr(testenv.ClosedPort(t), name)
	}
}

// legacyVoter names loopback ports $PEER_W and $CLIENT_W nobody listens
// on, and starts an etcd member named name that joins lab-a's cluster as
// a voter (with lab-a's certificates), as a site of a federation made
// before the voter policy did: it promoted itself whatever the count.
func legacyVoter(name string) func(*testing.T, *env) {
	return func(t *testing.T, e *env) {
		t.Helper()
		for _, n := range []string{"$PEER_W", "$CLIENT_W"} {
			e.addr(testenv.ClosedPort(t), n)
		}
		peerURL, clientURL := "https://"+e.addr(testenv.ClosedPort(t), ""), "https://"+e.addr(testenv.ClosedPort(t), "")
		admin := e.rootClient(t, append([]string{clientURL}, e.site.Endpoints...))
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		added, err := admin.MemberAdd(ctx, []string{peerURL})
		if err != nil {
			t.Fatal(err)
		}
		var initial []string
		for _, m := range added.Members {
			n := m.Name
			if m.ID == added.Member.ID {
				n = name
			}
			initial = append(initial, n+"="+m.PeerURLs[0])
		}
		dir := e.site.PKI
		srv, err := etcdembed.Start(ctx, etcdembed.Options{Name: name, Dir: filepath.Join(t.TempDir(), "etcd"), ClientURL: clientURL,
			PeerURL: peerURL, InitialCluster: strings.Join(initial, ","), ClusterState: "existing",
			TLS: &etcdembed.TLS{CertFile: dir.Path(pki.SiteCertFile), KeyFile: dir.Path(pki.SiteKeyFile),
				ClientCAFile: dir.Path(pki.ClientsCAFile), PeerCAFile: dir.Path(pki.CACertFile)}})
		if err != nil {
			t.Fatal(err)
		}
		// Before lab-a stops (cleanups run last first), the member leaves
		// the cluster, which keeps its quorum: lab-a alone, or name's member
		// alone once lab-a has left.
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_, _ = admin.MemberRemove(ctx, added.Member.ID) // refused when lab-a has left
			srv.Close()
		})
		e.norm.randomMember(fmt.Sprintf("%x", added.Member.ID))
		e.norm.setVar("$OLD_B", srv.Endpoints()[0])
	}
}

// rootClient is an etcd client at endpoints with lab-a's administration
// certificate (etcd's root), closed when the test ends.
func (e *env) rootClient(t *testing.T, endpoints []string) *clientv3.Client {
	t.Helper()
	cfg, err := e.site.PKI.ClientTLS(pki.RootCertFile, pki.RootKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: endpoints, TLS: cfg, DialTimeout: 10 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// leftFor waits until lab-a has stopped (it leaves once it has) and
// checks, at the member of the legacy voter name, that lab-a left: name's
// member is the only one, and lab-a's lasting record and etcd user are
// gone.
func leftFor(name string) func(*testing.T, *env) {
	return func(t *testing.T, e *env) {
		t.Helper()
		if err := e.site.Stop(); err != nil {
			t.Fatalf("lab-a stopped with: %v", err)
		}
		c := e.rootClient(t, []string{e.norm.expand("$OLD_B")})
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		members, err := c.MemberList(ctx)
		if err != nil || len(members.Members) != 1 || members.Members[0].Name != name || members.Members[0].IsLearner {
			t.Fatalf("members after lab-a left: %v, %v", members, err)
		}
		seen, err := c.Get(ctx, e.site.Config.Etcd.Prefix+"sites-seen/lab-a")
		if err != nil || len(seen.Kvs) != 0 {
			t.Errorf("lab-a's lasting record: %v, %v; want none", seen, err)
		}
		if _, err := c.UserGet(ctx, "site:lab-a"); !errors.Is(err, rpctypes.ErrUserNotFound) {
			t.Errorf("lab-a's etcd user: %v; want it gone", err)
		}
	}
}
