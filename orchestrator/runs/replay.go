package runs

import (
	"fmt"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/toolspec"
)

// OwnOnly reports whether no site but r's own may ever hold r: r is held
// by a site, and were that site's lease to expire, Lose would make r wait
// for that same site again (see retryTarget), never for another. These are
// a site's runs with no target (asked of it through its own API), with a
// site target that names it, and its own runs of an --all target (IDs that
// end in -<site>). No other site claims such a run's ID, so a site goes on
// with them, and only them, while etcd does not answer it (package
// offline).
func OwnOnly(r api.Run) bool {
	if r.Site == "" {
		return false
	}
	if r.Target != nil {
		switch r.Target.EffectiveMode() {
		case toolspec.TargetSite:
			if r.Target.Site != r.Site {
				return false
			}
		case toolspec.TargetAll:
			if id, err := Parse(r.ID, r.Schedule, r.Tool); err != nil || id.Site != r.Site {
				return false
			}
		}
	}
	t := retryTarget(r, r.Site)
	return t.EffectiveMode() == toolspec.TargetSite && t.Site == r.Site
}

// ReplayAction is what becomes of a record from a site's journal when it
// is replayed into etcd (see Replay).
type ReplayAction int

// The replay actions.
const (
	// ReplayCreate: etcd has no record of the run: the journal's is
	// created, create-only (with a tick's index entry).
	ReplayCreate ReplayAction = iota + 1
	// ReplayUpdate: etcd's record is an earlier point of the same run at
	// the same site: the journal's replaces it, compare-and-swap.
	ReplayUpdate
	// ReplayReclaim: another site settled the run as lost meanwhile
	// (Lose), because this site's lease expired while etcd did not answer
	// it: etcd's record waits for this site again (or ended lost). The
	// journal's record of that attempt wins, and the run's request goes,
	// in one compare-and-swap.
	ReplayReclaim
	// ReplaySkip: etcd holds this record or a later one already (it was
	// replayed before, or written there): nothing to do.
	ReplaySkip
	// ReplayRefuse: etcd's record is another site's: it stays as it is.
	// This cannot happen to an own-only run (OwnOnly).
	ReplayRefuse
)

func (a ReplayAction) String() string {
	switch a {
	case ReplayCreate:
		return "create"
	case ReplayUpdate:
		return "update"
	case ReplayReclaim:
		return "reclaim"
	case ReplaySkip:
		return "skip"
	case ReplayRefuse:
		return "refuse"
	}
	return fmt.Sprintf("ReplayAction(%d)", int(a))
}

// Writes reports whether the action writes the journal's record.
func (a ReplayAction) Writes() bool {
	return a == ReplayCreate || a == ReplayUpdate || a == ReplayReclaim
}

// Replay decides how rec, a record of an own-only run (OwnOnly) that its
// site wrote to its journal while etcd did not answer it, goes into etcd,
// where the run's record is stored (nil: there is none). A site replays
// its journal in the order it was written, so that each run's records
// arrive in the order of its life; replaying a record again, or an older
// one, changes nothing. why says why in words.
//
// The journal's record wins over a settlement of Lose: another site saw
// this site's lease expire and made the run wait for this site again (or
// ended it lost), but no other site may run it (OwnOnly), and this site ran
// that attempt meanwhile: its record says what became of it.
func Replay(stored *api.Run, rec api.Run) (action ReplayAction, why string) {
	switch {
	case stored == nil:
		return ReplayCreate, "etcd has no record of it"
	case waitsAgainFor(*stored, rec):
		return ReplayReclaim, fmt.Sprintf("another site settled attempt %d as lost and the run waits for site %s again: "+
			"the journal's record of that attempt wins", max(rec.Attempt, 1), rec.Site)
	case stored.State == api.StateLost && stored.Site == rec.Site && max(stored.Attempt, 1) == max(rec.Attempt, 1):
		return ReplayReclaim, fmt.Sprintf("another site settled attempt %d as lost for good: the journal's record of that attempt wins",
			max(rec.Attempt, 1))
	case Waiting(*stored) && max(stored.Attempt, 1) > max(rec.Attempt, 1):
		return ReplaySkip, fmt.Sprintf("etcd's record is at a later attempt (%d), waiting for a site", stored.Attempt)
	case stored.Site != rec.Site:
		return ReplayRefuse, fmt.Sprintf("etcd's record is held by site %q, not %s", stored.Site, rec.Site)
	case !before(*stored, rec):
		return ReplaySkip, fmt.Sprintf("etcd has it already (attempt %d, %s)", max(stored.Attempt, 1), stored.State)
	}
	return ReplayUpdate, fmt.Sprintf("etcd's record is earlier (attempt %d, %s)", max(stored.Attempt, 1), stored.State)
}

// waitsAgainFor reports whether stored is rec's run settled by Lose for
// rec's site: waiting for that site again, at rec's attempt (it had not
// started, or it is a request made before etcd stopped answering) or at
// the next one, with rec's attempt filed as lost.
func waitsAgainFor(stored, rec api.Run) bool {
	t := stored.Target
	if !Waiting(stored) || t == nil || t.EffectiveMode() != toolspec.TargetSite || t.Site != rec.Site {
		return false
	}
	attempt := max(rec.Attempt, 1)
	if max(stored.Attempt, 1) == attempt {
		return true
	}
	n := len(stored.Attempts)
	return stored.Attempt == attempt+1 && n > 0 && stored.Attempts[n-1].Attempt == attempt && stored.Attempts[n-1].State == api.StateLost
}

// before reports whether a is an earlier point than b of one run's life at
// one site: an earlier attempt, or the same attempt at an earlier stage
// (pending, running, ended).
func before(a, b api.Run) bool {
	aa, ba := max(a.Attempt, 1), max(b.Attempt, 1)
	if aa != ba {
		return aa < ba
	}
	return stage(a) < stage(b)
}

// stage is how far an attempt has got: 0 pending, 1 running, 2 ended.
func stage(r api.Run) int {
	switch {
	case r.State == api.StateRunning:
		return 1
	case r.State.Terminal():
		return 2
	}
	return 0
}
