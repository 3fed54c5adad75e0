package toolspec

import (
	"strings"
	"testing"
	"time"
)

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestScheduleTicks(t *testing.T) {
	tests := []struct {
		name  string
		sched Schedule
		after string
		want  []string // the next ticks, RFC 3339 in UTC
	}{
		{"daily at midnight UTC", Schedule{Spec: "daily"}, "2026-11-22T01:32:00Z",
			[]string{"2026-11-23T00:00:00Z", "2026-11-24T00:00:00Z"}},
		{"daily at 06:30 in Zurich (winter, UTC+1)", Schedule{Spec: "daily", At: "06:30", TZ: "Europe/Zurich"}, "2026-11-22T01:32:00Z",
			[]string{"2026-11-22T05:30:00Z", "2026-11-23T05:30:00Z"}},
		{"daily keeps the wall clock across DST", Schedule{Spec: "daily", At: "06:30", TZ: "Europe/Zurich"}, "2026-03-28T06:00:00Z",
			[]string{"2026-03-29T04:30:00Z", "2026-03-30T04:30:00Z"}},
		{"daily 02:30 on the day clocks spring forward: once, an hour on", Schedule{Spec: "daily", At: "02:30", TZ: "Europe/Zurich"}, "2026-03-28T02:00:00Z",
			[]string{"2026-03-29T01:30:00Z", "2026-03-30T00:30:00Z"}},
		{"daily 02:30 on the day clocks fall back: once", Schedule{Spec: "daily", At: "02:30", TZ: "Europe/Zurich"}, "2026-10-24T02:00:00Z",
			[]string{"2026-10-25T01:30:00Z", "2026-10-26T01:30:00Z"}}, // the second 02:30
		{"weekly on friday at 17:00 in New York", Schedule{Spec: "weekly", Weekday: "friday", At: "17:00", TZ: "America/New_York"}, "2026-11-22T00:00:00Z",
			[]string{"2026-11-27T22:00:00Z", "2026-12-04T22:00:00Z"}},
		{"weekly defaults to monday", Schedule{Spec: "weekly"}, "2026-11-22T00:00:00Z",
			[]string{"2026-11-23T00:00:00Z", "2026-11-30T00:00:00Z"}},
		{"monthly on the first", Schedule{Spec: "monthly", At: "02:00"}, "2026-11-22T00:00:00Z",
			[]string{"2026-12-01T02:00:00Z", "2027-01-01T02:00:00Z"}},
		{"cron in a time zone", Schedule{Spec: "15 */6 * * *", TZ: "Asia/Kolkata"}, "2026-11-22T00:00:00Z",
			[]string{"2026-11-22T00:45:00Z", "2026-11-22T06:45:00Z"}},
		{"cron descriptor", Schedule{Spec: "@hourly"}, "2026-11-22T00:00:00Z",
			[]string{"2026-11-22T01:00:00Z", "2026-11-22T02:00:00Z"}},
		{"@every is aligned to the epoch", Schedule{Spec: "@every 10m"}, "2026-11-22T01:32:17Z",
			[]string{"2026-11-22T01:40:00Z", "2026-11-22T01:50:00Z"}},
		{"@every 1s", Schedule{Spec: "@every 1s"}, "2026-11-22T01:32:17.5Z",
			[]string{"2026-11-22T01:32:18Z", "2026-11-22T01:32:19Z"}},
		{"@every 7s ignores the time zone", Schedule{Spec: "@every 7s", TZ: "Asia/Kolkata"}, "1970-01-01T00:00:00Z",
			[]string{"1970-01-01T00:00:07Z", "1970-01-01T00:00:14Z"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.sched.Tool = "t"
			tc.sched.ApplyDefaults("UTC")
			if err := tc.sched.Validate(); err != nil {
				t.Fatal(err)
			}
			timing, err := tc.sched.Timing()
			if err != nil {
				t.Fatal(err)
			}
			tick := mustTime(t, tc.after)
			for _, want := range tc.want {
				tick = timing.Next(tick)
				if got := tick.Format(time.RFC3339); got != want {
					t.Fatalf("tick %s, want %s", got, want)
				}
			}
		})
	}
}

func TestScheduleValidate(t *testing.T) {
	tests := []struct {
		name    string
		sched   Schedule
		fields  []string
		mention string
	}{
		{"valid", Schedule{Tool: "t", Spec: "daily", At: "23:59", Retries: 3, RetryDelay: "30s", Deadline: "6h", Env: map[string]string{"K": "v"}}, nil, ""},
		{"bad cron", Schedule{Tool: "t", Spec: "61 * * * *"}, []string{"spec"}, "end of range (61) above maximum (59)"},
		{"six fields", Schedule{Tool: "t", Spec: "0 0 0 * * *"}, []string{"spec"}, "expected exactly 5 fields"},
		{"bad time zone", Schedule{Tool: "t", Spec: "daily", TZ: "Mars/Olympus"}, []string{"tz"}, "unknown time zone Mars/Olympus"},
		{"local time zone", Schedule{Tool: "t", Spec: "daily", TZ: "Local"}, []string{"tz"}, "required"},
		{"bad at", Schedule{Tool: "t", Spec: "daily", At: "24:00"}, []string{"at"}, "HH:MM"},
		{"at with cron", Schedule{Tool: "t", Spec: "* * * * *", At: "01:00"}, []string{"at"}, "only for daily"},
		{"bad weekday", Schedule{Tool: "t", Spec: "weekly", Weekday: "someday"}, []string{"weekday"}, "day of the week"},
		{"weekday with daily", Schedule{Tool: "t", Spec: "daily", Weekday: "mon"}, []string{"weekday"}, "only for weekly"},
		{"every too short", Schedule{Tool: "t", Spec: "@every 500ms"}, []string{"spec"}, "at least 1s"},
		{"every not a duration", Schedule{Tool: "t", Spec: "@every soon"}, []string{"spec"}, "invalid duration"},
		{"empty spec", Schedule{Tool: "t"}, []string{"spec"}, "required"},
		{"never matches", Schedule{Tool: "t", Spec: "0 0 30 2 *"}, []string{"spec"}, "never matches"},
		{"tz inside cron", Schedule{Tool: "t", Spec: "CRON_TZ=UTC 0 0 * * *"}, []string{"spec"}, "give the time zone in tz"},
		{"everything else", Schedule{Tool: "T/x", Spec: "daily", Overlap: "sometimes", Catchup: "all", Deadline: "soon", Retries: -1,
			RetryDelay: "0s", Env: map[string]string{"1X": "v"}},
			[]string{"tool", "overlap", "catchup", "deadline", "retries", "retry_delay", "env.1X"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.sched.ApplyDefaults("UTC")
			err := tc.sched.Validate()
			if got := fieldNames(t, err); strings.Join(got, ",") != strings.Join(tc.fields, ",") {
				t.Fatalf("fields %v, want %v (%v)", got, tc.fields, err)
			}
			if tc.mention != "" && !strings.Contains(err.Error(), tc.mention) {
				t.Fatalf("error %q does not give the reason %q", err, tc.mention)
			}
		})
	}
}

func TestTicks(t *testing.T) {
	every := everyTiming(time.Second)
	daily := Schedule{Tool: "t", Spec: "daily", TZ: "UTC"}
	dailyTiming, _ := daily.Timing()
	base := mustTime(t, "2026-11-22T00:00:00Z")
	tests := []struct {
		name       string
		timing     Timing
		from, to   time.Time
		keep       int
		first, end string
		n          int
		more       bool
	}{
		{"none", every, base, base.Add(500 * time.Millisecond), 5, "", "", 0, false},
		{"all of few", every, base, base.Add(3 * time.Second), 5, "2026-11-22T00:00:01Z", "2026-11-22T00:00:03Z", 3, false},
		{"last of a year of seconds", every, base.AddDate(-1, 0, 0), base, 100, "2026-11-21T23:58:21Z", "2026-11-22T00:00:00Z", 100, true},
		{"exactly keep", every, base, base.Add(5 * time.Second), 5, "2026-11-22T00:00:01Z", "2026-11-22T00:00:05Z", 5, false},
		{"daily over a month", dailyTiming, base, base.AddDate(0, 1, 0), 3, "2026-12-20T00:00:00Z", "2026-12-22T00:00:00Z", 3, true},
		{"daily over ten years", dailyTiming, base.AddDate(-10, 0, 0), base, 2, "2026-11-21T00:00:00Z", "2026-11-22T00:00:00Z", 2, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, more := Ticks(tc.timing, tc.from, tc.to, tc.keep)
			if len(got) != tc.n || more != tc.more {
				t.Fatalf("%d ticks (more %v), want %d (more %v): %v", len(got), more, tc.n, tc.more, got)
			}
			if tc.n > 0 && (got[0].Format(time.RFC3339) != tc.first || got[len(got)-1].Format(time.RFC3339) != tc.end) {
				t.Fatalf("ticks %s..%s, want %s..%s", got[0].Format(time.RFC3339), got[len(got)-1].Format(time.RFC3339), tc.first, tc.end)
			}
		})
	}
}
