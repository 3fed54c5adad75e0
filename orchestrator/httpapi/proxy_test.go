package httpapi

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/internal/testenv"
	"github.com/mao-research/mao/orchestrator/peer"
	"github.com/mao-research/mao/orchestrator/pki"
)

// federationDir returns a site's PKI directory: a new federation's for
// the first site, the same CAs for the next ones (as a join gives them).
func federationDir(t *testing.T, site string, of pki.Dir) pki.Dir {
	t.Helper()
	d := pki.Dir(t.TempDir())
	if of != "" {
		files, err := of.ReadCAFiles()
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Write(files); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := d.Ensure(pki.Site{Name: site}, of == "", time.Now()); err != nil {
		t.Fatal(err)
	}
	return d
}

// seen records what reached a federation API.
type seen struct {
	mu   sync.Mutex
	reqs []*http.Request
}

func (s *seen) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.reqs = append(s.reqs, r.Clone(context.Background()))
		s.mu.Unlock()
		h.ServeHTTP(w, r)
	})
}

func (s *seen) all() []*http.Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*http.Request(nil), s.reqs...)
}

// federationAPI serves h over TLS with dir's site certificate.
func federationAPI(t *testing.T, dir pki.Dir, h http.Handler) *httptest.Server {
	t.Helper()
	cfg, err := dir.ServerTLS()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = cfg
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// TestLogsOfRunsElsewhere asks site a for the log of a run held by b. a
// reads it from b's federation API as site a, over mutual TLS: the user's
// token never leaves a. It replays the attacks on the old proxy: a site
// record pointing the log request elsewhere (another federation's server,
// another site of the federation, the asking site itself) gets nothing,
// and no server there sees the user's token. A down site's logs are 503,
// an unknown site's 404, and a request that came from a site already is
// not passed on.
func TestLogsOfRunsElsewhere(t *testing.T) {
	endpoints := testenv.Etcd(t)
	dirA := federationDir(t, "a", "")
	dirB, dirC := federationDir(t, "b", dirA), federationDir(t, "c", dirA)
	proxy, err := peer.NewClient("a", dirA)
	if err != nil {
		t.Fatal(err)
	}
	const token = "users-secret-token"
	a := newProxyingEnv(t, "a", endpoints, proxy, admin(token)...)
	b := newSiteEnv(t, "b", endpoints, admin(token)...)
	ctx := context.Background()
	if _, err := a.client.RegisterTool(ctx, api.Tool{Name: "t1", Author: "x", Image: "busybox", DataRepo: "file:///r"}); err != nil {
		t.Fatal(err)
	}
	runs, err := b.client.RunTool(ctx, "t1", api.RunRequest{}) // held by b, log at b
	if err != nil {
		t.Fatal(err)
	}
	var atB, elsewhere seen
	fedB := federationAPI(t, dirB, atB.wrap(peer.NewServer(nil, b.store, dirB, peer.ServerOptions{Logs: b.srv.LocalLogs(), ErrorBody: ErrorBody})))
	join := func(name, fedAddr string) func() {
		t.Helper()
		m, err := b.store.Join(ctx, api.Site{Name: name, FederationAddr: fedAddr}, 30*time.Second, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		return func() {
			if err := m.Leave(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	leaveA := join("a", "https://127.0.0.1:1") // a is live: b answers it
	defer leaveA()
	leave := join("b", fedB.URL)
	for _, follow := range []bool{false, true} {
		var got strings.Builder
		err := a.client.RunLogs(ctx, runs[0].ID, api.LogOptions{Follow: follow}, &got)
		if err != nil || got.String() != "line 1 at b\nline 2\nline 3\n" {
			t.Fatalf("logs through a (follow %v): %q, %v", follow, got.String(), err)
		}
	}
	for _, r := range atB.all() {
		if r.Header.Get("Authorization") != "" || r.Header.Get(api.HopHeader) != "a" || r.URL.Query().Get("follow") == "" && r.URL.RawQuery != "" {
			t.Errorf("b's federation API got %s %s with Authorization %q, hop %q", r.Method, r.URL, r.Header.Get("Authorization"), r.Header.Get(api.HopHeader))
		}
	}
	leave()

	// b's record points elsewhere: each answer is refused, and no token
	// reaches anyone.
	other := federationDir(t, "b", "") // another federation's "b"
	fedA := federationAPI(t, dirA, elsewhere.wrap(http.NotFoundHandler()))
	for _, tc := range []struct {
		name, addr string
	}{
		{"another federation's server", federationAPI(t, other, elsewhere.wrap(http.NotFoundHandler())).URL},
		{"another site of the federation", federationAPI(t, dirC, elsewhere.wrap(http.NotFoundHandler())).URL},
		{"the asking site itself", fedA.URL},
		{"plain http", strings.Replace(fedB.URL, "https://", "http://", 1)},
		{"not a URL", "//127.0.0.1:1/x?y"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leave := join("b", tc.addr)
			defer leave()
			wantStatus(t, a.client.RunLogs(ctx, runs[0].ID, api.LogOptions{}, io.Discard), http.StatusServiceUnavailable, "site b")
		})
	}
	for _, r := range elsewhere.all() {
		t.Errorf("a request reached a server that is not b's: %s %s (Authorization %q)", r.Method, r.URL, r.Header.Get("Authorization"))
	}

	// A request from another site already is not passed on.
	leave = join("b", fedB.URL)
	req, _ := http.NewRequest(http.MethodGet, a.url+"/api/v1/runs/"+runs[0].ID+"/logs", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set(api.HopHeader, "c")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusConflict {
		t.Errorf("a request with a hop header: %d, want 409", resp.StatusCode)
	}
	leave()
	wantStatus(t, a.client.RunLogs(ctx, runs[0].ID, api.LogOptions{}, io.Discard), http.StatusServiceUnavailable, "site b", "down")
	if err := a.store.RemoveSite(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, a.client.RunLogs(ctx, runs[0].ID, api.LogOptions{}, io.Discard), http.StatusNotFound, "left the federation")
}
