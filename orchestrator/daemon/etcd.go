package daemon

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"

	"github.com/mao-research/mao/orchestrator/config"
	"github.com/mao-research/mao/orchestrator/etcdclient"
	"github.com/mao-research/mao/orchestrator/etcdembed"
	"github.com/mao-research/mao/orchestrator/peer"
	"github.com/mao-research/mao/orchestrator/pki"
	"github.com/mao-research/mao/orchestrator/store"
)

// etcdAccess is how this site reaches etcd, and with which certificates.
type etcdAccess struct {
	client *clientv3.Client // as this site: reads and writes the prefix
	admin  *clientv3.Client // as the federation's administration (etcd's root); nil: client
	errs   <-chan error     // the embedded member's fatal errors
	// self is the embedded member's ID (hex, as federation status shows
	// it); "" for a site without a member of its own.
	self string
	// endpoint is the embedded member's own client URL; "" without one.
	endpoint string
	// stopMember stops the embedded member (nil without one); the
	// cleanup stack stops it too, which is then a no-op.
	stopMember func()
	// members are the members as the embedded member knows them (nil
	// without one), for federation status without a quorum.
	members func() ([]*etcdserverpb.Member, uint64)
	// managed: the federation's etcd is its sites' members (this site's
	// embedded one, or theirs, reached with the site's certificate), whose
	// votes the federation manages (package voters); false for an external
	// etcd, whose members are its administrators' business.
	managed bool
	pki     pki.Dir // "" for a site without the federation's certificates
	founded bool    // this site founded the federation now
}

// openEtcd starts the embedded member (after getting the site's
// certificates: founding a federation, joining one with a token, or those
// of an earlier start) or reaches the external cluster, and connects.
// With force, the embedded member starts as a new cluster of itself alone
// (etcd's disaster recovery), which the log warns of.
func openEtcd(ctx context.Context, cfg config.Config, force bool, log *slog.Logger, stack *cleanup, dial ...grpc.DialOption) (*etcdAccess, error) {
	acc := &etcdAccess{}
	endpoints := cfg.Etcd.Endpoints
	var member etcdembed.Options
	if force && !cfg.Etcd.Embedded() {
		return nil, errors.New("-force-new-cluster is for a site's embedded etcd member, and etcd.endpoints names an external cluster: " +
			"recover that cluster with etcd's own tools")
	}
	if cfg.Etcd.Embedded() {
		dir := pki.Dir(filepath.Join(cfg.Site.DataDir, "pki"))
		_, err := os.Stat(filepath.Join(cfg.Site.DataDir, "etcd", "member"))
		if err == nil && !dir.Exists() {
			return nil, errors.New("this site's embedded etcd member was made before sites had certificates (mao 0.1), " +
				"and its federation cannot be secured in place: see docs/security.md, \"Upgrading a site made before certificates (mao 0.1)\"")
		}
		if force && err != nil {
			return nil, fmt.Errorf("-force-new-cluster keeps this site's etcd data, and it has none (%s): start it without the flag", filepath.Join(cfg.Site.DataDir, "etcd"))
		}
		member = etcdembed.Options{Name: cfg.Site.Name, Dir: filepath.Join(cfg.Site.DataDir, "etcd"),
			ClientURL: cfg.Etcd.ClientURL, PeerURL: cfg.Etcd.PeerURL, Gateway: cfg.Etcd.Gateway, ForceNewCluster: force,
			AutoCompactionMode: cfg.Etcd.AutoCompactionMode, AutoCompactionRetention: cfg.Etcd.AutoCompactionRetention,
			QuotaBytes: cfg.Etcd.QuotaBytes,
			TLS: &etcdembed.TLS{CertFile: dir.Path(pki.SiteCertFile), KeyFile: dir.Path(pki.SiteKeyFile),
				ClientCAFile: dir.Path(pki.ClientsCAFile), PeerCAFile: dir.Path(pki.CACertFile)}}
		founded, err := certificates(ctx, cfg, dir, &member, log)
		if err != nil {
			return nil, err
		}
		acc.pki, acc.founded, acc.managed = dir, founded, true
		if force {
			log.Warn(forceWarning)
		}
		started := time.Now()
		srv, err := etcdembed.Start(ctx, member)
		if errors.Is(err, etcdembed.ErrLearner) {
			return nil, fmt.Errorf("%w: this site never voted, so its data may lack the last writes, and etcd cannot make a cluster "+
				"of it alone; see docs/security.md, \"A federation that lost its quorum for good\"", err)
		}
		if err != nil {
			return nil, err
		}
		stack.push(srv.Close)
		acc.errs, acc.self = srv.Err(), fmt.Sprintf("%x", srv.ID())
		endpoints = srv.Endpoints()
		acc.members, acc.endpoint, acc.stopMember = srv.Members, endpoints[0], srv.Close
		log.Info("embedded etcd started", "endpoints", endpoints, "took", time.Since(started).Round(time.Millisecond))
		if force {
			log.Warn("this site's etcd member is now a cluster of itself alone: remove the other sites' records with "+
				"maoctl federation remove-site NAME, wipe the data directory of any that comes back and join it again with a "+
				"token, and start this site without -force-new-cluster from now on", "member", acc.self)
		}
		if srv.Learner() {
			// A learner serves no clients: go through the others (the
			// keeper then points the clients at the voters).
			if others := srv.OtherEndpoints(); len(others) > 0 {
				endpoints = others
			}
			log.Info("the embedded member is a learner; using the other members", "endpoints", endpoints)
		}
	}
	if !cfg.Etcd.Embedded() && (cfg.Etcd.JoinToken != "" || pki.Dir(filepath.Join(cfg.Site.DataDir, "pki")).Exists()) {
		// A site without a member of its own that has joined, or joins
		// now: it has its certificates before it connects, which it
		// needs when the federation's etcd is its sites' members.
		dir, _, err := externalCertificates(ctx, cfg)
		if err != nil {
			return nil, err
		}
		acc.pki = dir
	}
	etcdCfg, err := etcdclient.Config(cfg.Etcd, endpoints)
	if err != nil {
		return nil, err
	}
	etcdCfg.DialOptions = append(etcdCfg.DialOptions, dial...)
	// The site's certificate opens the federation's etcd when that is
	// its sites' members: an embedded one, or endpoints that speak TLS
	// and for which the config names no certificate of its own.
	siteCert := acc.pki != "" && (cfg.Etcd.Embedded() || cfg.Etcd.CertFile == "" && allHTTPS(endpoints))
	acc.managed = siteCert
	if siteCert {
		if etcdCfg.TLS, err = acc.pki.ClientTLS(pki.SiteCertFile, pki.SiteKeyFile); err != nil {
			return nil, err
		}
	}
	if acc.client, err = clientv3.New(etcdCfg); err != nil {
		return nil, fmt.Errorf("etcd client: %w", err)
	}
	stack.push(func() { acc.client.Close() })
	if siteCert {
		adminCfg := etcdCfg
		if adminCfg.TLS, err = acc.pki.ClientTLS(pki.RootCertFile, pki.RootKeyFile); err != nil {
			return nil, err
		}
		if acc.admin, err = clientv3.New(adminCfg); err != nil {
			return nil, fmt.Errorf("etcd client: %w", err)
		}
		stack.push(func() { acc.admin.Close() })
	}
	return acc, nil
}

// forceWarning is what the log says before a forced new cluster.
const forceWarning = "FORCING A NEW CLUSTER (-force-new-cluster): this site's etcd member starts as a cluster of itself alone, " +
	"with its own data; every other member is removed from it. Do this only when the others are gone for good: " +
	"writes they took that this member had not received are lost, and a member that comes back cannot rejoin"

// certificates makes sure the embedded member's site has its certificates
// before the member starts: those of an earlier start (renewed when they
// need it), or, for a member with no data yet, those it gets by joining
// with the configured token (then member joins the cluster the answer
// names), or a new federation's. It reports whether the site founded one.
//
// Certificates are signed and renewed at the real time, not at the site's
// clock: TLS (etcd, the other sites) checks them against the real time,
// and a clock that a test holds still in the past would make them expired.
func certificates(ctx context.Context, cfg config.Config, dir pki.Dir, member *etcdembed.Options, log *slog.Logger) (bool, error) {
	site := pki.Site{Name: cfg.Site.Name, Hosts: siteHosts(cfg)}
	if dir.Exists() {
		if cfg.Etcd.JoinToken != "" {
			log.Info("etcd.join_token is no longer needed: this site has joined; remove it from the config")
		}
		_, err := dir.Ensure(site, false, time.Now())
		return false, err
	}
	if cfg.Etcd.JoinToken == "" {
		log.Info("founding a new federation: creating its certificate authority", "dir", dir)
		return dir.Ensure(site, true, time.Now())
	}
	tok, err := pki.ParseJoinToken(cfg.Etcd.JoinToken)
	if err != nil {
		return false, fmt.Errorf("etcd.join_token: %w", err)
	}
	log.Info("joining the federation", "at", tok.Addr)
	resp, err := peer.Join(ctx, tok, peer.JoinRequest{Site: cfg.Site.Name, PeerURL: cfg.Etcd.PeerURL, ClientURL: cfg.Etcd.ClientURL})
	if err != nil {
		return false, err
	}
	if resp.Prefix != cfg.Etcd.Prefix {
		return false, fmt.Errorf("etcd.prefix is %s, but the federation's is %s", cfg.Etcd.Prefix, resp.Prefix)
	}
	if err := dir.Write(resp.CAFiles); err != nil {
		return false, err
	}
	if _, err := dir.Ensure(site, false, time.Now()); err != nil {
		return false, err
	}
	member.InitialCluster, member.ClusterState = resp.InitialCluster, "existing"
	return false, nil
}

// siteHosts are the names and addresses the site serves under: its etcd
// member's, its federation listener's and its API's, and its host name.
func siteHosts(cfg config.Config) []string {
	var hosts []string
	for _, u := range []string{cfg.Etcd.ClientURL, cfg.Etcd.PeerURL} {
		if pu, err := url.Parse(u); err == nil && pu.Hostname() != "" {
			hosts = append(hosts, pu.Hostname())
		}
	}
	for _, l := range []string{cfg.Federation.Listen, cfg.API.Listen} {
		if h, _, err := net.SplitHostPort(l); err == nil && h != "" {
			hosts = append(hosts, h)
		}
	}
	if h, err := os.Hostname(); err == nil {
		hosts = append(hosts, h)
	}
	return hosts
}

// secureFederation finishes what the site's certificates need once etcd
// answers: etcd's access control (a founding embedded member turns it on;
// others find it on), the external etcd case (the first site to publish a
// CA founds the federation's PKI; another needs a join token), and the CA
// published in etcd for collaborators to check.
func secureFederation(ctx context.Context, cfg config.Config, acc *etcdAccess, st *store.Store, log *slog.Logger) error {
	if cfg.Etcd.Embedded() {
		if err := st.SetUpAuth(ctx, cfg.Site.Name); err != nil {
			return err
		}
	} else if acc.pki == "" {
		dir, founded, err := externalCertificates(ctx, cfg)
		if err != nil {
			return err
		}
		acc.pki, acc.founded = dir, founded
	}
	if acc.pki == "" {
		return nil
	}
	ca, err := acc.pki.CA()
	if err != nil {
		return err
	}
	fp, err := st.ClaimFederationCA(ctx, cfg.Site.Name, ca)
	if err != nil {
		return err
	}
	if fp == ca.Fingerprint() {
		return nil
	}
	if !cfg.Etcd.Embedded() && acc.founded {
		// Another site published its CA first: this one joins instead.
		if err := os.RemoveAll(string(acc.pki)); err != nil {
			return err
		}
		acc.pki = ""
		log.Warn("another site founded the federation's certificates first: this site has none, so it cannot read other sites' logs "+
			"nor issue join tokens; join it with a token (maoctl federation add-site "+cfg.Site.Name+" at a site that has them, "+
			"then set etcd.join_token and restart)", "federation_ca", fp)
		return nil
	}
	return fmt.Errorf("this site's certificates (CA %s) are not the federation's (CA %s, published in etcd)", ca.Fingerprint(), fp)
}

// allHTTPS reports whether every endpoint is an https URL.
func allHTTPS(endpoints []string) bool {
	for _, e := range endpoints {
		if !strings.HasPrefix(e, "https://") {
			return false
		}
	}
	return len(endpoints) > 0
}

// externalCertificates gets the certificates of a site on an external
// etcd: those of an earlier start, those a join token gets, or a new CA
// (founded) that secureFederation then tries to publish as the
// federation's. Like certificates, it signs at the real time.
func externalCertificates(ctx context.Context, cfg config.Config) (dir pki.Dir, founded bool, err error) {
	dir = pki.Dir(filepath.Join(cfg.Site.DataDir, "pki"))
	site := pki.Site{Name: cfg.Site.Name, Hosts: siteHosts(cfg)}
	switch {
	case dir.Exists():
		_, err := dir.Ensure(site, false, time.Now())
		return dir, false, err
	case cfg.Etcd.JoinToken != "":
		tok, err := pki.ParseJoinToken(cfg.Etcd.JoinToken)
		if err != nil {
			return "", false, fmt.Errorf("etcd.join_token: %w", err)
		}
		resp, err := peer.Join(ctx, tok, peer.JoinRequest{Site: cfg.Site.Name})
		if err != nil {
			return "", false, err
		}
		if err := dir.Write(resp.CAFiles); err != nil {
			return "", false, err
		}
		_, err = dir.Ensure(site, false, time.Now())
		return dir, false, err
	}
	founded, err = dir.Ensure(site, true, time.Now())
	return dir, founded, err
}

// fedListener is the site's federation API listener.
type fedListener struct {
	ln   net.Listener
	addr string // https://host:port, as other sites reach it; "" without certificates
	srv  *http.Server
}

// listenFederation opens the federation API's listener, over TLS with the
// site's certificate, when the site has certificates.
func listenFederation(cfg config.Config, dir pki.Dir, stack *cleanup) (fedListener, error) {
	if dir == "" {
		return fedListener{}, nil
	}
	tlsCfg, err := dir.ServerTLS()
	if err != nil {
		return fedListener{}, err
	}
	raw, err := net.Listen("tcp", cfg.Federation.Listen)
	if err != nil {
		return fedListener{}, fmt.Errorf("federation listen: %w", err)
	}
	stack.push(func() { raw.Close() })
	host, port, _ := net.SplitHostPort(raw.Addr().String())
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		if host, err = os.Hostname(); err != nil {
			return fedListener{}, fmt.Errorf("federation listen %s: name this site's address: %w", cfg.Federation.Listen, err)
		}
	}
	return fedListener{ln: tls.NewListener(raw, tlsCfg), addr: "https://" + net.JoinHostPort(host, port)}, nil
}
