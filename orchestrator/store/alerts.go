package store

import (
	"context"
	"errors"
	"fmt"
	"slices"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/internal/randid"
	"github.com/mao-research/mao/notify"
	"github.com/mao-research/mao/orchestrator/errs"
)

// Key directories of the spike detector and of notifications; see
// docs/etcd-keys.md.
const (
	seriesDir        = "series/"        // series/<tool>/<site>/<metric>
	notifyStateDir   = "notify-state/"  // notify-state/<tool>/<scope>
	notificationsDir = "notifications/" // notifications/<id>
)

// update reads key into a T (the zero T when absent), applies fn and
// writes the result if key has not changed meanwhile; it tries again when
// it has. It returns what it read and what it wrote.
func update[T any](ctx context.Context, s *Store, key string, fn func(T) (T, error)) (before, after T, err error) {
	for {
		var cur T
		rev, err := s.getRev(ctx, key, &cur)
		if errors.Is(err, errs.ErrNotFound) { // absent (rev 0), or invalid: start afresh over it
			var zero T
			cur, err = zero, nil
		}
		if err != nil {
			return before, after, err
		}
		next, err := fn(cur)
		if err != nil {
			return before, after, err
		}
		err = s.putIf(ctx, key, next, clientv3.Compare(clientv3.ModRevision(key), "=", rev))
		if !errors.Is(err, errCondition) {
			return cur, next, err
		}
	}
}

// UpdateSeries applies fn to the series of a metric of a tool at a site
// (empty when it has none yet) and stores the result, keeping its newest
// max points. fn may run more than once, when another writer got there
// first; it sees the stored series each time.
func (s *Store) UpdateSeries(ctx context.Context, tool, site, metric string, max int,
	fn func(api.Series) (api.Series, error)) (api.Series, error) {
	key := s.key(seriesDir, tool+"/"+site+"/"+metric)
	_, after, err := update(ctx, s, key, func(cur api.Series) (api.Series, error) {
		cur.Tool, cur.Site, cur.Metric = tool, site, metric
		next, err := fn(cur)
		if len(next.Points) > max {
			next.Points = next.Points[len(next.Points)-max:]
		}
		return next, err
	})
	return after, err
}

// SeriesOf lists the series of a tool, by site and metric; empty site or
// metric select all.
func (s *Store) SeriesOf(ctx context.Context, tool, site, metric string) ([]api.Series, error) {
	all, _, err := list[api.Series](ctx, s, seriesDir+tool+"/")
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, sr := range all {
		if (site == "" || sr.Site == site) && (metric == "" || sr.Metric == metric) {
			out = append(out, sr)
		}
	}
	return out, nil
}

// UpdateNotifyState applies fn to the notification state of a tool's
// scope (a series "<site>/<metric>", or "runs" for its runs' failures) in
// one compare-and-swap, so that of several sites deciding at once, each
// decides on what the one before wrote; fn may run more than once. It
// returns the state before and after.
func (s *Store) UpdateNotifyState(ctx context.Context, tool, scope string, fn func(notify.State) notify.State) (before, after notify.State, err error) {
	key := s.key(notifyStateDir, tool+"/"+scope)
	return update(ctx, s, key, func(cur notify.State) (notify.State, error) { return fn(cur), nil })
}

// notificationID sorts by creation time.
func notificationID(n api.Notification) string {
	return fmt.Sprintf("%019d-%s", n.CreatedAt.UnixNano(), randid.Hex(3))
}

// RecordNotification stores a notification's outcome, with a new ID when
// it has none, and keeps the newest keep outcomes.
func (s *Store) RecordNotification(ctx context.Context, n api.Notification, keep int) (api.Notification, error) {
	if n.ID == "" {
		n.ID = notificationID(n)
	}
	if err := s.put(ctx, s.key(notificationsDir, n.ID), n); err != nil {
		return n, err
	}
	return n, s.pruneNotifications(ctx, keep)
}

func (s *Store) pruneNotifications(ctx context.Context, keep int) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	resp, err := s.c.Get(ctx, s.prefix+notificationsDir, clientv3.WithPrefix(), clientv3.WithKeysOnly(),
		clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
	if err != nil {
		return s.unavailable(ctx, err)
	}
	if extra := len(resp.Kvs) - keep; extra > 0 {
		last := string(resp.Kvs[extra-1].Key)
		if _, err := s.c.Delete(ctx, s.prefix+notificationsDir, clientv3.WithRange(last+"\x00")); err != nil {
			return s.unavailable(ctx, err)
		}
	}
	return nil
}

// Notifications lists the recorded outcomes, newest first, at most limit
// (0: all); a non-empty tool selects that tool's. Their keys sort by time,
// so etcd returns them in order.
func (s *Store) Notifications(ctx context.Context, tool string, limit int) ([]api.Notification, error) {
	all, _, err := list[api.Notification](ctx, s, notificationsDir)
	if err != nil {
		return nil, err
	}
	slices.Reverse(all)
	out := all[:0]
	for _, n := range all {
		if tool == "" || n.Tool == tool {
			out = append(out, n)
		}
		if limit > 0 && len(out) == limit {
			break
		}
	}
	return out, nil
}
