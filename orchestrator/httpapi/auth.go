package httpapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"strings"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/orchestrator/errs"
)

// Scope is what a token may do through the API. Each scope allows what
// the ones below it allow.
type Scope int

// The scopes, from least to most. The zero Scope allows nothing.
const (
	ScopeRead  Scope = iota + 1 // every GET
	ScopeRun                    // read, plus starting runs and testing the site's own channels
	ScopeAdmin                  // everything
	// scopePublic marks the routes that need no token: GET /healthz, and
	// GET /metrics with Options.OpenMetrics.
	scopePublic Scope = -1
	// scopeMetrics marks GET /metrics: ScopeRead, or scopePublic with
	// Options.OpenMetrics.
	scopeMetrics Scope = -2
)

var scopeNames = map[Scope]string{ScopeRead: "read", ScopeRun: "run", ScopeAdmin: "admin", scopePublic: "public"}

func (s Scope) String() string {
	if name, ok := scopeNames[s]; ok {
		return name
	}
	return fmt.Sprintf("Scope(%d)", int(s))
}

// ParseScope reads "read", "run" or "admin".
func ParseScope(s string) (Scope, error) {
	for scope, name := range scopeNames {
		if name == s && scope > 0 {
			return scope, nil
		}
	}
	return 0, fmt.Errorf("%q is not a scope: want read, run or admin", s)
}

// Token is an accepted bearer token.
type Token struct {
	Name   string // who uses it, for logs and run records; never the secret
	Scope  Scope
	Secret string
}

// route is one endpoint and the scope it needs.
type route struct {
	pattern string // method and path, as http.ServeMux takes them
	scope   Scope
	handle  func(*Server, http.ResponseWriter, *http.Request)
}

// routes is every endpoint of the API with the scope it needs: the one
// table of who may do what. read: every GET. run: read, plus starting runs
// and testing the site's own channels. admin: everything else. A notify
// test with a URL needs admin, which testNotify checks, since the URL is
// in the body.
func routes() []route {
	p := "/api/" + api.Version
	return []route{
		{"GET /healthz", scopePublic, (*Server).healthz},
		{"GET /metrics", scopeMetrics, (*Server).metrics},
		{"GET " + p + "/health", ScopeRead, (*Server).health},
		{"GET " + p + "/openapi.json", scopePublic, (*Server).openAPI},
		{"GET " + p + "/tools", ScopeRead, (*Server).listTools},
		{"POST " + p + "/tools", ScopeAdmin, (*Server).createTool},
		{"GET " + p + "/tools/{name}", ScopeRead, (*Server).getTool},
		{"DELETE " + p + "/tools/{name}", ScopeAdmin, (*Server).deleteTool},
		{"POST " + p + "/tools/{name}/runs", ScopeRun, (*Server).startRun},
		{"GET " + p + "/tools/{name}/series", ScopeRead, (*Server).listSeries},
		{"GET " + p + "/datasets", ScopeRead, (*Server).listDatasets},
		{"POST " + p + "/datasets", ScopeAdmin, (*Server).createDataset},
		{"GET " + p + "/datasets/{name}", ScopeRead, (*Server).getDataset},
		{"DELETE " + p + "/datasets/{name}", ScopeAdmin, (*Server).deleteDataset},
		{"GET " + p + "/runs", ScopeRead, (*Server).listRuns},
		{"GET " + p + "/runs/{id}", ScopeRead, (*Server).getRun},
		{"GET " + p + "/runs/{id}/logs", ScopeRead, (*Server).runLogs},
		{"POST " + p + "/runs/{id}/replay", ScopeRun, (*Server).replayRun},
		{"GET " + p + "/sites", ScopeRead, (*Server).listSites},
		{"GET " + p + "/notifications", ScopeRead, (*Server).listNotifications},
		{"POST " + p + "/notifications/test", ScopeRun, (*Server).testNotify},
		{"GET " + p + "/federation", ScopeRead, (*Server).federation},
		{"GET " + p + "/federation/check", ScopeRead, (*Server).check},
		{"POST " + p + "/federation/sites", ScopeAdmin, (*Server).addSite},
		{"DELETE " + p + "/federation/sites/{name}", ScopeAdmin, (*Server).removeSite},
		{"POST " + p + "/federation/credentials", ScopeAdmin, (*Server).credentials},
		{"POST " + p + "/federation/leave", ScopeAdmin, (*Server).leave},
		{"GET " + p + "/schedules", ScopeRead, (*Server).listSchedules},
		{"POST " + p + "/schedules", ScopeAdmin, (*Server).createSchedule},
		{"GET " + p + "/schedules/{id}", ScopeRead, (*Server).getSchedule},
		{"PUT " + p + "/schedules/{id}", ScopeAdmin, (*Server).updateSchedule},
		{"DELETE " + p + "/schedules/{id}", ScopeAdmin, (*Server).deleteSchedule},
		{"POST " + p + "/schedules/{id}/pause", ScopeAdmin, (*Server).pauseSchedule},
		{"POST " + p + "/schedules/{id}/resume", ScopeAdmin, (*Server).resumeSchedule},
	}
}

// caller is who sent a request: the token's name and scope. Without
// tokens configured every caller is an admin without a name.
type caller struct {
	name  string
	scope Scope
}

type callerKey struct{}

// callerOf is the caller that ServeHTTP authenticated.
func callerOf(r *http.Request) caller {
	c, _ := r.Context().Value(callerKey{}).(caller)
	return c
}

func withCaller(r *http.Request, c caller) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), callerKey{}, c))
}

// authenticate finds the token of a request's Authorization header. It
// compares digests of equal length in constant time with every token, so
// that neither a secret's content nor its length shows in the time taken.
func (s *Server) authenticate(r *http.Request) (caller, bool) {
	if len(s.tokens) == 0 {
		return caller{scope: ScopeAdmin}, true
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return caller{}, false
	}
	digest := sha256.Sum256([]byte(got))
	found := -1
	for i, t := range s.tokens {
		if subtle.ConstantTimeCompare(digest[:], t.digest[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return caller{}, false
	}
	return caller{name: s.tokens[found].name, scope: s.tokens[found].scope}, true
}

// token is an accepted token as the server keeps it: its secret's digest.
type token struct {
	name   string
	scope  Scope
	digest [sha256.Size]byte
}

// need returns an error of kind forbidden unless the request's caller has
// scope.
func need(r *http.Request, scope Scope, what string) error {
	c := callerOf(r)
	if c.scope >= scope {
		return nil
	}
	return errs.New(errs.ErrForbidden, fmt.Sprintf("token %s has scope %s; %s needs scope %s", c.name, c.scope, what, scope))
}
