package gitserver

import (
	"crypto/subtle"
	"encoding/pem"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// HTTPBackend is where Debian's git keeps git-http-backend.
const HTTPBackend = "/usr/lib/git-core/git-http-backend"

// HTTP serves the repositories over smart HTTP through git
// http-backend, pushes included, to a client that gives user and
// password by basic auth (anyone else gets 401), and returns the base
// URL without credentials: http://127.0.0.1:PORT/ (a repository is at
// BASE + name + ".git").
func (r *Repos) HTTP(t testing.TB, user, password string) string {
	t.Helper()
	srv := httptest.NewServer(r.backend(user, password, false))
	t.Cleanup(srv.Close)
	return srv.URL + "/"
}

// HTTPS is HTTP over TLS, with a certificate of a test authority for
// 127.0.0.1: it returns the base URL (https://127.0.0.1:PORT/) and a PEM
// file of the authority's certificate, which clients must trust.
func (r *Repos) HTTPS(t testing.TB, user, password string) (base, caFile string) {
	return r.https(t, r.backend(user, password, false))
}

// PublicHTTPS is HTTPS as a public repository is served: anyone may
// clone and fetch, only user with password may push.
func (r *Repos) PublicHTTPS(t testing.TB, user, password string) (base, caFile string) {
	t.Helper()
	return r.https(t, r.backend(user, password, true))
}

func (r *Repos) https(t testing.TB, h http.Handler) (base, caFile string) {
	t.Helper()
	srv := httptest.NewTLSServer(h)
	t.Cleanup(srv.Close)
	caFile = filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	return srv.URL + "/", caFile
}

// backend is git http-backend behind basic auth; with public, only
// pushes need it.
func (r *Repos) backend(user, password string, public bool) http.Handler {
	env := []string{"GIT_PROJECT_ROOT=" + r.Root, "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null"}
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		push := strings.HasSuffix(req.URL.Path, "/git-receive-pack") || req.URL.Query().Get("service") == "git-receive-pack"
		if public && !push {
			(&cgi.Handler{Path: HTTPBackend, Env: env}).ServeHTTP(w, req)
			return
		}
		u, p, ok := req.BasicAuth()
		if !ok || subtle.ConstantTimeCompare([]byte(u), []byte(user)) != 1 || subtle.ConstantTimeCompare([]byte(p), []byte(password)) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		// http-backend takes pushes from an authenticated user only.
		backend := &cgi.Handler{Path: HTTPBackend, Env: append(env[:len(env):len(env)], "REMOTE_USER="+u)}
		backend.ServeHTTP(w, req)
	})
}

// WithUser returns rawURL with user and password in it, as a site's
// credentials would give them.
func WithUser(rawURL, user, password string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return rawURL
	}
	u.User = url.UserPassword(user, password)
	return u.String()
}
