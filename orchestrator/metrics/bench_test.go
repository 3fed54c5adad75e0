package metrics

import (
	"fmt"
	"io"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/mao-research/mao/api"
)

// BenchmarkScrape times GET /metrics of a site whose tools have all run,
// ended in two states and been judged by the detector, next to a scrape of
// the Go runtime's and the process's metrics alone (the baseline, in the
// same run). Target: 50 ms at 1,000 tools.
func BenchmarkScrape(b *testing.B) {
	for _, tools := range []int{0, 100, 1000} {
		m := New("lab")
		at := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
		end := at.Add(3 * time.Second)
		for i := range tools {
			tool := fmt.Sprintf("tool-%04d", i)
			for _, state := range []api.RunState{api.StateSucceeded, api.StateFailed} {
				run := api.Run{Tool: tool, State: state, Trigger: api.TriggerSchedule, StartedAt: &at, FinishedAt: &end, ScheduledTime: &at, ContainerStartedAt: &at,
					Verdicts: []api.Verdict{{Status: "ok"}, {Status: "spike"}}}
				m.RunStarted(run)
				m.RunEnded(run)
			}
		}
		name := fmt.Sprintf("tools=%d", tools)
		if tools == 0 {
			name = "baseline: runtime and process only"
		}
		b.Run(name, func(b *testing.B) {
			h := m.Handler()
			var size int
			for b.Loop() {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
				n, _ := io.Copy(io.Discard, rec.Body)
				size = int(n)
			}
			b.ReportMetric(float64(size), "bytes")
		})
	}
}
