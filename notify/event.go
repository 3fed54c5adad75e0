package notify

import (
	"fmt"
	"strings"
	"time"
)

// Event kinds.
const (
	KindSpike         = "spike"          // a tool's output metric is out of bounds
	KindSpikeResolved = "spike_resolved" // it is back within bounds
	KindRunFailed     = "run_failed"
	KindRunTimedOut   = "run_timed_out"
	KindRunLost       = "run_lost"
	KindRunRecovered  = "run_recovered" // a tool's run succeeded after failures
	KindPushFailed    = "push_failed"   // a run's commit has not reached the data repository for a while
	KindTest          = "test"          // a test message, asked for by a person
	KindEtcdNoSpace   = "etcd_nospace"  // etcd's database reached its quota: it refuses writes
)

// Event is something to tell people about. Fields that do not apply to
// its kind are left empty; the templates leave them out.
type Event struct {
	Kind                      string
	Tool, Site, RunID, Metric string
	Value, Baseline, Score    *float64
	Threshold                 float64
	Method                    string
	Reason                    string // the detector's or the run's reason, in words
	State                     string // the run's state
	Failures                  int    // failed runs in a row, when more than one
	Logs                      string // how to see the logs, e.g. "maoctl run logs <id>"
	Time                      time.Time
}

// Summary says what happened in a few words, e.g. "spike in gh-crawler
// (control) at site lab-a". The default title is built on it, and
// templates may use it as {{.Summary}}.
func (e Event) Summary() string {
	tool := e.Tool
	if tool == "" {
		tool = "a tool"
	}
	series := tool
	if e.Metric != "" {
		series += " (" + e.Metric + ")"
	}
	var s string
	switch e.Kind {
	case KindSpike:
		s = "spike in " + series
	case KindSpikeResolved:
		s = series + " back to normal"
	case KindRunFailed:
		s = "run of " + tool + " failed"
	case KindRunTimedOut:
		s = "run of " + tool + " timed out"
	case KindRunLost:
		s = "run of " + tool + " lost"
	case KindRunRecovered:
		s = tool + " recovered"
	case KindPushFailed:
		s = "push of " + tool + "'s results failed"
	case KindEtcdNoSpace:
		s = "etcd is out of space (NOSPACE): mao cannot record anything"
		if e.Site != "" {
			return s + ", seen by site " + e.Site
		}
		return s
	case KindTest:
		s = "test notification"
		if e.Site != "" {
			return s + " from site " + e.Site
		}
		return s
	default:
		s = fmt.Sprintf("%s for %s", strings.ReplaceAll(e.Kind, "_", " "), tool)
	}
	if e.Site != "" {
		s += " at site " + e.Site
	}
	return s
}

// Message is a rendered event, ready to send.
type Message struct{ Title, Body string }
