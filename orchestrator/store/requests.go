package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/orchestrator/errs"
	"github.com/mao-research/mao/orchestrator/runs"
)

// requestsDir holds the runs that wait for a site: requests/<run-id>.
const requestsDir = "requests/"

// RequestRun stores a new run record that waits for a site (pending, with
// no site and a target; see runs.Waiting) and its request, in one
// transaction. The ID must be unused.
func (s *Store) RequestRun(ctx context.Context, r api.Run) error {
	req, ok := runs.RequestOf(r, r.CreatedAt)
	if !ok || r.Target == nil {
		return fmt.Errorf("request run %s: it does not wait for a site (it is %s at %q, target %v)", r.ID, r.State, r.Site, r.Target)
	}
	key := s.key(runsDir, r.ID)
	err := s.txn(ctx, []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(key), "=", 0)},
		append(s.runOps(nil, &r), op{key: s.key(requestsDir, r.ID), v: req})...)
	if errors.Is(err, errCondition) {
		err = errs.ErrExists
	}
	return wrapName(err, "run", r.ID)
}

// Requests lists the open requests, oldest first, and the revision they
// were read at, for WatchRequests.
func (s *Store) Requests(ctx context.Context) ([]runs.Request, int64, error) {
	reqs, rev, err := list[runs.Request](ctx, s, requestsDir)
	if err != nil {
		return nil, 0, err
	}
	slices.SortStableFunc(reqs, func(a, b runs.Request) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return reqs, rev, nil
}

// WatchRequests reports requests created after revision rev until ctx
// ends or the watch fails; then it closes the channel and the caller
// lists them again.
func (s *Store) WatchRequests(ctx context.Context, rev int64) <-chan []runs.Request {
	return watch(ctx, s, s.prefix+requestsDir, rev, func(ev *clientv3.Event) (runs.Request, bool) {
		var r runs.Request
		if ev.Type != clientv3.EventTypePut || s.decode(string(ev.Kv.Key), ev.Kv.Value, ev.Kv.ModRevision, &r) != nil {
			return r, false
		}
		return r, true
	})
}

// ClaimRequest gives the requested run to site (runs.Claim): in one
// transaction it removes the request and records the site in the run. It
// returns false when another site claimed it first or the request is gone.
// Only a live site claims, as for ClaimRun: the transaction checks that
// site's record lives under the lease it joined this store with (or, for a
// site that did not join through it, that its record exists), and a site
// that is not live fails with ErrNotLive.
func (s *Store) ClaimRequest(ctx context.Context, id, site string) (api.Run, bool, error) {
	// Only a live site claims: one whose lease has expired would have the
	// run settled as lost at once (LoseRun's mirror condition).
	live, err := s.liveCondition(site)
	if err != nil {
		return api.Run{}, false, fmt.Errorf("claim run %s: %w", id, err)
	}
	reqKey, runKey := s.key(requestsDir, id), s.key(runsDir, id)
	var req runs.Request
	reqRev, err := s.getRev(ctx, reqKey, &req)
	if errors.Is(err, errs.ErrNotFound) {
		return api.Run{}, false, nil
	}
	if err != nil {
		return api.Run{}, false, err
	}
	var run api.Run
	runRev, err := s.getRev(ctx, runKey, &run)
	if err != nil && !errors.Is(err, errs.ErrNotFound) {
		return api.Run{}, false, err
	}
	claimed, cerr := runs.Apply(run, runs.Claim{Site: site}, s.clock.Now())
	if errors.Is(err, errs.ErrNotFound) || cerr != nil {
		// A record that no longer waits: drop the stale request.
		err := s.txn(ctx, []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(reqKey), "=", reqRev)}, op{key: reqKey, del: true})
		if err != nil && !errors.Is(err, errCondition) {
			return api.Run{}, false, err
		}
		return api.Run{}, false, nil
	}
	err = s.txn(ctx, []clientv3.Cmp{
		clientv3.Compare(clientv3.ModRevision(reqKey), "=", reqRev),
		clientv3.Compare(clientv3.ModRevision(runKey), "=", runRev),
		live,
	}, append(s.runOps(&run, &claimed), op{key: reqKey, del: true})...)
	if errors.Is(err, errCondition) {
		if err := s.notLive(ctx, site); err != nil {
			return api.Run{}, false, fmt.Errorf("claim run %s: %w", id, err)
		}
		return api.Run{}, false, nil
	}
	if err != nil {
		return api.Run{}, false, err
	}
	return claimed, true, nil
}

// LoseRun settles a run held by a site whose lease has expired, as
// runs.Lose says; a run that waits for a site again gets its request in the
// same transaction. It does nothing (and returns false) when the run is no
// longer held by dead, has ended, or the site is live again: every check
// and the write are one transaction, so however many sites try, one
// settles the run.
func (s *Store) LoseRun(ctx context.Context, id, dead string, now time.Time) (api.Run, bool, error) {
	runKey, siteKey := s.key(runsDir, id), s.key(sitesDir, dead)
	var run api.Run
	rev, err := s.getRev(ctx, runKey, &run)
	if errors.Is(err, errs.ErrNotFound) {
		return api.Run{}, false, nil
	}
	if err != nil {
		return api.Run{}, false, err
	}
	lost, err := runs.Apply(run, runs.Lose{Site: dead}, now)
	if err != nil {
		return api.Run{}, false, nil // not held by dead, or ended
	}
	ops := s.runOps(&run, &lost)
	if req, ok := runs.RequestOf(lost, now); ok {
		ops = append(ops, op{key: s.key(requestsDir, id), v: req})
	}
	err = s.txn(ctx, []clientv3.Cmp{
		clientv3.Compare(clientv3.ModRevision(runKey), "=", rev),
		clientv3.Compare(clientv3.CreateRevision(siteKey), "=", 0),
	}, ops...)
	if errors.Is(err, errCondition) {
		return api.Run{}, false, nil
	}
	if err != nil {
		return api.Run{}, false, err
	}
	return lost, true, nil
}

// WaitClaimed waits until the run has a site, and returns its record. A
// run that has one returns at once.
func (s *Store) WaitClaimed(ctx context.Context, id string) (api.Run, error) {
	key := s.key(runsDir, id)
	for {
		var run api.Run
		rev, err := s.getRev(ctx, key, &run)
		if err != nil || run.Site != "" || run.State.Terminal() {
			return run, wrapName(err, "run", id)
		}
		wctx, cancel := context.WithCancel(ctx)
		wc := s.c.Watch(clientv3.WithRequireLeader(wctx), key, clientv3.WithRev(rev+1))
		select {
		case <-wc:
		case <-ctx.Done():
		}
		cancel()
		if ctx.Err() != nil {
			return run, ctx.Err()
		}
	}
}

// siteOfKey is the site name in a sites/ key.
func (s *Store) siteOfKey(key []byte) string {
	return strings.TrimPrefix(string(key), s.prefix+sitesDir)
}

// LiveSites returns the live sites and the revision they were read at, for
// WatchDepartures.
func (s *Store) LiveSites(ctx context.Context) ([]api.Site, int64, error) {
	return list[api.Site](ctx, s, sitesDir)
}

// WatchDepartures reports the names of sites whose records were deleted
// after revision rev (their lease expired or was revoked), until ctx ends
// or the watch fails; then it closes the channel.
func (s *Store) WatchDepartures(ctx context.Context, rev int64) <-chan []string {
	return watch(ctx, s, s.prefix+sitesDir, rev, func(ev *clientv3.Event) (string, bool) {
		return s.siteOfKey(ev.Kv.Key), ev.Type == clientv3.EventTypeDelete
	})
}
