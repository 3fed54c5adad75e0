package store

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/authpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/mao-research/mao/orchestrator/errs"
	"github.com/mao-research/mao/orchestrator/pki"
)

// etcd roles of a federation with a PKI: a site reads and writes the
// prefix, a collaborator reads it. The federation's administration uses
// etcd's root user (cluster membership, users, compaction).
const (
	roleSite   = "mao-site"
	roleReader = "mao-reader"
)

// admin is the client for what needs etcd's root role: the
// administration client when the store has one, else its own.
func (s *Store) admin() *clientv3.Client {
	if s.adminC != nil {
		return s.adminC
	}
	return s.c
}

// SetUpAuth turns on etcd's access control the way mao uses it, once per
// cluster: roles mao-site (read and write the prefix) and mao-reader (read
// it), the users root and site:<site> (no passwords: etcd takes the user
// from the client certificate's common name), then authentication. A
// cluster whose authentication is on already is left as it is. It needs
// the administration client.
func (s *Store) SetUpAuth(ctx context.Context, site string) error {
	ctx, cancel := context.WithTimeout(ctx, 4*s.timeout)
	defer cancel()
	c := s.admin()
	st, err := c.AuthStatus(ctx)
	if err != nil {
		return fmt.Errorf("etcd auth status: %w", s.unavailable(ctx, err))
	}
	if st.Enabled {
		return nil
	}
	end := clientv3.GetPrefixRangeEnd(s.prefix)
	for _, r := range []struct {
		role string
		perm clientv3.PermissionType
	}{{roleSite, clientv3.PermissionType(authpb.READWRITE)}, {roleReader, clientv3.PermissionType(authpb.READ)}} {
		if _, err := c.RoleAdd(ctx, r.role); err != nil && !errors.Is(err, rpctypes.ErrRoleAlreadyExist) {
			return fmt.Errorf("etcd role %s: %w", r.role, s.unavailable(ctx, err))
		}
		if _, err := c.RoleGrantPermission(ctx, r.role, s.prefix, end, r.perm); err != nil {
			return fmt.Errorf("etcd role %s: grant %s: %w", r.role, s.prefix, s.unavailable(ctx, err))
		}
	}
	if err := s.addUser(ctx, pki.RootName, "root"); err != nil {
		return err
	}
	if err := s.addUser(ctx, pki.SiteUser(site), roleSite); err != nil {
		return err
	}
	if _, err := c.AuthEnable(ctx); err != nil {
		return fmt.Errorf("enable etcd auth: %w", s.unavailable(ctx, err))
	}
	return nil
}

// AddSiteUser gives a joining site its etcd user, site:<name>.
func (s *Store) AddSiteUser(ctx context.Context, site string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*s.timeout)
	defer cancel()
	return s.addUser(ctx, pki.SiteUser(site), roleSite)
}

// AddReader gives a collaborator a read-only etcd user, reader:<name>.
func (s *Store) AddReader(ctx context.Context, name string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*s.timeout)
	defer cancel()
	return s.addUser(ctx, pki.ReaderUser(name), roleReader)
}

// addUser creates a user without a password and grants it role; a user
// that exists is granted the role again.
func (s *Store) addUser(ctx context.Context, user, role string) error {
	c := s.admin()
	_, err := c.UserAddWithOptions(ctx, user, "", &clientv3.UserAddOptions{NoPassword: true})
	if err != nil && !errors.Is(err, rpctypes.ErrUserAlreadyExist) {
		return fmt.Errorf("etcd user %s: %w", user, s.unavailable(ctx, err))
	}
	if _, err := c.UserGrantRole(ctx, user, role); err != nil {
		return fmt.Errorf("etcd user %s: grant role %s: %w", user, role, s.unavailable(ctx, err))
	}
	return nil
}

// removeSiteUser deletes a removed site's etcd user, so that its
// certificate no longer opens etcd. Only a store with the root's client
// (a federation with certificates) has users to delete.
func (s *Store) removeSiteUser(ctx context.Context, site string) error {
	if s.adminC == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	_, err := s.adminC.UserDelete(ctx, pki.SiteUser(site))
	if err != nil && !errors.Is(err, rpctypes.ErrUserNotFound) && !errors.Is(err, rpctypes.ErrUserEmpty) {
		return fmt.Errorf("site %s is removed, but not its etcd user %s: %w", site, pki.SiteUser(site), s.unavailable(ctx, err))
	}
	return nil
}

// joinDir holds the join grants: join-tokens/<id>.
const joinDir = "join-tokens/"

// SaveJoinGrant stores a join grant until it expires (under a lease of
// its remaining time, by the store's clock, which set its expiry).
func (s *Store) SaveJoinGrant(ctx context.Context, g pki.JoinGrant) error {
	ttl := g.ExpiresAt.Sub(s.clock.Now())
	if ttl < time.Second {
		return fmt.Errorf("join grant for %s: expires before it is stored", g.Site)
	}
	lctx, cancel := context.WithTimeout(ctx, s.timeout)
	lease, err := s.c.Grant(lctx, int64(ttl/time.Second))
	cancel()
	if err != nil {
		return fmt.Errorf("join grant: %w", s.unavailable(lctx, err))
	}
	return wrapName(s.create(ctx, s.key(joinDir, g.ID), g, nil, clientv3.WithLease(lease.ID)), "join token", g.ID)
}

// TakeJoinGrant deletes the grant of join token id if check accepts it,
// and returns it, in one compare-and-swap: a token is used once, and a
// wrong secret does not use it up. ErrNotFound when there is none (never
// issued, used, or expired); check's error when it refuses.
func (s *Store) TakeJoinGrant(ctx context.Context, id string, check func(pki.JoinGrant) error) (pki.JoinGrant, error) {
	key := s.key(joinDir, id)
	var g pki.JoinGrant
	rev, err := s.getRev(ctx, key, &g)
	if err != nil {
		return g, wrapName(err, "join token", id)
	}
	if err := check(g); err != nil {
		return pki.JoinGrant{}, err
	}
	err = s.txn(ctx, []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", rev)}, op{key: key, del: true})
	if errors.Is(err, errCondition) {
		return pki.JoinGrant{}, wrapName(errs.ErrNotFound, "join token", id) // used a moment ago
	}
	return g, err
}

// AddLearner adds an etcd member for a joining site, as a learner (it
// does not count towards quorum until it has caught up and promoted
// itself), and returns the cluster's members as etcd's initial cluster
// ("name=peerURL,..."), the new one named site, and their client URLs.
// etcd refuses while another added member has not started (its name is
// unknown): ErrInUse.
func (s *Store) AddLearner(ctx context.Context, site, peerURL string) (initial string, clientURLs []string, err error) {
	members, _, err := s.members(ctx)
	if err != nil {
		return "", nil, err
	}
	for _, m := range members {
		switch {
		case m.Name == site:
			return "", nil, fmt.Errorf("site %s is an etcd member already: %w", site, errs.ErrExists)
		case m.Name == "":
			return "", nil, fmt.Errorf("member %x (%s) was added but has not started yet; start that site first, or remove it (federation remove-site %[1]x): %[3]w",
				m.ID, strings.Join(m.PeerURLs, ","), errs.ErrInUse)
		}
		for _, p := range m.PeerURLs {
			if p == peerURL {
				return "", nil, fmt.Errorf("peer URL %s is member %s's already: %w", p, m.Name, errs.ErrExists)
			}
		}
	}
	resp, err := s.memberAdd(ctx, peerURL)
	if err != nil {
		return "", nil, fmt.Errorf("add etcd member %s: %w", site, err)
	}
	var cluster []string
	for _, m := range resp.Members {
		name := m.Name
		if m.ID == resp.Member.ID {
			name = site
		}
		for _, p := range m.PeerURLs {
			cluster = append(cluster, name+"="+p)
		}
		if m.ID != resp.Member.ID {
			clientURLs = append(clientURLs, m.ClientURLs...)
		}
	}
	sort.Strings(cluster)
	return strings.Join(cluster, ","), clientURLs, nil
}

// caKey is where the federation's CA certificate is published.
const caKey = "federation-ca"

// caRecord is the value of caKey: the CA certificate (never its key).
type caRecord struct {
	Cert        string    `json:"cert"`
	Fingerprint string    `json:"fingerprint_sha256"`
	FoundedBy   string    `json:"founded_by"`
	CreatedAt   time.Time `json:"created_at"`
}

// ClaimFederationCA publishes ca's certificate as the federation's, unless
// one is published already, and returns the published certificate's
// fingerprint: ca's when this site is the first (it founds the
// federation's PKI), another's when a site was first.
func (s *Store) ClaimFederationCA(ctx context.Context, site string, ca *pki.CA) (string, error) {
	rec := caRecord{Cert: string(ca.PEM), Fingerprint: ca.Fingerprint(), FoundedBy: site, CreatedAt: s.clock.Now().UTC()}
	err := s.create(ctx, s.key(caKey, ""), rec, nil)
	if err == nil {
		return rec.Fingerprint, nil
	}
	if !errors.Is(err, errs.ErrExists) {
		return "", err
	}
	var cur caRecord
	if err := s.get(ctx, s.key(caKey, ""), &cur); err != nil {
		return "", err
	}
	return cur.Fingerprint, nil
}
