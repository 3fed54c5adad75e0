package store

import (
	"context"
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Space is a member's database as the member answers its status.
type Space struct {
	Member   uint64 // the member's ID
	Revision int64  // the cluster's current revision
	Size     int64  // bytes of the database file
	InUse    int64  // bytes of it in use; the rest is free space a defragmentation returns
	Quota    int64  // the member's quota (0: it does not say)
}

// Free is the database's free bytes.
func (s Space) Free() int64 { return max(s.Size-s.InUse, 0) }

// Alarm is an etcd alarm raised by a member.
type Alarm struct {
	Member uint64
	Kind   string // "NOSPACE", "CORRUPT"
}

// AlarmNoSpace is the alarm a member raises when its database reaches its
// quota: etcd then refuses every write (puts, transactions that put, new
// leases) until the alarm is disarmed.
const AlarmNoSpace = "NOSPACE"

// MemberSpace asks the member at endpoint for its database's size.
func (s *Store) MemberSpace(ctx context.Context, endpoint string) (Space, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	resp, err := s.admin().Status(ctx, endpoint)
	if err != nil {
		return Space{}, fmt.Errorf("status of etcd member %s: %w", endpoint, s.unavailable(ctx, err))
	}
	return Space{Member: resp.Header.MemberId, Revision: resp.Header.Revision, Size: resp.DbSize, InUse: resp.DbSizeInUse,
		Quota: resp.DbSizeQuota}, nil
}

// EtcdAlarms lists the cluster's alarms (a request that needs a quorum).
func (s *Store) EtcdAlarms(ctx context.Context) ([]Alarm, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	resp, err := s.admin().AlarmList(ctx)
	if err != nil {
		return nil, fmt.Errorf("list etcd alarms: %w", s.unavailable(ctx, err))
	}
	out := make([]Alarm, 0, len(resp.Alarms))
	for _, a := range resp.Alarms {
		out = append(out, Alarm{Member: a.MemberID, Kind: a.Alarm.String()})
	}
	return out, nil
}

// Compact compacts the cluster's history up to revision rev: etcd forgets
// every older version of every key. A history compacted that far already
// is no error. It needs etcd's root role where access control is on.
func (s *Store) Compact(ctx context.Context, rev int64) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	_, err := s.admin().Compact(ctx, rev, clientv3.WithCompactPhysical())
	if err != nil && !errors.Is(err, rpctypes.ErrCompacted) {
		return fmt.Errorf("compact etcd to revision %d: %w", rev, s.unavailable(ctx, err))
	}
	return nil
}

// Defragment defragments the member at endpoint: its database file
// shrinks to what is in use. The member answers nothing else meanwhile,
// so it takes as long as it takes (no request timeout; ctx bounds it).
func (s *Store) Defragment(ctx context.Context, endpoint string) error {
	if _, err := s.admin().Defragment(ctx, endpoint); err != nil {
		return fmt.Errorf("defragment etcd member %s: %w", endpoint, s.unavailable(ctx, err))
	}
	return nil
}

// DisarmNoSpace disarms member's NOSPACE alarm: etcd takes writes again
// (and raises it again at once if the database is still over its quota).
func (s *Store) DisarmNoSpace(ctx context.Context, member uint64) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	_, err := s.admin().AlarmDisarm(ctx, &clientv3.AlarmMember{MemberID: member, Alarm: etcdserverpb.AlarmType_NOSPACE})
	if err != nil {
		return fmt.Errorf("disarm the NOSPACE alarm of etcd member %x: %w", member, s.unavailable(ctx, err))
	}
	return nil
}
