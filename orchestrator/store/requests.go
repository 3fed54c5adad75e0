package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/toolspec"
)

// requestsDir holds the runs that wait for a site: requests/<run-id>.
const requestsDir = "requests/"

// Request is a run waiting for a site to claim it: a run asked for at
// another site, an any-site run, or a lost run to retry. Its run record
// exists, pending, with an empty site, until a site claims it.
type Request struct {
	Run    string          `json:"run"`
	Tool   string          `json:"tool"`
	Target toolspec.Target `json:"target"`
	// FanOut marks one of the runs of an --all request: the named site
	// runs it if the tool's image is usable there, else records it
	// skipped.
	FanOut    bool      `json:"fan_out,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// RequestRun stores a new pending run record (its site empty) and the
// request for a site to claim it, in one transaction. The ID must be
// unused.
func (s *Store) RequestRun(ctx context.Context, r api.Run, fanOut bool) error {
	if r.Target == nil {
		return fmt.Errorf("request run %s: no target", r.ID)
	}
	r.Site, r.State = "", api.StatePending
	req := Request{Run: r.ID, Tool: r.Tool, Target: *r.Target, FanOut: fanOut, CreatedAt: r.CreatedAt}
	key := s.key(runsDir, r.ID)
	err := s.txn(ctx, []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(key), "=", 0)},
		op{key: key, v: r}, op{key: s.key(requestsDir, r.ID), v: req})
	if errors.Is(err, errCondition) {
		err = ErrExists
	}
	return wrapName(err, "run", r.ID)
}

// Requests lists the open requests, oldest first, and the revision they
// were read at, for WatchRequests.
func (s *Store) Requests(ctx context.Context) ([]Request, int64, error) {
	reqs, rev, err := list[Request](ctx, s, requestsDir)
	if err != nil {
		return nil, 0, err
	}
	sortByCreation(reqs)
	return reqs, rev, nil
}

func sortByCreation(reqs []Request) {
	for i := 1; i < len(reqs); i++ { // insertion sort: few requests, mostly in order
		for j := i; j > 0 && reqs[j].CreatedAt.Before(reqs[j-1].CreatedAt); j-- {
			reqs[j], reqs[j-1] = reqs[j-1], reqs[j]
		}
	}
}

// WatchRequests reports requests created after revision rev until ctx
// ends or the watch fails; then it closes the channel and the caller
// lists them again.
func (s *Store) WatchRequests(ctx context.Context, rev int64) <-chan []Request {
	return watch(ctx, s, s.prefix+requestsDir, rev, func(ev *clientv3.Event) (Request, bool) {
		var r Request
		if ev.Type != clientv3.EventTypePut || json.Unmarshal(ev.Kv.Value, &r) != nil {
			return r, false
		}
		return r, true
	})
}

// ClaimRequest gives the requested run to site: in one transaction it
// removes the request and records the site in the run. It returns false
// when another site claimed it first, the request is gone, or site is not
// live (its record is absent).
func (s *Store) ClaimRequest(ctx context.Context, id, site string) (api.Run, bool, error) {
	reqKey, runKey := s.key(requestsDir, id), s.key(runsDir, id)
	var req Request
	reqRev, err := s.getRev(ctx, reqKey, &req)
	if errors.Is(err, ErrNotFound) {
		return api.Run{}, false, nil
	}
	if err != nil {
		return api.Run{}, false, err
	}
	var run api.Run
	runRev, err := s.getRev(ctx, runKey, &run)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return api.Run{}, false, err
	}
	if errors.Is(err, ErrNotFound) || run.State != api.StatePending || run.Site != "" {
		// A record that no longer waits: drop the stale request.
		err := s.txn(ctx, []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(reqKey), "=", reqRev)}, op{key: reqKey, del: true})
		if err != nil && !errors.Is(err, errCondition) {
			return api.Run{}, false, err
		}
		return api.Run{}, false, nil
	}
	run.Site = site
	err = s.txn(ctx, []clientv3.Cmp{
		clientv3.Compare(clientv3.ModRevision(reqKey), "=", reqRev),
		clientv3.Compare(clientv3.ModRevision(runKey), "=", runRev),
		// Only a live site claims: one whose lease has expired would have
		// the run settled as lost at once (LoseRun's mirror condition).
		clientv3.Compare(clientv3.CreateRevision(s.key(sitesDir, site)), ">", 0),
	}, op{key: reqKey, del: true}, op{key: runKey, v: run})
	if errors.Is(err, errCondition) {
		return api.Run{}, false, nil
	}
	if err != nil {
		return api.Run{}, false, err
	}
	return run, true, nil
}

// LoseRun settles a run held by a site whose lease has expired. A run that
// had started is lost: with attempts left, the lost attempt is filed and
// the run is requested again (for its target, or the same site when it has
// none or is one of an --all schedule's runs); otherwise it ends lost. A run
// that had not started yet is requested again as it is. It does nothing
// (and returns false) when the run is no longer held by dead, has ended, or
// the site is live again; every check and the write are one transaction, so
// however many sites try, one settles the run.
func (s *Store) LoseRun(ctx context.Context, id, dead string, now time.Time) (api.Run, bool, error) {
	runKey, siteKey := s.key(runsDir, id), s.key(sitesDir, dead)
	var run api.Run
	rev, err := s.getRev(ctx, runKey, &run)
	if errors.Is(err, ErrNotFound) {
		return api.Run{}, false, nil
	}
	if err != nil || run.Site != dead || run.State.Terminal() {
		return api.Run{}, false, err
	}
	reason := fmt.Sprintf("lost: site %s stopped renewing its lease (it stopped, or lost etcd) while it held the run", dead)
	started := run.State == api.StateRunning
	ops := []op{}
	if !started || max(run.Attempt, 1) < max(run.MaxAttempts, 1) {
		if started {
			run.Attempts = append(run.Attempts, api.Attempt{Attempt: max(run.Attempt, 1), State: api.StateLost, Reason: reason,
				ExitCode: run.ExitCode, StartedAt: run.StartedAt, FinishedAt: &now})
			run.Attempt = max(run.Attempt, 1) + 1
			run.RetryAt = nil // a pending run keeps its retry delay
		}
		target := retryTarget(run, dead)
		run.Target = &target
		run.State, run.Site, run.Reason = api.StatePending, "", ""
		run.ExitCode, run.StartedAt, run.ContainerStartedAt, run.Files, run.FilesTotal = nil, nil, nil, nil, 0
		ops = append(ops, op{key: s.key(requestsDir, id), v: Request{Run: id, Tool: run.Tool, Target: target, CreatedAt: now}})
	} else {
		run.State, run.Reason, run.FinishedAt = api.StateLost, reason, &now
	}
	ops = append(ops, op{key: runKey, v: run})
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
	return run, true, nil
}

// retryTarget is where a lost run runs again: anywhere its target allows,
// except that a run meant for the site that lost it (no target, a site
// target, or one run of an --all schedule) waits for that site.
func retryTarget(run api.Run, dead string) toolspec.Target {
	if run.Target != nil && run.Target.EffectiveMode() == toolspec.TargetAny {
		return *run.Target
	}
	if run.Schedule != "" && run.Target == nil {
		return toolspec.Target{Mode: toolspec.TargetAny}
	}
	t := toolspec.Target{Mode: toolspec.TargetSite, Site: dead}
	if run.Target != nil {
		t.Labels = run.Target.Labels
	}
	return t
}

// HeldRuns lists the runs that have not ended and that a site holds
// (their site is set), for finding those of sites that are gone.
func (s *Store) HeldRuns(ctx context.Context) ([]api.Run, error) {
	runs, _, err := list[api.Run](ctx, s, runsDir)
	if err != nil {
		return nil, err
	}
	out := runs[:0]
	for _, r := range runs {
		if r.Site != "" && !r.State.Terminal() {
			out = append(out, r)
		}
	}
	return out, nil
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
