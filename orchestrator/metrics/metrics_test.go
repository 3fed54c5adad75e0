package metrics

import (
	"context"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/mao-research/mao/api"
)

// scrape returns the sample lines GET /metrics answers (no comments).
func scrape(t *testing.T, m *Metrics) map[string]bool {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	lines := map[string]bool{}
	for _, l := range strings.Split(string(body), "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			lines[l] = true
		}
	}
	return lines
}

func TestMetrics(t *testing.T) {
	at := func(s int) *time.Time { v := time.Date(2026, 12, 2, 10, 0, s, 0, time.UTC); return &v }
	tests := []struct {
		name string
		feed func(t *testing.T, m *Metrics)
		want []string // sample lines, exactly
	}{
		{"a scheduled run", func(t *testing.T, m *Metrics) {
			run := api.Run{ID: "r1", Tool: "crawl", State: api.StateRunning, Trigger: api.TriggerSchedule, ScheduledTime: at(0), StartedAt: at(0)}
			m.RunStarted(run)
			run.State, run.ContainerStartedAt, run.FinishedAt = api.StateSucceeded, at(0), at(2)
			run.Verdicts = []api.Verdict{{Metric: "rows", Status: "ok"}, {Metric: "bytes", Status: "spike"}}
			m.RunEnded(run)
		}, []string{
			`mao_runs_started_total{site="lab",tool="crawl"} 1`,
			`mao_runs_finished_total{site="lab",state="succeeded",tool="crawl"} 1`,
			`mao_run_duration_seconds_sum{site="lab",tool="crawl"} 2`,
			`mao_run_duration_seconds_count{site="lab",tool="crawl"} 1`,
			`mao_tick_lateness_seconds_count{site="lab"} 1`,
			`mao_detector_verdicts_total{outcome="ok",site="lab",tool="crawl"} 1`,
			`mao_detector_verdicts_total{outcome="spike",site="lab",tool="crawl"} 1`,
		}},
		{"a manual run that failed, a retried tick and a catch-up have no lateness", func(t *testing.T, m *Metrics) {
			m.RunEnded(api.Run{ID: "r2", Tool: "crawl", State: api.StateFailed, StartedAt: at(0), FinishedAt: at(1)})
			m.RunEnded(api.Run{ID: "r3", Tool: "crawl", State: api.StateSucceeded, Trigger: api.TriggerSchedule, Attempt: 2,
				ScheduledTime: at(0), ContainerStartedAt: at(9), StartedAt: at(9), FinishedAt: at(10)})
			m.RunEnded(api.Run{ID: "r4", Tool: "crawl", State: api.StateSucceeded, Trigger: api.TriggerCatchup,
				ScheduledTime: at(0), ContainerStartedAt: at(9), StartedAt: at(9), FinishedAt: at(10)})
		}, []string{
			`mao_runs_finished_total{site="lab",state="failed",tool="crawl"} 1`,
			`mao_tick_lateness_seconds_count{site="lab"} 0`,
		}},
		{"a removed tool's series go, another's stay", func(t *testing.T, m *Metrics) {
			for _, tool := range []string{"gone", "kept"} {
				run := api.Run{Tool: tool, State: api.StateSucceeded, StartedAt: at(0), FinishedAt: at(1),
					Verdicts: []api.Verdict{{Status: "ok"}}}
				m.RunStarted(run)
				m.RunEnded(run)
			}
			m.ForgetTool("gone")
			for line := range scrape(t, m) {
				if strings.Contains(line, `tool="gone"`) {
					t.Errorf("left after ForgetTool: %s", line)
				}
			}
		}, []string{
			`mao_runs_started_total{site="lab",tool="kept"} 1`,
			`mao_runs_finished_total{site="lab",state="succeeded",tool="kept"} 1`,
			`mao_detector_verdicts_total{outcome="ok",site="lab",tool="kept"} 1`,
		}},
		{"claims", func(t *testing.T, m *Metrics) {
			m.Claimed("tick", true)
			m.Claimed("tick", false)
			m.Claimed("tick", false)
			m.Claimed("request", true)
		}, []string{
			`mao_claims_total{kind="tick",result="lost",site="lab"} 2`,
			`mao_claims_total{kind="tick",result="won",site="lab"} 1`,
			`mao_claims_total{kind="request",result="won",site="lab"} 1`,
		}},
		{"notifications, and an outcome from outside the set", func(t *testing.T, m *Metrics) {
			m.Notified(api.Notification{Status: "sent"})
			m.Notified(api.Notification{Status: "failed"})
			m.Notified(api.Notification{Status: "<script>"})
		}, []string{
			`mao_notifications_total{outcome="sent",site="lab"} 1`,
			`mao_notifications_total{outcome="failed",site="lab"} 1`,
			`mao_notifications_total{outcome="other",site="lab"} 1`,
		}},
		{"backlogs are read when scraped", func(t *testing.T, m *Metrics) {
			n := 0.0
			m.Backlog("mao_push_backlog", "pushes", func() float64 { n++; return n })
		}, []string{`mao_push_backlog{site="lab"} 1`}},
		{"etcd requests", func(t *testing.T, m *Metrics) {
			call := m.EtcdInterceptor()
			ok := func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error { return nil }
			fail := func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error {
				return status.Error(codes.Unavailable, "no leader")
			}
			_ = call(context.Background(), "/etcdserverpb.KV/Range", nil, nil, nil, ok)
			_ = call(context.Background(), "/etcdserverpb.KV/Range", nil, nil, nil, ok)
			if err := call(context.Background(), "/etcdserverpb.KV/Txn", nil, nil, nil, fail); status.Code(err) != codes.Unavailable {
				t.Errorf("the interceptor answered %v, not the call's error", err)
			}
		}, []string{
			`mao_etcd_request_duration_seconds_count{method="Range",site="lab"} 2`,
			`mao_etcd_request_duration_seconds_count{method="Txn",site="lab"} 1`,
			`mao_etcd_request_errors_total{code="Unavailable",method="Txn",site="lab"} 1`,
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := New("lab")
			tc.feed(t, m)
			got := scrape(t, m)
			for _, w := range tc.want {
				if !got[w] {
					t.Errorf("no line %s", w)
				}
			}
			if !got[`go_goroutines`] && !hasPrefix(got, "go_goroutines ") {
				t.Errorf("the Go runtime's metrics are missing")
			}
		})
	}
}

func hasPrefix(lines map[string]bool, p string) bool {
	for l := range lines {
		if strings.HasPrefix(l, p) {
			return true
		}
	}
	return false
}
