package notify

import (
	"strings"
	"testing"
	"time"
)

func ptr(f float64) *float64 { return &f }

var spikeEvent = Event{Kind: KindSpike, Tool: "gh-crawler", Site: "lab-a", RunID: "r-20260101-abc123", Metric: "control",
	Value: ptr(412), Baseline: ptr(100.25), Score: ptr(7.83333333), Threshold: 3.5, Method: "mad",
	Reason: "412 is 7.83 MADs above the median 100.25", Logs: "maoctl run logs r-20260101-abc123",
	Time: time.Date(2026, 1, 1, 12, 30, 0, 0, time.FixedZone("CET", 3600))}

func TestDefaultTemplates(t *testing.T) {
	failed := Event{Kind: KindRunFailed, Tool: "gh-crawler", Site: "lab-a", RunID: "r-1", State: "failed",
		Reason: "exit code 2", Failures: 3, Logs: "maoctl run logs r-1"}
	tests := []struct {
		name      string
		e         Event
		wantTitle string
		wantBody  string
	}{
		{"spike", spikeEvent, "[mao] spike in gh-crawler (control) at site lab-a", `spike in gh-crawler (control) at site lab-a.

Tool: gh-crawler
Site: lab-a
Run: r-20260101-abc123
Metric: control
Value: 412
Baseline: 100.25
Score: 7.83333 (threshold 3.5)
Method: mad
Reason: 412 is 7.83 MADs above the median 100.25
Time: 2026-01-01 11:30:00 UTC
Logs: maoctl run logs r-20260101-abc123`},
		{"run failed", failed, "[mao] run of gh-crawler failed at site lab-a", `run of gh-crawler failed at site lab-a.

Tool: gh-crawler
Site: lab-a
Run: r-1
State: failed
Failures in a row: 3
Reason: exit code 2
Logs: maoctl run logs r-1`},
		{"test", Event{Kind: KindTest, Site: "lab-a"}, "[mao] test notification from site lab-a",
			"test notification from site lab-a.\n\nSite: lab-a"},
	}
	tm, err := NewTemplates("", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := tm.Render(tt.e)
			if err != nil {
				t.Fatal(err)
			}
			if m.Title != tt.wantTitle {
				t.Errorf("title %q, want %q", m.Title, tt.wantTitle)
			}
			if m.Body != tt.wantBody {
				t.Errorf("body:\n%s\nwant:\n%s", m.Body, tt.wantBody)
			}
		})
	}
}

func TestTemplateOverrides(t *testing.T) {
	tests := []struct {
		name, title, body     string
		wantTitle, wantBodyIn string
	}{
		{"title only", `{{.Kind}}: {{.Tool}}@{{.Site}}
 value {{num .Value}}`, "", "spike: gh-crawler@lab-a value 412", "Baseline: 100.25"},
		{"body only", "", `{{.Metric}} went from {{num .Baseline}} to {{num .Value}}`,
			"[mao] spike in gh-crawler (control) at site lab-a", "control went from 100.25 to 412"},
		{"both", `{{.Summary}}!`, `{{.Tool}} {{printf "%.2f" .Threshold}} {{num .Baseline}} {{num .Score}} {{num nil}}`,
			"spike in gh-crawler (control) at site lab-a!", "gh-crawler 3.50 100.25 7.83333 -"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tm, err := NewTemplates(tt.title, tt.body)
			if err != nil {
				t.Fatal(err)
			}
			m, err := tm.Render(spikeEvent)
			if err != nil {
				t.Fatal(err)
			}
			if m.Title != tt.wantTitle || !strings.Contains(m.Body, tt.wantBodyIn) {
				t.Errorf("got %q / %q, want %q / one containing %q", m.Title, m.Body, tt.wantTitle, tt.wantBodyIn)
			}
		})
	}
}

func TestBadTemplates(t *testing.T) {
	tests := []struct{ name, title, body, wantErr string }{
		{"title does not parse", "{{.Kind", "", "parse title template"},
		{"body does not parse", "", "{{if .Tool}}", "parse body template"},
		{"unknown field", "{{.Nope}}", "", "render title"},
		{"unknown function", "", "{{upper .Tool}}", "parse body template"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewTemplates(tt.title, tt.body)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestSummary(t *testing.T) {
	tests := []struct {
		e    Event
		want string
	}{
		{Event{Kind: KindSpike, Tool: "t", Metric: "m", Site: "s"}, "spike in t (m) at site s"},
		{Event{Kind: KindSpike, Tool: "t"}, "spike in t"},
		{Event{Kind: KindSpikeResolved, Tool: "t", Metric: "m", Site: "s"}, "t (m) back to normal at site s"},
		{Event{Kind: KindRunFailed, Tool: "t", Site: "s"}, "run of t failed at site s"},
		{Event{Kind: KindRunTimedOut, Tool: "t", Site: "s"}, "run of t timed out at site s"},
		{Event{Kind: KindRunLost, Tool: "t", Site: "s"}, "run of t lost at site s"},
		{Event{Kind: KindRunRecovered, Tool: "t", Site: "s"}, "t recovered at site s"},
		{Event{Kind: KindTest}, "test notification"},
		{Event{Kind: "disk_full"}, "disk full for a tool"},
	}
	for _, tt := range tests {
		if got := tt.e.Summary(); got != tt.want {
			t.Errorf("%+v: got %q, want %q", tt.e, got, tt.want)
		}
	}
}

func TestNum(t *testing.T) {
	tests := []struct {
		v    any
		want string
	}{
		{(*float64)(nil), "-"}, {nil, "-"}, {"x", "-"}, {ptr(3), "3"}, {1234567.0, "1234567"}, {0.1 + 0.2, "0.3"},
		{-2.5, "-2.5"}, {1e20, "1e+20"}, {7, "7"},
	}
	for _, tt := range tests {
		if got := num(tt.v); got != tt.want {
			t.Errorf("num(%v) = %q, want %q", tt.v, got, tt.want)
		}
	}
}
