package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/metadata"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/orchestrator/errs"
	"github.com/mao-research/mao/orchestrator/runs"
	"github.com/mao-research/mao/toolspec"
)

// Key directories for schedules; see docs/etcd-keys.md.
const (
	schedulesDir   = "schedules/"
	scheduleRunDir = "schedule-runs/" // schedule-runs/<schedule>/<tick in unix seconds>
)

// indexEntry is the value of a schedule-runs key.
type indexEntry struct {
	Run string `json:"run"`
}

// scheduleRunKey is the index key of a scheduled run: the schedule's ID
// as a directory, then the tick (and, for an --all schedule, -<site>), so
// that the runs of a schedule list in tick order.
func (s *Store) scheduleRunKey(r api.Run) string {
	id, err := runs.Parse(r.ID, r.Schedule, "")
	if err != nil { // not a tick's ID: keep it whole, under its schedule
		return s.key(scheduleRunDir, r.Schedule+"/"+r.ID)
	}
	tick := strconv.FormatInt(id.Time.Unix(), 10)
	if id.Site != "" {
		tick += "-" + id.Site
	}
	return s.key(scheduleRunDir, r.Schedule+"/"+tick)
}

// CreateSchedule stores a new schedule of a registered tool. It fails with
// errs.ErrExists when the ID is taken and errs.ErrNotFound when the tool is unknown.
func (s *Store) CreateSchedule(ctx context.Context, sch toolspec.Schedule) error {
	toolExists := clientv3.Compare(clientv3.CreateRevision(s.key(toolsDir, sch.Tool)), ">", 0)
	err := s.create(ctx, s.key(schedulesDir, sch.ID), sch, []clientv3.Cmp{toolExists})
	if errors.Is(err, errCondition) {
		return fmt.Errorf("no tool named %q: %w", sch.Tool, errs.ErrNotFound)
	}
	return wrapName(err, "schedule", sch.ID)
}

// Schedule returns one schedule or errs.ErrNotFound.
func (s *Store) Schedule(ctx context.Context, id string) (toolspec.Schedule, error) {
	sch, _, err := s.ScheduleRevision(ctx, id)
	return sch, err
}

// ScheduleRevision returns one schedule and the revision it was last
// changed at, for UpdateSchedule.
func (s *Store) ScheduleRevision(ctx context.Context, id string) (toolspec.Schedule, int64, error) {
	var sch toolspec.Schedule
	key := s.key(schedulesDir, id)
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	resp, err := s.c.Get(ctx, key)
	if err != nil {
		return sch, 0, s.unavailable(ctx, err)
	}
	if len(resp.Kvs) == 0 {
		return sch, 0, wrapName(errs.ErrNotFound, "schedule", id)
	}
	kv := resp.Kvs[0]
	if err := s.decode(key, kv.Value, kv.ModRevision, &sch); err != nil {
		return sch, 0, wrapName(err, "schedule", id)
	}
	return sch, kv.ModRevision, nil
}

// Schedules lists every schedule, sorted by ID, and the store revision it
// read at: WatchSchedules from that revision sees every later change.
func (s *Store) Schedules(ctx context.Context) ([]toolspec.Schedule, int64, error) {
	return list[toolspec.Schedule](ctx, s, schedulesDir)
}

// UpdateSchedule overwrites a schedule last changed at revision rev (from
// ScheduleRevision). It fails with errs.ErrNotFound when the schedule is gone and
// with errs.ErrChanged when it changed since.
func (s *Store) UpdateSchedule(ctx context.Context, sch toolspec.Schedule, rev int64) error {
	key := s.key(schedulesDir, sch.ID)
	data, err := json.Marshal(sch)
	if err != nil {
		return fmt.Errorf("encode %s: %w", key, err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	resp, err := s.c.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).
		Then(clientv3.OpPut(key, string(data))).
		Else(clientv3.OpGet(key, clientv3.WithCountOnly())).
		Commit()
	if err != nil {
		return s.unavailable(ctx, err)
	}
	switch {
	case resp.Succeeded:
		return nil
	case resp.Responses[0].GetResponseRange().Count == 0:
		return wrapName(errs.ErrNotFound, "schedule", sch.ID)
	}
	return fmt.Errorf("schedule %s: %w", sch.ID, errs.ErrChanged)
}

// DeleteSchedule removes a schedule; the records of its runs stay.
func (s *Store) DeleteSchedule(ctx context.Context, id string) error {
	return wrapName(s.delete(ctx, s.key(schedulesDir, id)), "schedule", id)
}

// WatchSchedules reports changes to schedules after revision rev until ctx
// ends or the watch fails (etcd lost its leader, or compacted rev): then it
// closes the channel, and the caller lists the schedules again.
func (s *Store) WatchSchedules(ctx context.Context, rev int64) <-chan []toolspec.ScheduleEvent {
	prefix := s.prefix + schedulesDir
	return watch(ctx, s, prefix, rev, func(ev *clientv3.Event) (toolspec.ScheduleEvent, bool) {
		e := toolspec.ScheduleEvent{ID: strings.TrimPrefix(string(ev.Kv.Key), prefix)}
		if ev.Type == clientv3.EventTypePut {
			var sch toolspec.Schedule
			if s.decode(string(ev.Kv.Key), ev.Kv.Value, ev.Kv.ModRevision, &sch) != nil {
				return e, true // an invalid record: as good as deleted
			}
			e.Schedule = &sch
		}
		return e, true
	})
}

// WatchRunDeletions reports the run records deleted (pruned) after
// revision rev (0: from now), until ctx ends or the watch fails; then it
// closes the channel.
func (s *Store) WatchRunDeletions(ctx context.Context, rev int64) <-chan []runs.Deletion {
	prefix := s.prefix + runsDir
	return watch(ctx, s, prefix, rev, func(ev *clientv3.Event) (runs.Deletion, bool) {
		return runs.Deletion{Run: strings.TrimPrefix(string(ev.Kv.Key), prefix), Rev: ev.Kv.ModRevision}, ev.Type == clientv3.EventTypeDelete
	})
}

// Revision is the store's current revision, for a watch that must see
// everything from now on, however late it starts.
func (s *Store) Revision(ctx context.Context) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	resp, err := s.c.Get(ctx, s.prefix, clientv3.WithCountOnly())
	if err != nil {
		return 0, s.unavailable(ctx, err)
	}
	return resp.Header.Revision, nil
}

// watch follows the keys under prefix after revision rev (0: from now),
// converting each event; events convert drops are left out.
func watch[T any](ctx context.Context, s *Store, prefix string, rev int64, convert func(*clientv3.Event) (T, bool)) <-chan []T {
	return follow(ctx, s, prefix, rev, "", convert, func(_ int64, items []T) ([]T, bool) { return items, len(items) > 0 })
}

// follow is watch for a caller that also wants each response's revision
// (see below; 0 when the response says nothing of it): batch makes what
// the channel carries of a response's revision and
// converted events, or drops it. A watch with a stream name has a gRPC
// stream of its own (other watches share one), so that a progress request
// on it (RequestProgress with watchContext(ctx, stream)) waits for no
// other watch.
func follow[T, B any](ctx context.Context, s *Store, prefix string, rev int64, stream string,
	convert func(*clientv3.Event) (T, bool), batch func(rev int64, items []T) (B, bool)) <-chan B {
	out := make(chan B)
	opts := []clientv3.OpOption{clientv3.WithPrefix()}
	if rev > 0 {
		opts = append(opts, clientv3.WithRev(rev+1))
	}
	wc := s.c.Watch(watchContext(ctx, stream), prefix, opts...)
	go func() {
		defer close(out)
		for resp := range wc {
			if resp.Err() != nil || resp.Canceled {
				return
			}
			var items []T
			for _, ev := range resp.Events {
				if ev.Type == clientv3.EventTypeDelete {
					s.forgetInvalid(string(ev.Kv.Key))
				}
				if v, ok := convert(ev); ok {
					items = append(items, v)
				}
			}
			// The revision the watch has every change of its keys up to:
			// its last event's (a watch that is behind gets its events in
			// chunks, each stamped with the store's current revision), or
			// a progress report's.
			var rev int64
			switch {
			case len(resp.Events) > 0:
				rev = resp.Events[len(resp.Events)-1].Kv.ModRevision
			case resp.IsProgressNotify():
				rev = resp.Header.Revision
			}
			b, ok := batch(rev, items)
			if !ok {
				continue
			}
			select {
			case out <- b:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

// watchContext is the context of a watch on the named gRPC stream ("":
// the stream watches share), which needs a leader: clientv3 puts watches
// whose contexts carry the same metadata on one stream.
func watchContext(ctx context.Context, stream string) context.Context {
	ctx = clientv3.WithRequireLeader(ctx)
	if stream != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "mao-watch-stream", stream)
	}
	return ctx
}

// ClaimRun records a scheduled run and its index entry in one transaction
// for r.Site, unless a record with its ID exists: then it returns false.
// However many sites try, one claim of a run ID succeeds. A tick older
// than the schedule's oldest kept record is refused too: it may have been
// recorded and pruned since.
//
// Only a live site claims: the same transaction checks that r.Site's
// record lives under the lease it joined this store (or registered again)
// with; for a site that did not join through this store (tests, tools),
// that its record exists. A site whose lease expired claims nothing until
// it has registered again: ClaimRun fails with ErrNotLive (of kind
// errs.ErrUnavailable), so that the scheduler catches the tick up later
// instead of taking it for another site's.
func (s *Store) ClaimRun(ctx context.Context, r api.Run) (bool, error) {
	live, err := s.liveCondition(r.Site)
	if err != nil {
		return false, fmt.Errorf("claim run %s: %w", r.ID, err)
	}
	oldest, err := s.scheduleRunIDs(ctx, r.Schedule, clientv3.WithLimit(1), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
	if err != nil {
		return false, err
	}
	if len(oldest) > 0 && tickOf(r.Schedule, r.ID).Before(tickOf(r.Schedule, oldest[0])) {
		return false, nil
	}
	key := s.key(runsDir, r.ID)
	writes, err := etcdOps(append(s.runOps(nil, &r), op{key: s.scheduleRunKey(r), v: indexEntry{Run: r.ID}}))
	if err != nil {
		return false, err
	}
	tctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	resp, err := s.c.Txn(tctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0), live).
		Then(writes...).
		Else(clientv3.OpGet(key, clientv3.WithCountOnly())).
		Commit()
	switch {
	case err != nil:
		return false, s.unavailable(tctx, err)
	case resp.Succeeded:
		return true, nil
	case resp.Responses[0].GetResponseRange().Count > 0:
		return false, nil // another site, or this one, was first
	}
	return false, fmt.Errorf("claim run %s: %w", r.ID, s.notLive(ctx, r.Site))
}

// LastScheduledRun returns the run of the schedule's latest recorded tick,
// or nil when it has none. A non-empty site looks only at the runs of an
// --all schedule for that site (run IDs <schedule>-<T>-<site>).
func (s *Store) LastScheduledRun(ctx context.Context, schedule, site string) (*api.Run, error) {
	opts := []clientv3.OpOption{clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend)}
	if site == "" {
		opts = append(opts, clientv3.WithLimit(1))
	}
	ids, err := s.scheduleRunIDs(ctx, schedule, opts...)
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		if !ofSite(schedule, id, site) {
			continue
		}
		r, err := s.Run(ctx, id)
		if errors.Is(err, errs.ErrNotFound) {
			return nil, nil // pruned between the two reads
		}
		return &r, err
	}
	return nil, nil
}

// ofSite reports whether a scheduled run's ID is of site: every ID is of
// site "", and one of an --all schedule's runs is of its site.
func ofSite(schedule, runID, site string) bool {
	if site == "" {
		return true
	}
	id, err := runs.Parse(runID, schedule, "")
	return err == nil && id.Site == site
}

// LatestExecutedRun returns the newest run of the schedule that was set to
// run: it passes over ticks recorded as skipped or missed. Nil when none.
// A non-empty site looks only at that site's runs, as LastScheduledRun.
func (s *Store) LatestExecutedRun(ctx context.Context, schedule, site string) (*api.Run, error) {
	ids, err := s.scheduleRunIDs(ctx, schedule, clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend))
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		if !ofSite(schedule, id, site) {
			continue
		}
		r, err := s.Run(ctx, id)
		switch {
		case errors.Is(err, errs.ErrNotFound):
			continue // pruned meanwhile
		case err != nil:
			return nil, err
		case r.State != api.StateSkipped && r.State != api.StateMissed:
			return &r, nil
		}
	}
	return nil, nil
}

// tickOf reads the tick out of a scheduled run's ID (the zero time for an
// ID that is not one of the schedule's).
func tickOf(schedule, runID string) time.Time {
	id, _ := runs.Parse(runID, schedule, "")
	return id.Time
}

// ScheduledRuns lists a schedule's runs, newest first.
func (s *Store) ScheduledRuns(ctx context.Context, schedule string) ([]api.Run, error) {
	ids, err := s.scheduleRunIDs(ctx, schedule, clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend))
	if err != nil {
		return nil, err
	}
	runs := make([]api.Run, 0, len(ids))
	for _, id := range ids {
		r, err := s.Run(ctx, id)
		if errors.Is(err, errs.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		runs = append(runs, r)
	}
	return runs, nil
}

func (s *Store) scheduleRunIDs(ctx context.Context, schedule string, opts ...clientv3.OpOption) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	resp, err := s.c.Get(ctx, s.key(scheduleRunDir, schedule+"/"), append(opts, clientv3.WithPrefix())...)
	if err != nil {
		return nil, s.unavailable(ctx, err)
	}
	ids := make([]string, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var e indexEntry
		if s.decode(string(kv.Key), kv.Value, kv.ModRevision, &e) == nil {
			ids = append(ids, e.Run)
		}
	}
	return ids, nil
}

// PruneSchedule deletes the oldest runs of a schedule beyond the newest
// keep, with their index entries, and returns the IDs it deleted. Runs that
// have not ended are kept.
func (s *Store) PruneSchedule(ctx context.Context, schedule string, keep int) ([]string, error) {
	ids, err := s.scheduleRunIDs(ctx, schedule, clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
	if err != nil || len(ids) <= keep {
		return nil, err
	}
	var removed []string
	for _, id := range ids[:len(ids)-keep] {
		var r api.Run
		rev, err := s.getRev(ctx, s.key(runsDir, id), &r)
		switch {
		case err == nil && !r.State.Terminal():
			continue
		case err == nil:
			r.Schedule = schedule // the index entry read is the one to delete
			err = s.deleteRun(ctx, r, rev)
		case errors.Is(err, errs.ErrNotFound): // gone, or invalid
			err = s.txn(ctx, nil, op{key: s.key(runsDir, id), del: true},
				op{key: s.scheduleRunKey(api.Run{ID: id, Schedule: schedule}), del: true})
		}
		if errors.Is(err, errCondition) {
			continue // changed since: looked at again next time
		}
		if err != nil {
			return removed, err
		}
		removed = append(removed, id)
	}
	return removed, nil
}

// PruneRuns deletes the runs that pick picks of the runs asked for by
// hand at site (see runs.Expired), each only if it has not changed since
// it was read, and returns the IDs it deleted. It reads the index of
// those runs, never every run. Their logs go with them (PrunedLogs).
func (s *Store) PruneRuns(ctx context.Context, site string, pick func([]api.Run) []string) ([]string, error) {
	all, revs, err := s.indexedRuns(ctx, idxManual, site+"/")
	if err != nil {
		return nil, err
	}
	byID := make(map[string]api.Run, len(all))
	for _, r := range all {
		byID[r.ID] = r
	}
	var removed []string
	for _, id := range pick(all) {
		r, ok := byID[id]
		if !ok {
			continue
		}
		err := s.deleteRun(ctx, r, revs[id])
		if errors.Is(err, errCondition) {
			continue // changed since: looked at again next time
		}
		if err != nil {
			return removed, err
		}
		removed = append(removed, id)
	}
	return removed, nil
}

// deleteRun deletes the record r, with its index entries, if it was last
// changed at rev (errCondition if not).
func (s *Store) deleteRun(ctx context.Context, r api.Run, rev int64) error {
	key := s.key(runsDir, r.ID)
	ops := s.runOps(&r, nil)
	if r.Schedule != "" {
		ops = append(ops, op{key: s.scheduleRunKey(r), del: true})
	}
	return s.txn(ctx, []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", rev)}, ops...)
}
