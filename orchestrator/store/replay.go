package store

import (
	"context"
	"errors"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/orchestrator/errs"
	"github.com/mao-research/mao/orchestrator/runs"
)

// ReplayRun writes rec, a record of one of rec.Site's own runs
// (runs.OwnOnly) from that site's journal, into etcd, as runs.Replay
// decides against the stored record, and returns what it did and why:
//   - no record: rec is created, create-only, with its index entry when
//     it is a schedule's tick (unless the tick is older than the
//     schedule's oldest kept record, as ClaimRun refuses);
//   - an earlier point of the run at rec.Site: rec replaces it;
//   - the run settled as lost by another site meanwhile (it waits for
//     rec.Site again, or ended lost): rec replaces it and the run's
//     request is deleted, in one transaction;
//   - rec or a later record stored, or another site's record: nothing.
//
// Each write is one transaction that compares the record's revision with
// the one decided on (a change in between makes it decide again) and, as a
// claim does, that rec.Site is live under the lease it joined this store
// with: a site whose lease expired replays nothing until it has registered
// again (ErrNotLive), so that no other site can settle what it replays
// while it is not live. An invalid stored record is overwritten.
func (s *Store) ReplayRun(ctx context.Context, rec api.Run) (runs.ReplayAction, string, error) {
	live, err := s.liveCondition(rec.Site)
	if err != nil {
		return 0, "", fmt.Errorf("replay run %s: %w", rec.ID, err)
	}
	key := s.key(runsDir, rec.ID)
	for {
		var cur api.Run
		stored := &cur
		rev, err := s.getRev(ctx, key, &cur)
		switch {
		case errors.Is(err, errs.ErrNotFound):
			stored = nil // gone (rev 0), or invalid: overwritten at its revision
		case err != nil:
			return 0, "", err
		}
		action, why := runs.Replay(stored, rec)
		ops := s.runOps(stored, &rec)
		switch action {
		case runs.ReplayCreate:
			if rec.Schedule == "" {
				break
			}
			oldest, err := s.scheduleRunIDs(ctx, rec.Schedule, clientv3.WithLimit(1), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
			if err != nil {
				return 0, "", err
			}
			if len(oldest) > 0 && tickOf(rec.Schedule, rec.ID).Before(tickOf(rec.Schedule, oldest[0])) {
				return runs.ReplaySkip, "the tick is older than its schedule's oldest kept record: it was recorded and pruned", nil
			}
			ops = append(ops, op{key: s.scheduleRunKey(rec), v: indexEntry{Run: rec.ID}})
		case runs.ReplayReclaim:
			ops = append(ops, op{key: s.key(requestsDir, rec.ID), del: true})
		case runs.ReplayUpdate:
		default:
			return action, why, nil
		}
		err = s.txn(ctx, []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", rev), live}, ops...)
		if !errors.Is(err, errCondition) {
			return action, why, err
		}
		if err := s.notLive(ctx, rec.Site); err != nil {
			return 0, "", fmt.Errorf("replay run %s: %w", rec.ID, err)
		}
		// The record changed since it was read: decide again.
	}
}
