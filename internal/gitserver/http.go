package gitserver

import (
	"crypto/subtle"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"net/url"
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
	env := []string{"GIT_PROJECT_ROOT=" + r.Root, "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null"}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		u, p, ok := req.BasicAuth()
		if !ok || subtle.ConstantTimeCompare([]byte(u), []byte(user)) != 1 || subtle.ConstantTimeCompare([]byte(p), []byte(password)) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		// http-backend takes pushes from an authenticated user only.
		backend := &cgi.Handler{Path: HTTPBackend, Env: append(env[:len(env):len(env)], "REMOTE_USER="+u)}
		backend.ServeHTTP(w, req)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/"
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
