package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/orchestrator/errs"
)

// ErrNotLive is the error of a claim by a site whose record is not in
// etcd under the lease it joined with: its lease expired (it was stopped,
// or cut off from etcd, for longer than its TTL) and it has not
// registered again yet, or it never joined through this store.
var ErrNotLive = errs.New(errs.ErrUnavailable, "this site is not live in etcd")

// ErrLeaseLapsed is Membership.Valid's error once the site's lease may have
// expired by the site's own clock.
var ErrLeaseLapsed = errs.New(errs.ErrUnavailable, "this site's lease may have expired")

// Membership is a site's record in etcd, kept alive by a lease.
type Membership struct {
	s    *Store
	site api.Site
	ttl  time.Duration
	log  *slog.Logger
	// lease is the clientv3.LeaseID the record lives under: claims and
	// Holds compare it in their transactions. Keep changes it when the
	// site registers again.
	lease atomic.Int64

	mu sync.Mutex
	// validUntil is, by the site's clock, when the lease may expire at
	// the soonest: the last successful renewal's send time plus its TTL.
	validUntil time.Time
	renewed    chan struct{} // closed and replaced at every renewal
}

// Join writes site's record under a new lease of ttl. The record is
// removed by etcd when the lease expires; Keep renews it. The store claims
// runs for the site (ClaimRun, ClaimRequest) only under this lease.
//
// Site names are unique. A record that holds the name and carries the
// site's own instance (site.Instance, the ID of its data directory) is its
// previous life's, left by a crash: Join revokes its lease and registers.
// While another orchestrator's record holds the name, Join waits up to ttl
// for it to expire and then fails with errs.ErrExists.
func (s *Store) Join(ctx context.Context, site api.Site, ttl time.Duration, log *slog.Logger) (*Membership, error) {
	m := &Membership{s: s, site: site, ttl: ttl, log: log, renewed: make(chan struct{})}
	deadline := time.Now().Add(ttl + time.Second)
	revoked := false
	for {
		err := m.register(ctx)
		if !errors.Is(err, errs.ErrExists) {
			if err == nil {
				s.joined.Store(site.Name, m)
			}
			return m, err
		}
		holder, lease, herr := m.holder(ctx)
		if herr == nil && !revoked && site.Instance != "" && holder.Instance == site.Instance {
			log.Info("the site's record is its previous life's (same instance): revoking that life's lease",
				"site", site.Name, "instance", site.Instance, "lease", fmt.Sprintf("%x", lease))
			if err := m.s.revoke(ctx, lease); err != nil {
				return nil, err
			}
			revoked = true
			continue
		}
		if !time.Now().Before(deadline) {
			return nil, fmt.Errorf("site name %q is in use by a live orchestrator (API %s, instance %q): %w",
				site.Name, holder.APIAddr, holder.Instance, err)
		}
		log.Info("site name held by another orchestrator's record; waiting for its lease to expire",
			"site", site.Name, "api", holder.APIAddr, "instance", holder.Instance)
		if err := m.waitGone(ctx, time.Until(deadline)); err != nil {
			return nil, err
		}
	}
}

// member is the membership through which site joined this store, or nil.
func (s *Store) member(site string) *Membership {
	m, _ := s.joined.Load(site)
	mm, _ := m.(*Membership)
	return mm
}

// holder reads the record that holds the site's name and its lease.
func (m *Membership) holder(ctx context.Context) (api.Site, clientv3.LeaseID, error) {
	ctx, cancel := context.WithTimeout(ctx, m.s.timeout)
	defer cancel()
	key := m.s.key(sitesDir, m.site.Name)
	resp, err := m.s.c.Get(ctx, key)
	if err != nil {
		return api.Site{}, 0, m.s.unavailable(ctx, err)
	}
	if len(resp.Kvs) == 0 {
		return api.Site{}, 0, errs.ErrNotFound
	}
	var site api.Site
	kv := resp.Kvs[0]
	return site, clientv3.LeaseID(kv.Lease), m.s.decode(key, kv.Value, kv.ModRevision, &site)
}

// revoke revokes a lease; one that is gone already is no error.
func (s *Store) revoke(ctx context.Context, lease clientv3.LeaseID) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if _, err := s.c.Revoke(ctx, lease); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return fmt.Errorf("revoke lease %x: %w", lease, s.unavailable(ctx, err))
	}
	return nil
}

// register creates the site's record under a new lease.
func (m *Membership) register(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, m.s.timeout)
	defer cancel()
	sent := m.s.clock.Now()
	lease, err := m.s.c.Grant(ctx, int64((m.ttl+time.Second-1)/time.Second))
	if err != nil {
		return fmt.Errorf("grant site lease: %w", m.s.unavailable(ctx, err))
	}
	if err := m.s.create(ctx, m.s.key(sitesDir, m.site.Name), m.site, nil, clientv3.WithLease(lease.ID)); err != nil {
		m.s.c.Revoke(context.WithoutCancel(ctx), lease.ID) // best effort: it expires anyway
		return fmt.Errorf("register site %s: %w", m.site.Name, err)
	}
	m.lease.Store(int64(lease.ID))
	m.renew(sent, time.Duration(lease.TTL)*time.Second)
	return m.seen(ctx)
}

// renew records a successful renewal (or grant) of the lease that was sent
// at sent: etcd counts the TTL from when it received it, so the lease
// cannot expire before sent + ttl.
func (m *Membership) renew(sent time.Time, ttl time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if until := sent.Add(ttl); until.After(m.validUntil) {
		m.validUntil = until
	}
	close(m.renewed)
	m.renewed = make(chan struct{})
}

// Valid returns nil while the site's lease is valid by the site's own
// clock (the store's Options.Clock): until its last successful renewal's
// send time plus its TTL. Other sites take the site's runs over only once
// etcd has let the lease expire, which is never earlier. Otherwise it
// returns an error of kind errs.ErrUnavailable (ErrLeaseLapsed). The
// channel is closed at the next successful renewal, or registration.
func (m *Membership) Valid() (renewed <-chan struct{}, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if now := m.s.clock.Now(); !now.Before(m.validUntil) {
		return m.renewed, fmt.Errorf("%w: not renewed since %s (TTL %s)", ErrLeaseLapsed,
			m.validUntil.Add(-m.ttl).UTC().Format(time.RFC3339Nano), m.ttl)
	}
	return m.renewed, nil
}

// Remaining is how long the site's lease stays valid at the least, by the
// site's own clock (see Valid): zero once it may have expired.
func (m *Membership) Remaining() time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	return max(m.validUntil.Sub(m.s.clock.Now()), 0)
}

// Renew renews the lease once now, besides Keep's renewals: for work that
// must not outlast the lease (a defragmentation that stalls the site's
// etcd member), which then has a whole TTL (Remaining). A lease etcd no
// longer has is an error of kind errs.ErrUnavailable (ErrNotLive); Keep
// registers the site again.
func (m *Membership) Renew(ctx context.Context) error {
	err := m.renewOnce(ctx)
	if errors.Is(err, errLeaseExpired) {
		return fmt.Errorf("site %s: %w (its lease expired)", m.site.Name, ErrNotLive)
	}
	return err
}

// TTL is the lease's time to live.
func (m *Membership) TTL() time.Duration { return m.ttl }

// live is the transaction condition that the site's record lives under
// this membership's lease: the site is live, in this life.
func (m *Membership) live() (clientv3.Cmp, error) {
	lease := m.lease.Load()
	if lease == 0 { // a missing key compares as lease 0
		return clientv3.Cmp{}, fmt.Errorf("site %s: %w", m.site.Name, ErrNotLive)
	}
	return clientv3.Compare(clientv3.LeaseValue(m.s.key(sitesDir, m.site.Name)), "=", lease), nil
}

// liveCondition is the transaction condition that site is live: for a
// site that joined through this store (as a site's own store has, and
// every claim of a daemon is its own site's), its record lives under the
// lease it joined or registered again with (live); for another (a store of
// tests or tools that acts for a site), its record exists.
func (s *Store) liveCondition(site string) (clientv3.Cmp, error) {
	m := s.member(site)
	if m == nil {
		return clientv3.Compare(clientv3.CreateRevision(s.key(sitesDir, site)), ">", 0), nil
	}
	return m.live()
}

// notLive tells why a transaction that required site to be live
// (liveCondition) failed when the rest of its conditions held: site is not
// live (ErrNotLive), or it is (nil: another condition failed).
func (s *Store) notLive(ctx context.Context, site string) error {
	m := s.member(site)
	if m == nil {
		m = &Membership{s: s, site: api.Site{Name: site}}
	}
	_, lease, err := m.holder(ctx)
	switch {
	case errors.Is(err, errs.ErrNotFound) || err == nil && s.member(site) != nil && int64(lease) != m.lease.Load():
		return fmt.Errorf("site %s: %w (its lease expired; it registers again)", site, ErrNotLive)
	case errors.Is(err, ErrUnavailable):
		return err
	}
	return nil
}

// Holds checks that this site holds run's current attempt: in one
// transaction it reads the run's record and the site's, and the record
// must be run's attempt at this site, running (or pending: its start was
// not recorded, etcd being away), and the site's record must live under
// this membership's lease. It returns nil, an error of kind
// errs.ErrChanged (ErrNotHeld) when the site does not hold the attempt
// (it was lost and settled, retried, or the site's lease expired), or
// ErrUnavailable.
func (m *Membership) Holds(ctx context.Context, run api.Run) error {
	lease := m.lease.Load()
	runKey, siteKey := m.s.key(runsDir, run.ID), m.s.key(sitesDir, m.site.Name)
	tctx, cancel := context.WithTimeout(ctx, m.s.timeout)
	defer cancel()
	resp, err := m.s.c.Txn(tctx).Then(clientv3.OpGet(runKey), clientv3.OpGet(siteKey)).Commit()
	if err != nil {
		return m.s.unavailable(tctx, err)
	}
	runKvs, siteKvs := resp.Responses[0].GetResponseRange().Kvs, resp.Responses[1].GetResponseRange().Kvs
	if len(siteKvs) == 0 || siteKvs[0].Lease != lease || lease == 0 {
		return fmt.Errorf("run %s, attempt %d: %w: site %s's lease expired", run.ID, run.Attempt, ErrNotHeld, m.site.Name)
	}
	if len(runKvs) == 0 {
		return fmt.Errorf("run %s: %w: its record is gone", run.ID, ErrNotHeld)
	}
	var cur api.Run
	if err := m.s.decode(runKey, runKvs[0].Value, runKvs[0].ModRevision, &cur); err != nil {
		return fmt.Errorf("run %s: %w: its record is not valid (%v)", run.ID, ErrNotHeld, err)
	}
	started := cur.State == api.StateRunning || cur.State == api.StatePending
	if cur.Site != m.site.Name || max(cur.Attempt, 1) != max(run.Attempt, 1) || !started {
		return fmt.Errorf("run %s, attempt %d at site %s: %w: the record says attempt %d, %s at site %q",
			run.ID, max(run.Attempt, 1), m.site.Name, ErrNotHeld, max(cur.Attempt, 1), cur.State, cur.Site)
	}
	return nil
}

// seenDir keeps each site's record after it is gone: sites-seen/<name>.
const seenDir = "sites-seen/"

// SeenEvery is how often a live site rewrites its lasting record's
// last_seen: a gone site's last_seen is at most this much (or its lease's
// TTL, if longer) before it was last live, unless it stopped cleanly
// (Leave writes it last).
const SeenEvery = 5 * time.Minute

// seenRecord is a site's record with the time it was last seen live.
type seenRecord struct {
	api.Site
	LastSeen time.Time `json:"last_seen"`
}

// seen writes the site's lasting record with the time now.
func (m *Membership) seen(ctx context.Context) error {
	return m.s.put(ctx, m.s.key(seenDir, m.site.Name), seenRecord{Site: m.site, LastSeen: m.s.clock.Now().UTC()})
}

// waitGone waits until the site's record is deleted, or at most d.
func (m *Membership) waitGone(ctx context.Context, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	key := m.s.key(sitesDir, m.site.Name)
	resp, err := m.s.c.Get(ctx, key)
	if err != nil || len(resp.Kvs) == 0 {
		return nil // gone already, or etcd trouble that register reports
	}
	for wr := range m.s.c.Watch(ctx, key, clientv3.WithRev(resp.Header.Revision+1)) {
		for _, ev := range wr.Events {
			if ev.Type == clientv3.EventTypeDelete {
				return nil
			}
		}
	}
	return nil // the wait is over; register tells whether the name is free
}

// errLeaseExpired means etcd no longer has the site's lease.
var errLeaseExpired = errors.New("the site's lease expired")

// Keep renews the lease until ctx ends: once every third of the TTL, each
// renewal making the lease valid (see Valid) for a TTL from when it was
// sent. Its waits follow the store's clock.
//
// When a renewal fails (etcd does not answer), Keep tries again every
// retry. A lease that is still alive (etcd lost quorum and got it back:
// the new leader extends every lease) is renewed, and nothing else
// happens. A lease that expired means other sites saw this one leave and
// may have taken its runs over: Keep calls lost, which must return once
// the site has stopped acting for those runs, then registers the site
// again under a new lease, and calls rejoined.
func (m *Membership) Keep(ctx context.Context, retry time.Duration, lost, rejoined func()) {
	clock := m.s.clock
	wait, failing := m.ttl/3, false
	lastSeen := clock.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-clock.After(wait):
		}
		err := m.renewOnce(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err == nil:
			if failing {
				m.log.Info("site lease renewed again", "site", m.site.Name)
			}
			wait, failing = m.ttl/3, false
			// The lasting record tells when a gone site was last live:
			// rewritten at most once per SeenEvery (each rewrite is a
			// revision etcd keeps until it is compacted), and at Leave.
			if clock.Since(lastSeen) >= max(SeenEvery, m.ttl) {
				lastSeen = clock.Now()
				if err := m.seen(ctx); err != nil {
					m.log.Warn("record the site as seen", "err", err)
				}
			}
		case errors.Is(err, errLeaseExpired):
			m.log.Error("site lease expired: other sites may have taken this site's runs over", "site", m.site.Name)
			lost()
			if !m.rejoin(ctx, retry) {
				return
			}
			m.log.Info("site registered again", "site", m.site.Name)
			rejoined()
			wait, failing = m.ttl/3, false
		default:
			if !failing {
				m.log.Warn("site lease not renewed; etcd does not answer: the site keeps its runs and tries again", "site", m.site.Name, "err", err)
			}
			wait, failing = retry, true
		}
	}
}

// renewOnce renews the lease once: nil, errLeaseExpired, or an etcd error.
func (m *Membership) renewOnce(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, m.s.timeout)
	defer cancel()
	sent := m.s.clock.Now()
	resp, err := m.s.c.KeepAliveOnce(ctx, clientv3.LeaseID(m.lease.Load()))
	if errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return errLeaseExpired
	}
	if err != nil {
		return m.s.unavailable(ctx, err)
	}
	m.renew(sent, time.Duration(resp.TTL)*time.Second)
	return nil
}

// rejoin registers the site again, trying every retry until it has (true)
// or ctx ends (false).
func (m *Membership) rejoin(ctx context.Context, retry time.Duration) bool {
	for {
		err := m.register(ctx)
		if err == nil {
			return true
		}
		m.log.Warn("register site", "err", err)
		select {
		case <-ctx.Done():
			return false
		case <-m.s.clock.After(retry):
		}
	}
}

// Leave revokes the lease, which removes the site's record at once; the
// store claims nothing for the site any more.
func (m *Membership) Leave(ctx context.Context) error {
	m.s.joined.CompareAndDelete(m.site.Name, m)
	if err := m.seen(ctx); err != nil { // best effort: last_seen is then SeenEvery old at most
		m.log.Warn("record the site as seen as it leaves", "err", err)
	}
	ctx, cancel := context.WithTimeout(ctx, m.s.timeout)
	defer cancel()
	if _, err := m.s.c.Revoke(ctx, clientv3.LeaseID(m.lease.Load())); err != nil {
		return fmt.Errorf("revoke site lease: %w", m.s.unavailable(ctx, err))
	}
	return nil
}

// SiteInfos lists every site ever seen (until it is removed), live or gone,
// sorted by name, with the runs each holds that have not ended.
func (s *Store) SiteInfos(ctx context.Context) ([]api.SiteInfo, error) {
	infos, err := s.KnownSites(ctx)
	if err != nil {
		return nil, err
	}
	held, err := s.HeldRuns(ctx, "")
	if err != nil {
		return nil, err
	}
	busy := map[string]int{}
	for _, r := range held {
		busy[r.Site]++
	}
	for i := range infos {
		infos[i].RunsInProgress = busy[infos[i].Name]
	}
	return infos, nil
}

// KnownSites is SiteInfos without the runs in progress, which cost a read
// of every run record: for looking up sites' addresses, labels and
// liveness.
func (s *Store) KnownSites(ctx context.Context) ([]api.SiteInfo, error) {
	seen, _, err := list[seenRecord](ctx, s, seenDir)
	if err != nil {
		return nil, err
	}
	live, _, err := list[api.Site](ctx, s, sitesDir)
	if err != nil {
		return nil, err
	}
	byName := map[string]api.SiteInfo{}
	for _, r := range seen {
		byName[r.Name] = api.SiteInfo{Site: r.Site, LastSeen: r.LastSeen}
	}
	now := s.clock.Now().UTC()
	for _, site := range live { // the live record is the newer
		byName[site.Name] = api.SiteInfo{Site: site, Live: true, LastSeen: now}
	}
	out := make([]api.SiteInfo, 0, len(byName))
	for _, info := range byName {
		out = append(out, info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// ForgetSite removes a site's lasting record, so that it is no longer
// listed, and its mark of the run index. A live site cannot be forgotten (errs.ErrInUse).
func (s *Store) ForgetSite(ctx context.Context, name string) error {
	notLive := clientv3.Compare(clientv3.CreateRevision(s.key(sitesDir, name)), "=", 0)
	err := s.delete(ctx, s.key(seenDir, name), notLive)
	if errors.Is(err, errCondition) {
		return fmt.Errorf("site %s is live; stop its orchestrator first: %w", name, errs.ErrInUse)
	}
	if err == nil || errors.Is(err, errs.ErrNotFound) {
		// And its mark of the run index, should a site of that name come
		// again (also when its lasting record was gone already).
		merr := s.txn(ctx, []clientv3.Cmp{notLive}, op{key: s.key(runIndexBuilt, name), del: true})
		if merr != nil && !errors.Is(merr, errCondition) {
			return merr
		}
	}
	return wrapName(err, "site", name)
}
