package store

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/internal/randid"
	"github.com/mao-research/mao/notify"
	"github.com/mao-research/mao/orchestrator/errs"
)

// Key directories of the spike detector and of notifications; see
// docs/etcd-keys.md.
const (
	pointsDir        = "series-points/" // series-points/<tool>/<site>/<metric>/<unix nanoseconds, 20 digits>-<run>
	seriesDir        = "series/"        // series/<tool>/<site>/<metric>: the whole series in one value, as mao wrote it before series-points
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
//
// Each point is a key of its own (series-points/), so a run writes its own
// point and deletes the ones beyond max, never the whole history. A
// series that an older mao stored in one value (series/) is moved to
// points first, then its value deleted; readers merge both meanwhile.
func (s *Store) UpdateSeries(ctx context.Context, tool, site, metric string, max int,
	fn func(api.Series) (api.Series, error)) (api.Series, error) {
	prefix := s.key(pointsDir, seriesName(tool, site, metric)+"/")
	for {
		cur, rev, old, err := s.readSeries(ctx, tool, site, metric)
		if err != nil {
			return api.Series{}, err
		}
		if old { // kept in one value by an older mao: moved to points first
			if err := s.migrateSeries(ctx, tool, site, metric); err != nil {
				return api.Series{}, err
			}
			continue
		}
		next, err := fn(cur)
		if err != nil {
			return cur, err
		}
		next.Tool, next.Site, next.Metric = tool, site, metric
		if len(next.Points) > max {
			next.Points = next.Points[len(next.Points)-max:]
		}
		had := make(map[string]api.SeriesPoint, len(cur.Points))
		for _, p := range cur.Points {
			had[prefix+pointName(p)] = p
		}
		var ops []op
		for _, p := range next.Points {
			key := prefix + pointName(p)
			if old, ok := had[key]; ok && old == p {
				delete(had, key)
				continue
			}
			delete(had, key)
			ops = append(ops, op{key: key, v: p})
		}
		for key := range had { // dropped: beyond max, or replaced
			ops = append(ops, op{key: key, del: true})
		}
		if len(ops) == 0 {
			return next, nil
		}
		unchanged := clientv3.Compare(clientv3.ModRevision(prefix).WithPrefix(), "<", rev+1)
		err = s.txn(ctx, []clientv3.Cmp{unchanged}, ops...)
		if !errors.Is(err, errCondition) {
			return next, err
		}
	}
}

// seriesName is a series' name under its directory: <tool>/<site>/<metric>.
func seriesName(tool, site, metric string) string { return tool + "/" + site + "/" + metric }

// pointName is a point's key below its series' prefix: its time, so that
// keys sort as the points do, and its run, so that a run (retried, or
// replayed into etcd from a journal) has one point.
func pointName(p api.SeriesPoint) string {
	return fmt.Sprintf("%020d-%s", p.Time.UnixNano(), p.Run)
}

// readSeries reads a series' points, oldest first, and the revision it
// read them at; points of a series still in one value (series/) are
// merged in, a run's point keyed on its own winning, and old says there
// was such a value.
func (s *Store) readSeries(ctx context.Context, tool, site, metric string) (sr api.Series, rev int64, old bool, err error) {
	all, rev, old, err := s.seriesUnder(ctx, seriesName(tool, site, metric)+"/", seriesName(tool, site, metric))
	if err != nil {
		return api.Series{}, 0, false, err
	}
	sr = api.Series{Tool: tool, Site: site, Metric: metric}
	if len(all) == 1 {
		sr.Points = all[0].Points
	}
	return sr, rev, old, nil
}

// seriesUnder reads the series whose points are under series-points/ +
// points and whose old single values are under series/ + values (a
// directory when it ends in "/"), merged, sorted by site and metric, their
// points oldest first; hadValues says it met such an old value.
func (s *Store) seriesUnder(ctx context.Context, points, values string) (_ []api.Series, rev int64, hadValues bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	byName := map[string]*api.Series{}
	seen := map[string]map[string]bool{} // series name → runs with a point key
	get := func(name string) *api.Series {
		if sr, ok := byName[name]; ok {
			return sr
		}
		parts := strings.SplitN(name, "/", 3)
		sr := &api.Series{Tool: parts[0], Site: parts[1], Metric: parts[2]}
		byName[name], seen[name] = sr, map[string]bool{}
		return sr
	}
	resp, err := s.c.Get(ctx, s.key(pointsDir, points), clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
	if err != nil {
		return nil, 0, false, s.unavailable(ctx, err)
	}
	found := make(map[string]bool, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		key := string(kv.Key)
		found[key] = true
		var p api.SeriesPoint
		if s.decode(key, kv.Value, kv.ModRevision, &p) != nil {
			continue
		}
		name := strings.TrimPrefix(key, s.prefix+pointsDir)
		name = name[:strings.LastIndex(name, "/")]
		sr := get(name)
		sr.Points = append(sr.Points, p)
		seen[name][p.Run] = true
	}
	if strings.HasSuffix(points, "/") {
		s.pruneInvalid(s.key(pointsDir, points), found)
	}
	var old []api.Series
	if strings.HasSuffix(values, "/") {
		old, _, err = list[api.Series](ctx, s, seriesDir+values)
	} else {
		var sr api.Series
		if err = s.get(ctx, s.key(seriesDir, values), &sr); err == nil {
			old = append(old, sr)
		} else if errors.Is(err, errs.ErrNotFound) {
			err = nil
		}
	}
	if err != nil {
		return nil, 0, false, err
	}
	for _, o := range old {
		name := seriesName(o.Tool, o.Site, o.Metric)
		sr := get(name)
		for _, p := range o.Points {
			if !seen[name][p.Run] {
				sr.Points = append(sr.Points, p)
			}
		}
	}
	out := make([]api.Series, 0, len(byName))
	for _, name := range slices.Sorted(maps.Keys(byName)) {
		sr := byName[name]
		slices.SortStableFunc(sr.Points, func(a, b api.SeriesPoint) int { return strings.Compare(pointName(a), pointName(b)) })
		out = append(out, *sr)
	}
	return out, resp.Header.Revision, len(old) > 0, nil
}

// migrateSeries moves a series that an older mao stored in one value
// (series/) to a key per point, a batch of points per transaction (etcd
// bounds a transaction's operations), each only while the old value is
// unchanged, then deletes the old value. Putting a point twice is harmless:
// a crash midway leaves points that the next call puts again.
func (s *Store) migrateSeries(ctx context.Context, tool, site, metric string) error {
	key := s.key(seriesDir, seriesName(tool, site, metric))
	var old api.Series
	rev, err := s.getRev(ctx, key, &old)
	switch {
	case errors.Is(err, errs.ErrNotFound) && rev == 0:
		return nil // none
	case errors.Is(err, errs.ErrNotFound):
		old = api.Series{} // invalid: nothing to move, and it goes
	case err != nil:
		return err
	}
	unchanged := clientv3.Compare(clientv3.ModRevision(key), "=", rev)
	prefix := s.key(pointsDir, seriesName(tool, site, metric)+"/")
	const batch = 100
	for i := 0; i < len(old.Points); i += batch {
		var ops []op
		for _, p := range old.Points[i:min(i+batch, len(old.Points))] {
			ops = append(ops, op{key: prefix + pointName(p), v: p})
		}
		if err := s.txn(ctx, []clientv3.Cmp{unchanged}, ops...); err != nil && !errors.Is(err, errCondition) {
			return fmt.Errorf("move the series %s to a key per point: %w", key, err)
		}
	}
	if err := s.delete(ctx, key, unchanged); err != nil && !errors.Is(err, errCondition) && !errors.Is(err, errs.ErrNotFound) {
		return fmt.Errorf("move the series %s to a key per point: %w", key, err)
	}
	return nil
}

// SeriesOf lists the series of a tool, by site and metric; empty site or
// metric select all.
func (s *Store) SeriesOf(ctx context.Context, tool, site, metric string) ([]api.Series, error) {
	all, _, _, err := s.seriesUnder(ctx, tool+"/", tool+"/")
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
