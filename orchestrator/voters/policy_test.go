package voters

import (
	"errors"
	"strings"
	"testing"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/orchestrator/errs"
)

// members builds a cluster from specs "name:kind", kind one of v (a voter
// that is up), v- (a voter that is down), l (a learner that is up), l-
// (a learner that is down), ln (a learner that never started: no name),
// and a w after any of them for a witness. A member's ID is its name.
func members(specs ...string) []api.Member {
	var out []api.Member
	for _, s := range specs {
		name, kind, _ := strings.Cut(s, ":")
		m := api.Member{ID: name, Name: name, Health: "ok", Learner: strings.HasPrefix(kind, "l"), Witness: strings.HasSuffix(kind, "w")}
		kind = strings.TrimSuffix(kind, "w")
		switch {
		case strings.HasSuffix(kind, "-"):
			m.Health = "unreachable"
		case kind == "ln":
			m.Name, m.Health = "", "not started"
		}
		out = append(out, m)
	}
	return out
}

// TestTarget: the federation aims at the largest odd number of voters
// that is at most max_voters and at most its voters and learners that
// are up; learners that are down or never started do not count.
func TestTarget(t *testing.T) {
	tests := []struct {
		name    string
		max     int
		members []api.Member
		want    int
	}{
		{"a site alone", 3, members("a:v"), 1},
		{"two labs", 3, members("a:v", "b:l"), 1},
		{"two labs and a witness", 3, members("a:v", "b:l", "w:lw"), 3},
		{"three voters", 3, members("a:v", "b:v", "w:vw"), 3},
		{"a fourth site", 3, members("a:v", "b:v", "w:vw", "c:l"), 3},
		{"five allowed, four members", 5, members("a:v", "b:v", "c:v", "d:l"), 3},
		{"five allowed, five members", 5, members("a:v", "b:v", "c:v", "d:l", "e:l"), 5},
		{"a learner that is down", 3, members("a:v", "b:l", "w:l-w"), 1},
		{"a learner that never started", 3, members("a:v", "b:l", "x:ln"), 1},
		{"a voter that is down counts", 3, members("a:v", "b:v-", "c:l"), 3},
		{"one voter allowed", 1, members("a:v", "b:l", "c:l"), 1},
		{"the default", 0, members("a:v", "b:l", "c:l", "d:l", "e:l"), 3},
		{"more voters than max (made before the policy)", 3, members("a:v", "b:v", "c:v", "d:v"), 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := (Policy{Max: tc.max}).Target(tc.members); got != tc.want {
				t.Errorf("Target = %d, want %d", got, tc.want)
			}
		})
	}
}

// TestMayPromote: a learner promotes itself only while the voters are
// fewer than the target, so the voters end odd and at most max_voters; a
// lone learner beside one voter waits for a second, and says why.
func TestMayPromote(t *testing.T) {
	tests := []struct {
		name    string
		max     int
		members []api.Member
		self    string
		want    bool
		why     string
	}{
		{"the second lab waits", 3, members("a:v", "b:l"), "b", false, "one more would make 2, an even number"},
		{"with a witness, the lab votes", 3, members("a:v", "b:l", "w:lw"), "b", true, "aims at 3"},
		{"with a lab, the witness votes", 3, members("a:v", "b:l", "w:lw"), "w", true, "aims at 3"},
		{"the second of the pair", 3, members("a:v", "b:v", "w:lw"), "w", true, "has 2 voters and aims at 3"},
		{"a fourth site stays a learner", 3, members("a:v", "b:v", "w:vw", "c:l"), "c", false, "its most (federation.max_voters = 3)"},
		{"a voter gone: a learner takes its place", 3, members("a:v", "w:vw", "c:l"), "c", true, "has 2 voters"},
		{"even voters made before the policy: one more", 5, members("a:v", "b:v", "c:l"), "c", true, "has 2 voters"},
		{"a voter", 3, members("a:v", "b:l"), "a", false, "votes already"},
		{"not a member", 3, members("a:v", "b:l"), "z", false, "not a member"},
		{"a learner with an alarm", 3, []api.Member{{ID: "a", Name: "a", Health: "ok"}, {ID: "b", Name: "b", Health: "ok", Learner: true, Alarms: []string{"CORRUPT"}},
			{ID: "c", Name: "c", Health: "ok", Learner: true}}, "b", false, "not up"},
		{"max 1", 1, members("a:v", "b:l", "c:l"), "b", false, "its most (federation.max_voters = 1)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, why := (Policy{Max: tc.max}).MayPromote(tc.members, tc.self)
			if got != tc.want || !strings.Contains(why, tc.why) {
				t.Errorf("MayPromote = %v, %q; want %v, saying %q", got, why, tc.want, tc.why)
			}
		})
	}
}

// TestForecast: add-site says whether the new site's member will vote,
// how many voters the federation will have, and warns of an even number.
func TestForecast(t *testing.T) {
	tests := []struct {
		name          string
		members       []api.Member
		votes         bool
		now, after    int
		note, warning string
	}{
		{"the second lab", members("a:v"), false, 1, 1, "stays one for now: with it the federation would have 2 voters", ""},
		{"a witness after two labs", members("a:v", "b:l"), true, 1, 3, "votes once it has caught up: the federation will have 3 voters", ""},
		{"a fourth site", members("a:v", "b:v", "w:vw"), false, 3, 3, "its most (federation.max_voters = 3)", ""},
		{"two voters made before the policy", members("a:v", "b:v"), true, 2, 3, "will have 3 voters", ""},
		{"four voters made before the policy", members("a:v", "b:v", "c:v", "d:v"), false, 4, 4, "more than its most (federation.max_voters = 3)",
			"would have 4 voters, an even number: it stops writing as soon as 2 are down, as with 3 voters"},
		{"a learner that is down is no partner", members("a:v", "b:l-"), false, 1, 1, "stays one for now", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := (Policy{Max: 3}).Forecast(tc.members, "new")
			if got.Votes != tc.votes || got.VotersNow != tc.now || got.VotersAfter != tc.after || got.MaxVoters != 3 ||
				!strings.Contains(got.Note, tc.note) || (tc.warning == "") != (got.Warning == "") || !strings.Contains(got.Warning, tc.warning) {
				t.Errorf("Forecast = %+v; want votes %v, %d -> %d, note %q, warning %q", got, tc.votes, tc.now, tc.after, tc.note, tc.warning)
			}
		})
	}
}

// TestPlanLeave: a voter that leaves first promotes a learner when the
// voters left would be none or an even number below max_voters (a site
// before a witness, then by name); a learner or a site without a member
// leaves the voters as they are; the only voter with no learner up, and
// the only member, cannot leave.
func TestPlanLeave(t *testing.T) {
	tests := []struct {
		name     string
		max      int
		members  []api.Member
		self     string
		promotes string
		after    int
		warning  string
		err      error
	}{
		{"a voter of three, a learner up", 3, members("a:v", "b:v", "w:vw", "c:l"), "b", "c", 3, "", nil},
		{"a voter of three, no learner", 3, members("a:v", "b:v", "w:vw"), "b", "", 2, "would have 2 voters", nil},
		{"a voter of three, the learner down", 3, members("a:v", "b:v", "w:vw", "c:l-"), "b", "", 2, "would have 2 voters", nil},
		{"the only voter hands over to a lab before a witness", 3, members("a:v", "w:lw", "b:l"), "a", "b", 1, "", nil},
		{"the only voter, learners by name", 3, members("a:v", "d:l", "c:l"), "a", "c", 1, "", nil},
		{"a learner", 3, members("a:v", "b:v", "w:vw", "c:l"), "c", "", 3, "", nil},
		{"no member of its own", 3, members("a:v", "b:v", "w:vw"), "", "", 3, "", nil},
		{"a voter of five at max 3 (made before the policy)", 3, members("a:v", "b:v", "c:v", "d:v", "e:v", "f:l"), "a", "", 4, "would have 4 voters", nil},
		{"two voters: the other stays alone", 3, members("a:v", "b:v"), "a", "", 1, "", nil},
		{"the only voter, no learner up", 3, members("a:v", "b:l-", "x:ln"), "a", "", 1, "", errs.ErrConflict},
		{"the only member", 3, members("a:v"), "a", "", 1, "", errs.ErrConflict},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, promote, err := (Policy{Max: tc.max}).PlanLeave(tc.members, tc.self, "site")
			if !errors.Is(err, tc.err) || (err == nil) != (tc.err == nil) {
				t.Fatalf("PlanLeave: %v, want %v", err, tc.err)
			}
			if err != nil {
				return
			}
			if promote != tc.promotes || got.Promotes != tc.promotes || got.VotersAfter != tc.after ||
				(tc.warning == "") != (got.Warning == "") || !strings.Contains(got.Warning, tc.warning) || got.Note == "" {
				t.Errorf("PlanLeave = %+v, promote %q; want promote %q, %d voters after, warning %q", got, promote, tc.promotes, tc.after, tc.warning)
			}
		})
	}
}

// TestAnnotate: federation status counts the voters and warns of no
// leader, voters down, an even number of voters, a lone voter beside
// other members, and alarms; a healthy odd federation has no warning.
func TestAnnotate(t *testing.T) {
	alarmed := members("a:v", "b:v", "c:v")
	alarmed[2].Alarms = []string{"NOSPACE"}
	tests := []struct {
		name     string
		members  []api.Member
		leader   string
		voters   int
		warnings []string
	}{
		{"three voters and a learner", members("a:v", "b:v", "w:vw", "c:l"), "a", 3, nil},
		{"alone", members("a:v"), "a", 1, nil},
		{"two labs", members("a:v", "b:l"), "a", 1, []string{"1 voter: writes stop whenever its site is down"}},
		{"one voter of three down", members("a:v", "b:v-", "w:vw"), "a", 3, []string{"1 of 3 voters are down (b): writes stop if 1 more are"}},
		{"no leader", members("a:v", "b:v-", "w:v-w"), "", 3, []string{"no leader: 1 of its 3 voters answer, and writes need 2"}},
		{"even", members("a:v", "b:v"), "a", 2, []string{"has 2 voters, an even number: it stops writing as soon as 1 is down, as with 1 voter"}},
		{"an alarm", alarmed, "a", 3, []string{"member c has etcd alarm NOSPACE: its database reached its quota", "1 of 3 voters are down (c)"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fed := api.Federation{Leader: tc.leader, Members: tc.members}
			(Policy{Max: 3}).Annotate(&fed)
			if fed.Voters != tc.voters || fed.MaxVoters != 3 || len(fed.Warnings) != len(tc.warnings) {
				t.Fatalf("annotated: voters %d, max %d, warnings %q; want %d voters, warnings %q", fed.Voters, fed.MaxVoters, fed.Warnings, tc.voters, tc.warnings)
			}
			for i, w := range tc.warnings {
				if !strings.Contains(fed.Warnings[i], w) {
					t.Errorf("warning %d: %q, want it to say %q", i, fed.Warnings[i], w)
				}
			}
		})
	}
}
