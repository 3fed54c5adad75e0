package peer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/orchestrator/errs"
	"github.com/mao-research/mao/orchestrator/httpapi"
	"github.com/mao-research/mao/orchestrator/pki"
	"github.com/mao-research/mao/toolspec"
)

var now = time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)

// fakeGrants keeps grants in a map and records users and learners; the
// store's own transactions are tested in package store.
type fakeGrants struct {
	mu       sync.Mutex
	grants   map[string]pki.JoinGrant
	users    []string
	learners []string
	readers  []string
	learnErr error
}

func newGrants() *fakeGrants { return &fakeGrants{grants: map[string]pki.JoinGrant{}} }

func (f *fakeGrants) SaveJoinGrant(_ context.Context, g pki.JoinGrant) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.grants[g.ID] = g
	return nil
}

func (f *fakeGrants) TakeJoinGrant(_ context.Context, id string, check func(pki.JoinGrant) error) (pki.JoinGrant, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	g, ok := f.grants[id]
	if !ok {
		return g, fmt.Errorf("no join token %s: %w", id, errs.ErrNotFound)
	}
	if err := check(g); err != nil {
		return pki.JoinGrant{}, err
	}
	delete(f.grants, id)
	return g, nil
}

func (f *fakeGrants) AddSiteUser(_ context.Context, site string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.users = append(f.users, site)
	return nil
}

func (f *fakeGrants) AddLearner(_ context.Context, site, peerURL string) (string, []string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.learnErr != nil {
		return "", nil, f.learnErr
	}
	f.learners = append(f.learners, site)
	return "a=https://127.0.0.1:1," + site + "=" + peerURL, []string{"https://127.0.0.1:2"}, nil
}

func (f *fakeGrants) AddReader(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.readers = append(f.readers, name)
	return nil
}

type fakeSites []api.SiteInfo

func (f fakeSites) KnownSites(context.Context) ([]api.SiteInfo, error) { return f, nil }

// founding returns the PKI directory of a new federation founded by a.
func founding(t *testing.T) pki.Dir {
	t.Helper()
	d := pki.Dir(t.TempDir())
	if _, err := d.Ensure(pki.Site{Name: "a"}, true, time.Now()); err != nil {
		t.Fatal(err)
	}
	return d
}

// serve runs a's federation API over TLS and returns its Issuer.
func serve(t *testing.T, dir pki.Dir, grants *fakeGrants, etcd bool, logs http.Handler) (*Issuer, *httptest.Server) {
	t.Helper()
	cfg, err := dir.ServerTLS()
	if err != nil {
		t.Fatal(err)
	}
	clock := clockwork.NewFakeClockAt(now)
	sites := fakeSites{{Site: api.Site{Name: "live"}, Live: true}, {Site: api.Site{Name: "gone"}, LastSeen: now.Add(-time.Hour)}}
	srv := httptest.NewUnstartedServer(NewServer(grants, sites, dir,
		ServerOptions{Prefix: "/mao/", Etcd: etcd, Clock: clock, Logs: logs, ErrorBody: httpapi.ErrorBody}))
	srv.TLS = cfg
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return &Issuer{Grants: grants, Sites: sites, PKI: dir, Site: "a", Addr: srv.URL, Prefix: "/mao/",
		Endpoints: func() []string { return []string{"https://127.0.0.1:2379"} }, Clock: clock}, srv
}

func TestAddSiteRefuses(t *testing.T) {
	iss, _ := serve(t, founding(t), newGrants(), true, nil)
	tests := []struct {
		name   string
		req    api.AddSiteRequest
		fields []string
	}{
		{"bad name", api.AddSiteRequest{Name: "B site"}, []string{"name"}},
		{"plain http", api.AddSiteRequest{Name: "b", PeerURL: "http://127.0.0.1:2380"}, []string{"peer_url"}},
		{"no port", api.AddSiteRequest{Name: "b", PeerURL: "https://127.0.0.1"}, []string{"peer_url"}},
		{"port 0", api.AddSiteRequest{Name: "b", PeerURL: "https://127.0.0.1:0"}, []string{"peer_url"}},
		{"a path", api.AddSiteRequest{Name: "b", PeerURL: "https://127.0.0.1:2380/etcd"}, []string{"peer_url"}},
		{"credentials in the URL", api.AddSiteRequest{Name: "b", PeerURL: "https://u:p@127.0.0.1:2380"}, []string{"peer_url"}},
		{"a client URL without a member", api.AddSiteRequest{Name: "b", ClientURL: "https://127.0.0.1:2379"}, []string{"client_url"}},
		{"everything", api.AddSiteRequest{Name: "-", PeerURL: "x", ClientURL: "y"}, []string{"name", "peer_url", "client_url"}},
	}
	// Names the federation knows: whoever joined under one would get a
	// certificate in that site's name.
	for _, name := range []string{"a", "live", "gone"} {
		if _, err := iss.AddSite(context.Background(), api.AddSiteRequest{Name: name}); !errors.Is(err, errs.ErrExists) {
			t.Errorf("a token for %s: %v, want errs.ErrExists", name, err)
		}
	}
	for _, tc := range tests {
		_, err := iss.AddSite(context.Background(), tc.req)
		var ve *toolspec.ValidationError
		if !errors.As(err, &ve) {
			t.Errorf("%s: %v, want a validation error", tc.name, err)
			continue
		}
		var fields []string
		for _, f := range ve.Fields {
			fields = append(fields, f.Field)
		}
		if strings.Join(fields, ",") != strings.Join(tc.fields, ",") {
			t.Errorf("%s: fields %v, want %v", tc.name, fields, tc.fields)
		}
	}
}

// TestJoin runs the join protocol against a's federation API over TLS:
// a good token admits the site once and gives it the CAs; a wrong secret,
// another site's name or address, an expired token or a used one are
// refused without using the token up; and a token that pins another CA
// makes the new site refuse to talk to the server at all.
func TestJoin(t *testing.T) {
	dir := founding(t)
	grants := newGrants()
	iss, srv := serve(t, dir, grants, true, nil)
	ctx := context.Background()
	res, err := iss.AddSite(ctx, api.AddSiteRequest{Name: "b", PeerURL: "https://127.0.0.1:2380"})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := pki.ParseJoinToken(res.Token)
	if err != nil {
		t.Fatal(err)
	}
	if !res.ExpiresAt.Equal(now.Add(DefaultTokenTTL)) || !strings.Contains(res.Config, "join_token = "+res.Token+"\n") ||
		!strings.Contains(res.Config, "client_url = https://127.0.0.1:2379\n") {
		t.Errorf("add-site result %+v", res)
	}
	if g := grants.grants[tok.ID]; g.SecretHash == "" || strings.Contains(fmt.Sprint(g), tok.Secret) {
		t.Fatalf("the stored grant %+v holds the secret or no hash", g)
	}
	good := JoinRequest{Site: "b", PeerURL: "https://127.0.0.1:2380", ClientURL: "https://127.0.0.1:2379"}
	otherCA := founding(t)
	otherFP, _ := otherCA.CA()
	wrong := tok
	wrong.Secret = strings.Repeat("0", 64)
	pinnedElsewhere := tok
	pinnedElsewhere.CAFingerprint = otherFP.Fingerprint()
	refused := []struct {
		name string
		tok  pki.JoinToken
		req  JoinRequest
		want string
	}{
		{"a wrong secret", wrong, good, "not valid"},
		{"another site's name", tok, JoinRequest{Site: "c", PeerURL: good.PeerURL, ClientURL: good.ClientURL}, "not valid"},
		{"another peer address", tok, JoinRequest{Site: "b", PeerURL: "https://127.0.0.1:9999", ClientURL: good.ClientURL}, "not valid"},
		{"a token pinning another CA", pinnedElsewhere, good, "not the federation"},
	}
	for _, tc := range refused {
		if _, err := Join(ctx, tc.tok, tc.req); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error about %q", tc.name, err, tc.want)
		}
	}
	if len(grants.grants) != 1 || len(grants.users) != 0 {
		t.Fatalf("a refused join used the token up or made a user: %d grants, users %v", len(grants.grants), grants.users)
	}
	resp, err := Join(ctx, tok, good)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := dir.ReadCAFiles()
	for _, f := range pki.CAFiles {
		if string(resp.CAFiles[f]) != string(want[f]) {
			t.Errorf("CA file %s differs", f)
		}
	}
	if resp.InitialCluster != "a=https://127.0.0.1:1,b=https://127.0.0.1:2380" || resp.Prefix != "/mao/" ||
		strings.Join(grants.users, ",") != "b" || strings.Join(grants.learners, ",") != "b" {
		t.Errorf("join: %+v; users %v learners %v", resp, grants.users, grants.learners)
	}
	if _, err := Join(ctx, tok, good); err == nil || !strings.Contains(err.Error(), "not valid") {
		t.Errorf("the token used twice: %v", err)
	}

	// An expired token is refused (the fake clock stands at issue time:
	// move it past the grant's expiry through a new issuer).
	late, err := iss.AddSite(ctx, api.AddSiteRequest{Name: "c"})
	if err != nil {
		t.Fatal(err)
	}
	lateTok, _ := pki.ParseJoinToken(late.Token)
	iss.Clock.(*clockwork.FakeClock).Advance(DefaultTokenTTL + time.Second)
	if _, err := Join(ctx, lateTok, JoinRequest{Site: "c"}); err == nil || !strings.Contains(err.Error(), "not valid") {
		t.Errorf("an expired token: %v", err)
	}
	_ = srv
}

// TestJoinExternalEtcd: a federation on an external etcd gives a joining
// site the CAs only, and refuses one that wants an etcd member.
func TestJoinExternalEtcd(t *testing.T) {
	dir := founding(t)
	grants := newGrants()
	iss, _ := serve(t, dir, grants, false, nil)
	ctx := context.Background()
	for _, tc := range []struct {
		name, peerURL string
		ok            bool
	}{{"a site without a member", "", true}, {"a site with a member", "https://127.0.0.1:2380", false}} {
		res, err := iss.AddSite(ctx, api.AddSiteRequest{Name: "b", PeerURL: tc.peerURL})
		if err != nil {
			t.Fatal(err)
		}
		tok, _ := pki.ParseJoinToken(res.Token)
		req := JoinRequest{Site: "b", PeerURL: tc.peerURL}
		if tc.peerURL != "" {
			req.ClientURL = "https://127.0.0.1:2379"
		}
		resp, err := Join(ctx, tok, req)
		if (err == nil) != tc.ok || (tc.ok && (len(resp.CAFiles) != len(pki.CAFiles) || resp.InitialCluster != "")) {
			t.Errorf("%s: %+v, %v", tc.name, resp, err)
		}
	}
	if len(grants.users) != 0 || len(grants.learners) != 0 {
		t.Errorf("users %v, learners %v on an external etcd", grants.users, grants.learners)
	}
}

// TestJoinRefusesANameTaken: a token issued for a name that a site has
// taken since (it joined through another token, say) is refused at the
// join, and the joining site gets no certificate of the federation.
func TestJoinRefusesANameTaken(t *testing.T) {
	dir := founding(t)
	grants := newGrants()
	iss, _ := serve(t, dir, grants, true, nil)
	iss.Sites = fakeSites{} // when the token was issued, nobody had the name
	ctx := context.Background()
	res, err := iss.AddSite(ctx, api.AddSiteRequest{Name: "live"})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := pki.ParseJoinToken(res.Token)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := Join(ctx, tok, JoinRequest{Site: "live"})
	if err == nil || !strings.Contains(err.Error(), "site live is a live site") || len(resp.CAFiles) != 0 {
		t.Fatalf("joining under a live site's name: %v, %d CA files", err, len(resp.CAFiles))
	}
	if len(grants.users) != 0 {
		t.Fatalf("etcd users %v were made", grants.users)
	}
}

// TestLogsOnlyForLiveSites: the federation API serves logs to a caller
// whose certificate names a live site of the federation, and to nobody
// else: no certificate, a collaborator's, a gone site's.
func TestLogsOnlyForLiveSites(t *testing.T) {
	dir := founding(t)
	_, srv := serve(t, dir, newGrants(), true, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "the log of "+r.PathValue("id"))
	}))
	site := func(name string) pki.Dir {
		d := pki.Dir(t.TempDir())
		files, _ := dir.ReadCAFiles()
		if err := d.Write(files); err != nil {
			t.Fatal(err)
		}
		if _, err := d.Ensure(pki.Site{Name: name}, false, time.Now()); err != nil {
			t.Fatal(err)
		}
		return d
	}
	get := func(c *Client) (string, error) {
		resp, err := c.OpenLogs(context.Background(), api.SiteInfo{Site: api.Site{Name: "a", FederationAddr: srv.URL}}, "r-1", url.Values{})
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("%d %s", resp.StatusCode, body)
		}
		return string(body), nil
	}
	live, err := NewClient("live", site("live"))
	if err != nil {
		t.Fatal(err)
	}
	gone, _ := NewClient("z", site("z"))
	if got, err := get(live); err != nil || got != "the log of r-1" {
		t.Fatalf("a live site: %q, %v", got, err)
	}
	if _, err := get(gone); err == nil || !strings.Contains(err.Error(), "not a live site") {
		t.Errorf("a gone site: %v", err)
	}
	certPEM, keyPEM, err := dir.IssueReader("ada", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	readerDir := pki.Dir(t.TempDir())
	files, _ := dir.ReadCAFiles()
	files[pki.SiteCertFile], files[pki.SiteKeyFile] = certPEM, keyPEM // a reader's pair in a site's place
	if err := readerDir.Write(files); err != nil {
		t.Fatal(err)
	}
	reader, _ := NewClient("ada", readerDir)
	if _, err := get(reader); err == nil {
		t.Error("a collaborator's certificate read a log")
	}
	// No certificate at all.
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/federation/v1/runs/r-1/logs", nil)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("no certificate: %d, want 403", resp.StatusCode)
	}
}

func TestCredentials(t *testing.T) {
	dir := founding(t)
	grants := newGrants()
	iss, _ := serve(t, dir, grants, true, nil)
	ctx := context.Background()
	if _, err := iss.Credentials(ctx, api.CredentialsRequest{Name: "ada"}); err == nil {
		t.Error("credentials that are not read-only were issued")
	}
	if _, err := iss.Credentials(ctx, api.CredentialsRequest{Name: "Ada Lovelace", ReadOnly: true}); err == nil {
		t.Error("credentials for a bad name were issued")
	}
	c, err := iss.Credentials(ctx, api.CredentialsRequest{Name: "ada", ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := pki.ParseCert([]byte(c.Cert))
	if err != nil {
		t.Fatal(err)
	}
	readers, _ := dir.ReadersCA()
	ca, _ := dir.CA()
	if cert.Subject.CommonName != "reader:ada" || c.User != "reader:ada" || cert.CheckSignatureFrom(readers.Cert) != nil ||
		cert.CheckSignatureFrom(ca.Cert) == nil || c.CACert != string(ca.PEM) || c.Prefix != "/mao/" || len(c.Endpoints) != 1 {
		t.Errorf("credentials %+v, certificate %s", c, cert.Subject)
	}
	if strings.Join(grants.readers, ",") != "ada" {
		t.Errorf("readers %v", grants.readers)
	}
}

// fakeVoters forecasts from a fixed answer, and refuses the name of a
// member.
type fakeVoters struct {
	member string
	voting api.Voting
}

func (f fakeVoters) Forecast(_ context.Context, site string) (api.Voting, error) {
	if site == f.member {
		return api.Voting{}, errs.New(errs.ErrExists, site+" is a member's name")
	}
	return f.voting, nil
}

// TestAddSiteForecastsTheVote: add-site in a federation of sites' members
// says whether a new site's member will vote, says nothing of votes for a
// site without a member of its own, and refuses the name of a member (a
// witness has no site record) with or without one.
func TestAddSiteForecastsTheVote(t *testing.T) {
	iss, _ := serve(t, founding(t), newGrants(), true, nil)
	want := api.Voting{VotersNow: 1, VotersAfter: 1, MaxVoters: 3, Note: "stays a learner for now"}
	iss.Voters = fakeVoters{member: "w", voting: want}
	ctx := context.Background()
	res, err := iss.AddSite(ctx, api.AddSiteRequest{Name: "b", PeerURL: "https://127.0.0.1:2380"})
	if err != nil || res.Voting == nil || *res.Voting != want {
		t.Fatalf("add-site with a member: %+v, %v; want voting %+v", res.Voting, err, want)
	}
	if res, err = iss.AddSite(ctx, api.AddSiteRequest{Name: "c"}); err != nil || res.Voting != nil {
		t.Fatalf("add-site without a member: %+v, %v; want no voting", res.Voting, err)
	}
	for _, req := range []api.AddSiteRequest{{Name: "w", PeerURL: "https://127.0.0.1:2381"}, {Name: "w"}} {
		if _, err := iss.AddSite(ctx, req); !errors.Is(err, errs.ErrExists) {
			t.Errorf("add-site %+v: %v, want errs.ErrExists", req, err)
		}
	}
}
