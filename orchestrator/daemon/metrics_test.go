package daemon

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/detector"
	"github.com/mao-research/mao/internal/testenv"
	"github.com/mao-research/mao/orchestrator/config"
	"github.com/mao-research/mao/orchestrator/metrics"
)

// TestMetrics scrapes GET /metrics of a site after real runs (by hand and
// by a schedule), notifications and etcd requests, and checks that the
// counters agree with the site's own records: what the API lists is what
// the metrics count. /metrics needs a token of scope read, unless
// open_metrics.
func TestMetrics(t *testing.T) {
	image := testenv.BuildTestImage(t)
	endpoints := testenv.Etcd(t)
	runs := watchRuns(t, endpoints)
	hookURL, hook := webhook(t)
	cfg := testenv.SiteConfig(t, "counted", endpoints)
	cfg.API.Tokens = []config.Token{
		{Name: "ada", Scope: config.ScopeAdmin, Secret: "admin-0123456789abcdef", Key: "tokens.ada"},
		{Name: "prom", Scope: config.ScopeRead, Secret: "read-0123456789abcdef", Key: "tokens.prom"},
	}
	s := startSite(t, cfg)
	addr := apiAddr(t, cfg)
	var err error
	if s.client, err = api.NewClient(addr, "admin-0123456789abcdef", nil); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	sensor := api.Tool{Name: "sensor", Author: "t", Image: image, DataRepo: testenv.GitRepo(t, nil), Network: "none",
		Command: []string{"-control", "10"}, Detector: &detector.Config{Window: 10, MinHistory: 5}}
	if _, err := s.client.RegisterTool(ctx, sensor); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if r, _ := s.runToEnd(t, "sensor"); r.State != api.StateSucceeded {
			t.Fatalf("run: %s %s", r.State, r.Reason)
		}
	}
	sch := scheduleEvery(t, s, "sensor", "1s", "allow")
	runs.until(60*time.Second, func(m map[string]api.Run) bool {
		n := 0
		for _, r := range m {
			if r.Schedule == sch.ID && r.State.Terminal() {
				n++
			}
		}
		return n >= 3
	})
	if _, err := s.client.PauseSchedule(ctx, sch.ID); err != nil {
		t.Fatal(err)
	}
	runs.until(30*time.Second, func(m map[string]api.Run) bool { return ended(m) == len(m) })
	if _, err := s.client.NotifyTest(ctx, hookURL); err != nil {
		t.Fatal(err)
	}
	recv(t, hook)
	if out, err := s.client.NotifyTest(ctx, "generic://127.0.0.1:1/closed?disabletls=yes"); err != nil || len(out) != 1 || out[0].Status != "failed" {
		t.Fatalf("a test to a closed port: %+v, %v; want one failed outcome", out, err)
	}

	// What the site recorded.
	list, err := s.client.Runs(ctx, api.RunFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	byState, ticks, onTime, verdicts := map[api.RunState]int{}, 0, 0, map[string]int{}
	for _, r := range list.Items {
		byState[r.State]++
		if r.Schedule != "" {
			ticks++
		}
		if r.Trigger == api.TriggerSchedule && r.Attempt <= 1 {
			onTime++
		}
		for _, v := range r.Verdicts {
			verdicts[v.Status]++
		}
	}

	scrapeAs := func(token string) (int, map[string]float64) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, addr+"/metrics", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		samples := map[string]float64{}
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			line := sc.Text()
			if i := strings.LastIndexByte(line, ' '); i > 0 && !strings.HasPrefix(line, "#") {
				if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
					samples[line[:i]] = v
				}
			}
		}
		return resp.StatusCode, samples
	}
	if code, _ := scrapeAs(""); code != http.StatusUnauthorized {
		t.Errorf("GET /metrics without a token: %d, want 401", code)
	}
	code, got := scrapeAs("read-0123456789abcdef")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics with a read token: %d", code)
	}
	want := map[string]float64{
		`mao_runs_started_total{site="counted",tool="sensor"}`:                                              float64(len(list.Items)),
		fmt.Sprintf(`mao_runs_finished_total{site="counted",state="%s",tool="sensor"}`, api.StateSucceeded): float64(byState[api.StateSucceeded]),
		`mao_run_duration_seconds_count{site="counted",tool="sensor"}`:                                      float64(len(list.Items)),
		`mao_tick_lateness_seconds_count{site="counted"}`:                                                   float64(ticks),
		`mao_claims_total{kind="tick",result="won",site="counted"}`:                                         float64(ticks),
		`mao_notifications_total{outcome="sent",site="counted"}`:                                            1,
		`mao_notifications_total{outcome="failed",site="counted"}`:                                          1,
		`mao_push_backlog{site="counted"}`:                                                                  0,
		`mao_offline_journal_entries{site="counted"}`:                                                       0,
	}
	for status, n := range verdicts {
		want[fmt.Sprintf(`mao_detector_verdicts_total{outcome="%s",site="counted",tool="sensor"}`, status)] = float64(n)
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v, want %v (runs by state %v)", k, got[k], v, byState)
		}
	}
	if byState[api.StateSucceeded] != len(list.Items) || len(verdicts) == 0 {
		t.Errorf("runs by state %v, verdicts %v: want every run succeeded, with verdicts", byState, verdicts)
	}
	// The Grafana dashboard in examples/ asks only for metrics there are.
	dashboard, err := os.ReadFile(filepath.Join("..", "..", "examples", "grafana", "mao.json"))
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{} // what a scrape answers, and what mao defines
	for _, name := range metrics.New("x").Names() {
		names[name] = true
	}
	for sample := range got {
		name, _, _ := strings.Cut(sample, "{")
		names[name] = true
	}
	asked := regexp.MustCompile(`\b(?:mao|process|go)_[a-z_]+\b`).FindAllString(string(dashboard), -1)
	if len(asked) == 0 {
		t.Errorf("the dashboard asks for no metric")
	}
	for _, name := range asked {
		if !names[name] {
			t.Errorf("the dashboard asks for %s, which /metrics does not answer", name)
		}
	}
	if got[`mao_etcd_request_duration_seconds_count{method="Txn",site="counted"}`] == 0 ||
		got[`mao_etcd_request_duration_seconds_count{method="Range",site="counted"}`] == 0 {
		t.Errorf("etcd requests were not timed")
	}
}

// TestOpenMetrics checks [api] open_metrics: /metrics answers without a
// token, while the rest of the API still needs one.
func TestOpenMetrics(t *testing.T) {
	cfg := testenv.SiteConfig(t, "open", testenv.Etcd(t))
	cfg.API.Tokens = []config.Token{{Name: "ada", Scope: config.ScopeAdmin, Secret: "admin-0123456789abcdef", Key: "tokens.ada"}}
	cfg.API.OpenMetrics = true
	startSite(t, cfg)
	addr := apiAddr(t, cfg)
	for path, want := range map[string]int{"/metrics": http.StatusOK, "/api/v1/tools": http.StatusUnauthorized} {
		resp, err := http.Get(addr + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s without a token: %d, want %d", path, resp.StatusCode, want)
		}
	}
}
