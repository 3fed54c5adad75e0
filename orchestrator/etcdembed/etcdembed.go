package etcdembed

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.etcd.io/etcd/server/v3/embed"
)

// Options configure the embedded member. Ports may be 0 for a member
// that is alone in a new cluster: the server then listens on a free port
// and Endpoints reports it. The members of a cluster need real peer ports.
type Options struct {
	Name      string // member name; default "default"
	Dir       string // data directory (required)
	ClientURL string // e.g. "http://127.0.0.1:2379"
	PeerURL   string // e.g. "http://127.0.0.1:2380"
	// InitialCluster lists every member, this one included with PeerURL,
	// as "name=peerURL,name2=peerURL2". Empty means a new cluster of this
	// member alone.
	InitialCluster string
	// ClusterState is "new" (the default) to start a cluster, or
	// "existing" to join a running one that already has this member added
	// (etcd's MemberAdd); joining needs InitialCluster. etcd reads
	// InitialCluster and ClusterState only when Dir holds no member data:
	// a restarted member keeps the cluster it belongs to.
	ClusterState string
	// ForceNewCluster starts a member that has data as a new cluster of
	// this member alone, keeping its data: etcd's disaster recovery, for
	// the last member of a cluster whose others are gone for good. Each
	// start with it removes every other member again, so it is for one
	// start only. A learner cannot (etcd would fail with no voter left):
	// Start refuses it (ErrLearner).
	ForceNewCluster bool
	// TLS, when set, makes the member serve clients and peers over mutual
	// TLS only: client_url and peer_url must be https.
	TLS *TLS
	// Gateway turns on etcd's HTTP/JSON gateway on the client port (off by
	// default; with TLS it needs a client certificate like any client, and
	// it allows no cross-origin requests).
	Gateway bool
	// AutoCompactionMode is "periodic" or "revision"; "" (the default)
	// leaves compaction off, as etcd does. AutoCompactionRetention is
	// etcd's: a duration ("1h") in periodic mode, a number of revisions
	// in revision mode.
	AutoCompactionMode      string
	AutoCompactionRetention string
	// QuotaBytes is the database's quota, past which etcd raises a
	// NOSPACE alarm and refuses writes; 0 means etcd's default (2 GiB).
	QuotaBytes int64
	LogLevel   string        // zap level; default "warn"
	LogFile    string        // etcd's own log; default Dir + ".log"
	Timeout    time.Duration // how long to wait for the member to be ready; default 60s
}

// DefaultQuotaBytes is etcd's database quota when Options.QuotaBytes is 0.
const DefaultQuotaBytes = 2 << 30

// TLS are the files of a member that serves over mutual TLS. The member's
// certificate serves clients and peers and is its own client certificate
// towards peers. ClientCAFile verifies clients (sites and collaborators);
// PeerCAFile verifies peers (sites only).
type TLS struct {
	CertFile, KeyFile        string
	ClientCAFile, PeerCAFile string
}

// Server is a running embedded etcd member.
type Server struct {
	etcd      *embed.Etcd
	endpoints []string
	closed    sync.Once
}

// Start starts the member and waits until it serves clients.
func Start(ctx context.Context, o Options) (*Server, error) {
	cfg := embed.NewConfig()
	if o.Name != "" {
		cfg.Name = o.Name
	}
	cfg.Dir = o.Dir
	cfg.LogLevel = o.LogLevel
	if cfg.LogLevel == "" {
		cfg.LogLevel = "warn"
	}
	cfg.LogOutputs = []string{o.LogFile}
	if o.LogFile == "" {
		cfg.LogOutputs = []string{filepath.Clean(o.Dir) + ".log"}
	}
	client, err := parseURL("client", o.ClientURL, "http://127.0.0.1:2379")
	if err != nil {
		return nil, err
	}
	peer, err := parseURL("peer", o.PeerURL, "http://127.0.0.1:2380")
	if err != nil {
		return nil, err
	}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*client}, []url.URL{*client}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*peer}, []url.URL{*peer}
	// etcd allows one learner by default; a federation keeps every site's
	// member but the voters' a learner. Every member must allow as many:
	// each checks the limit as it applies the addition of a learner.
	cfg.MaxLearners = MaxLearners
	if o.AutoCompactionMode != "" {
		cfg.AutoCompactionMode, cfg.AutoCompactionRetention = o.AutoCompactionMode, o.AutoCompactionRetention
	}
	cfg.QuotaBackendBytes = o.QuotaBytes
	if err := secure(cfg, o, client, peer); err != nil {
		return nil, err
	}
	if err := cluster(cfg, o, peer); err != nil {
		return nil, err
	}
	if o.ForceNewCluster {
		if err := canForce(o.Dir, cfg.Name); err != nil {
			return nil, err
		}
		cfg.ForceNewCluster = true
	}

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("start embedded etcd in %s: %w", o.Dir, err)
	}
	timeout := o.Timeout
	if timeout == 0 {
		timeout = time.Minute
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("embedded etcd: %w", err)
	case <-time.After(timeout):
		e.Close()
		return nil, fmt.Errorf("embedded etcd in %s not ready after %s", o.Dir, timeout)
	case <-ctx.Done():
		e.Close()
		return nil, ctx.Err()
	}
	s := &Server{etcd: e}
	for _, l := range e.Clients {
		s.endpoints = append(s.endpoints, client.Scheme+"://"+l.Addr().String())
	}
	return s, nil
}

// secure sets TLS, the gateway and cross-origin requests on cfg: a browser
// must never reach the member (a web page could otherwise write to it).
func secure(cfg *embed.Config, o Options, client, peer *url.URL) error {
	cfg.EnableGRPCGateway = o.Gateway
	cfg.CORS = map[string]struct{}{} // no cross-origin requests, gateway or not
	if o.TLS == nil {
		return nil
	}
	if client.Scheme != "https" || peer.Scheme != "https" {
		return fmt.Errorf("embedded etcd serves TLS only: client URL %s and peer URL %s must be https://", client, peer)
	}
	info := func(ca string) transport.TLSInfo {
		return transport.TLSInfo{CertFile: o.TLS.CertFile, KeyFile: o.TLS.KeyFile, TrustedCAFile: ca, ClientCertAuth: true,
			ClientCertFile: o.TLS.CertFile, ClientKeyFile: o.TLS.KeyFile}
	}
	cfg.ClientTLSInfo, cfg.PeerTLSInfo = info(o.TLS.ClientCAFile), info(o.TLS.PeerCAFile)
	cfg.TlsMinVersion = "TLS1.3"
	return nil
}

// cluster sets the initial cluster and its state on cfg.
func cluster(cfg *embed.Config, o Options, peer *url.URL) error {
	switch o.ClusterState {
	case "", embed.ClusterStateFlagNew:
	case embed.ClusterStateFlagExisting:
		if o.InitialCluster == "" {
			return fmt.Errorf("embedded etcd: joining an existing cluster needs the initial cluster")
		}
		cfg.ClusterState = embed.ClusterStateFlagExisting
	default:
		return fmt.Errorf("embedded etcd: cluster state %q: want %s or %s", o.ClusterState, embed.ClusterStateFlagNew, embed.ClusterStateFlagExisting)
	}
	if o.InitialCluster == "" {
		cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
		return nil
	}
	if peer.Port() == "0" {
		return fmt.Errorf("embedded etcd peer URL %s: port 0 works only for a member alone in a new cluster", peer)
	}
	cfg.InitialCluster = o.InitialCluster
	return nil
}

func parseURL(what, s, def string) (*url.URL, error) {
	if s == "" {
		s = def
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("embedded etcd %s URL %q is not a URL", what, s)
	}
	return u, nil
}

// Learner reports whether the member is a learner: added to the cluster
// with `federation add-site`, it gets the log but does not vote, nor serve
// clients, until it is promoted.
func (s *Server) Learner() bool { return s.etcd.Server.IsLearner() }

// ID is the member's ID.
func (s *Server) ID() uint64 { return uint64(s.etcd.Server.MemberID()) }

// OtherEndpoints are the client URLs of the cluster's other members, as
// this member knows them.
func (s *Server) OtherEndpoints() []string {
	var urls []string
	for _, m := range s.etcd.Server.Cluster().Members() {
		if m.ID != s.etcd.Server.MemberID() {
			urls = append(urls, m.ClientURLs...)
		}
	}
	return urls
}

// Members are the cluster's members as this member knows them (what it
// last applied), and the cluster's ID: a learner answers no member list,
// and no member answers a current one without a quorum.
func (s *Server) Members() ([]*etcdserverpb.Member, uint64) {
	var out []*etcdserverpb.Member
	for _, m := range s.etcd.Server.Cluster().Members() {
		out = append(out, &etcdserverpb.Member{ID: uint64(m.ID), Name: m.Name, PeerURLs: m.PeerURLs, ClientURLs: m.ClientURLs, IsLearner: m.IsLearner})
	}
	return out, uint64(s.etcd.Server.Cluster().ID())
}

// Endpoints are the client URLs the member actually listens on.
func (s *Server) Endpoints() []string { return s.endpoints }

// Err reports a fatal server error after start; it is closed on Close.
func (s *Server) Err() <-chan error { return s.etcd.Err() }

// Close stops the member and waits for it to release its data directory.
func (s *Server) Close() {
	s.closed.Do(s.etcd.Close)
}

// MaxLearners is how many learners a cluster of mao's members may have: a
// federation of at most that many sites besides its voters.
const MaxLearners = 32

// ErrLearner is Start's refusal to force a new cluster from a learner.
var ErrLearner = errors.New("the member is a learner, which etcd cannot make a cluster of alone")

// canForce checks that the member named name in dir has data and votes,
// reading the membership it last applied from its database (etcd is not
// running yet). etcd panics when it forces a new cluster from a learner.
func canForce(dir, name string) error {
	db := filepath.Join(dir, "member", "snap", "db")
	if _, err := os.Stat(db); err != nil {
		return fmt.Errorf("force a new cluster: %s holds no member's data to keep: %w", dir, err)
	}
	b, err := bolt.Open(db, 0o600, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		return fmt.Errorf("force a new cluster: read the member's database: %w", err)
	}
	defer b.Close()
	found, learner := false, false
	err = b.View(func(tx *bolt.Tx) error {
		members := tx.Bucket([]byte("members"))
		if members == nil {
			return errors.New("it lists no members")
		}
		return members.ForEach(func(_, v []byte) error {
			var m struct {
				Name      string `json:"name"`
				IsLearner bool   `json:"isLearner"`
			}
			if json.Unmarshal(v, &m) == nil && m.Name == name {
				found, learner = true, m.IsLearner
			}
			return nil
		})
	})
	switch {
	case err != nil:
		return fmt.Errorf("force a new cluster: read the member's database: %w", err)
	case !found:
		return fmt.Errorf("force a new cluster: the member's database lists no member named %s", name)
	case learner:
		return fmt.Errorf("force a new cluster: %w", ErrLearner)
	}
	return nil
}
