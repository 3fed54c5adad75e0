package store

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/orchestrator/errs"
	"github.com/mao-research/mao/toolspec"
)

// TestInvalidRecordsAreLeftOut writes, as a collaborator with etcdctl
// could, values that are not mao's records under every directory, next to
// valid ones. Lists leave them out, a single read says the record is
// invalid (not found), the store reports each key once, a watch takes an
// invalid record for a deletion, and nothing in them becomes a path: the
// log-path attack stored a run under /mao/runs/../../….
func TestInvalidRecordsAreLeftOut(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, c := newStore(t)
	if err := s.CreateTool(ctx, tool("good", "")); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateDataset(ctx, toolspec.Dataset{Name: "good", URL: "file:///d"}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateRun(ctx, api.Run{ID: "good-1", Tool: "good", State: api.StatePending, CreatedAt: testNow}); err != nil {
		t.Fatal(err)
	}
	events := s.WatchRegistry(ctx, toolspec.KindTool, 0)
	bad := map[string]string{
		"/mao/tools/broken":          "not json",
		"/mao/tools/other":           `{"name":"someone-else","author":"a","image":"busybox","data_repo":"file:///r"}`,
		"/mao/tools/hostile":         `{"name":"hostile","author":"a","image":"busybox","data_repo":"file:///r","network":"host; rm -rf /"}`,
		"/mao/datasets/broken":       `{"name":"broken"}`,
		"/mao/runs/broken-run":       "not json",
		"/mao/runs/../../etc/passwd": `{"id":"../../etc/passwd","tool":"good","state":"pending"}`,
		"/mao/runs/bad-state":        `{"id":"bad-state","tool":"good","state":"exploded"}`,
		"/mao/runs/bad-push":         `{"id":"bad-push","tool":"good","state":"succeeded","push":{"state":"forced"}}`,
		"/mao/runs/bad-branch":       `{"id":"bad-branch","tool":"good","state":"succeeded","push":{"state":"pushed","branch":"../x","commit":"c"}}`,
		"/mao/runs/pushed-nowhere":   `{"id":"pushed-nowhere","tool":"good","state":"succeeded","push":{"state":"pushed"}}`,
		// A replay that would clone (and so move the .git of) a repository
		// anywhere on the host, in an image named by a tag.
		"/mao/runs/bad-replay": `{"id":"bad-replay","tool":"good","state":"pending","trigger":"replay","data_repo":"/home/victim",` +
			`"image_id":"evil:latest","replay":{"of":"good-1","site":"s1"}}`,
		// A snapshot a replay would run: no tool record could hold it.
		"/mao/runs/bad-spec":     `{"id":"bad-spec","tool":"good","state":"succeeded","network":"host; rm -rf /","spec":{"env":{"A B":"x"},"timeout":"-1s"}}`,
		"/mao/sites/liar":        `{"name":"lab-a","api_addr":"http://127.0.0.1:1"}`,
		"/mao/sites-seen/broken": "[]",
		"/mao/schedules/broken":  `{"id":"broken","tool":"good","spec":"61 * * * *"}`,
		"/mao/requests/broken":   `{"run":"broken","tool":"Good Tool"}`,
	}
	for k, v := range bad {
		if _, err := c.Put(ctx, k, v); err != nil {
			t.Fatal(err)
		}
	}
	lists := []struct {
		name string
		n    func() (int, error)
	}{
		{"tools", func() (int, error) { l, err := s.Tools(ctx); return len(l), err }},
		{"datasets", func() (int, error) { l, err := s.Datasets(ctx); return len(l), err }},
		{"runs", func() (int, error) { l, _, err := s.RunPage(ctx, api.RunFilter{}); return len(l), err }},
		{"held runs", func() (int, error) { l, err := s.HeldRuns(ctx, ""); return len(l), err }},
		{"sites", func() (int, error) { l, err := s.KnownSites(ctx); return len(l), err }},
		{"schedules", func() (int, error) { l, _, err := s.Schedules(ctx); return len(l), err }},
		{"requests", func() (int, error) { l, _, err := s.Requests(ctx); return len(l), err }},
	}
	want := map[string]int{"tools": 1, "datasets": 1, "runs": 1}
	for _, l := range lists {
		if n, err := l.n(); err != nil || n != want[l.name] {
			t.Errorf("%s: %d records, %v; want %d and no error", l.name, n, err, want[l.name])
		}
	}
	for _, get := range []func() error{
		func() error { _, err := s.Tool(ctx, "broken"); return err },
		func() error { _, err := s.Tool(ctx, "other"); return err },
		func() error { _, err := s.Run(ctx, "broken-run"); return err },
	} {
		if err := get(); !errors.Is(err, errs.ErrNotFound) || !strings.Contains(err.Error(), "invalid") {
			t.Errorf("a read of an invalid record: %v, want not found, saying it is invalid", err)
		}
	}
	// Run lists read the run index, which has no entries for records
	// written by hand: the check of every record finds those.
	if _, err := s.CheckRecords(ctx); err != nil {
		t.Fatal(err)
	}
	reported := map[string]bool{}
	for _, r := range s.InvalidRecords() {
		reported[r.Key] = true
		if r.Reason == "" {
			t.Errorf("%s reported without a reason", r.Key)
		}
	}
	for k := range bad {
		if !reported[k] {
			t.Errorf("%s was not reported", k)
		}
	}
	// Rewriting a good tool with an invalid value takes it away.
	if _, err := c.Put(ctx, "/mao/tools/good", `{"name":"good"}`); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(10 * time.Second)
	for gone := false; !gone; {
		select {
		case b := <-events:
			for _, ev := range b.Events {
				gone = gone || ev.Name == "good" && ev.Tool == nil
			}
		case <-deadline:
			t.Fatal("the watch did not take the invalid record for a deletion")
		}
	}
	// A run's holder overwrites an invalid record of its run.
	if _, err := c.Put(ctx, "/mao/runs/good-1", "garbage"); err != nil {
		t.Fatal(err)
	}
	run := api.Run{ID: "good-1", Tool: "good", Site: "a", State: api.StateRunning, CreatedAt: testNow}
	if err := s.SaveRun(ctx, run); err != nil {
		t.Fatalf("save over an invalid record: %v", err)
	}
	if got, err := s.Run(ctx, "good-1"); err != nil || got.State != api.StateRunning {
		t.Fatalf("after the save: %+v, %v", got, err)
	}
}

// TestCheckRecords checks what maoctl federation check answers: every
// invalid record of every directory with its reason, whether the site
// has read it before or not, and that a key deleted since is no longer
// reported by the next list or check; and that InvalidRecords selects by
// directory.
func TestCheckRecords(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, c := newStore(t)
	if err := s.CreateTool(ctx, tool("good", "")); err != nil {
		t.Fatal(err)
	}
	bad := []string{
		"/mao/datasets/broken", "/mao/federation-ca", "/mao/join-tokens/x", "/mao/notifications/n1",
		"/mao/requests/broken", "/mao/runs/broken-run", "/mao/schedule-runs/s/1", "/mao/schedules/broken",
		"/mao/series/good/a/m", "/mao/sites-seen/broken", "/mao/sites/liar", "/mao/tools/broken",
	}
	for _, k := range bad {
		if _, err := c.Put(ctx, k, "not json"); err != nil {
			t.Fatal(err)
		}
	}
	check, err := s.CheckRecords(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, r := range check.Invalid {
		keys = append(keys, r.Key)
		if !strings.Contains(r.Reason, "not the JSON of a record") {
			t.Errorf("%s: reason %q", r.Key, r.Reason)
		}
	}
	if strings.Join(keys, " ") != strings.Join(bad, " ") || check.Records != len(bad)+1 {
		t.Fatalf("check: %d records, invalid %v; want %d, %v", check.Records, keys, len(bad)+1, bad)
	}
	if got := s.InvalidRecords("tools", "datasets"); len(got) != 2 || got[0].Key != "/mao/datasets/broken" || got[1].Key != "/mao/tools/broken" {
		t.Fatalf("invalid tools and datasets: %+v", got)
	}
	// Deleted, a key is no longer reported once its directory is read.
	if _, err := c.Delete(ctx, "/mao/tools/broken"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Tools(ctx); err != nil {
		t.Fatal(err)
	}
	if got := s.InvalidRecords("tools"); len(got) != 0 {
		t.Fatalf("after the deletion and a list: %+v", got)
	}
	if check, err := s.CheckRecords(ctx); err != nil || len(check.Invalid) != len(bad)-1 {
		t.Fatalf("check after the deletion: %d invalid, %v", len(check.Invalid), err)
	}
}
