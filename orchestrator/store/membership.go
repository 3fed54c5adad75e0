package store

import (
	"context"
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
func (s *Store) Join(ctx context.Context, site api.Site, ttl time.Duration, log *slog.Logger) (*Membership, error) {
	m := &Membership{s: s, site: site, ttl: ttl, log: log}
	if err := m.register(ctx); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *Membership) register(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, m.s.timeout)
	defer cancel()
	lease, err := m.s.c.Grant(ctx, int64((m.ttl+time.Second-1)/time.Second))
	if err != nil {
		return fmt.Errorf("grant site lease: %w", m.s.unavailable(ctx, err))
	}
	if err := m.s.put(ctx, m.s.key(sitesDir, m.site.Name), m.site, clientv3.WithLease(lease.ID)); err != nil {
		return fmt.Errorf("register site %s: %w", m.site.Name, err)
	}
	m.lease = lease.ID
	return nil
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
