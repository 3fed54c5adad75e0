package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/orchestrator/errs"
)

// Membership is a site's record in etcd, kept alive by a lease.
type Membership struct {
	s     *Store
	site  api.Site
	ttl   time.Duration
	lease clientv3.LeaseID
	log   *slog.Logger
}

// Join writes site's record under a new lease of ttl. The record is
// removed by etcd when the lease expires; Keep renews it.
//
// Site names are unique: while another orchestrator's record holds the
// name, Join waits up to ttl for it to expire (a crashed previous life of
// this site leaves one behind) and then fails with errs.ErrExists.
func (s *Store) Join(ctx context.Context, site api.Site, ttl time.Duration, log *slog.Logger) (*Membership, error) {
	m := &Membership{s: s, site: site, ttl: ttl, log: log}
	deadline := time.Now().Add(ttl + time.Second)
	for {
		err := m.register(ctx)
		if !errors.Is(err, errs.ErrExists) {
			return m, err
		}
		if !time.Now().Before(deadline) {
			var other api.Site
			_ = s.get(ctx, s.key(sitesDir, site.Name), &other) // for the message only
			return nil, fmt.Errorf("site name %q is in use by a live orchestrator (API %s): %w", site.Name, other.APIAddr, err)
		}
		log.Info("site name still held, maybe by this site's previous life; waiting for its lease to expire", "site", site.Name)
		if err := m.waitGone(ctx, time.Until(deadline)); err != nil {
			return nil, err
		}
	}
}

// register creates the site's record under a new lease.
func (m *Membership) register(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, m.s.timeout)
	defer cancel()
	lease, err := m.s.c.Grant(ctx, int64((m.ttl+time.Second-1)/time.Second))
	if err != nil {
		return fmt.Errorf("grant site lease: %w", m.s.unavailable(ctx, err))
	}
	if err := m.s.create(ctx, m.s.key(sitesDir, m.site.Name), m.site, nil, clientv3.WithLease(lease.ID)); err != nil {
		m.s.c.Revoke(context.WithoutCancel(ctx), lease.ID) // best effort: it expires anyway
		return fmt.Errorf("register site %s: %w", m.site.Name, err)
	}
	m.lease = lease.ID
	return m.seen(ctx)
}

// seenDir keeps each site's record after it is gone: sites-seen/<name>.
const seenDir = "sites-seen/"

// seenRecord is a site's record with the time it was last seen live.
type seenRecord struct {
	api.Site
	LastSeen time.Time `json:"last_seen"`
}

// seen writes the site's lasting record with the time now.
func (m *Membership) seen(ctx context.Context) error {
	return m.s.put(ctx, m.s.key(seenDir, m.site.Name), seenRecord{Site: m.site, LastSeen: m.s.now().UTC()})
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

// Keep renews the lease until ctx ends.
//
// When renewal stops (etcd did not answer for a TTL), it checks the lease
// every retry interval. A lease that is still alive (etcd lost quorum and
// got it back: the new leader extends every lease) is renewed again, and
// nothing else happens. A lease that expired means other sites saw this
// one leave and may have taken its runs over: Keep calls lost, then
// registers the site again.
func (m *Membership) Keep(ctx context.Context, retry time.Duration, lost func()) {
	for {
		ch, err := m.s.c.KeepAlive(ctx, m.lease)
		if err == nil {
			last := time.Now()
			for range ch {
				// The lasting record tells when a gone site was last
				// live; once per TTL is precise enough.
				if time.Since(last) >= m.ttl {
					last = time.Now()
					if err := m.seen(ctx); err != nil {
						m.log.Warn("record the site as seen", "err", err)
					}
				}
			}
		}
		if ctx.Err() != nil {
			return
		}
		m.log.Warn("site lease not renewed; checking it", "site", m.site.Name, "err", err)
		for !m.recover(ctx, retry, lost) {
		}
		if ctx.Err() != nil {
			return
		}
	}
}

// recover waits retry, then finds the lease alive (true), or expired: then
// it calls lost and registers again (true once it has). It returns false
// to be called again, and true when ctx ended.
func (m *Membership) recover(ctx context.Context, retry time.Duration, lost func()) bool {
	select {
	case <-ctx.Done():
		return true
	case <-time.After(retry):
	}
	tctx, cancel := context.WithTimeout(ctx, m.s.timeout)
	resp, err := m.s.c.TimeToLive(tctx, m.lease)
	cancel()
	switch {
	case err != nil && ctx.Err() == nil:
		m.log.Warn("etcd does not answer; the site keeps its runs and waits", "err", err)
		return false
	case err != nil:
		return true
	case resp.TTL > 0:
		m.log.Info("site lease still alive; renewing it again", "site", m.site.Name)
		return true
	}
	if m.lease != 0 {
		m.log.Error("site lease expired: other sites may have taken this site's runs over", "site", m.site.Name)
		lost()
		m.lease = 0
	}
	if err := m.register(ctx); err != nil {
		m.log.Warn("register site", "err", err)
		return false
	}
	m.log.Info("site registered again", "site", m.site.Name)
	return true
}

// Leave revokes the lease, which removes the site's record at once.
func (m *Membership) Leave(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, m.s.timeout)
	defer cancel()
	if _, err := m.s.c.Revoke(ctx, m.lease); err != nil {
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
	held, err := s.HeldRuns(ctx)
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
	now := s.now().UTC()
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
// listed. A live site cannot be forgotten (errs.ErrInUse).
func (s *Store) ForgetSite(ctx context.Context, name string) error {
	err := s.delete(ctx, s.key(seenDir, name), clientv3.Compare(clientv3.CreateRevision(s.key(sitesDir, name)), "=", 0))
	if errors.Is(err, errCondition) {
		return fmt.Errorf("site %s is live; stop its orchestrator first: %w", name, errs.ErrInUse)
	}
	return wrapName(err, "site", name)
}
