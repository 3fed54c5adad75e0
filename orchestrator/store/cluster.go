package store

import (
	"cmp"
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

// Federation describes the etcd cluster the sites share: its members (the
// witnesses' marked), the leader, the voters, and each member's health,
// database size and alarms as it answers a status request.
func (s *Store) Federation(ctx context.Context) (api.Federation, error) {
	return s.federation(ctx, true)
}

// Members is Federation without the alarms, which etcd lists through a
// raft request: for voters.Keeper, which looks every few seconds. A
// member's alarms are in its health then.
func (s *Store) Members(ctx context.Context) (api.Federation, error) { return s.federation(ctx, false) }

func (s *Store) federation(ctx context.Context, withAlarms bool) (api.Federation, error) {
	members, clusterID, err := s.members(ctx)
	if err != nil {
		return api.Federation{}, err
	}
	out := api.Federation{ClusterID: fmt.Sprintf("%x", clusterID), Members: make([]api.Member, len(members))}
	var alarms map[uint64][]string
	alarmed := make(chan struct{})
	go func() {
		defer close(alarmed)
		if withAlarms {
			alarms = s.alarms(ctx)
		}
	}()
	statuses := s.statuses(ctx, members)
	<-alarmed
	// Without a quorum the witnesses' records are read from the member
	// asked alone; without them, no member is marked.
	witnesses, _ := s.witnesses(ctx, clientv3.WithSerializable())
	for i, m := range members {
		out.Members[i] = api.Member{ID: fmt.Sprintf("%x", m.ID), Name: m.Name, PeerURLs: m.PeerURLs,
			ClientURLs: m.ClientURLs, Learner: m.IsLearner, Witness: m.Name != "" && witnesses[m.Name],
			Alarms: alarms[m.ID], Health: "not started"}
		if !m.IsLearner {
			out.Voters++
		}
		st, ok := statuses[m.ID]
		switch {
		case ok && st.err != nil:
			out.Members[i].Health = "unreachable: " + st.err.Error()
		case ok:
			out.Members[i].Health, out.Members[i].Version = "ok", st.resp.Version
			out.Members[i].DBSize, out.Members[i].DBSizeInUse = st.resp.DbSize, st.resp.DbSizeInUse
			out.Members[i].DBQuota = st.resp.DbSizeQuota
			if problems := healthErrors(st.resp.Errors, alarms != nil); len(problems) > 0 {
				out.Members[i].Health = strings.Join(problems, "; ")
			}
			if st.resp.Leader == m.ID {
				out.Members[i].Leader, out.Leader = true, m.Name
			}
		case len(m.ClientURLs) > 0:
			out.Members[i].Health = "unreachable"
		}
	}
	if withAlarms {
		out.Warnings = append(out.Warnings, s.spaceWarnings(ctx, out.Members)...)
	}
	return out, nil
}

// Thresholds of spaceWarnings.
const (
	warnQuotaPercent = 80       // a database this full of its quota is near NOSPACE
	warnFreePercent  = 50       // this much of a database free: it is not defragmented
	warnFreeBytes    = 64 << 20 // and at least this much
	warnRevisions    = 100000   // a history this long never compacted: compaction is off
)

// spaceWarnings say what threatens etcd's space: a member's database
// near its quota, one with a large free share (never defragmented), and a
// long history of which the first revision is still there (never
// compacted). An external cluster's compaction and defragmentation are
// its administrators' (README, "An external etcd").
func (s *Store) spaceWarnings(ctx context.Context, members []api.Member) []string {
	var out []string
	for _, m := range members {
		name := cmp.Or(m.Name, m.ID)
		if m.DBQuota > 0 && m.DBSize*100 >= m.DBQuota*warnQuotaPercent {
			out = append(out, fmt.Sprintf("member %s's database is %d%% of its quota (%d of %d bytes): past it etcd raises NOSPACE and "+
				"takes no more writes", name, m.DBSize*100/m.DBQuota, m.DBSize, m.DBQuota))
		}
		if free := m.DBSize - m.DBSizeInUse; m.DBSizeInUse > 0 && free >= warnFreeBytes && free*100 >= m.DBSize*warnFreePercent {
			out = append(out, fmt.Sprintf("member %s's database is %d bytes, of which only %d in use: it is not being defragmented "+
				"(etcdctl defrag, one member at a time)", name, m.DBSize, m.DBSizeInUse))
		}
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	resp, err := s.c.Get(ctx, s.prefix, clientv3.WithRev(1), clientv3.WithCountOnly(), clientv3.WithSerializable())
	if err == nil && resp.Header.Revision > warnRevisions {
		out = append(out, fmt.Sprintf("etcd's history has never been compacted (%d revisions, the first still there): turn on "+
			"auto-compaction (etcd --auto-compaction-retention), or the database grows until NOSPACE", resp.Header.Revision))
	}
	return out
}

// alarms lists the cluster's alarms by member, nil when etcd does not
// answer (it needs a quorum).
func (s *Store) alarms(ctx context.Context) map[uint64][]string {
	actx, cancel := context.WithTimeout(ctx, min(s.timeout, linearizableWait))
	defer cancel()
	resp, err := s.c.AlarmList(actx)
	if err != nil {
		return nil
	}
	out := map[uint64][]string{}
	for _, a := range resp.Alarms {
		out[a.MemberID] = append(out[a.MemberID], a.Alarm.String())
	}
	return out
}

// healthErrors are the errors of a member's status answer that say it is
// unwell, its alarms left out when they are listed apart (listed).
func healthErrors(problems []string, listed bool) []string {
	var out []string
	for _, e := range problems {
		if listed && strings.Contains(e, "alarm:") {
			continue
		}
		out = append(out, e)
	}
	return out
}

// SetEndpoints points the store's etcd clients (the site's and the
// administration's) at urls: the voting members, which serve clients (a
// learner does not; voters.Keeper tells them).
func (s *Store) SetEndpoints(urls []string) {
	s.epMu.Lock()
	defer s.epMu.Unlock()
	s.c.SetEndpoints(urls...)
	if s.adminC != nil {
		s.adminC.SetEndpoints(urls...)
	}
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
	s.epMu.RLock()
	defer s.epMu.RUnlock()
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
	// and has not started yet) it cannot be had, and the site's own
	// member tells what it knows (a learner answers no member list), or
	// else the member asked answers alone (serializable), perhaps a moment
	// behind.
	lctx, cancel := context.WithTimeout(ctx, min(s.timeout, linearizableWait))
	resp, err := s.c.MemberList(lctx)
	cancel()
	switch {
	case err != nil && ctx.Err() == nil && s.local != nil:
		members, id := s.local()
		resp, err = &clientv3.MemberListResponse{Header: &etcdserverpb.ResponseHeader{ClusterId: id}, Members: members}, nil
	case err != nil && ctx.Err() == nil:
		sctx, cancel := context.WithTimeout(ctx, s.timeout)
		defer cancel()
		if resp, err = s.c.MemberList(sctx, clientv3.WithSerializable()); err != nil {
			return nil, 0, fmt.Errorf("list etcd members: %w", s.unavailable(sctx, err))
		}
	case err != nil:
		return nil, 0, fmt.Errorf("list etcd members: %w", err)
	}
	members := resp.Members
	sort.Slice(members, func(i, j int) bool { return members[i].Name < members[j].Name })
	return members, resp.Header.ClusterId, nil
}

// linearizableWait bounds the try of a current member list.
const linearizableWait = 2 * time.Second

// memberAdd adds a member, as a learner (membershipChange).
func (s *Store) memberAdd(ctx context.Context, peerURL string) (*clientv3.MemberAddResponse, error) {
	var resp *clientv3.MemberAddResponse
	err := s.membershipChange(ctx, "new members", func(actx context.Context) (err error) {
		// As a learner, the new member does not count towards quorum until
		// it has caught up and promoted itself (voters.Keeper), if ever.
		resp, err = s.admin().MemberAddAsLearner(actx, []string{peerURL})
		return err
	})
	return resp, err
}

// membershipChange makes a change of the cluster's members with change.
// etcd refuses one while a member has not been connected to its peers for
// a few seconds (after a restart, say), as an unhealthy cluster: it tries
// again for up to unhealthyWait.
func (s *Store) membershipChange(ctx context.Context, what string, change func(context.Context) error) error {
	deadline := s.clock.After(unhealthyWait)
	for {
		actx, cancel := context.WithTimeout(ctx, s.timeout)
		err := change(actx)
		cancel()
		if err == nil {
			return nil
		}
		if !errors.Is(err, rpctypes.ErrUnhealthy) {
			return s.unavailable(actx, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline:
			return errs.New(errs.ErrUnavailable, "etcd refuses "+what+" until every member has been connected for a while: "+err.Error())
		case <-s.clock.After(500 * time.Millisecond):
		}
	}
}

const unhealthyWait = 15 * time.Second

// RemoveSite removes a site that is not live: its etcd member, if it has
// one, its lasting record (or a witness's), and its etcd user. A live site
// is errs.ErrInUse, and so is a member that answers its status (its
// orchestrator runs: a witness has no site record). name may also be a
// member's ID in hex, for a member that was added but never started (it
// has no name yet). A site without either is errs.ErrNotFound. The
// removal is made under the voters' lock (LockVoters), so that no
// learner promotes itself on a member list that still counts it; a
// learner that may take the removed voter's place does so afterwards.
func (s *Store) RemoveSite(ctx context.Context, name string) error {
	var live api.Site
	switch err := s.get(ctx, s.key(sitesDir, name), &live); {
	case err == nil:
		return fmt.Errorf("site %s is live (API %s); stop its orchestrator first: %w", name, live.APIAddr, errs.ErrInUse)
	case !errors.Is(err, errs.ErrNotFound):
		return err
	}
	unlock, err := s.lockVotersWait(ctx, "federation remove-site "+name)
	if err != nil {
		return err
	}
	defer unlock()
	members, _, err := s.members(ctx)
	if err != nil {
		return err
	}
	statuses := s.statuses(ctx, members)
	for _, m := range members {
		if (m.Name == name || fmt.Sprintf("%x", m.ID) == name) && statuses[m.ID].resp != nil {
			return fmt.Errorf("the etcd member of %s answers: its orchestrator runs; stop it first, or let it leave "+
				"(maoctl federation leave at it; orchestrator -leave for a witness): %w", name, errs.ErrInUse)
		}
	}
	removed := false
	for _, m := range members {
		if m.Name != name && fmt.Sprintf("%x", m.ID) != name {
			continue // a member that has not started has no name yet: its ID
		}
		if err := s.RemoveMember(ctx, fmt.Sprintf("%x", m.ID)); err != nil {
			return fmt.Errorf("site %s: %w", name, err)
		}
		removed = true
	}
	witness, err := s.forgetWitness(ctx, name)
	if err != nil {
		return err
	}
	removed = removed || witness
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
