package voters

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/orchestrator/errs"
)

// DefaultMax is how many voters a federation has at most unless
// [federation] max_voters says otherwise.
const DefaultMax = 3

// Policy is the federation's rule for its voters: an odd number of them,
// at most Max.
type Policy struct {
	Max int // odd, at least 1; 0 means DefaultMax
}

func (p Policy) max() int {
	if p.Max <= 0 {
		return DefaultMax
	}
	return p.Max
}

// Up reports whether a member could take a vote now: it has started (it
// has a name), answered its status without an error, and has no alarm.
func Up(m api.Member) bool { return m.Name != "" && m.Health == "ok" && len(m.Alarms) == 0 }

// count returns the voters and the learners that are up.
func count(members []api.Member) (voters, upLearners int) {
	for _, m := range members {
		switch {
		case !m.Learner:
			voters++
		case Up(m):
			upLearners++
		}
	}
	return voters, upLearners
}

// oddFloor is the largest odd number at most n, or 0.
func oddFloor(n int) int {
	if n <= 0 {
		return 0
	}
	if n%2 == 0 {
		return n - 1
	}
	return n
}

// Target is how many voters a federation of these members aims at: the
// largest odd number that is at most Max and at most its voters plus its
// learners that are up. A federation with fewer voters promotes learners
// up to it; one with more keeps them (etcd cannot make a voter a learner
// again), until a voter leaves or is removed.
func (p Policy) Target(members []api.Member) int {
	v, up := count(members)
	return oddFloor(min(p.max(), v+up))
}

// MayPromote reports whether the learner self (a member's ID) may promote
// itself now, and why, in words: when the federation has fewer voters than
// its target. A lone learner beside an odd number of voters waits: one
// more voter would make an even number, which stops writes as soon as
// half of them are down, and is no safer than one fewer. A second learner
// (another site, or a witness) lets both vote.
func (p Policy) MayPromote(members []api.Member, self string) (bool, string) {
	i := slices.IndexFunc(members, func(m api.Member) bool { return m.ID == self })
	switch {
	case i < 0:
		return false, "it is not a member of the cluster"
	case !members[i].Learner:
		return false, "it votes already"
	case !Up(members[i]):
		return false, "it is not up: " + members[i].Health
	}
	v, _ := count(members)
	target := p.Target(members)
	switch {
	case v < target:
		return true, fmt.Sprintf("the federation has %s and aims at %d (federation.max_voters = %d)", voterCount(v), target, p.max())
	case v >= p.max():
		return false, fmt.Sprintf("the federation has %s, %s; the member votes if a voter leaves or is removed", voterCount(v), p.most(v))
	default:
		return false, fmt.Sprintf("the federation has %s, and one more would make %d, an even number, no safer than %d; "+
			"the member votes when another member joins (a site, or a witness: orchestrator -witness)", voterCount(v), v+1, v)
	}
}

// voterCount is "1 voter" or "n voters".
func voterCount(n int) string {
	if n == 1 {
		return "1 voter"
	}
	return fmt.Sprintf("%d voters", n)
}

// evenWarning is the warning about n voters when n is even, else "".
func evenWarning(n int, would bool) string {
	if n == 0 || n%2 != 0 {
		return ""
	}
	verb := "has"
	if would {
		verb = "would have"
	}
	down := fmt.Sprintf("%d are", n/2)
	if n/2 == 1 {
		down = "1 is"
	}
	return fmt.Sprintf("the federation %s %d voters, an even number: it stops writing as soon as %s down, as with %s; "+
		"add a member (a witness: orchestrator -witness), or take a voter out (maoctl federation leave at its site)", verb, n, down, voterCount(n-1))
}

// most says how v voters compare with the most the policy allows.
func (p Policy) most(v int) string {
	if v > p.max() {
		return fmt.Sprintf("more than its most (federation.max_voters = %d)", p.max())
	}
	return fmt.Sprintf("its most (federation.max_voters = %d)", p.max())
}

// Forecast says what becomes of the votes when site joins the federation
// of these members with a member of its own, once it has caught up: it
// votes if the policy lets it (it promotes itself, and so does a learner
// that waited for a partner), else it stays a learner.
func (p Policy) Forecast(members []api.Member, site string) api.Voting {
	v, _ := count(members)
	joined := append(slices.Clone(members), api.Member{ID: "new", Name: site, Learner: true, Health: "ok"})
	after := max(v, p.Target(joined))
	out := api.Voting{VotersNow: v, VotersAfter: after, MaxVoters: p.max(), Votes: after > v}
	switch {
	case out.Votes:
		out.Note = fmt.Sprintf("site %s's etcd member joins as a learner and votes once it has caught up: the federation will have %s "+
			"(federation.max_voters = %d)", site, voterCount(after), p.max())
	case v >= p.max():
		out.Note = fmt.Sprintf("site %s's etcd member joins as a learner and stays one: the federation has %s, %s; "+
			"it holds every record and serves %s, does not count towards quorum, and votes if a voter leaves or is removed",
			site, voterCount(v), p.most(v), site)
	default:
		out.Note = fmt.Sprintf("site %s's etcd member joins as a learner and stays one for now: with it the federation would have "+
			"%d voters, an even number, no safer than %d; when another member joins (a third site, or a witness: "+
			"orchestrator -witness), both vote", site, v+1, v)
	}
	out.Warning = evenWarning(after, true)
	return out
}

// PlanLeave says how the member self (a member's ID; "" or unknown for a
// site without one) leaves the federation of these members, and which
// learner, if any, it promotes first: one when the voters left would be
// none, or an even number below Max. It prefers sites to witnesses, then
// takes them by name. A voter that no learner can replace, with no voter
// left, cannot leave (errs.ErrConflict).
func (p Policy) PlanLeave(members []api.Member, self, site string) (out api.Voting, promote string, err error) {
	v, _ := count(members)
	out = api.Voting{VotersNow: v, VotersAfter: v, MaxVoters: p.max()}
	i := slices.IndexFunc(members, func(m api.Member) bool { return m.ID == self })
	switch {
	case i < 0:
		out.Note = fmt.Sprintf("site %s has no etcd member of its own: the voters do not change", site)
		out.Warning = evenWarning(v, false)
		return out, "", nil
	case members[i].Learner:
		out.Note = fmt.Sprintf("site %s's etcd member is a learner: the voters do not change", site)
		out.Warning = evenWarning(v, false)
		return out, "", nil
	case len(members) == 1:
		return out, "", errs.New(errs.ErrConflict, fmt.Sprintf("site %s's etcd member is the federation's only member: "+
			"there is no federation to leave; stop the site", site))
	}
	rest := slices.Delete(slices.Clone(members), i, i+1)
	var candidates []api.Member
	for _, m := range rest {
		if m.Learner && Up(m) {
			candidates = append(candidates, m)
		}
	}
	slices.SortFunc(candidates, func(a, b api.Member) int {
		if a.Witness != b.Witness {
			if a.Witness {
				return 1
			}
			return -1
		}
		return cmp.Compare(a.Name, b.Name)
	})
	left := v - 1
	if len(candidates) > 0 && (left == 0 || left%2 == 0 && left < p.max()) {
		promote = candidates[0].ID
		out.Promotes = candidates[0].Name
	}
	if left == 0 && promote == "" {
		var down []string
		for _, m := range rest {
			down = append(down, cmp.Or(m.Name, m.ID)+" ("+m.Health+")")
		}
		return out, "", errs.New(errs.ErrConflict, fmt.Sprintf("site %s's etcd member is the federation's only voter, and no learner "+
			"is up to take its place (%s): start one, and try again", site, strings.Join(down, ", ")))
	}
	after := left
	if promote != "" {
		after++
	}
	// The learners' own keepers promote themselves up to the target.
	promoted := slices.Clone(rest)
	for j := range promoted {
		if promoted[j].ID == promote {
			promoted[j].Learner = false
		}
	}
	out.VotersAfter = max(after, p.Target(promoted))
	if promote != "" {
		out.Note = fmt.Sprintf("site %s hands its vote to %s, then removes its etcd member: the federation will have %s",
			site, out.Promotes, voterCount(out.VotersAfter))
	} else {
		out.Note = fmt.Sprintf("site %s removes its etcd member, a voter: the federation will have %s", site, voterCount(out.VotersAfter))
	}
	out.Warning = evenWarning(out.VotersAfter, true)
	return out, promote, nil
}

// Annotate fills in fed's voter count, the policy's Max and the warnings
// that federation status shows: no leader, voters down, an even number of
// voters, a lone voter beside other members, and alarms.
func (p Policy) Annotate(fed *api.Federation) {
	v, _ := count(fed.Members)
	fed.Voters, fed.MaxVoters = v, p.max()
	var down []string
	for _, m := range fed.Members {
		if !m.Learner && !Up(m) {
			down = append(down, cmp.Or(m.Name, m.ID))
		}
		for _, a := range m.Alarms {
			fed.Warnings = append(fed.Warnings, fmt.Sprintf("member %s has etcd alarm %s%s", cmp.Or(m.Name, m.ID), a, alarmHint(a)))
		}
	}
	quorum := v/2 + 1
	switch {
	case fed.Leader == "":
		fed.Warnings = append(fed.Warnings, fmt.Sprintf("the cluster has no leader: %d of its %s answer, and writes need %d; "+
			"start the others, or, if they are gone for good, see orchestrator -force-new-cluster", v-len(down), voterCount(v), quorum))
	case len(down) > 0:
		fed.Warnings = append(fed.Warnings, fmt.Sprintf("%d of %s are down (%s): writes stop if %d more are", len(down),
			voterCount(v), strings.Join(down, ", "), v-len(down)-quorum+1))
	}
	if w := evenWarning(v, false); w != "" {
		fed.Warnings = append(fed.Warnings, w)
	}
	if v == 1 && len(fed.Members) > 1 {
		fed.Warnings = append(fed.Warnings, "the federation has 1 voter: writes stop whenever its site is down; "+
			"a witness (orchestrator -witness) gives two sites three voters")
	}
}

// alarmHint says what an etcd alarm means.
func alarmHint(alarm string) string {
	switch alarm {
	case "NOSPACE":
		return ": its database reached its quota, and etcd takes no more writes until it is compacted, defragmented and the alarm disarmed"
	case "CORRUPT":
		return ": its data differs from the others'; replace the member"
	}
	return ""
}
