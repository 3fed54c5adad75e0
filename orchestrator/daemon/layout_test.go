package daemon

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/internal/testenv"
	"github.com/mao-research/mao/orchestrator/store"
)

// documentedKeys reads the key table of docs/etcd-keys.md and turns each
// key pattern, such as /mao/tools/<name>, into a regular expression.
func documentedKeys(t *testing.T) map[string]*regexp.Regexp {
	t.Helper()
	f, err := os.Open("../../docs/etcd-keys.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	row := regexp.MustCompile("^\\| `(/mao/[^`]+)` \\|")
	placeholder := regexp.MustCompile(`<[a-z-]+>`)
	keys := map[string]*regexp.Regexp{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := row.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		parts := placeholder.Split(m[1], -1)
		for i := range parts {
			parts[i] = regexp.QuoteMeta(parts[i])
		}
		keys[m[1]] = regexp.MustCompile("^" + strings.Join(parts, `[a-z0-9][a-z0-9._-]*`) + "$")
	}
	if len(keys) == 0 {
		t.Fatal("docs/etcd-keys.md documents no keys")
	}
	return keys
}

// TestEtcdLayoutIsDocumented runs a real site and checks that every key it
// writes is documented, that every documented key is written, and that a
// tool registered with the predecessor's six fields reads back as exactly
// those six fields.
func TestEtcdLayoutIsDocumented(t *testing.T) {
	image := testenv.BuildTestImage(t)
	endpoints := testenv.Etcd(t)
	cfg := testenv.SiteConfig(t, "site-a", endpoints)
	hookURL, hook := webhook(t)
	cfg.Notify.URLs = []string{hookURL}
	s := startSite(t, cfg)
	ctx := context.Background()
	if _, err := s.client.RegisterDataset(ctx, api.Dataset{Name: "ds", URL: testenv.GitRepo(t, nil)}); err != nil {
		t.Fatal(err)
	}
	mao := api.Tool{Name: "mao-style", Author: "a", Image: image, DataRepo: testenv.GitRepo(t, nil), CodeRepo: "https://example.org/code", Artefact: "x"}
	if _, err := s.client.RegisterTool(ctx, mao); err != nil {
		t.Fatal(err)
	}
	if run, _ := s.runToEnd(t, "mao-style"); run.State != api.StateSucceeded {
		t.Fatalf("run: %s %s", run.State, run.Reason)
	}
	// A run whose output feeds a series, and a failed one that is notified.
	for name, args := range map[string][]string{"measured": {"-control", "7"}, "failing": {"-exit", "1"}} {
		tool := api.Tool{Name: name, Author: "a", Image: image, DataRepo: testenv.GitRepo(t, nil), Network: "none", Command: args}
		if _, err := s.client.RegisterTool(ctx, tool); err != nil {
			t.Fatal(err)
		}
		s.runToEnd(t, name)
	}
	if m := recv(t, hook); !strings.Contains(m["title"], "failing") {
		t.Fatalf("notification: %+v", m)
	}
	runs := watchRuns(t, endpoints)
	sch := scheduleEvery(t, s, "mao-style", "1s", "forbid")
	runs.until(30*time.Second, func(m map[string]api.Run) bool {
		for _, r := range m {
			if r.Schedule == sch.ID && r.State.Terminal() {
				return true
			}
		}
		return false
	})
	if _, err := s.client.PauseSchedule(ctx, sch.ID); err != nil {
		t.Fatal(err)
	}
	// A join token for a new site waits to be used.
	if _, err := s.client.AddSite(ctx, api.AddSiteRequest{Name: "joiner"}); err != nil {
		t.Fatal(err)
	}
	// A run that no site is eligible for waits as a request.
	waiting := api.Target{Mode: "any", Labels: map[string]string{"zone": "nowhere"}}
	if _, err := s.client.RunTool(ctx, "mao-style", api.RunRequest{Target: &waiting}); err != nil {
		t.Fatal(err)
	}

	c, err := clientv3.New(clientv3.Config{Endpoints: endpoints})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// What a witness writes, and the lock a change of the voters holds,
	// which a site on an external etcd never makes: written through the
	// store as a witness and a learner would.
	st := store.New(c, store.Options{Prefix: cfg.Etcd.Prefix})
	if err := st.SaveWitness(ctx, "witness-a", "test"); err != nil {
		t.Fatal(err)
	}
	// A run in progress and one whose commit waits for its push, as the
	// site records them (the runs above ended, and their data
	// repositories take no pushes).
	for _, r := range []api.Run{
		{ID: "mao-style-1700000000-0000aa", Tool: "mao-style", Site: "site-a", State: api.StateRunning, Trigger: api.TriggerManual,
			Image: image, CreatedAt: time.Now().UTC()},
		{ID: "mao-style-1700000001-0000bb", Tool: "mao-style", Site: "site-a", State: api.StateSucceeded, Trigger: api.TriggerManual,
			Image: image, CreatedAt: time.Now().UTC(), Push: &api.Push{State: api.PushPending}},
	} {
		if err := st.CreateRun(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	unlock, err := st.LockVoters(ctx, "site-a")
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	resp, err := c.Get(ctx, "/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	documented := documentedKeys(t)
	used := map[string]bool{}
	for _, kv := range resp.Kvs {
		key := string(kv.Key)
		matched := ""
		for pattern, re := range documented {
			if re.MatchString(key) {
				matched = pattern
			}
		}
		if matched == "" {
			t.Errorf("key %s is not documented in docs/etcd-keys.md", key)
			continue
		}
		used[matched] = true
		var v map[string]any
		if err := json.Unmarshal(kv.Value, &v); err != nil {
			t.Errorf("%s: value is not a JSON object: %v", key, err)
		}
	}
	for pattern := range documented {
		if !used[pattern] {
			t.Errorf("documented key %s was not written", pattern)
		}
	}
	r, err := c.Get(ctx, "/mao/tools/mao-style")
	if err != nil || len(r.Kvs) != 1 {
		t.Fatal(r, err)
	}
	var record map[string]string
	if err := json.Unmarshal(r.Kvs[0].Value, &record); err != nil {
		t.Fatalf("tool record %s: %v", r.Kvs[0].Value, err)
	}
	var fields []string
	for k := range record {
		fields = append(fields, k)
	}
	slices.Sort(fields)
	if want := []string{"artefact", "author", "code_repo", "data_repo", "image", "name"}; !slices.Equal(fields, want) {
		t.Fatalf("tool record fields %v, want the predecessor's %v", fields, want)
	}
}
