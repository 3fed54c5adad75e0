package fedtest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/image"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/internal/testenv"
)

// TestReplay checks provenance and replay end to end, at a real
// orchestrator with real Docker and git, as a researcher uses them:
//   - the commit of a run's output carries the Mao-* trailers, which
//     git log --format='%(trailers)' prints, and maoctl run provenance
//     prints the run's snapshot;
//   - maoctl run replay --follow of a deterministic tool says reproduced
//     and exits 0, even after the tool's image tag was moved to another
//     image: the replay runs the image that ran, by ID;
//   - a replay of a tool whose output holds the time lists the file
//     that differs, with sizes and hashes, and exits 1;
//   - a replay is never committed to the site's clone and never enters a
//     detector series.
func TestReplay(t *testing.T) {
	t.Parallel()
	bins, img := Build(t), testenv.BuildTestImage(t)
	docker := testenv.Docker(t)
	ctx := context.Background()
	// The steady tool's image is a tag of this test's own, moved later.
	moving := fmt.Sprintf("mao-fedtest/replay-%d:moving", os.Getpid())
	if err := docker.ImageTag(ctx, img, moving); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { docker.ImageRemove(context.Background(), moving, image.RemoveOptions{}) })
	site := Start(t, bins, "r1", SiteConfig("r1", "%DIR%", "", leaseTTL, ""))
	tools := []api.Tool{
		{Name: "steady", Author: "fedtest", Image: moving, DataRepo: testenv.GitRepo(t, nil), Network: "none",
			Command: []string{"-write", "out/a.csv=1,2", "-mark", "-env"}, Env: map[string]string{"TOOL_TOKEN": "s3cret"},
			SecretEnv: []string{"TOOL_TOKEN"}},
		{Name: "clock", Author: "fedtest", Image: img, DataRepo: testenv.GitRepo(t, nil), Network: "none",
			Command: []string{"-write", "out/a.csv=1,2", "-now", "stamp.txt"}},
	}
	orig := map[string]api.Run{}
	for _, tool := range tools {
		if _, err := site.Client.RegisterTool(ctx, tool); err != nil {
			t.Fatal(err)
		}
		id := strings.TrimSpace(bins.Ctl(t, site.Addr, "tool", "run", tool.Name, "-q"))
		bins.Ctl(t, site.Addr, "run", "logs", id, "--follow")
		r, err := site.Client.Run(ctx, id)
		if err != nil || r.State != api.StateSucceeded {
			t.Fatalf("run of %s: %+v %v", tool.Name, r, err)
		}
		orig[tool.Name] = r
	}

	// Provenance: the trailers of the steady run's commit, and its snapshot.
	steady := orig["steady"]
	gitDir := filepath.Join(site.Dir, "repos", ".steady.git")
	out, err := exec.Command("git", "--git-dir", gitDir, "log", "-1", "--format=%(trailers)", steady.DataCommitAfter).CombinedOutput()
	if err != nil {
		t.Fatalf("git log: %v\n%s", err, out)
	}
	for _, want := range []string{"Mao-Run: " + steady.ID, "Mao-Tool: steady", "Mao-Site: r1", "Mao-Image: " + steady.ImageID,
		"Mao-Spec-Revision: ", "Mao-Version: ", "Mao-Scheduled-Time: " + steady.CreatedAt.UTC().Format("2006-01-02T15:04:05Z")} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the commit's trailers lack %q:\n%s", want, out)
		}
	}
	var prov api.Provenance
	if err := json.Unmarshal([]byte(bins.Ctl(t, site.Addr, "run", "provenance", steady.ID, "-o", "json")), &prov); err != nil {
		t.Fatal(err)
	}
	if prov.ImageID != steady.ImageID || prov.Env["TOOL_TOKEN"] != "***" || prov.SpecRevision == 0 ||
		strings.Join(prov.Command, " ") != "-write out/a.csv=1,2 -mark -env" {
		t.Errorf("provenance %+v", prov)
	}

	// The tag moves to another image; the replay still runs the old one.
	if err := docker.ImageTag(ctx, testenv.ExampleImage(t, "file-count"), moving); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := bins.CtlExit(t, site.Addr, "run", "replay", steady.ID, "--follow")
	if code != 0 || !strings.Contains(stderr, "Verdict:") || !strings.Contains(stderr, "reproduced") ||
		!strings.Contains(stdout, "MAO_RUN_ID="+steady.ID) || !strings.Contains(stdout, "TOOL_TOKEN=s3cret") {
		t.Fatalf("replay of %s: exit %d\nstdout:\n%s\nstderr:\n%s", steady.ID, code, stdout, stderr)
	}
	replays := runsOf(t, site, "steady", api.TriggerReplay)
	if len(replays) != 1 || replays[0].ImageID != steady.ImageID || replays[0].Replay.Of != steady.ID || len(replays[0].Verdicts) != 0 {
		t.Fatalf("the replay's record: %+v; want the original's image %s", replays, steady.ImageID)
	}

	clock := orig["clock"]
	_, stderr, code = bins.CtlExit(t, site.Addr, "run", "replay", clock.ID, "--follow")
	if code != 1 || !strings.Contains(stderr, "differs") || !strings.Contains(stderr, "stamp.txt: original ") ||
		strings.Contains(stderr, "out/a.csv") {
		t.Fatalf("replay of %s: exit %d\nstderr:\n%s", clock.ID, code, stderr)
	}
	replays = runsOf(t, site, "clock", api.TriggerReplay)
	if len(replays) != 1 || replays[0].Replay.Verdict != api.ReplayDiffers || len(replays[0].Replay.Differences) != 1 {
		t.Fatalf("the replay's record: %+v", replays)
	}
	if show := bins.Ctl(t, site.Addr, "run", "show", replays[0].ID); !strings.Contains(show, "Replay of:") ||
		!strings.Contains(show, "Verdict:        differs") || !strings.Contains(show, "stamp.txt: original") {
		t.Errorf("run show of the replay:\n%s", show)
	}
	d := replays[0].Replay.Differences[0]
	if d.Path != "stamp.txt" || d.Original == nil || d.Replay == nil || d.Original.SHA256 == d.Replay.SHA256 || d.Original.Size == 0 {
		t.Errorf("difference %+v %+v %+v", d, d.Original, d.Replay)
	}

	// Nothing of the replays is in the site's clones.
	for name, r := range orig {
		if commits := site.Commits(name); len(commits) != 2 || !strings.Contains(commits[0], r.ID) {
			t.Errorf("%s's clone: %q; want the original's commit on the first one", name, commits)
		}
	}
}

// runsOf lists the runs of tool with trigger at site.
func runsOf(t *testing.T, site *Site, tool, trigger string) []api.Run {
	t.Helper()
	list, err := site.Client.Runs(context.Background(), api.RunFilter{Tool: tool})
	if err != nil {
		t.Fatal(err)
	}
	var out []api.Run
	for _, r := range list.Items {
		if r.Trigger == trigger {
			out = append(out, r)
		}
	}
	return out
}
