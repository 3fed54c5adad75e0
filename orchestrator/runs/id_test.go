package runs

import (
	"strings"
	"testing"
	"time"
)

func TestIDFormatAndParse(t *testing.T) {
	at := time.Date(2026, 12, 2, 6, 30, 0, 0, time.UTC)
	tests := []struct {
		name     string
		id       ID
		text     string
		schedule string // what Parse is given
		tool     string
	}{
		{"manual", ID{Tool: "gh-crawler", Time: at, Nonce: "0a1b2c"}, "gh-crawler-1796193000-0a1b2c", "", "gh-crawler"},
		{"manual for one site of --all", ID{Tool: "gh-crawler", Time: at, Nonce: "0a1b2c", Site: "lab-b"},
			"gh-crawler-1796193000-0a1b2c-lab-b", "", "gh-crawler"},
		{"a tool whose name ends in digits", ID{Tool: "t-2026", Time: at, Nonce: "ffffff"}, "t-2026-1796193000-ffffff", "", "t-2026"},
		{"tick", ID{Schedule: "gh-crawler-daily-3f2a", Time: at}, "gh-crawler-daily-3f2a-1796193000", "gh-crawler-daily-3f2a", ""},
		{"tick of an --all schedule", ID{Schedule: "s-every-0001", Time: at, Site: "abcdef"},
			"s-every-0001-1796193000-abcdef", "s-every-0001", ""},
		{"a site named like digits", ID{Schedule: "s", Time: at, Site: "2026"}, "s-1796193000-2026", "s", ""},
		{"a tick at the Unix epoch", ID{Schedule: "s", Time: time.Unix(0, 0).UTC()}, "s-0", "s", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.id.String(); got != tc.text {
				t.Fatalf("String() = %q, want %q", got, tc.text)
			}
			got, err := Parse(tc.text, tc.schedule, tc.tool)
			if err != nil || got != tc.id {
				t.Fatalf("Parse(%q) = %+v, %v; want %+v", tc.text, got, err, tc.id)
			}
		})
	}
}

func TestParseRefuses(t *testing.T) {
	tests := []struct {
		name, id, schedule, tool, want string
	}{
		{"no owner", "t-1-abcdef", "", "", "no schedule or tool"},
		{"another tool", "u-1-abcdef", "", "t", "does not start with"},
		{"another schedule", "s2-1", "s", "", "does not start with"},
		{"no time", "t--abcdef", "", "t", "not a time"},
		{"a signed time", "s-+1", "s", "", "not a time"},
		{"a time that is not a number", "s-x1", "s", "", "not a time"},
		{"a time with a leading zero", "s-01", "s", "", "not a time"},
		{"a negative time", "s--5", "s", "", "not a time"},
		{"no nonce", "t-1", "", "t", "nonce"},
		{"a short nonce", "t-1-abc", "", "t", "nonce"},
		{"an upper-case nonce", "t-1-ABCDEF", "", "t", "nonce"},
		{"a long nonce", "t-1-abcdef0", "", "t", "nonce"},
		{"a site with a slash", "s-1-a/b", "s", "", "site"},
		{"a site that climbs", "s-1-..", "s", "", "site"},
		{"an empty site", "s-1-", "s", "", "site"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if id, err := Parse(tc.id, tc.schedule, tc.tool); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse(%q) = %+v, %v; want an error about %s", tc.id, id, err, tc.want)
			}
		})
	}
}

func TestManualAndTick(t *testing.T) {
	now := time.Date(2026, 12, 2, 6, 30, 0, 999, time.FixedZone("X", 3600))
	a, b := Manual("t", now), Manual("t", now)
	if a.Nonce == b.Nonce || len(a.Nonce) != 6 || !a.Time.Equal(now.Truncate(time.Second)) || a.Time.Location() != time.UTC {
		t.Fatalf("Manual: %+v and %+v", a, b)
	}
	if got := Tick("s", now).For("lab-b").String(); got != "s-1796189400-lab-b" {
		t.Fatalf("Tick(...).For(lab-b) = %q", got)
	}
}
