package store

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/orchestrator/errs"
)

// Federation describes the etcd cluster the sites share: its members, the
// leader, and each member's health as it answers a status request.
func (s *Store) Federation(ctx context.Context) (api.Federation, error) {
	members, clusterID, err := s.members(ctx)
	if err != nil {
		return api.Federation{}, err
	}
	out := api.Federation{ClusterID: fmt.Sprintf("%x", clusterID), Members: make([]api.Member, len(members))}
	statuses := s.statuses(ctx, members)
	for i, m := range members {
		out.Members[i] = api.Member{ID: fmt.Sprintf("%x", m.ID), Name: m.Name, PeerURLs: m.PeerURLs,
			ClientURLs: m.ClientURLs, Learner: m.IsLearner, Health: "not started"}
		st, ok := statuses[m.ID]
		switch {
		case ok && st.err != nil:
			out.Members[i].Health = "unreachable: " + st.err.Error()
		case ok:
			out.Members[i].Health, out.Members[i].Version = "ok", st.resp.Version
			if len(st.resp.Errors) > 0 {
				out.Members[i].Health = strings.Join(st.resp.Errors, "; ")
			}
			if st.resp.Leader == m.ID {
				out.Members[i].Leader, out.Leader = true, m.Name
			}
		case len(m.ClientURLs) > 0:
			out.Members[i].Health = "unreachable"
		}
	}
	return out, nil
}

// memberStatus is a member's answer to a status request, or why none came.
type memberStatus struct {
	resp *clientv3.StatusResponse
	err  error
}

// statuses asks every member for its status, at its advertised client
// URLs and at the client's own endpoints (a member listening on port 0
// advertises that port), and files each answer under the ID of the member
// that gave it. A member that did not answer at any of its URLs gets the
// error of the last try.
func (s *Store) statuses(ctx context.Context, members []*etcdserverpb.Member) map[uint64]memberStatus {
	owner := map[string]uint64{} // URL -> member, for errors
	var urls []string
	for _, m := range members {
		for _, u := range m.ClientURLs {
			owner[u] = m.ID
			urls = append(urls, u)
		}
	}
	urls = append(urls, s.c.Endpoints()...)
	var mu sync.Mutex
	out := map[uint64]memberStatus{}
	var wg sync.WaitGroup
	for _, u := range urls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sctx, cancel := context.WithTimeout(ctx, s.timeout)
			defer cancel()
			resp, err := s.c.Status(sctx, u)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				out[resp.Header.MemberId] = memberStatus{resp: resp}
			case owner[u] != 0:
				if _, ok := out[owner[u]]; !ok {
					out[owner[u]] = memberStatus{err: err}
				}
			}
		}()
	}
	wg.Wait()
	return out
}

func (s *Store) members(ctx context.Context) ([]*etcdserverpb.Member, uint64, error) {
	// A linearizable list is current; without quorum (a member was added
	// and has not started yet) it cannot be had, and the member asked
	// answers alone (serializable), perhaps a moment behind.
	lctx, cancel := context.WithTimeout(ctx, min(s.timeout, linearizableWait))
	resp, err := s.c.MemberList(lctx)
	cancel()
	if err != nil && ctx.Err() == nil {
		sctx, cancel := context.WithTimeout(ctx, s.timeout)
		defer cancel()
		resp, err = s.c.MemberList(sctx, clientv3.WithSerializable())
		if err != nil {
			return nil, 0, fmt.Errorf("list etcd members: %w", s.unavailable(sctx, err))
		}
	}
	if err != nil {
		return nil, 0, fmt.Errorf("list etcd members: %w", err)
	}
	members := resp.Members
	sort.Slice(members, func(i, j int) bool { return members[i].Name < members[j].Name })
	return members, resp.Header.ClusterId, nil
}

// linearizableWait bounds the try of a current member list.
const linearizableWait = 2 * time.Second

// memberAdd adds a member. etcd refuses while a member has not been
// connected to its peers for a few seconds (after a restart, say), as an
// unhealthy cluster: it tries again for up to unhealthyWait.
func (s *Store) memberAdd(ctx context.Context, peerURL string) (*clientv3.MemberAddResponse, error) {
	deadline := time.Now().Add(unhealthyWait)
	for {
		actx, cancel := context.WithTimeout(ctx, s.timeout)
		// As a learner, the new member does not count towards quorum until
		// it has caught up and promoted itself (PromoteSelf).
		resp, err := s.admin().MemberAddAsLearner(actx, []string{peerURL})
		cancel()
		if err == nil {
			return resp, nil
		}
		if !errors.Is(err, rpctypes.ErrUnhealthy) || time.Now().After(deadline) {
			if errors.Is(err, rpctypes.ErrUnhealthy) {
				return nil, errs.New(errs.ErrUnavailable, "etcd refuses new members until every member has been connected for a while: "+err.Error())
			}
			return nil, s.unavailable(actx, err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

const unhealthyWait = 15 * time.Second

// PromoteSelf makes the learner member id, this site's, a voting member,
// trying every retry interval until etcd takes it (the learner has caught
// up with the leader) or ctx ends. A member that votes already is done.
func (s *Store) PromoteSelf(ctx context.Context, id uint64, retry time.Duration) error {
	for {
		pctx, cancel := context.WithTimeout(ctx, s.timeout)
		_, err := s.admin().MemberPromote(pctx, id)
		cancel()
		if err == nil || errors.Is(err, rpctypes.ErrMemberNotLearner) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("promote etcd member %x: %w (last: %v)", id, ctx.Err(), err)
		case <-time.After(retry):
		}
	}
}

// RemoveSite removes a site that is not live: its etcd member, if it has
// one, and its lasting record. A live site is errs.ErrInUse. name may also be a member's ID in hex, for a member that was
// added but never started (it has no name yet). A site without either is
// errs.ErrNotFound.
func (s *Store) RemoveSite(ctx context.Context, name string) error {
	var live api.Site
	switch err := s.get(ctx, s.key(sitesDir, name), &live); {
	case err == nil:
		return fmt.Errorf("site %s is live (API %s); stop its orchestrator first: %w", name, live.APIAddr, errs.ErrInUse)
	case !errors.Is(err, errs.ErrNotFound):
		return err
	}
	members, _, err := s.members(ctx)
	if err != nil {
		return err
	}
	removed := false
	for _, m := range members {
		if m.Name != name && fmt.Sprintf("%x", m.ID) != name {
			continue // a member that has not started has no name yet: its ID
		}
		rctx, cancel := context.WithTimeout(ctx, s.timeout)
		_, err := s.admin().MemberRemove(rctx, m.ID)
		cancel()
		if err != nil {
			return fmt.Errorf("remove etcd member %s: %w", name, s.unavailable(rctx, err))
		}
		removed = true
	}
	err = s.ForgetSite(ctx, name)
	if err == nil || errors.Is(err, errs.ErrNotFound) && removed {
		return s.removeSiteUser(ctx, name)
	}
	switch {
	case errors.Is(err, errs.ErrNotFound):
		// A site that joined but whose member never started has no name
		// in etcd yet: say which members those are.
		var unnamed []string
		for _, m := range members {
			if m.Name == "" {
				unnamed = append(unnamed, fmt.Sprintf("%x (peer %s)", m.ID, strings.Join(m.PeerURLs, ",")))
			}
		}
		if len(unnamed) > 0 {
			return fmt.Errorf("%w; a member that has joined but not started has no name yet, remove it by its ID: %s",
				err, strings.Join(unnamed, ", "))
		}
	}
	return err
}
