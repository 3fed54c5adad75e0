package alerts

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/detector"
	"github.com/mao-research/mao/toolspec"
)

// writeFile writes a file into the data folder and returns its name.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return name
}

// writeControl writes the contract file control-<n>.csv holding value.
func writeControl(t *testing.T, dir string, n int, value float64) string {
	t.Helper()
	return writeFile(t, dir, fmt.Sprintf("control-%d.csv", n), fmt.Sprintf("%v\n", value))
}

// succeeded is a successful run of the test tool that wrote files.
func succeeded(id string, files ...string) api.Run {
	return api.Run{ID: id, Tool: testTool, Site: testSite, State: api.StateSucceeded, Files: files,
		FilesTotal: len(files), CreatedAt: t0}
}

var contractTool = toolspec.Tool{Name: testTool}

// pointRuns returns the run IDs of a series' points, oldest first.
func pointRuns(s api.Series) []string {
	var ids []string
	for _, p := range s.Points {
		ids = append(ids, p.Run)
	}
	return ids
}

// seed stores points of runs seed-1... with values, oldest first.
func seed(f *fakeSeries, metric string, values ...float64) {
	s := api.Series{Tool: testTool, Site: testSite, Metric: metric}
	for i, v := range values {
		s.Points = append(s.Points, api.SeriesPoint{Run: fmt.Sprintf("seed-%d", i+1), Time: t0, Value: v})
	}
	f.series[seriesKey(testTool, testSite, metric)] = s
}

func TestDetectContractSeriesGrows(t *testing.T) {
	e := newEnv(t, Options{})
	dir := t.TempDir()
	steps := []struct {
		value   float64
		status  string
		spike   bool
		history int
	}{
		{10, detector.StatusWarmingUp, false, 0},
		{11, detector.StatusWarmingUp, false, 1},
		{10, detector.StatusWarmingUp, false, 2},
		{12, detector.StatusWarmingUp, false, 3},
		{11, detector.StatusWarmingUp, false, 4},
		{10.5, detector.StatusOK, false, 5},
		{100, detector.StatusSpike, true, 6},
		{11, detector.StatusOK, false, 7},
	}
	for i, st := range steps {
		n := i + 1
		run := succeeded(fmt.Sprintf("run-%d", n), writeControl(t, dir, n, st.value), "README.md")
		run.CreatedAt = t0.Add(time.Duration(n) * time.Hour)
		got := e.a.Detect(context.Background(), run, contractTool, dir)
		if len(got) != 1 {
			t.Fatalf("step %d: %d verdicts, want 1: %+v", n, len(got), got)
		}
		v := got[0]
		if v.Metric != detector.ContractMetric || v.Status != st.status || v.Spike != st.spike || v.History != st.history {
			t.Errorf("step %d (%v): verdict %s/%s spike=%v history=%d (%s), want control/%s spike=%v history=%d",
				n, st.value, v.Metric, v.Status, v.Spike, v.History, v.Reason, st.status, st.spike, st.history)
		}
		if v.Value == nil || *v.Value != st.value {
			t.Errorf("step %d: value %v, want %v", n, v.Value, st.value)
		}
		s := e.series.get(testTool, testSite, detector.ContractMetric)
		if len(s.Points) != n {
			t.Fatalf("step %d: %d points, want %d", n, len(s.Points), n)
		}
		want := api.SeriesPoint{Run: run.ID, Time: run.CreatedAt, Value: st.value, Spike: st.spike}
		if last := s.Points[n-1]; last != want {
			t.Errorf("step %d: newest point %+v, want %+v", n, last, want)
		}
	}
	for _, max := range e.series.maxes {
		if max != DefaultSeriesLength {
			t.Errorf("UpdateSeries max = %d, want the default %d", max, DefaultSeriesLength)
		}
	}
}

func TestDetectNoData(t *testing.T) {
	tests := []struct {
		name       string
		setup      func(t *testing.T, dir string) api.Run
		wantReason []string
	}{
		{
			name: "an earlier run's control file",
			setup: func(t *testing.T, dir string) api.Run {
				writeControl(t, dir, 1, 10)
				return succeeded("run-2", "notes.txt")
			},
			wantReason: []string{"earlier run's", "control-1.csv"},
		},
		{
			name: "a run that wrote nothing",
			setup: func(t *testing.T, dir string) api.Run {
				writeControl(t, dir, 1, 10)
				return succeeded("run-2")
			},
			wantReason: []string{"earlier run's", "control-1.csv"},
		},
		{
			name: "the newest control file is an earlier run's, an older one is this run's",
			setup: func(t *testing.T, dir string) api.Run {
				older := writeControl(t, dir, 1, 10)
				writeControl(t, dir, 2, 11)
				return succeeded("run-3", older)
			},
			wantReason: []string{"earlier run's", "control-2.csv"},
		},
		{
			name: "no control file",
			setup: func(t *testing.T, dir string) api.Run {
				return succeeded("run-1", writeFile(t, dir, "out.txt", "hello\n"))
			},
			wantReason: []string{"no control-*.csv"},
		},
		{
			name: "an unreadable control file",
			setup: func(t *testing.T, dir string) api.Run {
				return succeeded("run-1", writeFile(t, dir, "control-1.csv", "lots\n"))
			},
			wantReason: []string{"control-1.csv", "not a number"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, Options{})
			dir := t.TempDir()
			run := tt.setup(t, dir)
			got := e.a.Detect(context.Background(), run, contractTool, dir)
			if len(got) != 1 {
				t.Fatalf("%d verdicts, want 1: %+v", len(got), got)
			}
			v := got[0]
			if v.Status != detector.StatusNoData || v.Metric != detector.ContractMetric || v.Value != nil || v.Spike {
				t.Errorf("verdict %+v, want a no-data verdict on control without a value", v)
			}
			for _, want := range tt.wantReason {
				if !strings.Contains(v.Reason, want) {
					t.Errorf("reason %q does not say %q", v.Reason, want)
				}
			}
			if n := e.series.calls(); n != 0 {
				t.Errorf("UpdateSeries called %d times for no data, want 0", n)
			}
		})
	}
}

// A run with more files than Files lists is trusted to have written its
// control file.
func TestDetectTrustsTruncatedFiles(t *testing.T) {
	e := newEnv(t, Options{})
	dir := t.TempDir()
	writeControl(t, dir, 1, 10)
	run := succeeded("run-1")
	for i := range api.MaxRunFiles {
		run.Files = append(run.Files, fmt.Sprintf("data/%03d.csv", i))
	}
	run.FilesTotal = api.MaxRunFiles + 20
	got := e.a.Detect(context.Background(), run, contractTool, dir)
	if len(got) != 1 || got[0].Status != detector.StatusWarmingUp {
		t.Fatalf("verdicts %+v, want one warming-up verdict", got)
	}
	if s := e.series.get(testTool, testSite, detector.ContractMetric); len(s.Points) != 1 {
		t.Errorf("series %+v, want the run's point", s)
	}
}

func TestDetectJSONTwoMetrics(t *testing.T) {
	e := newEnv(t, Options{})
	seed(e.series, "accuracy", 0.90, 0.91, 0.90, 0.92, 0.91)
	dir := t.TempDir()
	tool := toolspec.Tool{Name: testTool, Detector: &detector.Config{File: "metrics-*.json"}}
	name := writeFile(t, dir, "metrics-7.json", `{"loss": 0.25, "accuracy": 0.2, "model": "v2", "ok": true}`)
	got := e.a.Detect(context.Background(), succeeded("run-7", name), tool, dir)
	want := []struct {
		metric, status string
		value          float64
		points         int
	}{
		{"accuracy", detector.StatusSpike, 0.2, 6},
		{"loss", detector.StatusWarmingUp, 0.25, 1},
	}
	if len(got) != len(want) {
		t.Fatalf("%d verdicts, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		v := got[i]
		if v.Metric != w.metric || v.Status != w.status || v.Value == nil || *v.Value != w.value {
			t.Errorf("verdict %d: %s %s %v (%s), want %s %s %v", i, v.Metric, v.Status, v.Value, v.Reason, w.metric, w.status, w.value)
		}
		s := e.series.get(testTool, testSite, w.metric)
		if len(s.Points) != w.points || s.Points[len(s.Points)-1].Run != "run-7" || s.Points[len(s.Points)-1].Value != w.value {
			t.Errorf("series %s: %+v, want %d points ending with run-7's %v", w.metric, s.Points, w.points, w.value)
		}
	}
	if n := len(e.series.series); n != 2 {
		t.Errorf("%d series stored, want 2", n)
	}
}

// A retried run's record is detected again: its earlier value is replaced,
// neither counted in the history nor kept twice.
func TestDetectRetriedRunReplacesItsPoint(t *testing.T) {
	e := newEnv(t, Options{})
	seed(e.series, detector.ContractMetric, 10, 11, 10, 12, 11)
	dir := t.TempDir()
	first := e.a.Detect(context.Background(), succeeded("run-x", writeControl(t, dir, 1, 10.5)), contractTool, dir)
	second := e.a.Detect(context.Background(), succeeded("run-x", writeControl(t, dir, 2, 10.8)), contractTool, dir)
	for i, got := range [][]detector.Verdict{first, second} {
		if len(got) != 1 || got[0].Status != detector.StatusOK || got[0].History != 5 {
			t.Errorf("detection %d: %+v, want one ok verdict over the 5 seeded values", i+1, got)
		}
	}
	s := e.series.get(testTool, testSite, detector.ContractMetric)
	wantRuns := []string{"seed-1", "seed-2", "seed-3", "seed-4", "seed-5", "run-x"}
	if got := pointRuns(s); strings.Join(got, ",") != strings.Join(wantRuns, ",") {
		t.Errorf("series runs %v, want %v", got, wantRuns)
	}
	if last := s.Points[len(s.Points)-1]; last.Value != 10.8 {
		t.Errorf("run-x's point %+v, want the retry's value 10.8", last)
	}
}

func TestDetectSeriesLength(t *testing.T) {
	e := newEnv(t, Options{SeriesLength: 5})
	dir := t.TempDir()
	for n := 1; n <= 8; n++ {
		e.a.Detect(context.Background(), succeeded(fmt.Sprintf("run-%d", n), writeControl(t, dir, n, float64(n))), contractTool, dir)
	}
	s := e.series.get(testTool, testSite, detector.ContractMetric)
	want := []string{"run-4", "run-5", "run-6", "run-7", "run-8"}
	if got := pointRuns(s); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("series runs %v, want the newest 5 %v", got, want)
	}
	for _, max := range e.series.maxes {
		if max != 5 {
			t.Errorf("UpdateSeries max = %d, want 5", max)
		}
	}
}

// The point's time is the run's tick for a scheduled run, in UTC.
func TestDetectPointTime(t *testing.T) {
	tick := time.Date(2026, 3, 4, 2, 0, 0, 0, time.FixedZone("CET", 3600))
	tests := []struct {
		name      string
		scheduled *time.Time
		want      time.Time
	}{
		{"manual run: its creation", nil, t0},
		{"scheduled run: its tick", &tick, tick.UTC()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, Options{})
			dir := t.TempDir()
			run := succeeded("run-1", writeControl(t, dir, 1, 3))
			run.ScheduledTime = tt.scheduled
			e.a.Detect(context.Background(), run, contractTool, dir)
			s := e.series.get(testTool, testSite, detector.ContractMetric)
			if len(s.Points) != 1 || !s.Points[0].Time.Equal(tt.want) || s.Points[0].Time.Location() != time.UTC {
				t.Errorf("points %+v, want one at %v UTC", s.Points, tt.want)
			}
		})
	}
}

// When another writer changes the series between fn's calls, the verdict
// is the one on the series that was stored, and the run has one point.
func TestDetectCompareAndSwapConflict(t *testing.T) {
	e := newEnv(t, Options{})
	seed(e.series, detector.ContractMetric, 10, 11, 10, 12)
	e.series.conflict = func(s api.Series) api.Series {
		s.Points = append(s.Points, api.SeriesPoint{Run: "other", Time: t0, Value: 11})
		return s
	}
	dir := t.TempDir()
	got := e.a.Detect(context.Background(), succeeded("run-1", writeControl(t, dir, 1, 10.5)), contractTool, dir)
	if e.series.fnCalls != 2 {
		t.Fatalf("fn called %d times, want 2", e.series.fnCalls)
	}
	// 4 earlier values warm up; the other writer's fifth gives a verdict.
	if len(got) != 1 || got[0].Status != detector.StatusOK || got[0].History != 5 {
		t.Errorf("verdicts %+v, want one ok verdict over 5 values", got)
	}
	s := e.series.get(testTool, testSite, detector.ContractMetric)
	want := []string{"seed-1", "seed-2", "seed-3", "seed-4", "other", "run-1"}
	if got := pointRuns(s); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("series runs %v, want %v", got, want)
	}
}

// A series that cannot be read or stored still gives the run its verdict,
// which says why the value is not in the series.
func TestDetectStoreError(t *testing.T) {
	errStore := errors.New("etcd unavailable")
	tests := []struct {
		name    string
		set     func(f *fakeSeries)
		status  string
		reason  string
		logLine string
	}{
		// The write fails after fn judged the value: the verdict stands.
		{"write fails", func(f *fakeSeries) { f.errAfter = errStore }, detector.StatusOK,
			"the value was not added to the series", "store a metric's series"},
		// The read fails, so fn never runs: no verdict, but one that names
		// the metric.
		{"read fails", func(f *fakeSeries) { f.errBefore = errStore }, detector.StatusNoData,
			"could not be read", "read a metric's series"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, Options{})
			seed(e.series, detector.ContractMetric, 10, 11, 10, 12, 11)
			tt.set(e.series)
			dir := t.TempDir()
			got := e.a.Detect(context.Background(), succeeded("run-1", writeControl(t, dir, 1, 10.5)), contractTool, dir)
			if len(got) != 1 {
				t.Fatalf("%d verdicts, want 1: %+v", len(got), got)
			}
			v := got[0]
			if v.Metric != detector.ContractMetric || v.Status != tt.status {
				t.Errorf("verdict %q/%q, want %q/%q (%+v)", v.Metric, v.Status, detector.ContractMetric, tt.status, v)
			}
			for _, want := range []string{tt.reason, "etcd unavailable"} {
				if !strings.Contains(v.Reason, want) {
					t.Errorf("reason %q does not say %q", v.Reason, want)
				}
			}
			if strings.HasPrefix(v.Reason, " ") || strings.HasPrefix(v.Reason, ";") {
				t.Errorf("reason %q does not start with its sentence", v.Reason)
			}
			if !strings.Contains(e.log.String(), tt.logLine) {
				t.Errorf("no %q logged: %q", tt.logLine, e.log.String())
			}
			if s := e.series.get(testTool, testSite, detector.ContractMetric); len(s.Points) != 5 {
				t.Errorf("series has %d points, want the 5 seeded", len(s.Points))
			}
		})
	}
}
