package maoctl

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/detector"
)

// fakeOrchestrator serves the /api/v1 endpoints that api.Client calls over
// in-memory maps, with the orchestrator's error bodies. Runs do not execute
// anything: a new run of a tool ends the way its script says once a client
// follows its log. Schedules never tick: their next run is computed from
// the fixed clock fakeNow, their last run is the latest of the seeded runs.
type fakeOrchestrator struct {
	token       string // when set, requests must carry it as a bearer token
	unavailable string // when set, every request gets a 503 with this message

	mu         sync.Mutex
	tools      map[string]api.Tool
	datasets   map[string]api.Dataset
	runs       []*fakeRun // in creation order
	scripts    map[string]fakeScript
	sites      []api.SiteInfo
	federation api.Federation
	health     api.Health
	schedules  map[string]api.Schedule
	scheduleNo int // makes the hex suffix of the next schedule ID

	series        map[string][]api.Series // by tool
	notifications []api.Notification      // oldest first
	channels      []string                // the site's notification channels, with their secrets
}

// fakeTZ is the fake site's default time zone.
const fakeTZ = "Europe/Zurich"

// fakeNow is the fake's present, after every seeded run.
var fakeNow = at(3 * 3600) // 2025-03-14T12:26:00Z

// fakeRun is a run record and its log.
type fakeRun struct {
	rec    api.Run
	log    string
	script fakeScript
}

// fakeScript is how a new run of a tool goes.
type fakeScript struct {
	log string
	end func(*api.Run) // sets the final state; called when the log ends
	// hold, when not nil, is received from after the first log line: the
	// rest of the log and the end wait for it (or for the client to leave).
	hold chan struct{}
}

// at is the fixed clock of the fake: the base time plus sec seconds.
func at(sec int) *time.Time {
	t := time.Date(2025, 3, 14, 9, 26, 0, 0, time.UTC).Add(time.Duration(sec) * time.Second)
	return &t
}

func intPtr(i int) *int { return &i }

// newFake starts a fake orchestrator on a loopback port, seeded with a few
// tools, datasets, runs and sites.
func newFake(t *testing.T) (*fakeOrchestrator, *httptest.Server) {
	t.Helper()
	f := &fakeOrchestrator{
		tools:     map[string]api.Tool{},
		datasets:  map[string]api.Dataset{},
		scripts:   map[string]fakeScript{},
		health:    api.Health{Status: "ok", Site: "lab-a", Etcd: "ok", Docker: "ok"},
		schedules: map[string]api.Schedule{},
		series:    map[string][]api.Series{},
	}
	f.seed()
	srv := httptest.NewServer(f.handler())
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *fakeOrchestrator) seed() {
	for _, tool := range []api.Tool{
		{Name: "gh-crawler", Author: "Ada Researcher", Image: "mao/gh-crawler:1.2", DataRepo: "https://git.example.org/data/gh.git",
			CodeRepo: "https://git.example.org/tools/gh-crawler", Artefact: "github metadata"},
		{Name: "code-stats", Author: `O'Brien "the analyst"`, Image: "mao/code-stats:2", DataRepo: "git@git.example.org:data/stats.git",
			Artefact: "weekly code statistics", Description: "Counts lines of code.\nPer language.", Command: []string{"/stats", "--all", "two words"},
			Env: map[string]string{"LANGS": "go,python", "_DEBUG": "1"}, InputDataset: "linux-src", Timeout: "90m",
			Resources: &api.Resources{CPUs: 1.5, Memory: "512MiB"}, Network: "none"},
		{Name: "slow-tool", Author: "lab", Image: "mao/slow:1", DataRepo: "https://git.example.org/data/slow.git", Timeout: "5s"},
		{Name: "broken-image", Author: "lab", Image: "127.0.0.1:9/missing:1", DataRepo: "https://git.example.org/data/broken.git"},
	} {
		f.tools[tool.Name] = tool
	}
	f.scripts["gh-crawler"] = fakeScript{
		log: "cloning https://git.example.org/data/gh.git\ncrawled 42 repositories\nwrote control-20250314T092700.csv\n",
		end: func(r *api.Run) {
			r.State, r.ExitCode = api.StateSucceeded, intPtr(0)
			r.DataCommitAfter = "9f3c2b1d0e4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c"
			r.Files, r.FilesTotal = []string{"control-20250314T092700.csv"}, 1
		},
	}
	f.scripts["code-stats"] = fakeScript{
		log: "counting lines\nerror: no input at /usr/src/app/input\n",
		end: func(r *api.Run) {
			r.State, r.ExitCode, r.Reason = api.StateFailed, intPtr(3), "the tool exited with code 3"
		},
	}
	f.scripts["slow-tool"] = fakeScript{
		log: "working\n",
		end: func(r *api.Run) {
			r.State, r.ExitCode, r.Reason = api.StateTimedOut, intPtr(137), "ran longer than its timeout of 5s and was stopped"
		},
	}
	f.scripts["broken-image"] = fakeScript{
		end: func(r *api.Run) {
			r.State, r.StartedAt = api.StateFailed, nil
			r.Reason = `pull image "127.0.0.1:9/missing:1": dial tcp 127.0.0.1:9: connect: connection refused`
		},
	}

	for _, d := range []api.Dataset{
		{Name: "linux-src", URL: "https://git.example.org/mirror/linux.git", Branch: "master", Owner: "kernel-lab", Description: "Linux kernel sources\nmirrored weekly"},
		{Name: "gh-data", URL: "file:///srv/data/gh.git"},
	} {
		f.datasets[d.Name] = d
	}

	var lines []string
	for i := 1; i <= 12; i++ {
		lines = append(lines, fmt.Sprintf("step %d of 12", i))
	}
	files := []string{"control-20250301T000000.csv", "reports/2025-03-01.json", "raw/part-0001.csv"}
	f.runs = []*fakeRun{
		{rec: api.Run{ID: "r-0001", Tool: "gh-crawler", Site: "lab-a", State: api.StateSucceeded, Trigger: "manual",
			Image: "mao/gh-crawler:1.2", Network: "bridge", ImageID: "sha256:" + strings.Repeat("ab", 32),
			ImageDigest: "mao/gh-crawler@sha256:" + strings.Repeat("cd", 32), ExitCode: intPtr(0),
			DataRepo: "https://git.example.org/data/gh.git", DataCommitBefore: "1111111111111111111111111111111111111111",
			DataCommitAfter: "2222222222222222222222222222222222222222", Files: files, FilesTotal: 250,
			CreatedAt: *at(0), StartedAt: at(2), FinishedAt: at(95)},
			log: strings.Join(lines, "\n") + "\n"},
		{rec: api.Run{ID: "r-0002", Tool: "code-stats", Site: "lab-b", State: api.StateFailed, Reason: "the tool exited with code 3",
			Trigger: "manual", Image: "mao/code-stats:2", Network: "none", ImageID: "sha256:" + strings.Repeat("ef", 32), ExitCode: intPtr(3),
			DataRepo: "git@git.example.org:data/stats.git", DataCommitBefore: "3333333333333333333333333333333333333333",
			InputDataset: "linux-src", InputCommit: "4444444444444444444444444444444444444444",
			CreatedAt: *at(600), StartedAt: at(601), FinishedAt: at(601)},
			log: "counting lines\nerror: no input at /usr/src/app/input\n"},
		{rec: api.Run{ID: "r-0003", Tool: "gh-crawler", Site: "lab-a", State: api.StateRunning, Trigger: "manual",
			Image: "mao/gh-crawler:1.2", DataRepo: "https://git.example.org/data/gh.git", CreatedAt: *at(1200), StartedAt: at(1201)}},
	}

	f.sites = []api.SiteInfo{
		{Site: api.Site{Name: "lab-a", APIAddr: "https://lab-a.example.org:8080", Version: "0.1.0", OS: "linux", Arch: "amd64", CPUs: 16,
			MemoryBytes: 64 << 30, DockerVersion: "28.5.2", Labels: map[string]string{"zone": "eu", "gpu": "none"}, StartedAt: *at(-86400)},
			Live: true, LastSeen: *fakeNow, RunsInProgress: 1},
		{Site: api.Site{Name: "lab-b", APIAddr: "http://10.0.0.7:8080", Version: "0.1.0", OS: "linux", Arch: "arm64", CPUs: 4,
			MemoryBytes: 8 << 30, DockerVersion: "27.1.0", Labels: map[string]string{"zone": "eu", "gpu": "a100"}, StartedAt: *at(-3600)},
			Live: true, LastSeen: *fakeNow},
		{Site: api.Site{Name: "lab-c", APIAddr: "http://10.0.0.9:8080", Version: "0.0.9", OS: "linux", Arch: "amd64", CPUs: 8,
			MemoryBytes: 32 << 30, DockerVersion: "27.1.0", Labels: map[string]string{"zone": "us"}, StartedAt: *at(-7 * 86400)},
			LastSeen: *at(-2 * 86400)},
	}

	f.seedSeries()
	f.seedNotifications()

	f.federation = api.Federation{ClusterID: "cdf818194e3a8c32", Leader: "lab-a", Members: []api.Member{
		{ID: "8e9e05c52164694d", Name: "lab-a", PeerURLs: []string{"http://10.0.0.5:2380"},
			ClientURLs: []string{"http://127.0.0.1:2379", "http://10.0.0.5:2379"}, Leader: true, Health: "ok", Version: "3.7.3"},
		{ID: "91bc3c398fb3c146", Name: "lab-b", PeerURLs: []string{"http://10.0.0.7:2380"},
			ClientURLs: []string{"http://10.0.0.7:2379"}, Health: "ok", Version: "3.7.3"},
	}}
}

// seedSeries gives gh-crawler a control series of 30 daily runs at
// lab-a, flat around 1500 but for a spike up and one down, and a short
// one at lab-b; and code-stats two metrics of its JSON file at lab-b.
func (f *fakeOrchestrator) seedSeries() {
	points := func(site string, values []float64, spikes ...int) []api.SeriesPoint {
		ps := make([]api.SeriesPoint, len(values))
		for i, v := range values {
			ps[i] = api.SeriesPoint{Run: fmt.Sprintf("r-%s-%02d", site, i+1), Time: *at((i - len(values)) * 86400), Value: v}
		}
		for _, i := range spikes {
			ps[i].Spike = true
		}
		return ps
	}
	var labA []float64
	for i := range 30 {
		labA = append(labA, 1500+float64(i%5)*4-float64(i%3)*3)
	}
	labA[17], labA[26] = 2450, 610
	f.series["gh-crawler"] = []api.Series{
		{Tool: "gh-crawler", Site: "lab-a", Metric: "control", Points: points("lab-a", labA, 17, 26)},
		{Tool: "gh-crawler", Site: "lab-b", Metric: "control", Points: points("lab-b", []float64{42, 42, 42})},
	}
	f.series["code-stats"] = []api.Series{
		{Tool: "code-stats", Site: "lab-b", Metric: "files", Points: points("lab-b", []float64{120, 121, 121, 123, 122, 125})},
		{Tool: "code-stats", Site: "lab-b", Metric: "go_lines", Points: points("lab-b", []float64{10250.5, 10310, 10302.25, 10400, 0.125, 10420}, 4)},
	}
}

// fakeSecret is the secret part of the fake's notification channels; like
// the token, it must never be printed.
const fakeSecret = secretToken

// seedNotifications records a few notifications of the seeded series and
// runs, and gives the site two channels, the second of which fails.
func (f *fakeOrchestrator) seedNotifications() {
	f.channels = []string{
		"https://hooks.example.org/services/" + fakeSecret,
		"https://mao:" + fakeSecret + "@down.example.org:9/notify",
	}
	hook, down := redactChannel(f.channels[0]), redactChannel(f.channels[1])
	f.notifications = []api.Notification{
		{ID: "n-0001", Kind: "spike", Tool: "gh-crawler", Site: "lab-a", Run: "r-lab-a-18", Metric: "control", Channel: hook,
			Status: "sent", Attempts: 1, Title: "gh-crawler at lab-a: control 2450 is a spike (baseline 1502)",
			CreatedAt: *at(-12 * 86400), FinishedAt: *at(-12*86400 + 1)},
		{ID: "n-0002", Kind: "spike", Tool: "gh-crawler", Site: "lab-a", Run: "r-lab-a-18", Metric: "control", Channel: down,
			Status: "failed", Attempts: 3, Error: "dial tcp 10.0.0.99:9: connect: connection refused; gave up after 3 attempts over 35s",
			Title: "gh-crawler at lab-a: control 2450 is a spike (baseline 1502)", CreatedAt: *at(-12 * 86400), FinishedAt: *at(-12*86400 + 35)},
		{ID: "n-0003", Kind: "spike_resolved", Tool: "gh-crawler", Site: "lab-a", Run: "r-lab-a-19", Metric: "control", Channel: hook,
			Status: "sent", Attempts: 2, Title: "gh-crawler at lab-a: control is back to normal", CreatedAt: *at(-11 * 86400), FinishedAt: *at(-11*86400 + 6)},
		{ID: "n-0004", Kind: "run_failed", Tool: "code-stats", Site: "lab-b", Run: "r-0002", Channel: hook,
			Status: "sent", Attempts: 1, Title: "code-stats at lab-b: run r-0002 failed (exit 3)", CreatedAt: *at(601), FinishedAt: *at(602)},
		{ID: "n-0005", Kind: "test", Site: "lab-a", Channel: hook, Status: "sent", Attempts: 1, Title: "mao test message",
			CreatedAt: *at(900), FinishedAt: *at(901)},
	}
}

// redactChannel is what the orchestrator shows of a channel: its scheme
// and host, without the user information, path and query that may hold
// secrets.
func redactChannel(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "***"
	}
	return u.Scheme + "://" + u.Hostname() + "/***"
}

// seedVerdicts adds, for the cases that need them (a setup function of
// cliCase), succeeded runs with the spike detector's verdicts, made by the
// detector from the seeded series:
//   - r-0201: gh-crawler's control value is a spike;
//   - r-0202: code-stats's files are ok, its go_lines drop is a spike by
//     gain and its new metric is warming up;
//   - r-0203: gh-crawler wrote no control file;
//   - r-0204: gh-crawler's value equals a flat history.
func seedVerdicts(t *testing.T, f *fakeOrchestrator, _ string) {
	t.Helper()
	last := func(values []float64, c detector.Config, metric string) api.Verdict {
		t.Helper()
		if ps := c.Problems(); len(ps) > 0 {
			t.Fatalf("detector settings %+v: %v", c, ps)
		}
		vs := detector.Scan(values, c)
		v := vs[len(vs)-1]
		v.Metric = metric
		return v
	}
	var control []float64
	for _, p := range f.series["gh-crawler"][0].Points[:18] {
		control = append(control, p.Value)
	}
	gain := detector.Config{Method: detector.MethodGain, Threshold: 6}
	noData := last([]float64{1}, detector.Config{}, "control")
	noData.Status, noData.Value, noData.History, noData.Reason = detector.StatusNoData, nil, 0, "no control-*.csv in the output"
	for i, verdicts := range [][]api.Verdict{
		{last(control, detector.Config{}, "control")},
		{
			last([]float64{120, 121, 121, 123, 122, 125}, gain, "files"),
			last([]float64{10250.5, 10310, 10302.25, 10400, 0.125}, gain, "go_lines"),
			last([]float64{3}, gain, "python_lines"),
		},
		{noData},
		{last([]float64{42, 42, 42, 42, 42, 42}, detector.Config{}, "control")},
	} {
		tool := "gh-crawler"
		if i == 1 {
			tool = "code-stats"
		}
		f.runs = append(f.runs, &fakeRun{rec: api.Run{ID: fmt.Sprintf("r-%04d", 201+i), Tool: tool, Site: "lab-a", State: api.StateSucceeded,
			Trigger: api.TriggerManual, Image: f.tools[tool].Image, DataRepo: f.tools[tool].DataRepo, ExitCode: intPtr(0),
			CreatedAt: *at(2400 + 60*i), StartedAt: at(2401 + 60*i), FinishedAt: at(2430 + 60*i), Verdicts: verdicts}})
	}
}

// seedFederation adds, for the cases that need them (a setup function of
// cliCase), a tool whose runs are lost with their site and runs of targets:
//   - r-0101: an any run lost with site lab-c;
//   - r-0102: a run of zone=eu whose first attempt was lost at lab-c and
//     whose second succeeded at lab-b;
//   - r-0103: a gpu=a100 run waiting for an eligible site;
//   - r-0104: a run sent to site lab-b, running there.
func seedFederation(t *testing.T, f *fakeOrchestrator, _ string) {
	t.Helper()
	f.tools["gpu-train"] = api.Tool{Name: "gpu-train", Author: "lab", Image: "mao/gpu-train:1", DataRepo: "https://git.example.org/data/train.git"}
	f.scripts["gpu-train"] = fakeScript{
		log: "loading model\n",
		end: func(r *api.Run) {
			r.State, r.Reason = api.StateLost, "site "+r.Site+" stopped renewing its lease"
		},
	}
	const lostReason = "site lab-c stopped renewing its lease"
	anySite := &api.Target{Mode: "any"}
	eu := &api.Target{Mode: "any", Labels: map[string]string{"zone": "eu"}}
	gpu := &api.Target{Mode: "any", Labels: map[string]string{"gpu": "a100"}}
	for _, r := range []api.Run{
		{ID: "r-0101", Tool: "gh-crawler", Site: "lab-c", Target: anySite, State: api.StateLost, Reason: lostReason, Trigger: api.TriggerManual,
			Image: "mao/gh-crawler:1.2", DataRepo: "https://git.example.org/data/gh.git",
			CreatedAt: *at(1800), StartedAt: at(1802), FinishedAt: at(1860)},
		{ID: "r-0102", Tool: "code-stats", Site: "lab-b", Target: eu, State: api.StateSucceeded, Trigger: api.TriggerManual,
			Image: "mao/code-stats:2", DataRepo: "git@git.example.org:data/stats.git", ExitCode: intPtr(0),
			Attempt: 2, MaxAttempts: 3, RetryDelay: "1m", Attempts: []api.Attempt{
				{Attempt: 1, State: api.StateLost, Reason: lostReason, StartedAt: at(1902), FinishedAt: at(1960)},
			},
			CreatedAt: *at(1900), StartedAt: at(2021), FinishedAt: at(2050)},
		{ID: "r-0103", Tool: "gpu-train", Target: gpu, State: api.StatePending, Trigger: api.TriggerManual,
			Image: "mao/gpu-train:1", DataRepo: "https://git.example.org/data/train.git", CreatedAt: *at(2400)},
		{ID: "r-0104", Tool: "gh-crawler", Site: "lab-b", Target: &api.Target{Mode: "site", Site: "lab-b"}, State: api.StateRunning,
			Trigger: api.TriggerManual, Image: "mao/gh-crawler:1.2", DataRepo: "https://git.example.org/data/gh.git",
			CreatedAt: *at(2500), StartedAt: at(2501)},
	} {
		f.runs = append(f.runs, &fakeRun{rec: r})
	}
}

// seedSchedules adds four schedules and runs of theirs, for the cases
// that need them (a setup function of cliCase):
//   - gh-crawler-daily-3f2a: daily at 12:00 Zurich time with retries: a
//     scheduled run, a catch-up run and a run waiting for its third attempt;
//   - code-stats-weekly-81c0: weekly at every zone=eu site, paused, its
//     last run failed;
//   - gh-crawler-every-5d10: every 10 minutes: a missed tick, a running
//     run and a tick skipped because of it;
//   - old-tool-cron-0b7e: a cron schedule in Asia/Kolkata at site lab-b
//     whose tool is gone.
func seedSchedules(t *testing.T, f *fakeOrchestrator, _ string) {
	t.Helper()
	utc := func(s string) *time.Time {
		t.Helper()
		tm, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return &tm
	}
	daily := api.Schedule{ID: "gh-crawler-daily-3f2a", Tool: "gh-crawler", Spec: "daily", At: "12:00", TZ: "Europe/Zurich",
		Overlap: "forbid", Catchup: "once", Retries: 2, RetryDelay: "1h", Target: api.Target{Mode: "any"},
		Env: map[string]string{"DEPTH": "full", "TOKEN_FILE": "/run/secrets/gh"}, CreatedAt: *at(-10 * 86400), UpdatedAt: *at(-86400)}
	weekly := api.Schedule{ID: "code-stats-weekly-81c0", Tool: "code-stats", Spec: "weekly", Weekday: "mon", TZ: "UTC",
		Overlap: "forbid", Catchup: "once", Paused: true, Target: api.Target{Mode: "all", Labels: map[string]string{"zone": "eu"}}, CreatedAt: *at(-30 * 86400), UpdatedAt: *at(-30 * 86400)}
	every := api.Schedule{ID: "gh-crawler-every-5d10", Tool: "gh-crawler", Spec: "@every 10m", TZ: "UTC",
		Overlap: "forbid", Catchup: "skip", Target: api.Target{Mode: "any"}, CreatedAt: *at(-86400), UpdatedAt: *at(-86400)}
	orphan := api.Schedule{ID: "old-tool-cron-0b7e", Tool: "old-tool", Spec: "15 */6 * * *", TZ: "Asia/Kolkata",
		Overlap: "allow", Catchup: "once", Deadline: "6h", Env: map[string]string{"MODE": "quick"}, Target: api.Target{Mode: "site", Site: "lab-b"},
		CreatedAt: *at(-60 * 86400), UpdatedAt: *at(-60 * 86400)}
	for _, s := range []api.Schedule{daily, weekly, every, orphan} {
		f.schedules[s.ID] = s
	}

	// run is the record of the tick of s at tick, created then.
	run := func(s api.Schedule, tick string, image, repo string) api.Run {
		when := utc(tick)
		return api.Run{ID: s.ID + "-" + when.Format("20060102T1504Z"), Tool: s.Tool, Site: "lab-a", Trigger: api.TriggerSchedule,
			Image: image, Network: "bridge", DataRepo: repo, Schedule: s.ID, ScheduledTime: when, Env: s.Env,
			MaxAttempts: 1 + s.Retries, RetryDelay: s.RetryDelay, CreatedAt: *when}
	}
	const ghImage, ghRepo = "mao/gh-crawler:1.2", "https://git.example.org/data/gh.git"

	onTime := run(daily, "2025-03-12T11:00:00Z", ghImage, ghRepo)
	onTime.State, onTime.ExitCode, onTime.Attempt = api.StateSucceeded, intPtr(0), 1
	onTime.StartedAt, onTime.ContainerStartedAt, onTime.FinishedAt = utc("2025-03-12T11:00:01Z"), utc("2025-03-12T11:00:04Z"), utc("2025-03-12T11:01:21Z")
	onTime.DataCommitAfter = "6666666666666666666666666666666666666666"

	late := run(daily, "2025-03-13T11:00:00Z", ghImage, ghRepo)
	late.Trigger, late.State, late.ExitCode, late.Attempt = api.TriggerCatchup, api.StateSucceeded, intPtr(0), 1
	late.CreatedAt = *utc("2025-03-13T15:42:10Z")
	late.StartedAt, late.ContainerStartedAt, late.FinishedAt = utc("2025-03-13T15:42:11Z"), utc("2025-03-13T15:42:13Z"), utc("2025-03-13T15:43:02Z")

	retrying := run(daily, "2025-03-14T11:00:00Z", ghImage, ghRepo)
	retrying.State, retrying.Attempt, retrying.RetryAt = api.StatePending, 3, utc("2025-03-14T13:05:00Z")
	retrying.Attempts = []api.Attempt{
		{Attempt: 1, State: api.StateFailed, ExitCode: intPtr(3), Reason: "the tool exited with code 3",
			StartedAt: utc("2025-03-14T11:00:01Z"), FinishedAt: utc("2025-03-14T11:02:30Z")},
		{Attempt: 2, State: api.StateFailed, Reason: `pull image "mao/gh-crawler:1.2": registry unavailable`,
			FinishedAt: utc("2025-03-14T12:05:00Z")},
	}

	weeklyRun := run(weekly, "2025-03-10T00:00:00Z", "mao/code-stats:2", "git@git.example.org:data/stats.git")
	weeklyRun.State, weeklyRun.ExitCode, weeklyRun.Reason, weeklyRun.Attempt = api.StateFailed, intPtr(3), "the tool exited with code 3", 1
	weeklyRun.StartedAt, weeklyRun.FinishedAt = utc("2025-03-10T00:00:02Z"), utc("2025-03-10T00:00:09Z")

	missed := run(every, "2025-03-14T12:00:00Z", ghImage, ghRepo)
	missed.State, missed.Reason = api.StateMissed, "no site was up at the scheduled time"
	missed.CreatedAt, missed.FinishedAt = *utc("2025-03-14T12:08:30Z"), utc("2025-03-14T12:08:30Z")

	running := run(every, "2025-03-14T12:10:00Z", ghImage, ghRepo)
	running.State, running.Attempt = api.StateRunning, 1
	running.StartedAt, running.ContainerStartedAt = utc("2025-03-14T12:10:01Z"), utc("2025-03-14T12:10:03Z")

	skipped := run(every, "2025-03-14T12:20:00Z", ghImage, ghRepo)
	skipped.State, skipped.Reason = api.StateSkipped, "the run of 2025-03-14T12:10:00Z was still running"
	skipped.FinishedAt = utc("2025-03-14T12:20:00Z")

	orphanRun := run(orphan, "2025-03-14T06:45:00Z", "mao/old:3", "https://git.example.org/data/old.git")
	orphanRun.State, orphanRun.ExitCode, orphanRun.Attempt = api.StateSucceeded, intPtr(0), 1
	orphanRun.StartedAt, orphanRun.FinishedAt = utc("2025-03-14T06:45:01Z"), utc("2025-03-14T06:47:00Z")

	for _, r := range []api.Run{weeklyRun, onTime, late, orphanRun, retrying, missed, running, skipped} {
		fr := &fakeRun{rec: r}
		if r.ID == retrying.ID {
			fr.log = "attempt 1: crawling\nerror: rate limited\n"
		}
		f.runs = append(f.runs, fr)
	}
}

func (f *fakeOrchestrator) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/tools", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		writeAPI(w, http.StatusOK, sortedValues(f.tools))
	})
	mux.HandleFunc("POST /api/v1/tools", func(w http.ResponseWriter, r *http.Request) {
		var t api.Tool
		if !decodeBody(w, r, &t) || !validate(w, "tool", t.Validate()) {
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		if _, ok := f.tools[t.Name]; ok {
			writeAPIError(w, http.StatusConflict, api.CodeConflict, fmt.Sprintf("tool %q is already registered", t.Name))
			return
		}
		f.tools[t.Name] = t
		writeAPI(w, http.StatusCreated, t)
	})
	mux.HandleFunc("GET /api/v1/tools/{name}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if t, ok := f.tools[r.PathValue("name")]; ok {
			writeAPI(w, http.StatusOK, t)
			return
		}
		notFound(w, "tool", r.PathValue("name"))
	})
	mux.HandleFunc("DELETE /api/v1/tools/{name}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if _, ok := f.tools[r.PathValue("name")]; !ok {
			notFound(w, "tool", r.PathValue("name"))
			return
		}
		delete(f.tools, r.PathValue("name"))
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /api/v1/tools/{name}/runs", func(w http.ResponseWriter, r *http.Request) {
		var req api.RunRequest
		if r.ContentLength != 0 && !decodeBody(w, r, &req) {
			return
		}
		if req.Target != nil && !validate(w, "target", req.Target.Validate()) {
			return
		}
		if req.Retries < 0 || req.Retries > 100 {
			writeAPIError(w, http.StatusBadRequest, api.CodeInvalid, "invalid run request", fmt.Sprintf("retries: %d must be between 0 and 100", req.Retries))
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		t, ok := f.tools[r.PathValue("name")]
		if !ok {
			notFound(w, "tool", r.PathValue("name"))
			return
		}
		sites, apiErr := f.runSites(req.Target)
		if apiErr != nil {
			writeAPIError(w, apiErr.Status, apiErr.Code, apiErr.Message)
			return
		}
		var out []api.Run
		for _, site := range sites {
			n := len(f.runs) + 1
			run := &fakeRun{script: f.scripts[t.Name], rec: api.Run{
				ID: fmt.Sprintf("r-%04d", n), Tool: t.Name, Site: site, Target: req.Target, State: api.StatePending, Trigger: "manual",
				Image: t.Image, Network: t.NetworkName(), DataRepo: t.DataRepo, InputDataset: t.InputDataset,
				DataCommitBefore: "5555555555555555555555555555555555555555", CreatedAt: *at(3600 + 60*n),
			}}
			if req.Retries > 0 {
				run.rec.Attempt, run.rec.MaxAttempts = 1, 1+req.Retries
			}
			f.runs = append(f.runs, run)
			out = append(out, run.rec)
		}
		writeAPI(w, http.StatusAccepted, out)
	})

	mux.HandleFunc("GET /api/v1/tools/{name}/series", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if _, ok := f.tools[r.PathValue("name")]; !ok {
			notFound(w, "tool", r.PathValue("name"))
			return
		}
		metric, site := r.URL.Query().Get("metric"), r.URL.Query().Get("site")
		out := []api.Series{}
		for _, s := range f.series[r.PathValue("name")] {
			if (metric == "" || s.Metric == metric) && (site == "" || s.Site == site) {
				out = append(out, s)
			}
		}
		writeAPI(w, http.StatusOK, out)
	})
	mux.HandleFunc("GET /api/v1/notifications", func(w http.ResponseWriter, r *http.Request) {
		limit := 0
		if s := r.URL.Query().Get("limit"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 {
				writeAPIError(w, http.StatusBadRequest, api.CodeInvalid, "invalid query", "limit: must be a positive integer")
				return
			}
			limit = n
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		out := []api.Notification{}
		for _, n := range slices.Backward(f.notifications) {
			if tool := r.URL.Query().Get("tool"); (tool == "" || n.Tool == tool) && (limit == 0 || len(out) < limit) {
				out = append(out, n)
			}
		}
		writeAPI(w, http.StatusOK, out)
	})
	mux.HandleFunc("POST /api/v1/notifications/test", func(w http.ResponseWriter, r *http.Request) {
		var req api.NotifyTestRequest
		if !decodeBody(w, r, &req) {
			return
		}
		if u, err := url.Parse(req.URL); req.URL != "" && (err != nil || (u.Scheme != "http" && u.Scheme != "https")) {
			// A careless server might quote the URL it was given in its
			// errors; maoctl must not print it.
			writeAPIError(w, http.StatusBadRequest, api.CodeInvalid, "invalid channel", fmt.Sprintf("url: %q is not an http or https URL", req.URL))
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		channels := f.channels
		if req.URL != "" {
			channels = []string{req.URL}
		}
		if len(channels) == 0 {
			writeAPIError(w, http.StatusBadRequest, api.CodeInvalid, "site lab-a has no notification channels; give a URL")
			return
		}
		var out []api.Notification
		for _, ch := range channels {
			n := api.Notification{ID: fmt.Sprintf("n-%04d", len(f.notifications)+1), Kind: "test", Site: f.health.Site,
				Channel: redactChannel(ch), Status: "sent", Attempts: 1, Title: "mao test message", CreatedAt: *fakeNow, FinishedAt: *fakeNow}
			answer := n
			if u, err := url.Parse(ch); err != nil || u.Port() == "9" {
				n.Status, n.Attempts = "failed", 3
				n.Error = fmt.Sprintf("Post %q: dial tcp 127.0.0.1:9: connect: connection refused", n.Channel)
				answer = n
				if req.URL != "" { // careless again, in the answer only
					answer.Error = strings.ReplaceAll(n.Error, n.Channel, req.URL)
				}
			}
			f.notifications = append(f.notifications, n)
			out = append(out, answer)
		}
		writeAPI(w, http.StatusOK, out)
	})

	mux.HandleFunc("GET /api/v1/datasets", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		writeAPI(w, http.StatusOK, sortedValues(f.datasets))
	})
	mux.HandleFunc("POST /api/v1/datasets", func(w http.ResponseWriter, r *http.Request) {
		var d api.Dataset
		if !decodeBody(w, r, &d) || !validate(w, "dataset", d.Validate()) {
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		if _, ok := f.datasets[d.Name]; ok {
			writeAPIError(w, http.StatusConflict, api.CodeConflict, fmt.Sprintf("dataset %q is already registered", d.Name))
			return
		}
		f.datasets[d.Name] = d
		writeAPI(w, http.StatusCreated, d)
	})
	mux.HandleFunc("GET /api/v1/datasets/{name}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if d, ok := f.datasets[r.PathValue("name")]; ok {
			writeAPI(w, http.StatusOK, d)
			return
		}
		notFound(w, "dataset", r.PathValue("name"))
	})
	mux.HandleFunc("DELETE /api/v1/datasets/{name}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if _, ok := f.datasets[r.PathValue("name")]; !ok {
			notFound(w, "dataset", r.PathValue("name"))
			return
		}
		delete(f.datasets, r.PathValue("name"))
		w.WriteHeader(http.StatusNoContent)
	})

	mux.HandleFunc("GET /api/v1/runs", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		runs := []api.Run{}
		tool, schedule := r.URL.Query().Get("tool"), r.URL.Query().Get("schedule")
		for i := len(f.runs) - 1; i >= 0; i-- {
			rec := f.runs[i].rec
			if (tool == "" || rec.Tool == tool) && (schedule == "" || rec.Schedule == schedule) {
				runs = append(runs, rec)
			}
		}
		slices.SortStableFunc(runs, func(a, b api.Run) int { return b.CreatedAt.Compare(a.CreatedAt) })
		writeAPI(w, http.StatusOK, runs)
	})
	mux.HandleFunc("GET /api/v1/runs/{id}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if run := f.run(r.PathValue("id")); run != nil {
			writeAPI(w, http.StatusOK, run.rec)
			return
		}
		notFound(w, "run", r.PathValue("id"))
	})
	mux.HandleFunc("GET /api/v1/runs/{id}/logs", f.logs)

	mux.HandleFunc("POST /api/v1/schedules", func(w http.ResponseWriter, r *http.Request) {
		var s api.Schedule
		if !decodeBody(w, r, &s) {
			return
		}
		s.ApplyDefaults(fakeTZ)
		if !validate(w, "schedule", s.Validate()) {
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		if _, ok := f.tools[s.Tool]; !ok {
			notFound(w, "tool", s.Tool)
			return
		}
		s.ID = fmt.Sprintf("%s-%s-%04x", s.Tool, scheduleKind(s.Spec), 0x3f2a+f.scheduleNo)
		f.scheduleNo++
		s.Paused, s.CreatedAt, s.UpdatedAt = false, *fakeNow, *fakeNow
		f.schedules[s.ID] = s
		writeAPI(w, http.StatusCreated, f.scheduleInfo(s))
	})
	mux.HandleFunc("GET /api/v1/schedules", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		list := []api.ScheduleInfo{}
		for _, s := range sortedValues(f.schedules) {
			if tool := r.URL.Query().Get("tool"); tool == "" || s.Tool == tool {
				list = append(list, f.scheduleInfo(s))
			}
		}
		writeAPI(w, http.StatusOK, list)
	})
	mux.HandleFunc("GET /api/v1/schedules/{id}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if s, ok := f.schedules[r.PathValue("id")]; ok {
			writeAPI(w, http.StatusOK, f.scheduleInfo(s))
			return
		}
		notFound(w, "schedule", r.PathValue("id"))
	})
	mux.HandleFunc("PUT /api/v1/schedules/{id}", func(w http.ResponseWriter, r *http.Request) {
		var s api.Schedule
		if !decodeBody(w, r, &s) {
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		old, ok := f.schedules[r.PathValue("id")]
		if !ok {
			notFound(w, "schedule", r.PathValue("id"))
			return
		}
		s.ID, s.Tool, s.CreatedAt, s.UpdatedAt = old.ID, old.Tool, old.CreatedAt, *fakeNow
		s.ApplyDefaults(fakeTZ)
		if !validate(w, "schedule", s.Validate()) {
			return
		}
		f.schedules[s.ID] = s
		writeAPI(w, http.StatusOK, f.scheduleInfo(s))
	})
	for action, paused := range map[string]bool{"pause": true, "resume": false} {
		mux.HandleFunc("POST /api/v1/schedules/{id}/"+action, func(w http.ResponseWriter, r *http.Request) {
			f.mu.Lock()
			defer f.mu.Unlock()
			s, ok := f.schedules[r.PathValue("id")]
			if !ok {
				notFound(w, "schedule", r.PathValue("id"))
				return
			}
			if s.Paused && !paused {
				s.UpdatedAt = *fakeNow
			}
			s.Paused = paused
			f.schedules[s.ID] = s
			writeAPI(w, http.StatusOK, f.scheduleInfo(s))
		})
	}
	mux.HandleFunc("DELETE /api/v1/schedules/{id}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if _, ok := f.schedules[r.PathValue("id")]; !ok {
			notFound(w, "schedule", r.PathValue("id"))
			return
		}
		delete(f.schedules, r.PathValue("id"))
		w.WriteHeader(http.StatusNoContent)
	})

	mux.HandleFunc("GET /api/v1/sites", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		writeAPI(w, http.StatusOK, f.sites)
	})
	mux.HandleFunc("GET /api/v1/federation", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		writeAPI(w, http.StatusOK, f.federation)
	})
	mux.HandleFunc("POST /api/v1/federation/sites", func(w http.ResponseWriter, r *http.Request) {
		var req api.AddSiteRequest
		if !decodeBody(w, r, &req) {
			return
		}
		var details []string
		if req.Name == "" {
			details = append(details, "name: is required")
		}
		if u, err := url.Parse(req.PeerURL); err != nil || u.Scheme != "http" || u.Port() == "" {
			details = append(details, fmt.Sprintf("peer_url: %q is not an http URL with a port", req.PeerURL))
		}
		if len(details) > 0 {
			writeAPIError(w, http.StatusBadRequest, api.CodeInvalid, "invalid site", details...)
			return
		}
		if req.ClientURL == "" {
			req.ClientURL = "http://127.0.0.1:2379"
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		if slices.ContainsFunc(f.federation.Members, func(m api.Member) bool { return m.Name == req.Name }) {
			writeAPIError(w, http.StatusConflict, api.CodeConflict, fmt.Sprintf("the cluster has a member named %q already", req.Name))
			return
		}
		m := api.Member{ID: fmt.Sprintf("%016x", uint64(0xa1b2c3d4e5f60000)+uint64(len(f.federation.Members))), Name: req.Name,
			PeerURLs: []string{req.PeerURL}, Health: "not started"}
		f.federation.Members = append(f.federation.Members, m)
		res := api.AddSiteResult{Site: req.Name, Token: "maojoin1.fake", ExpiresAt: fakeNow.Add(time.Hour)}
		res.Config = fmt.Sprintf("[site]\nname = %s\n\n[etcd]\npeer_url = %s\nclient_url = %s\njoin_token = %s\n",
			req.Name, req.PeerURL, req.ClientURL, res.Token)
		writeAPI(w, http.StatusCreated, res)
	})
	mux.HandleFunc("DELETE /api/v1/federation/sites/{name}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		i := slices.IndexFunc(f.federation.Members, func(m api.Member) bool { return m.Name == r.PathValue("name") })
		if i < 0 {
			writeAPIError(w, http.StatusNotFound, api.CodeNotFound, fmt.Sprintf("no member of the cluster is named %q", r.PathValue("name")))
			return
		}
		f.federation.Members = slices.Delete(f.federation.Members, i, i+1)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /api/v1/health", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		writeAPI(w, http.StatusOK, f.health)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeAPIError(w, http.StatusNotFound, api.CodeNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path)
	})

	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		token, unavailable := f.token, f.unavailable
		f.mu.Unlock()
		switch {
		case token != "" && r.Header.Get("Authorization") != "Bearer "+token:
			writeAPIError(w, http.StatusUnauthorized, api.CodeUnauthorized, "missing or wrong bearer token")
		case unavailable != "":
			writeAPIError(w, http.StatusServiceUnavailable, api.CodeUnavailable, unavailable)
		default:
			mux.ServeHTTP(w, r)
		}
	})
}

// runSites is where the runs of a new run request go: one site per run,
// "" for a run that waits for an eligible site to claim it. f.mu must be
// held.
func (f *fakeOrchestrator) runSites(target *api.Target) ([]string, *api.Error) {
	conflict := func(format string, args ...any) *api.Error {
		return &api.Error{Status: http.StatusConflict, ErrorBody: api.ErrorBody{Code: api.CodeConflict, Message: fmt.Sprintf(format, args...)}}
	}
	switch {
	case target == nil:
		return []string{f.health.Site}, nil
	case target.EffectiveMode() == "any":
		return []string{""}, nil
	case target.EffectiveMode() == "site":
		i := slices.IndexFunc(f.sites, func(s api.SiteInfo) bool { return s.Name == target.Site })
		switch {
		case i < 0:
			return nil, &api.Error{Status: http.StatusNotFound, ErrorBody: api.ErrorBody{Code: api.CodeNotFound,
				Message: fmt.Sprintf("site %q not found", target.Site)}}
		case !f.sites[i].Live:
			return nil, conflict("site %q is gone (last seen %s)", target.Site, f.sites[i].LastSeen.Format(time.RFC3339))
		case !target.Matches(f.sites[i].Labels):
			return nil, conflict("site %q does not carry the labels of target %s", target.Site, target)
		}
		return []string{target.Site}, nil
	}
	var sites []string
	for _, s := range f.sites {
		if s.Live && target.Matches(s.Labels) {
			sites = append(sites, s.Name)
		}
	}
	if len(sites) == 0 {
		return nil, conflict("no live site is eligible for target %s", target)
	}
	return sites, nil
}

// scheduleInfo adds to s what the orchestrator knows of it; f.mu must be
// held.
func (f *fakeOrchestrator) scheduleInfo(s api.Schedule) api.ScheduleInfo {
	info := api.ScheduleInfo{Schedule: s}
	_, registered := f.tools[s.Tool]
	info.Orphaned = !registered
	if timing, err := s.Timing(); err == nil && !s.Paused {
		next := timing.Next(*fakeNow)
		info.NextRun = &next
	}
	for _, r := range f.runs {
		if r.rec.Schedule == s.ID && (info.LastRun == nil || r.rec.ScheduledTime.After(*info.LastRun.ScheduledTime)) {
			last := r.rec
			info.LastRun = &last
		}
	}
	return info
}

// scheduleKind is the kind part of a schedule ID.
func scheduleKind(spec string) string {
	switch spec = strings.TrimSpace(spec); {
	case spec == "daily" || spec == "weekly" || spec == "monthly":
		return spec
	case strings.HasPrefix(spec, "@every "):
		return "every"
	}
	return "cron"
}

// run finds a run by ID; f.mu must be held.
func (f *fakeOrchestrator) run(id string) *fakeRun {
	for _, r := range f.runs {
		if r.rec.ID == id {
			return r
		}
	}
	return nil
}

// logs serves a run's log. With follow=true and a run that has not ended,
// it streams the script's log line by line and then ends the run.
func (f *fakeOrchestrator) logs(w http.ResponseWriter, r *http.Request) {
	tail := 0
	if s := r.URL.Query().Get("tail"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			writeAPIError(w, http.StatusBadRequest, api.CodeInvalid, "invalid query", "tail: must be a non-negative integer")
			return
		}
		tail = n
	}
	f.mu.Lock()
	run := f.run(r.PathValue("id"))
	if run == nil {
		f.mu.Unlock()
		notFound(w, "run", r.PathValue("id"))
		return
	}
	ended, log, script := run.rec.State.Terminal(), run.log, run.script
	if !ended && r.URL.Query().Get("follow") == "true" {
		started := run.rec.CreatedAt.Add(time.Second)
		run.rec.State, run.rec.StartedAt = api.StateRunning, &started
		if run.rec.Site == "" { // the first eligible site claims it
			i := slices.IndexFunc(f.sites, func(s api.SiteInfo) bool { return s.Live && run.rec.Target.Matches(s.Labels) })
			run.rec.Site = f.sites[i].Name
		}
	}
	f.mu.Unlock()

	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if ended || r.URL.Query().Get("follow") != "true" {
		fmt.Fprint(w, tailLines(log, tail))
		return
	}
	flusher := w.(http.Flusher)
	for i, line := range strings.SplitAfter(script.log, "\n") {
		fmt.Fprint(w, line)
		flusher.Flush()
		if i == 0 && script.hold != nil {
			select {
			case <-script.hold:
			case <-r.Context().Done():
				return
			}
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	run.log = script.log
	finished := run.rec.CreatedAt.Add(7 * time.Second)
	run.rec.FinishedAt = &finished
	script.end(&run.rec)
}

func tailLines(log string, n int) string {
	lines := strings.SplitAfter(log, "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	if n > 0 && len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "")
}

func sortedValues[T any](m map[string]T) []T {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]T, 0, len(m))
	for _, k := range keys {
		out = append(out, m[k])
	}
	return out
}

// decodeBody reads a strict JSON body, answering 400 when it is not one.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeAPIError(w, http.StatusBadRequest, api.CodeInvalid, "invalid JSON body", err.Error())
		return false
	}
	return true
}

// validate answers 400 with one detail per field problem when err is not
// nil.
func validate(w http.ResponseWriter, kind string, err error) bool {
	if err == nil {
		return true
	}
	var details []string
	var multi interface{ Unwrap() []error }
	if errors.As(err, &multi) {
		for _, e := range multi.Unwrap() {
			details = append(details, e.Error())
		}
	}
	writeAPIError(w, http.StatusBadRequest, api.CodeInvalid, "invalid "+kind, details...)
	return false
}

func notFound(w http.ResponseWriter, kind, name string) {
	writeAPIError(w, http.StatusNotFound, api.CodeNotFound, fmt.Sprintf("%s %q not found", kind, name))
}

func writeAPIError(w http.ResponseWriter, status int, code, msg string, details ...string) {
	writeAPI(w, status, api.ErrorBody{Code: code, Message: msg, Details: details})
}

func writeAPI(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(v); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}
