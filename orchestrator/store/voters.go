package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/mao-research/mao/orchestrator/errs"
)

// votersLock is the key of the lock under which the federation's voters
// change (voters.Keeper): voters-lock.
const votersLock = "voters-lock"

// lockRecord is the value of the voters' lock.
type lockRecord struct {
	Holder string    `json:"holder"`
	Since  time.Time `json:"since"`
}

// lockTTL is how long the voters' lock lives when its holder does not
// release it: longer than what is done under it (a member list, status
// requests, a promotion or a removal).
func (s *Store) lockTTL() time.Duration { return max(15*time.Second, 4*s.timeout) }

// LockVoters takes the lock under which the federation's voters change,
// for holder (a site's name), or fails with errs.ErrInUse while another
// holds it. The lock lives under a lease, so a holder that dies releases
// it within the lease's TTL; unlock releases it at once.
func (s *Store) LockVoters(ctx context.Context, holder string) (unlock func(), err error) {
	ttl := s.lockTTL()
	lctx, cancel := context.WithTimeout(ctx, s.timeout)
	lease, err := s.c.Grant(lctx, int64(ttl/time.Second))
	cancel()
	if err != nil {
		return nil, fmt.Errorf("the voters' lock: %w", s.unavailable(lctx, err))
	}
	release := func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.timeout)
		defer cancel()
		_, _ = s.c.Revoke(rctx, lease.ID) // the lease expires anyway
	}
	key := s.key(votersLock, "")
	err = s.create(ctx, key, lockRecord{Holder: holder, Since: s.clock.Now().UTC()}, nil, clientv3.WithLease(lease.ID))
	if err == nil {
		return release, nil
	}
	release()
	if errors.Is(err, errs.ErrExists) {
		var cur lockRecord
		_ = s.get(ctx, key, &cur) // for the message only
		return nil, fmt.Errorf("the voters' lock is held by %s since %s: %w", cur.Holder, cur.Since.Format(time.RFC3339), errs.ErrInUse)
	}
	return nil, fmt.Errorf("the voters' lock: %w", err)
}

// lockVotersWait takes the voters' lock, trying again every half second
// (by the store's clock) for up to a lock's lifetime while another holds
// it.
func (s *Store) lockVotersWait(ctx context.Context, holder string) (func(), error) {
	deadline := s.clock.After(s.lockTTL())
	for {
		unlock, err := s.LockVoters(ctx, holder)
		if !errors.Is(err, errs.ErrInUse) {
			return unlock, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-deadline:
			return nil, err
		case <-s.clock.After(500 * time.Millisecond):
		}
	}
}

// parseMemberID reads a member's ID in hex, as Federation lists it.
func parseMemberID(id string) (uint64, error) {
	n, err := strconv.ParseUint(id, 16, 64)
	if err != nil || n == 0 {
		return 0, errs.New(errs.ErrNotFound, fmt.Sprintf("%q is not an etcd member's ID", id))
	}
	return n, nil
}

// PromoteMember makes the learner id (hex) a voting member. etcd refuses a
// learner that has not caught up with the leader; a member that votes
// already is done.
func (s *Store) PromoteMember(ctx context.Context, id string) error {
	n, err := parseMemberID(id)
	if err != nil {
		return err
	}
	pctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if _, err := s.admin().MemberPromote(pctx, n); err != nil && !errors.Is(err, rpctypes.ErrMemberNotLearner) {
		return fmt.Errorf("promote etcd member %s: %w", id, s.unavailable(pctx, err))
	}
	return nil
}

// RemoveMember takes member id (hex) out of the cluster. etcd refuses
// when the voters left could not make a quorum.
func (s *Store) RemoveMember(ctx context.Context, id string) error {
	n, err := parseMemberID(id)
	if err != nil {
		return err
	}
	stopped := false
	err = s.membershipChange(ctx, "to remove members", func(rctx context.Context) error {
		_, err := s.admin().MemberRemove(rctx, n)
		stopped = errors.Is(err, rpctypes.ErrStopped)
		return err
	})
	if err != nil && stopped && !s.isMember(ctx, n) {
		// The member asked was the one removed: it stopped as it applied
		// its own removal, before it answered.
		err = nil
	}
	if err != nil && !errors.Is(err, rpctypes.ErrMemberNotFound) {
		return fmt.Errorf("remove etcd member %s: %w", id, err)
	}
	return nil
}

// isMember reports whether member id is in the cluster, as far as the
// members can be listed (true when they cannot).
func (s *Store) isMember(ctx context.Context, id uint64) bool {
	members, _, err := s.members(ctx)
	if err != nil {
		return true
	}
	for _, m := range members {
		if m.ID == id {
			return true
		}
	}
	return false
}

// witnessDir holds the witnesses' records: witnesses/<name>.
const witnessDir = "witnesses/"

// witnessRecord marks an etcd member as a witness's (orchestrator
// -witness): it runs nothing, so it has no site record.
type witnessRecord struct {
	Name      string    `json:"name"`
	Version   string    `json:"version"`
	StartedAt time.Time `json:"started_at"`
}

// SaveWitness records that the member named name is a witness's, at each
// start of the witness; the record stays until the witness leaves or is
// removed.
func (s *Store) SaveWitness(ctx context.Context, name, version string) error {
	return s.put(ctx, s.key(witnessDir, name), witnessRecord{Name: name, Version: version, StartedAt: s.clock.Now().UTC()})
}

// witnesses are the names of the witnesses' members.
func (s *Store) witnesses(ctx context.Context, opts ...clientv3.OpOption) (map[string]bool, error) {
	recs, _, err := list[witnessRecord](ctx, s, witnessDir, opts...)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, r := range recs {
		out[r.Name] = true
	}
	return out, nil
}

// forgetWitness deletes a witness's record, and reports whether there was
// one.
func (s *Store) forgetWitness(ctx context.Context, name string) (bool, error) {
	err := s.delete(ctx, s.key(witnessDir, name))
	if errors.Is(err, errs.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// LeaveFederation removes what the federation keeps of this site once its
// member is gone (or it has none): its lasting record, its witness record,
// and its etcd user. The site's lease must be revoked first (a live site
// cannot be forgotten).
func (s *Store) LeaveFederation(ctx context.Context, site string) error {
	if err := s.ForgetSite(ctx, site); err != nil && !errors.Is(err, errs.ErrNotFound) {
		return err
	}
	if _, err := s.forgetWitness(ctx, site); err != nil {
		return err
	}
	return s.removeSiteUser(ctx, site)
}
