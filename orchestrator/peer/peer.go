package peer

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/orchestrator/errs"
	"github.com/mao-research/mao/orchestrator/pki"
	"github.com/mao-research/mao/toolspec"
)

// Paths of the federation API.
const (
	JoinPath   = "/federation/v1/join"
	logsPrefix = "/federation/v1/runs/"
)

// LogsPattern is the route of a run's log at the site that holds it.
const LogsPattern = "GET " + logsPrefix + "{id}/logs"

// JoinRequest is what a joining site sends with its token.
type JoinRequest struct {
	TokenID   string `json:"token_id"`
	Secret    string `json:"secret"`
	Site      string `json:"site"`
	PeerURL   string `json:"peer_url,omitempty"` // empty for a site on an external etcd
	ClientURL string `json:"client_url,omitempty"`
}

// JoinResponse is what a joining site gets: the federation's CAs (with
// their keys: every site can issue certificates, so that the federation
// does not depend on the one that founded it), and, for an embedded member,
// etcd's initial cluster and the other members' client URLs.
type JoinResponse struct {
	CAFiles        map[string][]byte `json:"ca_files"`
	InitialCluster string            `json:"initial_cluster,omitempty"`
	Endpoints      []string          `json:"endpoints,omitempty"`
	Prefix         string            `json:"prefix"`
}

// Grants keeps join grants, etcd users and members; store.Store is one.
type Grants interface {
	SaveJoinGrant(ctx context.Context, g pki.JoinGrant) error
	// TakeJoinGrant deletes the grant of token id if check accepts it,
	// and returns it; errs.ErrNotFound when there is none.
	TakeJoinGrant(ctx context.Context, id string, check func(pki.JoinGrant) error) (pki.JoinGrant, error)
	AddSiteUser(ctx context.Context, site string) error
	AddLearner(ctx context.Context, site, peerURL string) (initial string, clientURLs []string, err error)
	AddReader(ctx context.Context, name string) error
}

// Sites lists the federation's sites, live and gone; store.Store is one.
type Sites interface {
	KnownSites(ctx context.Context) ([]api.SiteInfo, error)
}

// Voters knows the federation's etcd members and its voter policy;
// voters.Keeper is one.
type Voters interface {
	// Forecast says what becomes of the votes when site joins with a
	// member of its own; a member already named site is errs.ErrExists.
	Forecast(ctx context.Context, site string) (api.Voting, error)
}

// Clock tells the time.
type Clock interface{ Now() time.Time }

// maxBody bounds request bodies of the federation API.
const maxBody = 64 << 10

// ErrBadToken is the answer to a join token that is unknown, used,
// expired, or presented for another site.
var ErrBadToken = errs.New(errs.ErrForbidden, "the join token is not valid: unknown, used already, expired, or issued for another site or address; ask for a new one (maoctl federation add-site)")

// Server serves the federation API of one site.
type Server struct {
	grants Grants
	sites  Sites
	pki    pki.Dir
	prefix string
	etcd   bool
	clock  Clock
	log    *slog.Logger
	mux    *http.ServeMux

	errorBody func(error) (int, api.ErrorBody)
}

// ServerOptions configure a Server.
type ServerOptions struct {
	Prefix string // the federation's etcd prefix
	// Etcd is set when the federation's etcd is made of the sites'
	// embedded members: a joining site gets its etcd user, and its member
	// when it asks for one. Without it (an external etcd, whose users are
	// its administrators' business) a site gets the CAs only.
	Etcd  bool
	Clock Clock
	Log   *slog.Logger
	// Logs serves GET LogsPattern for the runs this site holds; it is
	// called only for a caller that is a live site of the federation.
	Logs http.Handler
	// ErrorBody maps an error to its HTTP status and body: the site's
	// API's mapping (httpapi.ErrorBody), the only one. Without it every
	// error is a 500.
	ErrorBody func(error) (int, api.ErrorBody)
}

// NewServer returns the federation API's handler.
func NewServer(grants Grants, sites Sites, dir pki.Dir, opts ServerOptions) *Server {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Clock == nil {
		opts.Clock = clockwork.NewRealClock()
	}
	if opts.ErrorBody == nil {
		opts.ErrorBody = func(error) (int, api.ErrorBody) {
			return http.StatusInternalServerError, api.ErrorBody{Code: api.CodeInternal, Message: "internal error; see the orchestrator's log"}
		}
	}
	s := &Server{grants: grants, sites: sites, pki: dir, prefix: opts.Prefix, etcd: opts.Etcd, clock: opts.Clock, log: opts.Log,
		errorBody: opts.ErrorBody, mux: http.NewServeMux()}
	s.mux.HandleFunc("POST "+JoinPath, s.join)
	if opts.Logs != nil {
		s.mux.Handle(LogsPattern, s.siteOnly(opts.Logs))
	}
	return s
}

// ServeHTTP routes the request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// siteOnly lets through only callers whose certificate, verified against
// the federation CA, names a live site.
func (s *Server) siteOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		site, err := s.callerSite(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		s.log.Debug("a site reads a log", "site", site, "path", r.URL.Path, "for", r.Header.Get(api.HopHeader))
		next.ServeHTTP(w, r)
	})
}

// callerSite is the live site that the request's client certificate names.
func (s *Server) callerSite(r *http.Request) (string, error) {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
		return "", errs.New(errs.ErrForbidden, "this endpoint answers sites of the federation only: present a site certificate")
	}
	site, ok := pki.SiteOf(r.TLS.VerifiedChains[0][0].Subject.CommonName)
	if !ok {
		return "", errs.New(errs.ErrForbidden, "the certificate presented is not a site's")
	}
	infos, err := s.sites.KnownSites(r.Context())
	if err != nil {
		return "", err
	}
	for _, info := range infos {
		if info.Name == site && info.Live {
			return site, nil
		}
	}
	return "", errs.New(errs.ErrForbidden, fmt.Sprintf("site %s is not a live site of the federation", site))
}

func (s *Server) join(w http.ResponseWriter, r *http.Request) {
	var req JoinRequest
	if err := decode(r, &req); err != nil {
		s.writeError(w, r, &toolspec.ValidationError{Kind: "join request", Fields: []toolspec.FieldError{{Field: "body", Problem: err.Error()}}})
		return
	}
	resp, err := s.admit(r.Context(), req)
	if err != nil {
		if errors.Is(err, ErrBadToken) {
			s.log.Warn("join refused", "site", req.Site, "err", err)
		}
		s.writeError(w, r, err)
		return
	}
	s.log.Info("a site joined the federation", "site", req.Site, "peer_url", req.PeerURL)
	writeJSON(w, http.StatusOK, resp)
}

// admit checks a join request against its grant, uses the grant up, and
// gives the site its etcd user, its member (for an embedded one) and the
// CAs.
func (s *Server) admit(ctx context.Context, req JoinRequest) (JoinResponse, error) {
	now := s.clock.Now()
	_, err := s.grants.TakeJoinGrant(ctx, req.TokenID, func(g pki.JoinGrant) error {
		if !pki.SecretMatches(req.Secret, g.SecretHash) || g.Site != req.Site || g.PeerURL != req.PeerURL ||
			g.ClientURL != req.ClientURL || !now.Before(g.ExpiresAt) {
			return ErrBadToken
		}
		return nil
	})
	if errors.Is(err, errs.ErrNotFound) {
		err = ErrBadToken
	}
	if err != nil {
		return JoinResponse{}, err
	}
	// A site may have taken the name since the token was issued.
	if err := nameIsFree(ctx, s.sites, req.Site, ""); err != nil {
		return JoinResponse{}, fmt.Errorf("the token is used up: %w", err)
	}
	files, err := s.pki.ReadCAFiles()
	if err != nil {
		return JoinResponse{}, fmt.Errorf("read the federation's CAs: %w", err)
	}
	resp := JoinResponse{CAFiles: files, Prefix: s.prefix}
	if !s.etcd {
		if req.PeerURL != "" {
			return JoinResponse{}, fmt.Errorf("the token is used up; this federation's etcd is external, so site %s cannot join it with a member of its own: %w",
				req.Site, errs.ErrConflict)
		}
		return resp, nil
	}
	if err := s.grants.AddSiteUser(ctx, req.Site); err != nil {
		return JoinResponse{}, fmt.Errorf("the token is used up; give site %s its etcd user: %w", req.Site, err)
	}
	if req.PeerURL != "" {
		resp.InitialCluster, resp.Endpoints, err = s.grants.AddLearner(ctx, req.Site, req.PeerURL)
		if err != nil {
			return JoinResponse{}, fmt.Errorf("the token is used up; add site %s's etcd member: %w", req.Site, err)
		}
	}
	return resp, nil
}

// Issuer issues join tokens and collaborators' credentials at this site.
type Issuer struct {
	Grants Grants
	// Sites are the federation's sites: a token is never issued for the
	// name of one of them, which would give its holder that site's
	// certificate.
	Sites Sites
	// Voters, for a federation whose etcd is its sites' members, refuses
	// the name of a member (a witness has no site record) and forecasts
	// whether a new site's member will vote; nil for an external etcd.
	Voters Voters
	PKI    pki.Dir
	Site   string // this site
	Addr   string // this site's federation address, https://host:port
	Prefix string
	// Endpoints are the etcd client URLs a collaborator uses.
	Endpoints func() []string
	// Clock tells when join tokens expire. Certificates are signed at the
	// real time, which TLS checks them against.
	Clock    Clock
	TokenTTL time.Duration // how long a join token is good; default 1h
}

// DefaultTokenTTL is how long a join token is good.
const DefaultTokenTTL = time.Hour

// AddSite issues a join token for a new site. With a peer URL the new site
// runs an embedded etcd member, added when it joins; without one it uses
// the federation's external etcd.
func (i *Issuer) AddSite(ctx context.Context, req api.AddSiteRequest) (api.AddSiteResult, error) {
	if req.PeerURL != "" && req.ClientURL == "" {
		req.ClientURL = "https://127.0.0.1:2379"
	}
	var problems []toolspec.FieldError
	if err := toolspec.CheckName(req.Name); err != nil {
		problems = append(problems, toolspec.FieldError{Field: "name", Problem: err.Error()})
	}
	for _, f := range []struct{ field, v string }{{"peer_url", req.PeerURL}, {"client_url", req.ClientURL}} {
		if f.v == "" {
			continue
		}
		if u, err := url.Parse(f.v); err != nil || u.Scheme != "https" || u.Port() == "" || u.Port() == "0" || u.Path != "" && u.Path != "/" || u.User != nil {
			problems = append(problems, toolspec.FieldError{Field: f.field,
				Problem: fmt.Sprintf("%q is not an https:// URL with a port (etcd's members speak mutual TLS)", f.v)})
		}
	}
	if req.ClientURL != "" && req.PeerURL == "" {
		problems = append(problems, toolspec.FieldError{Field: "client_url", Problem: "is only for a site with an embedded member (peer_url)"})
	}
	if len(problems) > 0 {
		return api.AddSiteResult{}, &toolspec.ValidationError{Kind: "site", Fields: problems}
	}
	if err := nameIsFree(ctx, i.Sites, req.Name, i.Site); err != nil {
		return api.AddSiteResult{}, err
	}
	var voting *api.Voting
	if i.Voters != nil {
		v, err := i.Voters.Forecast(ctx, req.Name)
		if err != nil {
			return api.AddSiteResult{}, err
		}
		if req.PeerURL != "" {
			voting = &v
		}
	}
	ca, err := i.PKI.CA()
	if err != nil {
		return api.AddSiteResult{}, errs.New(errs.ErrConflict, "this site has no federation CA, so it cannot issue join tokens: "+err.Error())
	}
	ttl := i.TokenTTL
	if ttl <= 0 {
		ttl = DefaultTokenTTL
	}
	tok := pki.NewJoinToken(i.Addr, ca)
	expires := i.Clock.Now().Add(ttl).UTC().Truncate(time.Second)
	g := pki.JoinGrant{ID: tok.ID, Site: req.Name, PeerURL: req.PeerURL, ClientURL: req.ClientURL,
		SecretHash: pki.SecretHash(tok.Secret), IssuedBy: i.Site, ExpiresAt: expires}
	if err := i.Grants.SaveJoinGrant(ctx, g); err != nil {
		return api.AddSiteResult{}, err
	}
	return api.AddSiteResult{Site: req.Name, Token: tok.String(), ExpiresAt: expires, Config: i.joinConfig(req, tok, expires), Voting: voting}, nil
}

// nameIsFree refuses the name of a site that the federation knows, live
// or gone, and self's (the site asked): whoever joined under it would get
// a certificate in that site's name. A site that is gone for good is
// removed first (federation remove-site), which frees its name.
func nameIsFree(ctx context.Context, sites Sites, name, self string) error {
	if name == self {
		return errs.New(errs.ErrExists, fmt.Sprintf("site %s is this site", name))
	}
	known, err := sites.KnownSites(ctx)
	if err != nil {
		return err
	}
	for _, s := range known {
		switch {
		case s.Name != name:
		case s.Live:
			return errs.New(errs.ErrExists, fmt.Sprintf("site %s is a live site of the federation", name))
		default:
			return errs.New(errs.ErrExists, fmt.Sprintf("site %s was a site of the federation (last seen %s); "+
				"if it is gone for good, remove it first (maoctl federation remove-site %s)", name, s.LastSeen.UTC().Format(time.RFC3339), name))
		}
	}
	return nil
}

// joinConfig is the config.ini text a joining site needs.
func (i *Issuer) joinConfig(req api.AddSiteRequest, tok pki.JoinToken, expires time.Time) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[site]\nname = %s\n\n[etcd]\nprefix = %s\n", req.Name, i.Prefix)
	if req.PeerURL != "" {
		fmt.Fprintf(&b, "# The site's embedded etcd member; it joins the federation's cluster.\nclient_url = %s\npeer_url = %s\n", req.ClientURL, req.PeerURL)
	} else {
		fmt.Fprintf(&b, "# The federation's etcd; this site needs a client certificate for it too.\nendpoints = %s\n",
			strings.Join(i.Endpoints(), ", "))
	}
	fmt.Fprintf(&b, "# Good once, until %s; the site keeps its certificates in <data_dir>/pki.\njoin_token = %s\n",
		expires.Format(time.RFC3339), tok)
	host := "127.0.0.1"
	if u, err := url.Parse(req.PeerURL); err == nil && u.Hostname() != "" {
		host = u.Hostname()
	}
	fmt.Fprintf(&b, "\n[federation]\n# Where other sites reach this one (logs, joins): an address they can reach.\nlisten = %s\n",
		hostPort(host, "0"))
	return b.String()
}

func hostPort(host, port string) string {
	if strings.Contains(host, ":") {
		return "[" + host + "]:" + port
	}
	return host + ":" + port
}

// Credentials issues a collaborator's read-only certificate for etcd,
// with its etcd user.
func (i *Issuer) Credentials(ctx context.Context, req api.CredentialsRequest) (api.Credentials, error) {
	var problems []toolspec.FieldError
	if err := toolspec.CheckName(req.Name); err != nil {
		problems = append(problems, toolspec.FieldError{Field: "name", Problem: err.Error()})
	}
	if !req.ReadOnly {
		problems = append(problems, toolspec.FieldError{Field: "read_only", Problem: "must be true: collaborators get read-only credentials"})
	}
	if len(problems) > 0 {
		return api.Credentials{}, &toolspec.ValidationError{Kind: "credentials", Fields: problems}
	}
	ca, err := i.PKI.CA()
	if err != nil {
		return api.Credentials{}, errs.New(errs.ErrConflict, "this site has no federation CA, so it cannot issue credentials: "+err.Error())
	}
	if err := i.Grants.AddReader(ctx, req.Name); err != nil {
		return api.Credentials{}, err
	}
	// Signed at the real time, which TLS checks it against, whatever
	// the site's clock says.
	certPEM, keyPEM, err := i.PKI.IssueReader(req.Name, time.Now())
	if err != nil {
		return api.Credentials{}, err
	}
	cert, err := pki.ParseCert(certPEM)
	if err != nil {
		return api.Credentials{}, err
	}
	return api.Credentials{Name: req.Name, User: pki.ReaderUser(req.Name), CACert: string(ca.PEM), Cert: string(certPEM),
		Key: string(keyPEM), Endpoints: i.Endpoints(), Prefix: i.Prefix, ExpiresAt: cert.NotAfter.UTC()}, nil
}

// Join presents tok at the site that issued it, after checking that the
// site's CA is the one the token pins. It is what a new site does before
// it starts its etcd member.
func Join(ctx context.Context, tok pki.JoinToken, req JoinRequest) (JoinResponse, error) {
	req.TokenID, req.Secret = tok.ID, tok.Secret
	var ca *x509.Certificate
	hc := &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{TLSClientConfig: pki.PinnedTLS(tok.CAFingerprint, &ca)}}
	body, _ := json.Marshal(req) // strings only
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(tok.Addr, "/")+JoinPath, bytes.NewReader(body))
	if err != nil {
		return JoinResponse{}, err
	}
	hreq.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(hreq)
	if err != nil {
		return JoinResponse{}, fmt.Errorf("join the federation at %s: %w", tok.Addr, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return JoinResponse{}, fmt.Errorf("join the federation at %s: %w", tok.Addr, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e api.ErrorBody
		_ = json.Unmarshal(data, &e)
		return JoinResponse{}, fmt.Errorf("join the federation at %s: %s: %s", tok.Addr, resp.Status, e.Message)
	}
	var out JoinResponse
	if err := json.Unmarshal(data, &out); err != nil {
		return JoinResponse{}, fmt.Errorf("join the federation at %s: decode the answer: %w", tok.Addr, err)
	}
	got, err := pki.ParseCert(out.CAFiles[pki.CACertFile])
	if err != nil || ca == nil || pki.Fingerprint(got) != tok.CAFingerprint {
		return JoinResponse{}, fmt.Errorf("join the federation at %s: the CA it sent is not the one the token pins", tok.Addr)
	}
	return out, nil
}

// Client calls other sites' federation APIs as this site.
type Client struct {
	site string
	tls  *tls.Config
	ca   *x509.CertPool
}

// NewClient returns a Client that presents this site's certificate.
func NewClient(site string, dir pki.Dir) (*Client, error) {
	cfg, err := dir.ClientTLS(pki.SiteCertFile, pki.SiteKeyFile)
	if err != nil {
		return nil, err
	}
	return &Client{site: site, tls: cfg, ca: cfg.RootCAs}, nil
}

// OpenLogs asks the site owner, at the federation address its record
// holds, for the log of run id (query: follow, tail). The answering
// certificate must be owner's; nothing of the user's request goes along
// but the query.
func (c *Client) OpenLogs(ctx context.Context, owner api.SiteInfo, id string, query url.Values) (*http.Response, error) {
	base, err := checkAddr(owner.FederationAddr)
	if err != nil {
		return nil, fmt.Errorf("site %s publishes %w", owner.Name, err)
	}
	q := url.Values{}
	for _, k := range []string{"follow", "tail"} {
		if v := query.Get(k); v != "" {
			q.Set(k, v)
		}
	}
	u := base.JoinPath(logsPrefix, url.PathEscape(id), "logs")
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set(api.HopHeader, c.site)
	cfg := c.tls.Clone()
	cfg.InsecureSkipVerify = true // verified below: the CA, and that it is owner's certificate, whatever the address
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("no certificate")
		}
		leaf := cs.PeerCertificates[0]
		inter := x509.NewCertPool()
		for _, ic := range cs.PeerCertificates[1:] {
			inter.AddCert(ic)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: c.ca, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			return fmt.Errorf("the certificate at %s is not the federation's: %w", base.Host, err)
		}
		if leaf.Subject.CommonName != pki.SiteUser(owner.Name) {
			return fmt.Errorf("the certificate at %s is %s's, not site %s's", base.Host, leaf.Subject.CommonName, owner.Name)
		}
		return nil
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, ResponseHeaderTimeout: 30 * time.Second},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return hc.Do(req)
}

// checkAddr checks a federation address read from etcd: https://host:port
// and nothing else.
func checkAddr(addr string) (*url.URL, error) {
	u, err := url.Parse(addr)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.Port() == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" ||
		(u.Path != "" && u.Path != "/") {
		return nil, fmt.Errorf("a federation address that is not https://host:port: %q", addr)
	}
	u.Path = ""
	return u, nil
}

func decode(r *http.Request, v any) error {
	data, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return err
	}
	if len(data) > maxBody {
		return fmt.Errorf("body larger than %d bytes", maxBody)
	}
	return toolspec.Decode(data, true, v)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the caller went away
}

// writeError answers with err's status and body, as the site's API maps
// them (ServerOptions.ErrorBody); an error of no known kind is logged,
// since its text is not sent.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status, body := s.errorBody(err)
	if status == http.StatusInternalServerError {
		s.log.Error("federation request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeJSON(w, status, body)
}
