package maoctl

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/detector"
	"github.com/mao-research/mao/internal/testenv"
	"github.com/mao-research/mao/toolspec"
)

// The seeds: what each case's site holds before its first command. They
// are written through the real store (internal/testsite), as the sites
// that made them would have, with times before the site's clock,
// which starts at testsite.Epoch, at(3*3600).

// at is the base time of the seeds plus sec seconds.
func at(sec int) *time.Time {
	t := time.Date(2025, 3, 14, 9, 26, 0, 0, time.UTC).Add(time.Duration(sec) * time.Second)
	return &t
}

func intPtr(i int) *int { return &i }

// seedID is the ID of a seeded run of tool requested at created, in the
// real form <tool>-<unix seconds>-<6 hex digits>, with n in the hex digits.
func seedID(tool string, created *time.Time, n int) string {
	return fmt.Sprintf("%s-%d-5eed%02x", tool, created.Unix(), n)
}

// The seeded runs of every case, and of the cases that ask for more.
var (
	run1 = seedID("gh-crawler", at(0), 1)    // succeeded at lab-a, with a log of 12 lines
	run2 = seedID("code-stats", at(600), 2)  // failed at lab-b
	run3 = seedID("gh-crawler", at(1200), 3) // running at lab-a, no log yet

	runLost    = seedID("gh-crawler", at(1800), 0x11) // lost with site lab-c
	runRetried = seedID("code-stats", at(1900), 0x12) // lost at lab-c, then succeeded at lab-b
	runWaiting = seedID("gpu-train", at(2400), 0x13)  // waits for a gpu=a100 site
	runAtB     = seedID("gh-crawler", at(2500), 0x14) // sent to lab-b, running there

	runSpike   = seedID("gh-crawler", at(2400), 0x21) // control is a spike
	runMixed   = seedID("code-stats", at(2460), 0x22) // files ok, go_lines a spike by gain, python_lines warming up
	runNoData  = seedID("gh-crawler", at(2520), 0x23) // no control file
	runFlatHit = seedID("gh-crawler", at(2580), 0x24) // equals a flat history

	runPushPending  = seedID("gh-crawler", at(2700), 0x31) // its commit is queued at lab-a
	runPushPushed   = seedID("gh-crawler", at(2760), 0x32) // on main, rebased, after two failed attempts
	runPushConflict = seedID("code-stats", at(2820), 0x33) // on mao/lab-a
	runPushFailed   = seedID("gh-crawler", at(2880), 0x34) // the server refuses the password
	runPushOff      = seedID("code-stats", at(2940), 0x35) // its tool does not push
)

// The seeded schedules (IDs as the orchestrator makes them) and the run IDs
// of their ticks, <schedule>-<unix seconds of the tick>.
const (
	schedDaily  = "gh-crawler-daily-3f2a"
	schedWeekly = "code-stats-weekly-81c0"
	schedEvery  = "gh-crawler-every-5d10"
	schedOrphan = "old-tool-cron-0b7e"
)

func tickID(schedule, tick string) string {
	t, err := time.Parse(time.RFC3339, tick)
	if err != nil {
		panic(err)
	}
	return fmt.Sprintf("%s-%d", schedule, t.Unix())
}

var (
	tickDailyOnTime   = tickID(schedDaily, "2025-03-12T11:00:00Z")
	tickDailyLate     = tickID(schedDaily, "2025-03-13T11:00:00Z")
	tickDailyRetrying = tickID(schedDaily, "2025-03-14T11:00:00Z")
	tickWeekly        = tickID(schedWeekly, "2025-03-10T00:00:00Z")
	tickEveryMissed   = tickID(schedEvery, "2025-03-14T12:00:00Z")
	tickEveryRunning  = tickID(schedEvery, "2025-03-14T12:10:00Z")
	tickEverySkipped  = tickID(schedEvery, "2025-03-14T12:20:00Z")
	tickOrphan        = tickID(schedOrphan, "2025-03-14T06:45:00Z")
)

// Reasons in the words the orchestrator uses for them.
const (
	reasonExit3   = "exit code 3"
	reasonLostAtC = "lost: site lab-c stopped renewing its lease (it stopped, or lost etcd) while it held the run"
)

// seedTools registers the base tools and datasets. With runnable, the tools
// that cases run have file:// data repositories and input dataset, so that
// a run touches nothing off this machine.
// seedInvalid puts, next to the tools of seedTools, values that are not
// records of their kind under the directories of the lists.
func seedInvalid(t *testing.T, e *env) {
	t.Helper()
	for key, value := range map[string]string{
		"tools/broken":          "not json",
		"tools/impostor":        `{"name":"gh-crawler","author":"x","image":"evil:1","data_repo":"file:///x"}`,
		"datasets/half":         `{"name":"half"}`,
		"runs/../../etc/passwd": `{"id":"../../etc/passwd","tool":"gh-crawler","state":"pending"}`,
		"sites/liar":            `{"name":"lab-a","api_addr":"http://127.0.0.1:1"}`,
		"schedules/bad-spec":    `{"id":"bad-spec","tool":"gh-crawler","spec":"61 * * * *"}`,
	} {
		e.site.Raw(t, key, value)
	}
}

func seedTools(t *testing.T, e *env, runnable bool) {
	t.Helper()
	s := e.site
	linux := api.Dataset{Name: "linux-src", URL: "https://git.example.org/mirror/linux.git", Branch: "master", Owner: "kernel-lab",
		Description: "Linux kernel sources\nmirrored weekly"}
	ghRepo, statsRepo := "https://git.example.org/data/gh.git", "git@git.example.org:data/stats.git"
	if runnable {
		linux.URL, linux.Branch = fixedRepo(t, e, "linux", "Makefile", "all:\n"), ""
		ghRepo, statsRepo = fixedRepo(t, e, "gh-data", "README", "crawled data\n"), fixedRepo(t, e, "stats-data", "README", "statistics\n")
	}
	s.Dataset(t, linux)
	s.Dataset(t, api.Dataset{Name: "gh-data", URL: "file:///srv/data/gh.git"})
	for _, tool := range []api.Tool{
		{Name: "gh-crawler", Author: "Ada Researcher", Image: "mao/gh-crawler:1.2", DataRepo: ghRepo,
			CodeRepo: "https://git.example.org/tools/gh-crawler", Artefact: "github metadata"},
		{Name: "code-stats", Author: `O'Brien "the analyst"`, Image: "mao/code-stats:2", DataRepo: statsRepo,
			Artefact: "weekly code statistics", Description: "Counts lines of code.\nPer language.", Command: []string{"/stats", "--all", "two words"},
			Env: map[string]string{"LANGS": "go,python", "_DEBUG": "1"}, InputDataset: "linux-src", Timeout: "90m",
			Resources: &api.Resources{CPUs: 1.5, Memory: "512MiB"}, Network: "none"},
		{Name: "slow-tool", Author: "lab", Image: "mao/slow:1", DataRepo: "https://git.example.org/data/slow.git", Timeout: "5s"},
		{Name: "broken-image", Author: "lab", Image: "127.0.0.1:9/missing:1", DataRepo: "https://git.example.org/data/broken.git"},
	} {
		s.Tool(t, tool)
	}
}

// seedBase puts in place what every case but the bare ones has: the
// tools and datasets, sites lab-b (live) and lab-c (gone), three runs,
// the detector's series and a few notifications. atLabC, if set, seeds
// runs at lab-c while it is live; lab-c then leaves, and the site settles
// them as it settles the runs of any site that is gone.
func seedBase(t *testing.T, e *env, runnable bool, atLabC func(*testing.T, *env)) {
	t.Helper()
	s := e.site
	seedTools(t, e, runnable)

	if e.labB == nil {
		e.other["lab-b"] = s.JoinSite(t, api.Site{Name: "lab-b", APIAddr: "http://" + e.addr(testenv.ClosedPort(t), "$LAB_B"),
			FederationAddr: "https://" + e.addr(testenv.ClosedPort(t), "$LAB_B_FED"),
			Version:        "0.1.0", OS: "linux", Arch: "arm64", CPUs: 4, MemoryBytes: 8 << 30, DockerVersion: "27.1.0",
			Labels: map[string]string{"zone": "eu", "gpu": "a100"}, StartedAt: *at(-3600)})
	}
	labC := s.JoinSite(t, api.Site{Name: "lab-c", APIAddr: "http://" + e.addr(testenv.ClosedPort(t), "$LAB_C"),
		FederationAddr: "https://" + e.addr(testenv.ClosedPort(t), "$LAB_C_FED"),
		Version:        "0.0.9", OS: "linux", Arch: "amd64", CPUs: 8, MemoryBytes: 32 << 30, DockerVersion: "27.1.0",
		Labels: map[string]string{"zone": "us"}, StartedAt: *at(-7 * 86400)})

	var lines []string
	for i := 1; i <= 12; i++ {
		lines = append(lines, fmt.Sprintf("step %d of 12", i))
	}
	files := []string{"control-20250301T000000.csv", "reports/2025-03-01.json", "raw/part-0001.csv"}
	for _, r := range []api.Run{
		{ID: run1, Tool: "gh-crawler", Site: "lab-a", State: api.StateSucceeded, Trigger: api.TriggerManual,
			Image: "mao/gh-crawler:1.2", Network: "bridge", ImageID: "sha256:" + strings.Repeat("ab", 32),
			ImageDigest: "mao/gh-crawler@sha256:" + strings.Repeat("cd", 32), ExitCode: intPtr(0),
			DataRepo: "https://git.example.org/data/gh.git", DataCommitBefore: strings.Repeat("1", 40),
			DataCommitAfter: strings.Repeat("2", 40), Files: files, FilesTotal: 250, Attempt: 1, MaxAttempts: 1,
			Spec: &api.RunSpec{Command: []string{"crawl", "--since", "last week's run"},
				Env: map[string]string{"GITHUB_TOKEN": "***", "ORG": "mao-research"}, SecretEnv: []string{"GITHUB_TOKEN"},
				Resources: &api.Resources{CPUs: 1.5}, Memory: 4 << 30, Timeout: "1h0m0s", SpecRevision: 42, Version: "0.1.0-dev"},
			CreatedAt: *at(0), StartedAt: at(2), ContainerStartedAt: at(4), FinishedAt: at(95)},
		{ID: run2, Tool: "code-stats", Site: "lab-b", State: api.StateFailed, Reason: reasonExit3,
			Trigger: api.TriggerManual, Image: "mao/code-stats:2", Network: "none", ImageID: "sha256:" + strings.Repeat("ef", 32), ExitCode: intPtr(3),
			DataRepo: "git@git.example.org:data/stats.git", DataCommitBefore: strings.Repeat("3", 40), DataCommitAfter: strings.Repeat("3", 40),
			InputDataset: "linux-src", InputCommit: strings.Repeat("4", 40), Attempt: 1, MaxAttempts: 1,
			Spec: &api.RunSpec{Resources: &api.Resources{Memory: "512MiB"}, Memory: 512 << 20, User: "1000:1000",
				Timeout: "30m0s", SpecRevision: 7, Version: "0.1.0-dev"},
			CreatedAt: *at(600), StartedAt: at(601), FinishedAt: at(601)},
		{ID: run3, Tool: "gh-crawler", Site: "lab-a", State: api.StateRunning, Trigger: api.TriggerManual, Network: "bridge",
			Image: "mao/gh-crawler:1.2", DataRepo: "https://git.example.org/data/gh.git", Attempt: 1, MaxAttempts: 1,
			CreatedAt: *at(1200), StartedAt: at(1201)},
	} {
		s.Run(t, r)
	}
	s.Log(t, run1, strings.Join(lines, "\n")+"\n")
	s.Log(t, run3, "crawling page 1\ncrawling page 2\n") // it goes on
	if e.labB != nil {
		e.labB.Log(t, run2, "counting lines\nerror: no input at /usr/src/app/input\n[mao] run "+run2+" failed: exit code 3\n")
	}

	if atLabC != nil {
		atLabC(t, e)
	}
	labC.Leave(t)
	seedSeries(t, e)
	seedNotifications(t, e)
}

// seriesLabA are gh-crawler's control values at lab-a: 30 daily runs, flat
// around 1500 but for a spike up (the 18th) and one down (the 27th).
func seriesLabA() []float64 {
	var v []float64
	for i := range 30 {
		v = append(v, 1500+float64(i%5)*4-float64(i%3)*3)
	}
	v[17], v[26] = 2450, 610
	return v
}

// seedSeries gives gh-crawler a control series at lab-a and a short one at
// lab-b, and code-stats two metrics of its JSON file at lab-b.
func seedSeries(t *testing.T, e *env) {
	t.Helper()
	series := func(tool, site, metric string, values []float64, spikes ...int) api.Series {
		ps := make([]api.SeriesPoint, len(values))
		for i, v := range values {
			when := at((i - len(values)) * 86400)
			ps[i] = api.SeriesPoint{Run: seedID(tool, when, 0x40+i), Time: *when, Value: v}
		}
		for _, i := range spikes {
			ps[i].Spike = true
		}
		return api.Series{Tool: tool, Site: site, Metric: metric, Points: ps}
	}
	for _, sr := range []api.Series{
		series("gh-crawler", "lab-a", "control", seriesLabA(), 17, 26),
		series("gh-crawler", "lab-b", "control", []float64{42, 42, 42}),
		series("code-stats", "lab-b", "files", []float64{120, 121, 121, 123, 122, 125}),
		series("code-stats", "lab-b", "go_lines", []float64{10250.5, 10310, 10302.25, 10400, 0.125, 10420}, 4),
	} {
		e.site.Series(t, sr)
		for _, p := range sr.Points {
			e.norm.keepValue(p.Run)
		}
	}
}

// hookSeeded and downSeeded are channels of the seeded notifications, as
// the orchestrator records them: redacted.
const (
	hookSeeded = "generic+http://127.0.0.1:9/hooks/***?template=json"
	downSeeded = "generic+http://mao:***@127.0.0.1:9/notify"
)

// seedNotifications records a few notifications of the seeded series and
// runs, as the sites that sent them did.
func seedNotifications(t *testing.T, e *env) {
	t.Helper()
	point := func(i int) string { return seedID("gh-crawler", at((i-30)*86400), 0x40+i) } // a run of seriesLabA
	spikeRun, backRun := point(17), point(18)
	for i, n := range []api.Notification{
		{Kind: "spike", Tool: "gh-crawler", Site: "lab-a", Run: spikeRun, Metric: "control", Channel: hookSeeded,
			Status: "sent", Attempts: 1, Title: "gh-crawler at lab-a: control 2450 is a spike (baseline 1502)",
			CreatedAt: *at(-12 * 86400), FinishedAt: *at(-12*86400 + 1)},
		{Kind: "spike", Tool: "gh-crawler", Site: "lab-a", Run: spikeRun, Metric: "control", Channel: downSeeded,
			Status: "failed", Attempts: 3, Error: `Post "http://127.0.0.1:9/notify": dial tcp 127.0.0.1:9: connect: connection refused`,
			Title: "gh-crawler at lab-a: control 2450 is a spike (baseline 1502)", CreatedAt: *at(-12*86400 + 1), FinishedAt: *at(-12*86400 + 35)},
		{Kind: "spike_resolved", Tool: "gh-crawler", Site: "lab-a", Run: backRun, Metric: "control", Channel: hookSeeded,
			Status: "sent", Attempts: 2, Title: "gh-crawler at lab-a: control is back to normal", CreatedAt: *at(-11 * 86400), FinishedAt: *at(-11*86400 + 6)},
		{Kind: "run_failed", Tool: "code-stats", Site: "lab-b", Run: run2, Channel: hookSeeded,
			Status: "sent", Attempts: 1, Title: "code-stats at lab-b: run " + run2 + " failed (exit 3)", CreatedAt: *at(601), FinishedAt: *at(602)},
		{Kind: "test", Site: "lab-a", Channel: hookSeeded, Status: "sent", Attempts: 1, Title: "mao test message",
			CreatedAt: *at(900), FinishedAt: *at(901)},
	} {
		n.ID = fmt.Sprintf("%019d-5eed%02x", n.CreatedAt.UnixNano(), 0x31+i) // <unix nanos>-<6 hex>, as the site makes them
		e.site.Notification(t, n)
		e.norm.keepValue(n.ID)
	}
}

// seedVerdicts adds succeeded runs with the spike detector's verdicts,
// made by the detector from the seeded series, as the site that ran them
// recorded them:
//   - runSpike: gh-crawler's control value is a spike;
//   - runMixed: code-stats's files are ok, its go_lines drop is a spike by
//     gain and its new metric is warming up;
//   - runNoData: gh-crawler wrote no control file;
//   - runFlatHit: gh-crawler's value equals a flat history.
func seedVerdicts(t *testing.T, e *env) {
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
	gain := detector.Config{Method: detector.MethodGain, Threshold: 6}
	noData := last([]float64{1}, detector.Config{}, "control")
	noData.Status, noData.Value, noData.History, noData.Reason = detector.StatusNoData, nil, 0, "no control-*.csv in the output"
	for i, r := range []struct {
		id, tool, image, repo string
		verdicts              []api.Verdict
	}{
		{runSpike, "gh-crawler", "mao/gh-crawler:1.2", "https://git.example.org/data/gh.git",
			[]api.Verdict{last(seriesLabA()[:18], detector.Config{}, "control")}},
		{runMixed, "code-stats", "mao/code-stats:2", "git@git.example.org:data/stats.git", []api.Verdict{
			last([]float64{120, 121, 121, 123, 122, 125}, gain, "files"),
			last([]float64{10250.5, 10310, 10302.25, 10400, 0.125}, gain, "go_lines"),
			last([]float64{3}, gain, "python_lines"),
		}},
		{runNoData, "gh-crawler", "mao/gh-crawler:1.2", "https://git.example.org/data/gh.git", []api.Verdict{noData}},
		{runFlatHit, "gh-crawler", "mao/gh-crawler:1.2", "https://git.example.org/data/gh.git",
			[]api.Verdict{last([]float64{42, 42, 42, 42, 42, 42}, detector.Config{}, "control")}},
	} {
		e.site.Run(t, api.Run{ID: r.id, Tool: r.tool, Site: "lab-a", State: api.StateSucceeded, Trigger: api.TriggerManual,
			Image: r.image, Network: "bridge", DataRepo: r.repo, ExitCode: intPtr(0), Attempt: 1, MaxAttempts: 1,
			CreatedAt: *at(2400 + 60*i), StartedAt: at(2401 + 60*i), FinishedAt: at(2430 + 60*i), Verdicts: r.verdicts})
		e.site.Log(t, r.id, "measured "+r.verdicts[0].Metric+"\n")
	}
}

// seedPushes adds succeeded runs of lab-a whose commits are on their way
// to their data repositories, one in each push state, and one whose tool
// does not push, as lab-a's outbox recorded them.
func seedPushes(t *testing.T, e *env) {
	t.Helper()
	commit := func(n int) string { return strings.Repeat(fmt.Sprintf("%x", n), 40) }
	failedAt := at(2911)
	for i, r := range []struct {
		id, tool string
		push     *api.Push
	}{
		{runPushPending, "gh-crawler", &api.Push{State: api.PushPending, QueuedAt: *at(2730)}},
		{runPushPushed, "gh-crawler", &api.Push{State: api.PushPushed, Branch: "main", Commit: commit(0xb), Attempts: 2,
			Reason: "push to https://git.example.org/data/gh-crawler.git: dial tcp 192.0.2.7:443: connect: connection refused", QueuedAt: *at(2790), FailedAt: at(2790), PushedAt: at(2795)}},
		{runPushConflict, "code-stats", &api.Push{State: api.PushConflict, Branch: "mao/lab-a", Commit: commit(0xc), QueuedAt: *at(2850), PushedAt: at(2851)}},
		{runPushFailed, "gh-crawler", &api.Push{State: api.PushFailed, Attempts: 7, QueuedAt: *at(2910), FailedAt: failedAt,
			Reason: "push to https://git.example.org/data/gh-crawler.git: authentication required (the site's [git] credentials_file has no valid user and password for this host)"}},
		{runPushOff, "code-stats", nil},
	} {
		e.site.Run(t, api.Run{ID: r.id, Tool: r.tool, Site: "lab-a", State: api.StateSucceeded, Trigger: api.TriggerManual,
			Image: "mao/" + r.tool + ":1", Network: "bridge", DataRepo: "https://git.example.org/data/" + r.tool + ".git", ExitCode: intPtr(0),
			Attempt: 1, MaxAttempts: 1, CreatedAt: *at(2700 + 60*i), StartedAt: at(2701 + 60*i), FinishedAt: at(2730 + 60*i),
			DataCommitBefore: commit(1 + i), DataCommitAfter: commit(6 + i), Files: []string{fmt.Sprintf("out-%d.csv", i)}, Push: r.push})
		e.site.Log(t, r.id, fmt.Sprintf("wrote out-%d.csv\n", i))
	}
}

// seedFederationAtC, run while lab-c is live, gives lab-c two runs that it
// holds when it leaves: runLost (any site, no attempts left) and
// runRetried (zone=eu, attempt 1 of 3). The site settles them when lab-c
// is gone: the first is lost, the second is requested again.
func seedFederationAtC(t *testing.T, e *env) {
	t.Helper()
	for _, r := range []api.Run{
		{ID: runLost, Tool: "gh-crawler", Site: "lab-c", Target: &api.Target{Mode: "any"}, State: api.StateRunning,
			Trigger: api.TriggerManual, Image: "mao/gh-crawler:1.2", Network: "bridge", DataRepo: "https://git.example.org/data/gh.git",
			Attempt: 1, MaxAttempts: 1, CreatedAt: *at(1800), StartedAt: at(1802), ContainerStartedAt: at(1803)},
		{ID: runRetried, Tool: "code-stats", Site: "lab-c", Target: &api.Target{Mode: "any", Labels: map[string]string{"zone": "eu"}},
			State: api.StateRunning, Trigger: api.TriggerManual, Image: "mao/code-stats:2", Network: "none",
			DataRepo: "git@git.example.org:data/stats.git", Attempt: 1, MaxAttempts: 3, CreatedAt: *at(1900), StartedAt: at(1902)},
	} {
		e.site.Run(t, r)
	}
}

// seedFederation adds, for the cases that need them, a tool whose runs
// need a gpu=a100 site, and runs of targets:
//   - runLost, lost with site lab-c (seedFederationAtC);
//   - runRetried: its first attempt was lost at lab-c; lab-b claims it
//     again and it succeeds there;
//   - runWaiting: a gpu=a100 run waiting for an eligible site (lab-b has
//     the label but not the image);
//   - runAtB: a run sent to site lab-b, running there.
func seedFederation(t *testing.T, e *env) {
	t.Helper()
	s := e.site
	trainRepo := fixedRepo(t, e, "train-data", "README", "models\n") // a case runs it at lab-a
	s.Tool(t, api.Tool{Name: "gpu-train", Author: "lab", Image: "mao/gpu-train:1", DataRepo: trainRepo})
	s.WaitRun(t, runLost, func(r api.Run) bool { return r.State == api.StateLost })
	retried := s.WaitRun(t, runRetried, func(r api.Run) bool { return r.State == api.StatePending && r.Site == "" })
	s.Advance(time.Minute) // lab-b takes the request a minute later
	run := s.ClaimAs(t, retried.ID, "lab-b")
	started := s.Now()
	run.State, run.StartedAt = api.StateRunning, &started
	s.SaveAs(t, run)
	s.Advance(29 * time.Second)
	finished := s.Now()
	run.State, run.ExitCode, run.FinishedAt = api.StateSucceeded, intPtr(0), &finished
	s.SaveAs(t, run)

	s.Request(t, api.Run{ID: runWaiting, Tool: "gpu-train", Target: &api.Target{Mode: "any", Labels: map[string]string{"gpu": "a100"}},
		State: api.StatePending, Trigger: api.TriggerManual, Image: "mao/gpu-train:1", Network: "bridge",
		DataRepo: trainRepo, Attempt: 1, MaxAttempts: 1, CreatedAt: *at(2400)})
	s.Request(t, api.Run{ID: runAtB, Tool: "gh-crawler", Target: &api.Target{Mode: "site", Site: "lab-b"},
		State: api.StatePending, Trigger: api.TriggerManual, Image: "mao/gh-crawler:1.2", Network: "bridge",
		DataRepo: "https://git.example.org/data/gh.git", Attempt: 1, MaxAttempts: 1, CreatedAt: *at(2500)})
	run = s.ClaimAs(t, runAtB, "lab-b")
	run.State, run.StartedAt = api.StateRunning, at(2501)
	s.SaveAs(t, run)
}

// seedSchedules adds four schedules and runs of theirs. The runs are
// claimed first, as the schedulers that ran them did, so that the site's
// scheduler, which catches a new schedule up at once, finds no tick left
// to catch up:
//   - gh-crawler-daily-3f2a: daily at 12:00 Zurich time with retries: a
//     scheduled run, a catch-up run and a run waiting for its third attempt;
//   - code-stats-weekly-81c0: weekly at every zone=eu site, paused, its
//     last run failed;
//   - gh-crawler-every-5d10: every 10 minutes: a missed tick, a running
//     run and a tick skipped because of it;
//   - old-tool-cron-0b7e: a cron schedule in Asia/Kolkata at site lab-b
//     whose tool is gone.
func seedSchedules(t *testing.T, e *env) {
	t.Helper()
	s := e.site
	utc := func(v string) *time.Time {
		t.Helper()
		tm, err := time.Parse(time.RFC3339, v)
		if err != nil {
			t.Fatal(err)
		}
		return &tm
	}
	s.Tool(t, api.Tool{Name: "old-tool", Author: "lab", Image: "mao/old:3", DataRepo: "https://git.example.org/data/old.git"})
	daily := toolspec.Schedule{ID: schedDaily, Tool: "gh-crawler", Spec: "daily", At: "12:00", TZ: "Europe/Zurich",
		Overlap: "forbid", Catchup: "once", Retries: 2, RetryDelay: "1h", Target: api.Target{Mode: "any"},
		Env: map[string]string{"DEPTH": "full", "TOKEN_FILE": "/run/secrets/gh"}, CreatedAt: *at(-10 * 86400), UpdatedAt: *at(-86400)}
	weekly := toolspec.Schedule{ID: schedWeekly, Tool: "code-stats", Spec: "weekly", Weekday: "mon", TZ: "UTC",
		Overlap: "forbid", Catchup: "once", Paused: true, Target: api.Target{Mode: "all", Labels: map[string]string{"zone": "eu"}},
		CreatedAt: *at(-30 * 86400), UpdatedAt: *at(-30 * 86400)}
	every := toolspec.Schedule{ID: schedEvery, Tool: "gh-crawler", Spec: "@every 10m", TZ: "UTC",
		Overlap: "forbid", Catchup: "skip", Target: api.Target{Mode: "any"}, CreatedAt: *at(-86400), UpdatedAt: *at(-86400)}
	orphan := toolspec.Schedule{ID: schedOrphan, Tool: "old-tool", Spec: "15 */6 * * *", TZ: "Asia/Kolkata",
		Overlap: "allow", Catchup: "once", Deadline: "6h", Env: map[string]string{"MODE": "quick"}, Target: api.Target{Mode: "site", Site: "lab-b"},
		CreatedAt: *at(-60 * 86400), UpdatedAt: *at(-60 * 86400)}

	// run is the record of the tick of s at tick, claimed then by site.
	run := func(sch toolspec.Schedule, tick, site, image, repo string) api.Run {
		when := utc(tick)
		id := tickID(sch.ID, tick)
		if sch.Target.EffectiveMode() == toolspec.TargetAll {
			id += "-" + site
		}
		target := sch.Target
		return api.Run{ID: id, Tool: sch.Tool, Site: site, Target: &target, Trigger: api.TriggerSchedule,
			Image: image, Network: "bridge", DataRepo: repo, Schedule: sch.ID, ScheduledTime: when, Env: sch.Env,
			Attempt: 1, MaxAttempts: 1 + sch.Retries, RetryDelay: sch.RetryDelay, CreatedAt: *when}
	}
	const ghImage, ghRepo = "mao/gh-crawler:1.2", "https://git.example.org/data/gh.git"

	onTime := run(daily, "2025-03-12T11:00:00Z", "lab-a", ghImage, ghRepo)
	onTime.State, onTime.ExitCode = api.StateSucceeded, intPtr(0)
	onTime.StartedAt, onTime.ContainerStartedAt, onTime.FinishedAt = utc("2025-03-12T11:00:01Z"), utc("2025-03-12T11:00:04Z"), utc("2025-03-12T11:01:21Z")
	onTime.DataCommitBefore, onTime.DataCommitAfter = strings.Repeat("5", 40), strings.Repeat("6", 40)

	late := run(daily, "2025-03-13T11:00:00Z", "lab-b", ghImage, ghRepo)
	late.Trigger, late.State, late.ExitCode = api.TriggerCatchup, api.StateSucceeded, intPtr(0)
	late.CreatedAt = *utc("2025-03-13T15:42:10Z")
	late.StartedAt, late.ContainerStartedAt, late.FinishedAt = utc("2025-03-13T15:42:11Z"), utc("2025-03-13T15:42:13Z"), utc("2025-03-13T15:43:02Z")

	retrying := run(daily, "2025-03-14T11:00:00Z", "lab-a", ghImage, ghRepo)
	retrying.State, retrying.Attempt, retrying.RetryAt = api.StatePending, 3, utc("2025-03-14T13:05:00Z")
	retrying.Attempts = []api.Attempt{
		{Attempt: 1, State: api.StateFailed, ExitCode: intPtr(3), Reason: reasonExit3,
			StartedAt: utc("2025-03-14T11:00:01Z"), FinishedAt: utc("2025-03-14T11:02:30Z")},
		{Attempt: 2, State: api.StateFailed, Reason: `image: pull mao/gh-crawler:1.2: registry unavailable`,
			FinishedAt: utc("2025-03-14T12:05:00Z")},
	}

	weeklyRun := run(weekly, "2025-03-10T00:00:00Z", "lab-a", "mao/code-stats:2", "git@git.example.org:data/stats.git")
	weeklyRun.State, weeklyRun.ExitCode, weeklyRun.Reason = api.StateFailed, intPtr(3), reasonExit3
	weeklyRun.StartedAt, weeklyRun.FinishedAt = utc("2025-03-10T00:00:02Z"), utc("2025-03-10T00:00:09Z")

	missed := run(every, "2025-03-14T12:00:00Z", "lab-a", ghImage, ghRepo)
	missed.State, missed.Attempt = api.StateMissed, 0
	missed.Reason = "missed: no orchestrator recorded this tick on time (down, or etcd unreachable); the schedule's catchup is skip"
	missed.CreatedAt, missed.FinishedAt = *utc("2025-03-14T12:08:30Z"), utc("2025-03-14T12:08:30Z")

	running := run(every, "2025-03-14T12:10:00Z", "lab-a", ghImage, ghRepo)
	running.State = api.StateRunning
	running.StartedAt, running.ContainerStartedAt = utc("2025-03-14T12:10:01Z"), utc("2025-03-14T12:10:03Z")

	skipped := run(every, "2025-03-14T12:20:00Z", "lab-a", ghImage, ghRepo)
	skipped.State, skipped.Attempt = api.StateSkipped, 0
	skipped.Reason = "skipped: the previous run " + running.ID + " is still running and the schedule forbids overlap"
	skipped.FinishedAt = utc("2025-03-14T12:20:00Z")

	orphanRun := run(orphan, "2025-03-14T06:45:00Z", "lab-b", "mao/old:3", "https://git.example.org/data/old.git")
	orphanRun.State, orphanRun.ExitCode = api.StateSucceeded, intPtr(0)
	orphanRun.StartedAt, orphanRun.FinishedAt = utc("2025-03-14T06:45:01Z"), utc("2025-03-14T06:47:00Z")

	for _, r := range []api.Run{weeklyRun, onTime, late, orphanRun, retrying, missed, running, skipped} {
		s.Run(t, r)
		e.norm.keepValue(r.ID)
	}
	s.Log(t, weeklyRun.ID, "counting lines\nexiting with 3\n[mao] run "+weeklyRun.ID+" failed: exit code 3\n")
	s.Log(t, onTime.ID, "crawled 40 repositories\n")
	s.Log(t, running.ID, "crawling\n")
	s.Log(t, retrying.ID, "attempt 1: crawling\nerror: rate limited\n[mao] attempt 1 of 3 failed: exit code 3; next attempt at 2025-03-14T12:02:30Z\n"+
		"[mao] attempt 2 of 3 failed: image: pull mao/gh-crawler:1.2: registry unavailable; next attempt at 2025-03-14T13:05:00Z\n")
	for _, sch := range []toolspec.Schedule{daily, weekly, every, orphan} {
		s.Schedule(t, sch)
		e.norm.keepValue(sch.ID)
	}
	s.RemoveTool(t, "old-tool")
}

// fixedRepo creates a git repository named name in the case's directory
// with one commit of one file, at a fixed time, so that its hash is the
// same on every run, and returns its file:// URL.
func fixedRepo(t *testing.T, e *env, name, file, content string) string {
	t.Helper()
	src := newGitSource(t, filepath.Join(e.tmp, name))
	src.when = *at(-86400)
	e.norm.keepValue(src.commit(file, content, "initial").String())
	return src.url()
}

// gitSource is a git repository under a case's directory whose commits
// have fixed contents and times, so fixed hashes.
type gitSource struct {
	t    *testing.T
	dir  string
	repo *git.Repository
	wt   *git.Worktree
	when time.Time // of every commit
}

func newGitSource(t *testing.T, dir string) *gitSource {
	t.Helper()
	repo, err := git.PlainInit(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	wt, err := repo.Worktree()
	if err != nil {
		t.Fatal(err)
	}
	testenv.AsRemote(t, repo)
	return &gitSource{t: t, dir: dir, repo: repo, wt: wt, when: *at(0)}
}

// commit writes file and commits it on the checked-out branch.
func (g *gitSource) commit(file, content, msg string) plumbing.Hash {
	g.t.Helper()
	writeFile(g.t, filepath.Join(g.dir, file), content)
	if _, err := g.wt.Add(file); err != nil {
		g.t.Fatal(err)
	}
	sig := &object.Signature{Name: "Lab", Email: "lab@example.org", When: g.when}
	h, err := g.wt.Commit(msg, &git.CommitOptions{Author: sig, Committer: sig})
	if err != nil {
		g.t.Fatal(err)
	}
	return h
}

func (g *gitSource) checkout(branch string, create bool) {
	g.t.Helper()
	if err := g.wt.Checkout(&git.CheckoutOptions{Branch: plumbing.NewBranchReferenceName(branch), Create: create}); err != nil {
		g.t.Fatal(err)
	}
}

func (g *gitSource) url() string { return "file://" + g.dir }

// seedGitDatasets creates a git repository under the case's directory
// with a commit on master and one more on branch v2 (fixed contents and
// times, so fixed hashes), and registers it as datasets "local" and
// "local-v2", plus "unreachable" pointing at a path that does not exist.
func seedGitDatasets(t *testing.T, e *env) {
	t.Helper()
	src := newGitSource(t, filepath.Join(e.tmp, "src"))
	src.commit("data.csv", "region,count\nnorth,1\n", "first data")
	src.checkout("v2", true)
	src.commit("data.csv", "region,count\nnorth,2\n", "second data")
	src.checkout("master", false)
	e.site.Dataset(t, api.Dataset{Name: "local", URL: src.url()})
	e.site.Dataset(t, api.Dataset{Name: "local-v2", URL: src.url(), Branch: "v2"})
	e.site.Dataset(t, api.Dataset{Name: "unreachable", URL: "file://" + filepath.Join(e.tmp, "no-such-repo")})
}

// seedToolData creates a data repository under the case's directory with
// a run's result on master and a conflicting one on mao/lab-b, registers
// tool "results" that pushes there (and "elsewhere", whose repository
// does not exist), and works in $TMP/work, which holds a file "notes"
// and an empty directory "empty".
func seedToolData(t *testing.T, e *env) {
	t.Helper()
	src := newGitSource(t, filepath.Join(e.tmp, "data"))
	src.commit("README", "results of the results tool\n", "initial")
	src.commit("lab-a/run-1.csv", "count\n1\n", "mao: run results-1 of results at site lab-a")
	src.checkout("mao/lab-b", true)
	src.commit("summary.csv", "count\n2\n", "mao: run results-2 of results at site lab-b")
	src.checkout("master", false)
	e.site.Tool(t, api.Tool{Name: "results", Author: "lab", Image: "mao/results:1", DataRepo: src.url()})
	e.site.Tool(t, api.Tool{Name: "elsewhere", Author: "lab", Image: "mao/results:1", DataRepo: "file://" + filepath.Join(e.tmp, "no-such-repo")})
	work := filepath.Join(e.tmp, "work")
	if err := os.MkdirAll(filepath.Join(work, "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(work, "notes"), "notes\n")
	t.Chdir(work)
}

// openGitSource opens the repository in dir, to commit to it as
// gitSource does.
func openGitSource(t *testing.T, dir string) *gitSource {
	t.Helper()
	repo, err := git.PlainOpen(dir)
	if err != nil {
		t.Fatal(err)
	}
	wt, err := repo.Worktree()
	if err != nil {
		t.Fatal(err)
	}
	return &gitSource{t: t, dir: dir, repo: repo, wt: wt, when: *at(0)}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func checkFile(t *testing.T, path, want string) {
	t.Helper()
	if got, err := os.ReadFile(path); err != nil || string(got) != want {
		t.Errorf("%s holds %q (%v), want %q", path, got, err, want)
	}
}
