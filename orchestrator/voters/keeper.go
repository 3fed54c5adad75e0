package voters

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/orchestrator/errs"
)

// Cluster is what the keeper needs of the federation's etcd cluster;
// store.Store is one.
type Cluster interface {
	// Federation lists the members with their state (status answers)
	// and alarms, for federation status.
	Federation(ctx context.Context) (api.Federation, error)
	// Members is Federation without asking for the alarms (etcd makes a
	// raft request of that): a member's alarms are in its health then.
	Members(ctx context.Context) (api.Federation, error)
	// PromoteMember makes the learner id a voter; etcd refuses a learner
	// that has not caught up with the leader.
	PromoteMember(ctx context.Context, id string) error
	// RemoveMember takes member id out of the cluster.
	RemoveMember(ctx context.Context, id string) error
	// LockVoters takes the lock under which the voters change, held by
	// holder, or fails with errs.ErrInUse while another holds it; unlock
	// releases it.
	LockVoters(ctx context.Context, holder string) (unlock func(), err error)
}

// Options configure a Keeper.
type Options struct {
	Site   string // this site's name: the lock's holder, and for messages
	Self   string // this site's member ID (hex); "" for a site without a member of its own
	Policy Policy
	// Interval is how often the keeper looks at the members; default 2s.
	Interval time.Duration
	Clock    clockwork.Clock // default the real clock
	Log      *slog.Logger    // default: discard
	// Endpoints, if set, is told the client URLs of the voting members
	// whenever they change, so that the site's etcd client uses members
	// that serve clients (a learner serves none), the ones added since the
	// site started too. URLs with port 0 (a member alone, on a free port)
	// are left out, and so is an empty list.
	Endpoints func([]string)
	// Removed, if set, is called once Leave has removed this site's
	// member, to stop it at once (when the clients were pointed at other
	// members): etcd (3.7) panics when a status request reaches a member
	// that was removed and still runs, and other sites ask every member
	// for its status.
	Removed func()
}

// Keeper keeps this site's member's vote: see the package's doc.
type Keeper struct {
	c    Cluster
	opts Options
	why  string   // the last reason the member stayed a learner, logged once
	urls []string // the voters' client URLs last told
}

// NewKeeper returns a Keeper over c.
func NewKeeper(c Cluster, opts Options) *Keeper {
	if opts.Interval <= 0 {
		opts.Interval = 2 * time.Second
	}
	if opts.Clock == nil {
		opts.Clock = clockwork.NewRealClock()
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	return &Keeper{c: c, opts: opts}
}

// Run looks at the members every interval until ctx ends: it promotes this
// site's member when the policy lets it, and tells Endpoints of the voters.
func (k *Keeper) Run(ctx context.Context) {
	ticker := k.opts.Clock.NewTicker(k.opts.Interval)
	defer ticker.Stop()
	for {
		k.Check(ctx)
		select {
		case <-ctx.Done():
			return
		case <-ticker.Chan():
		}
	}
}

// Check looks at the members once, and promotes this site's member if
// the policy lets it: under the voters' lock, with the members read again
// once it is held, so that what another site did meanwhile counts.
func (k *Keeper) Check(ctx context.Context) {
	fed, err := k.c.Members(ctx)
	if err != nil {
		k.opts.Log.Debug("voters: list the etcd members", "err", err)
		return
	}
	k.useVoters(fed.Members)
	if ok, why := k.opts.Policy.MayPromote(fed.Members, k.opts.Self); !ok {
		k.stays(fed.Members, why)
		return
	}
	unlock, err := k.c.LockVoters(ctx, k.opts.Site)
	if err != nil {
		k.opts.Log.Debug("voters: the lock is held; looking again later", "err", err)
		return
	}
	defer unlock()
	if fed, err = k.c.Members(ctx); err != nil {
		k.opts.Log.Debug("voters: list the etcd members", "err", err)
		return
	}
	ok, why := k.opts.Policy.MayPromote(fed.Members, k.opts.Self)
	if !ok {
		k.stays(fed.Members, why)
		return
	}
	if err := k.c.PromoteMember(ctx, k.opts.Self); err != nil {
		k.opts.Log.Debug("voters: promote this site's etcd member (it may not have caught up yet)", "err", err)
		return
	}
	k.opts.Log.Info("the embedded etcd member is promoted to a voting member", "because", why)
	if fed, err = k.c.Members(ctx); err == nil {
		k.useVoters(fed.Members)
	}
}

// stays logs, once per reason, why a learner does not promote itself.
func (k *Keeper) stays(members []api.Member, why string) {
	i := slices.IndexFunc(members, func(m api.Member) bool { return m.ID == k.opts.Self })
	if i < 0 || !members[i].Learner || why == k.why {
		return
	}
	k.why = why
	k.opts.Log.Info("the embedded etcd member stays a learner", "because", why)
}

// useVoters tells Endpoints of the voters' client URLs, when they changed.
func (k *Keeper) useVoters(members []api.Member) {
	if k.opts.Endpoints == nil {
		return
	}
	urls := voterURLs(members, "")
	if len(urls) == 0 || slices.Equal(urls, k.urls) {
		return
	}
	k.urls = urls
	k.opts.Endpoints(urls)
}

// voterURLs are the sorted client URLs of the voters but except, leaving
// out those on port 0.
func voterURLs(members []api.Member, except string) []string {
	var urls []string
	for _, m := range members {
		if m.Learner || m.ID == except {
			continue
		}
		for _, u := range m.ClientURLs {
			if !strings.HasSuffix(u, ":0") {
				urls = append(urls, u)
			}
		}
	}
	slices.Sort(urls)
	return urls
}

// Status is the cluster as federation status shows it: the members, with
// the policy's voter count and warnings.
func (k *Keeper) Status(ctx context.Context) (api.Federation, error) {
	fed, err := k.c.Federation(ctx)
	if err != nil {
		return fed, err
	}
	k.opts.Policy.Annotate(&fed)
	return fed, nil
}

// Forecast says what becomes of the votes when site joins with a member
// of its own (Policy.Forecast). A member named site already (a witness,
// which has no site record, or a site's member) is errs.ErrExists: the
// new site would get that member's certificate and etcd user.
func (k *Keeper) Forecast(ctx context.Context, site string) (api.Voting, error) {
	fed, err := k.c.Federation(ctx)
	if err != nil {
		return api.Voting{}, err
	}
	for _, m := range fed.Members {
		if m.Name != site {
			continue
		}
		kind := "a site's"
		if m.Witness {
			kind = "a witness's"
		}
		return api.Voting{}, errs.New(errs.ErrExists, fmt.Sprintf("%s is the name of %s etcd member in the federation "+
			"(federation status); if it is gone for good, remove it first (maoctl federation remove-site %s)", site, kind, site))
	}
	return k.opts.Policy.Forecast(fed.Members, site), nil
}

// PlanLeave says what Leave would do now, or why this site cannot leave
// (errs.ErrConflict).
func (k *Keeper) PlanLeave(ctx context.Context) (api.Voting, error) {
	fed, err := k.c.Members(ctx)
	if err != nil {
		return api.Voting{}, err
	}
	plan, _, err := k.opts.Policy.PlanLeave(fed.Members, k.opts.Self, k.opts.Site)
	return plan, err
}

// Leave takes this site's member out of the cluster for good, under the
// voters' lock (waiting for it until ctx ends): it first promotes the
// learner PlanLeave names, if any (retrying while etcd says it has not
// caught up), points Endpoints at the other voters, and removes the
// member. A site without a member of its own has nothing to do.
func (k *Keeper) Leave(ctx context.Context) (api.Voting, error) {
	unlock, err := k.lockWait(ctx)
	if err != nil {
		return api.Voting{}, err
	}
	defer unlock()
	fed, err := k.c.Members(ctx)
	if err != nil {
		return api.Voting{}, err
	}
	plan, promote, err := k.opts.Policy.PlanLeave(fed.Members, k.opts.Self, k.opts.Site)
	if err != nil || !slices.ContainsFunc(fed.Members, func(m api.Member) bool { return m.ID == k.opts.Self }) {
		return plan, err
	}
	if promote != "" {
		always := func(error) bool { return true } // etcd refuses a learner that has not caught up yet
		if err := k.retry(ctx, func() error { return k.c.PromoteMember(ctx, promote) }, always); err != nil {
			return plan, fmt.Errorf("promote %s to take site %s's vote: %w", plan.Promotes, k.opts.Site, err)
		}
		k.opts.Log.Info("voters: a learner takes this site's vote", "member", plan.Promotes)
		if fed, err = k.c.Members(ctx); err != nil {
			return plan, err
		}
	}
	elsewhere := false // the clients use other members than this site's
	if urls := voterURLs(fed.Members, k.opts.Self); len(urls) > 0 && k.opts.Endpoints != nil {
		k.opts.Endpoints(urls)
		elsewhere = true
	}
	if err := k.c.RemoveMember(ctx, k.opts.Self); err != nil {
		return plan, fmt.Errorf("remove site %s's etcd member: %w", k.opts.Site, err)
	}
	if k.opts.Removed != nil && elsewhere {
		k.opts.Removed()
	}
	return plan, nil
}

// lockWait takes the voters' lock, trying again while another holds it,
// until ctx ends.
func (k *Keeper) lockWait(ctx context.Context) (func(), error) {
	var unlock func()
	err := k.retry(ctx, func() (err error) {
		unlock, err = k.c.LockVoters(ctx, k.opts.Site)
		return err
	}, func(err error) bool { return errors.Is(err, errs.ErrInUse) })
	if err != nil {
		return nil, fmt.Errorf("take the voters' lock: %w", err)
	}
	return unlock, nil
}

// retry calls f every half second, while its error is one that again
// accepts, until it succeeds or ctx ends, and returns its last error.
func (k *Keeper) retry(ctx context.Context, f func() error, again func(error) bool) error {
	for {
		err := f()
		if err == nil || !again(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %w)", ctx.Err(), err)
		case <-k.opts.Clock.After(500 * time.Millisecond):
		}
	}
}
