package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/mao-research/mao/api"
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
// this site leaves one behind) and then fails with ErrExists.
func (s *Store) Join(ctx context.Context, site api.Site, ttl time.Duration, log *slog.Logger) (*Membership, error) {
	m := &Membership{s: s, site: site, ttl: ttl, log: log}
	deadline := time.Now().Add(ttl + time.Second)
	for {
		err := m.register(ctx)
		if !errors.Is(err, ErrExists) {
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
	return nil
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

// Keep renews the lease until ctx ends. When the lease is lost (etcd was
// unreachable for longer than the TTL) it registers the site again, retrying
// every retry interval until it succeeds.
func (m *Membership) Keep(ctx context.Context, retry time.Duration) {
	for {
		ch, err := m.s.c.KeepAlive(ctx, m.lease)
		if err == nil {
			for range ch {
			}
		}
		if ctx.Err() != nil {
			return
		}
		m.log.Warn("site lease lost; registering again", "site", m.site.Name, "err", err)
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(retry):
			}
			if err := m.register(ctx); err != nil {
				m.log.Warn("register site", "err", err)
				continue
			}
			m.log.Info("site registered again", "site", m.site.Name)
			break
		}
	}
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
