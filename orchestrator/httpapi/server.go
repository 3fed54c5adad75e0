package httpapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/orchestrator/errs"
	"github.com/mao-research/mao/toolspec"
)

// ToolReader reads the tool registry.
type ToolReader interface {
	Tool(ctx context.Context, name string) (toolspec.Tool, error)
	Tools(ctx context.Context) ([]toolspec.Tool, error)
	// ToolPage lists at most limit tools named after after, in name
	// order, and the name to read on after ("" after the last).
	ToolPage(ctx context.Context, after string, limit int) ([]toolspec.Tool, string, error)
}

// ToolWriter changes the tool registry.
type ToolWriter interface {
	CreateTool(ctx context.Context, t toolspec.Tool) error
	DeleteTool(ctx context.Context, name string) error
}

// DatasetReader reads the dataset registry.
type DatasetReader interface {
	Dataset(ctx context.Context, name string) (toolspec.Dataset, error)
	// DatasetPage lists at most limit datasets named after after, in name
	// order, and the name to read on after ("" after the last).
	DatasetPage(ctx context.Context, after string, limit int) ([]toolspec.Dataset, string, error)
}

// DatasetWriter changes the dataset registry.
type DatasetWriter interface {
	CreateDataset(ctx context.Context, d toolspec.Dataset) error
	DeleteDataset(ctx context.Context, name string) error
}

// Runs reads run records.
type Runs interface {
	Run(ctx context.Context, id string) (api.Run, error)
	// RunPage lists a page of the runs f selects, newest first, and the
	// continue token of the next page ("" after the last).
	RunPage(ctx context.Context, f api.RunFilter) ([]api.Run, string, error)
	// WaitClaimed returns the run once a site has claimed it.
	WaitClaimed(ctx context.Context, id string) (api.Run, error)
}

// Sites lists the federation's sites, live and gone: with their runs in
// progress (SiteInfos), or without, which is cheaper (KnownSites).
type Sites interface {
	SiteInfos(ctx context.Context) ([]api.SiteInfo, error)
	KnownSites(ctx context.Context) ([]api.SiteInfo, error)
}

// Launcher starts runs where a request's target says. requestedBy is the
// name of the API token that asked ("" when the API needs none), for the
// runs' records.
type Launcher interface {
	Request(ctx context.Context, tool string, req api.RunRequest, requestedBy string) ([]api.Run, error)
	// Replay runs orig again, exactly, at req's site (this one if
	// empty).
	Replay(ctx context.Context, orig api.Run, req api.ReplayRequest, requestedBy string) (api.Run, error)
}

// Federation reads and changes the etcd cluster the sites share.
type Federation interface {
	Federation(ctx context.Context) (api.Federation, error)
	RemoveSite(ctx context.Context, name string) error
}

// Leaver makes this site leave the federation for good.
type Leaver interface {
	// Leave checks that the site can leave now (errs.ErrConflict if not)
	// and has it begin: it shuts down, then leaves.
	Leave(ctx context.Context) (api.LeaveResult, error)
}

// Issuer gives new sites join tokens and collaborators credentials, from
// the federation's CA; peer.Issuer is one.
type Issuer interface {
	AddSite(ctx context.Context, req api.AddSiteRequest) (api.AddSiteResult, error)
	Credentials(ctx context.Context, req api.CredentialsRequest) (api.Credentials, error)
}

// LogProxy reads the log of a run held by another site, as this site
// (never with the user's credentials); peer.Client is one.
type LogProxy interface {
	OpenLogs(ctx context.Context, owner api.SiteInfo, id string, query url.Values) (*http.Response, error)
}

// Logs reads run logs kept at this site.
type Logs interface {
	// Await waits until the run's log exists (it was just claimed).
	Await(ctx context.Context, id string) error
	Copy(ctx context.Context, id string, follow bool, w io.Writer, flush func()) error
	Tail(id string, n int, w io.Writer) error
}

// Offline is the site's work while etcd does not answer it;
// offline.Work is one.
type Offline interface {
	// Unreachable tells that etcd did not answer the site (err).
	Unreachable(err error)
	// OwnSite is the site's row of the sites list from what it knows of
	// itself: whether it is offline, its journal, its runs in progress.
	OwnSite() api.SiteInfo
}

// Health reports the state of the site and its dependencies.
type Health interface {
	Check(ctx context.Context) api.Health
}

// Invalid says which records in etcd are left out as invalid; store.Store
// is one.
type Invalid interface {
	// InvalidRecords lists those under the named key directories
	// ("tools", "runs", ...), as the last read of each found them.
	InvalidRecords(dirs ...string) []api.InvalidRecord
	// CheckRecords reads every record of the federation and lists the
	// invalid ones.
	CheckRecords(ctx context.Context) (api.Check, error)
}

// Deps are what the API serves.
type Deps struct {
	Tools          ToolReader
	ToolEdits      ToolWriter
	Datasets       DatasetReader
	DatasetEdits   DatasetWriter
	Runs           Runs
	Sites          Sites
	Federation     Federation
	Leaver         Leaver
	Issuer         Issuer   // nil at a site without the federation's certificates
	LogProxy       LogProxy // nil at a site without the federation's certificates
	Series         SeriesReader
	Notifications  Notifications
	NotifyTester   NotifyTester
	Schedules      ScheduleReader
	ScheduleEdits  ScheduleWriter
	ScheduleEditor ScheduleEditor
	ScheduleRuns   ScheduleRuns
	Launcher       Launcher
	Logs           Logs
	Health         Health
	Invalid        Invalid
	Offline        Offline // nil: the site lists only what etcd says
	// Metrics serves GET /metrics, the site's metrics in the Prometheus
	// text format; nil: the route answers 404.
	Metrics http.Handler
}

// Options configure a Server.
type Options struct {
	Site string // this site's name: logs of runs elsewhere are proxied to their site
	// Tokens are the accepted bearer tokens. None: no authentication,
	// every caller may do everything (the config allows that only on a
	// loopback address, or with insecure_no_auth).
	Tokens []Token
	// Hosts are the names and addresses that a request's Host header may
	// carry besides localhost and loopback addresses (see Hosts).
	Hosts    []string
	Timezone string           // the site's default time zone for new schedules; default UTC
	Now      func() time.Time // default time.Now
	Log      *slog.Logger
	// CheckTool, if set, applies the site's policy to a valid tool that is
	// being registered (e.g. a host network the site does not allow); its
	// *toolspec.ValidationError is a 400 naming the field.
	CheckTool func(toolspec.Tool) error
	// OpenMetrics serves GET /metrics without a token ([api]
	// open_metrics), for a scraper that sends none; else it needs one of
	// scope read, like every GET.
	OpenMetrics bool
}

// Server is the REST API of one orchestrator.
type Server struct {
	deps   Deps
	opts   Options
	tokens []token
	hosts  map[string]struct{}
	scopes map[string]Scope // route pattern -> scope
	log    *slog.Logger
	mux    *http.ServeMux
	probe  healthCache
}

// maxBody bounds request bodies; specs are small.
const maxBody = 1 << 20

// maxTail bounds ?tail= of a run's logs.
const maxTail = 100000

// New returns the API server. With tokens, every request but GET /healthz
// must carry one of them as a bearer token, whose scope allows it.
func New(deps Deps, opts Options) *Server {
	if opts.Timezone == "" {
		opts.Timezone = "UTC"
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	s := &Server{deps: deps, opts: opts, log: opts.Log, mux: http.NewServeMux(),
		hosts: map[string]struct{}{}, scopes: map[string]Scope{}}
	for _, t := range opts.Tokens {
		s.tokens = append(s.tokens, token{name: t.Name, scope: t.Scope, digest: sha256.Sum256([]byte(t.Secret))})
	}
	for _, h := range opts.Hosts {
		s.hosts[hostOnly(h)] = struct{}{}
	}
	for _, rt := range routes() {
		if rt.scope == scopeMetrics {
			rt.scope = ScopeRead
			if opts.OpenMetrics {
				rt.scope = scopePublic
			}
		}
		s.mux.HandleFunc(rt.pattern, func(w http.ResponseWriter, r *http.Request) { rt.handle(s, w, r) })
		s.scopes[rt.pattern] = rt.scope
	}
	return s
}

// ServeHTTP checks that the request does not come from a browser's page
// (guard), authenticates its token, routes it, checks the token's scope,
// and logs each write with the token's name.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := s.guard(r); err != nil {
		s.writeError(w, r, err)
		return
	}
	_, pattern := s.mux.Handler(r)
	scope := s.scopes[pattern]
	if scope == scopePublic {
		s.mux.ServeHTTP(w, r)
		return
	}
	c, ok := s.authenticate(r)
	if !ok {
		s.log.Warn("api request without a valid token", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
		s.writeError(w, r, errUnauthorized)
		return
	}
	r = withCaller(r, c)
	if pattern == "" {
		s.noRoute(w, r)
		return
	}
	if err := need(r, scope, r.Method+" "+r.URL.Path); err != nil || scope <= 0 {
		if err == nil { // a route without a scope: TestEveryRouteHasAScope
			err = fmt.Errorf("route %s has no scope", pattern)
		}
		s.log.Warn("api request refused", "method", r.Method, "path", r.URL.Path, "token", c.name, "err", err)
		s.writeError(w, r, err)
		return
	}
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		s.mux.ServeHTTP(w, r)
		return
	}
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	s.mux.ServeHTTP(sw, r)
	s.log.Info("api write", "method", r.Method, "path", r.URL.Path, "token", c.name, "status", sw.status, "remote", r.RemoteAddr)
}

// statusWriter notes the status of an answer, for the log.
type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(status int) {
	if !w.wrote {
		w.status, w.wrote = status, true
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// noRoute answers a request that no route takes, in JSON: 405 with the
// allowed methods when the path exists, else 404.
func (s *Server) noRoute(w http.ResponseWriter, r *http.Request) {
	var allowed []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := s.mux.Handler(probe); pattern != "" {
			allowed = append(allowed, m)
		}
	}
	if len(allowed) == 0 {
		writeJSON(w, http.StatusNotFound, api.ErrorBody{Code: api.CodeNotFound, Message: "no such endpoint: " + r.URL.Path})
		return
	}
	w.Header().Set("Allow", strings.Join(allowed, ", "))
	writeJSON(w, http.StatusMethodNotAllowed, api.ErrorBody{Code: api.CodeInvalid,
		Message: fmt.Sprintf("%s is not allowed on %s (allowed: %s)", r.Method, r.URL.Path, strings.Join(allowed, ", "))})
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.deps.Health.Check(r.Context()))
}

func (s *Server) listTools(w http.ResponseWriter, r *http.Request) {
	pagedList(s, w, r, s.deps.Tools.ToolPage, "tools")
}

// Pages of the lists sorted by name (tools, datasets, schedules).
const (
	defaultNameLimit = 500
	maxNameLimit     = 5000
)

// pagedList answers a list route whose items have names, a page at a
// time, read by read: limit (default defaultNameLimit) and continue, the
// token of the last name of the page before.
func pagedList[T any](s *Server, w http.ResponseWriter, r *http.Request, read func(ctx context.Context, after string, limit int) ([]T, string, error),
	dirs ...string) {
	limit, after, err := pageQuery(r.URL.Query())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	page, last, err := read(r.Context(), after, limit)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	next := ""
	if last != "" {
		next = base64.RawURLEncoding.EncodeToString([]byte(last))
	}
	out := api.List[T]{Items: shown(page).([]T), Invalid: s.deps.Invalid.InvalidRecords(dirs...), Continue: next}
	if out.Items == nil {
		out.Items = []T{}
	}
	s.answer(w, r, http.StatusOK)(out, nil)
}

// pageQuery reads the limit and continue of a list by name: the page's
// size, and the name after which it starts ("": the first).
func pageQuery(q url.Values) (int, string, error) {
	limit := defaultNameLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxNameLimit {
			return 0, "", &badRequest{fmt.Sprintf("limit=%q: want a number from 1 to %d", v, maxNameLimit)}
		}
		limit = n
	}
	after := ""
	if v := q.Get("continue"); v != "" {
		// Any name: a page starts after it, within the list's own keys.
		b, err := base64.RawURLEncoding.DecodeString(v)
		if err != nil || len(b) == 0 || len(b) > 64<<10 {
			return 0, "", &badRequest{"continue: not a token that this list gave"}
		}
		after = string(b)
	}
	return limit, after, nil
}

// namePage picks the page of items, read whole, that q's limit and
// continue ask for.
func namePage[T any](q url.Values, items []T, name func(T) string) ([]T, string, error) {
	limit, after, err := pageQuery(q)
	if err != nil {
		return nil, "", err
	}
	slices.SortFunc(items, func(a, b T) int { return strings.Compare(name(a), name(b)) })
	start := 0
	if after != "" {
		start = sort.Search(len(items), func(i int) bool { return name(items[i]) > after })
	}
	page := items[start:min(start+limit, len(items))]
	if start+limit < len(items) {
		return page, base64.RawURLEncoding.EncodeToString([]byte(name(page[len(page)-1]))), nil
	}
	return page, "", nil
}

// list answers a list route: the items, with the records under the key
// directories dirs that were left out as invalid.
func list[T any](s *Server, w http.ResponseWriter, r *http.Request, items []T, err error, dirs ...string) {
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := api.List[T]{Items: shown(items).([]T), Invalid: s.deps.Invalid.InvalidRecords(dirs...)}
	if out.Items == nil {
		out.Items = []T{}
	}
	s.answer(w, r, http.StatusOK)(out, nil)
}

// check reads every record of the federation, as maoctl federation check
// asks.
func (s *Server) check(w http.ResponseWriter, r *http.Request) {
	s.answer(w, r, http.StatusOK)(s.deps.Invalid.CheckRecords(r.Context()))
}

func (s *Server) getTool(w http.ResponseWriter, r *http.Request) {
	s.answer(w, r, http.StatusOK)(s.deps.Tools.Tool(r.Context(), r.PathValue("name")))
}

func (s *Server) createTool(w http.ResponseWriter, r *http.Request) {
	t, err := decodeTool(r)
	if err == nil && s.opts.CheckTool != nil {
		err = s.opts.CheckTool(t)
	}
	create(s, w, r, t, t.Name, err, s.deps.ToolEdits.CreateTool)
}

// create stores a new registry record that was decoded and validated
// (unless err) and answers 201 with it.
func create[T any](s *Server, w http.ResponseWriter, r *http.Request, v T, name string, err error, store func(context.Context, T) error) {
	if err == nil {
		err = store(r.Context(), v)
	}
	w.Header().Set("Location", r.URL.Path+"/"+name)
	s.answer(w, r, http.StatusCreated)(v, err)
}

func (s *Server) deleteTool(w http.ResponseWriter, r *http.Request) {
	s.noContent(w, r, s.deps.ToolEdits.DeleteTool(r.Context(), r.PathValue("name")))
}

// startRun starts runs of a tool: here with no body, else where the
// api.RunRequest's target says. It answers with the list of runs, which
// record the caller's token name.
func (s *Server) startRun(w http.ResponseWriter, r *http.Request) {
	req, err := decodeOptional[api.RunRequest](r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.answer(w, r, http.StatusAccepted)(s.deps.Launcher.Request(r.Context(), r.PathValue("name"), req, callerOf(r).name))
}

// replayRun runs a past run again, exactly (see runner's replay): a new
// run, linked to the original.
func (s *Server) replayRun(w http.ResponseWriter, r *http.Request) {
	req, err := decodeOptional[api.ReplayRequest](r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	orig, err := s.deps.Runs.Run(r.Context(), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.answer(w, r, http.StatusAccepted)(s.deps.Launcher.Replay(r.Context(), orig, req, callerOf(r).name))
}

func (s *Server) listDatasets(w http.ResponseWriter, r *http.Request) {
	pagedList(s, w, r, s.deps.Datasets.DatasetPage, "datasets")
}

func (s *Server) getDataset(w http.ResponseWriter, r *http.Request) {
	s.answer(w, r, http.StatusOK)(s.deps.Datasets.Dataset(r.Context(), r.PathValue("name")))
}

func (s *Server) createDataset(w http.ResponseWriter, r *http.Request) {
	d, err := decodeDataset(r)
	create(s, w, r, d, d.Name, err, s.deps.DatasetEdits.CreateDataset)
}

func (s *Server) deleteDataset(w http.ResponseWriter, r *http.Request) {
	s.noContent(w, r, s.deps.DatasetEdits.DeleteDataset(r.Context(), r.PathValue("name")))
}

// listRuns lists a page of runs, newest first: all, or those of a tool, a
// schedule, a site, a state, created since a time, or whose commit's push
// is in a state (push=pending|pushed|conflict|failed); limit and continue
// page them (RunFilter).
func (s *Server) listRuns(w http.ResponseWriter, r *http.Request) {
	f, err := runFilter(r.URL.Query())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	runs, next, err := s.deps.Runs.RunPage(r.Context(), f)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if runs == nil {
		runs = []api.Run{}
	}
	dirs := []string{"runs", "run-index"}
	if f.Schedule != "" {
		dirs = append(dirs, "schedule-runs")
	}
	s.answer(w, r, http.StatusOK)(api.List[api.Run]{Items: shown(runs).([]api.Run),
		Invalid: s.deps.Invalid.InvalidRecords(dirs...), Continue: next}, nil)
}

// keySegment reports whether s can be an ID in a key: 1 to 255 lowercase
// letters, digits, '.', '_' and '-'.
func keySegment(s string) bool {
	return len(s) > 0 && len(s) <= 255 && strings.Trim(s, "abcdefghijklmnopqrstuvwxyz0123456789._-") == ""
}

// runFilter reads GET /runs's query, refusing what is not a name, a state,
// a time or a number where one goes.
func runFilter(q url.Values) (api.RunFilter, error) {
	f := api.RunFilter{Tool: q.Get("tool"), Schedule: q.Get("schedule"), Site: q.Get("site"),
		Push: api.PushState(q.Get("push")), State: api.RunState(q.Get("state")), Continue: q.Get("continue")}
	var problems []string
	for key, name := range map[string]string{"tool": f.Tool, "site": f.Site} {
		if name != "" && toolspec.CheckName(name) != nil {
			problems = append(problems, fmt.Sprintf("%s=%q: not a name", key, name))
		}
	}
	if f.Schedule != "" && !keySegment(f.Schedule) {
		problems = append(problems, fmt.Sprintf("schedule=%q: not a schedule ID", f.Schedule))
	}
	if f.Push != "" && !f.Push.Valid() {
		problems = append(problems, fmt.Sprintf("push=%q: want pending, pushed, conflict or failed", f.Push))
	}
	if f.State != "" && !f.State.Valid() {
		problems = append(problems, fmt.Sprintf("state=%q: not a run state", f.State))
	}
	if v := q.Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			problems = append(problems, fmt.Sprintf("since=%q: want an RFC 3339 time, such as 2026-01-02T15:04:05Z", v))
		}
		f.Since = t
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			problems = append(problems, fmt.Sprintf("limit=%q: want a number from 1 up", v))
		}
		f.Limit = n
	}
	if len(problems) > 0 {
		slices.Sort(problems)
		return f, &badRequest{strings.Join(problems, "; ")}
	}
	return f, nil
}

func (s *Server) getRun(w http.ResponseWriter, r *http.Request) {
	s.answer(w, r, http.StatusOK)(s.deps.Runs.Run(r.Context(), r.PathValue("id")))
}

// listSites lists the sites etcd knows, the asked site's row saying
// whether it journals records. While etcd does not answer, it lists the
// asked site alone, from what it knows of itself, with a note saying so.
func (s *Server) listSites(w http.ResponseWriter, r *http.Request) {
	sites, err := s.deps.Sites.SiteInfos(r.Context())
	if s.deps.Offline == nil {
		list(s, w, r, sites, err, "sites", "sites-seen")
		return
	}
	if errors.Is(err, errs.ErrUnavailable) {
		s.deps.Offline.Unreachable(err)
		s.answer(w, r, http.StatusOK)(api.List[api.SiteInfo]{Items: []api.SiteInfo{s.deps.Offline.OwnSite()},
			Note: fmt.Sprintf("etcd does not answer site %s: only its own row is shown, from what it knows of itself (%v)", s.opts.Site, err)}, nil)
		return
	}
	own := s.deps.Offline.OwnSite()
	for i := range sites {
		if sites[i].Name == own.Name {
			sites[i].Offline, sites[i].Journaled = own.Offline, own.Journaled
		}
	}
	list(s, w, r, sites, err, "sites", "sites-seen")
}

func (s *Server) federation(w http.ResponseWriter, r *http.Request) {
	s.answer(w, r, http.StatusOK)(s.deps.Federation.Federation(r.Context()))
}

func (s *Server) addSite(w http.ResponseWriter, r *http.Request) {
	req, err := decodeAddSite(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if s.deps.Issuer == nil {
		s.writeError(w, r, errNoCA)
		return
	}
	s.answer(w, r, http.StatusCreated)(s.deps.Issuer.AddSite(r.Context(), req))
}

// credentials issues a collaborator's read-only certificate for etcd.
func (s *Server) credentials(w http.ResponseWriter, r *http.Request) {
	req, err := decodeCredentials(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if s.deps.Issuer == nil {
		s.writeError(w, r, errNoCA)
		return
	}
	s.answer(w, r, http.StatusCreated)(s.deps.Issuer.Credentials(r.Context(), req))
}

// errNoCA is the answer of a site that has none of the federation's
// certificates (an external etcd, and it has not joined).
var errNoCA = errs.New(errs.ErrConflict, "this site has no federation certificates: it cannot issue join tokens or credentials, "+
	"nor read other sites' logs; join it with a token from a site that has them (etcd.join_token)")

// leave has this site begin to leave the federation, if the request
// names it: 202, with what becomes of the votes; the site shuts down and
// leaves at the end.
func (s *Server) leave(w http.ResponseWriter, r *http.Request) {
	req, err := decodeLeave(r)
	if err == nil && req.Site != s.opts.Site {
		err = &toolspec.ValidationError{Kind: "leave request", Fields: []toolspec.FieldError{{Field: "site",
			Problem: fmt.Sprintf("is %q, but this is site %s: ask the site that leaves", req.Site, s.opts.Site)}}}
	}
	if err == nil && s.deps.Leaver == nil {
		err = errs.New(errs.ErrConflict, "this site cannot leave the federation from its API")
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.answer(w, r, http.StatusAccepted)(s.deps.Leaver.Leave(r.Context()))
}

func (s *Server) removeSite(w http.ResponseWriter, r *http.Request) {
	s.noContent(w, r, s.deps.Federation.RemoveSite(r.Context(), r.PathValue("name")))
}

// runLogs sends a run's log as text; with follow=true it streams until the
// run has ended and its record is final. The log of a run held by another
// site is read from that site (proxyLogs).
func (s *Server) runLogs(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	follow, tail, err := logParams(r.URL.Query())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	// A log streams for as long as its run lasts, and a long one takes
	// the time the client's link needs: the server's write timeout
	// (HTTPServer) is for the other routes.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Time{})
	run, err := s.deps.Runs.Run(r.Context(), id)
	if err == nil && run.Site == "" && follow {
		run, err = s.deps.Runs.WaitClaimed(r.Context(), id) // it waits for a site
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if run.Site != "" && run.Site != s.opts.Site {
		s.proxyLogs(w, r, run)
		return
	}
	s.serveLog(w, r, run, follow, tail)
}

// LocalLogs serves the log of a run held by this site, and of no other:
// what other sites ask for through the federation API.
func (s *Server) LocalLogs() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		follow, tail, err := logParams(r.URL.Query())
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		run, err := s.deps.Runs.Run(r.Context(), r.PathValue("id"))
		if err == nil && run.Site != s.opts.Site {
			err = errs.New(errs.ErrNotFound, fmt.Sprintf("run %s is not held by site %s", run.ID, s.opts.Site))
		}
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		s.serveLog(w, r, run, follow, tail)
	})
}

// logParams reads the query of a log request: follow, and tail lines.
func logParams(q url.Values) (follow bool, tail int, err error) {
	if follow, err = boolParam(q.Get("follow")); err != nil {
		return false, 0, &badRequest{"follow: " + err.Error()}
	}
	if v := q.Get("tail"); v != "" {
		if tail, err = strconv.Atoi(v); err != nil || tail < 0 || tail > maxTail {
			return false, 0, &badRequest{fmt.Sprintf("tail: %q is not a number of lines from 0 to %d", v, maxTail)}
		}
	}
	if tail > 0 && follow {
		return false, 0, &badRequest{"tail and follow cannot be combined"}
	}
	return follow, tail, nil
}

// serveLog sends the log this site keeps of run.
func (s *Server) serveLog(w http.ResponseWriter, r *http.Request, run api.Run, follow bool, tail int) {
	id := run.ID
	if tail > 0 {
		var buf bytes.Buffer
		if err := s.deps.Logs.Tail(id, tail, &buf); err != nil {
			s.writeError(w, r, whyNoLog(err, run))
			return
		}
		writeText(w, buf.Bytes())
		return
	}
	if follow && !run.State.Terminal() {
		// Claimed a moment ago, it may not have started its log yet.
		wait, cancel := context.WithTimeout(r.Context(), logWait)
		_ = s.deps.Logs.Await(wait, id) // Copy reports a log that never came
		cancel()
	}
	out := &textStream{w: w, rc: http.NewResponseController(w)}
	err := s.deps.Logs.Copy(r.Context(), id, follow, out, out.flush)
	switch {
	case err != nil && !out.started:
		s.writeError(w, r, whyNoLog(err, run))
	case err != nil:
		logError(s.log, r, err)
	}
}

// whyNoLog adds to err, that this site has no log of run, where the log
// would be, or why there is none.
func whyNoLog(err error, run api.Run) error {
	switch {
	case run.Site == "":
		return fmt.Errorf("%w (run %s is %s: no site has taken it yet)", err, run.ID, run.State)
	case run.StartedAt == nil && run.State.Terminal():
		return fmt.Errorf("%w (run %s was %s at site %s and never started)", err, run.ID, run.State, run.Site)
	}
	return fmt.Errorf("%w (run %s ran at site %s)", err, run.ID, run.Site)
}

// logWait bounds the wait for the log of a run that has not started it.
const logWait = 10 * time.Second

// textStream answers 200 with a text body on its first write or flush, so
// that an error before then can still be sent as a JSON error.
type textStream struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	started bool
}

func (t *textStream) begin() {
	if !t.started {
		t.started = true
		t.w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		t.w.Header().Set("X-Content-Type-Options", "nosniff")
		t.w.WriteHeader(http.StatusOK)
	}
}

func (t *textStream) Write(p []byte) (int, error) {
	t.begin()
	return t.w.Write(p)
}

// flush sends what was written so far; a client that went away is noticed
// by the next write.
func (t *textStream) flush() {
	t.begin()
	_ = t.rc.Flush()
}

func writeText(w http.ResponseWriter, p []byte) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(p) // the client went away; nothing to do
}

func boolParam(v string) (bool, error) {
	if v == "" {
		return false, nil
	}
	return strconv.ParseBool(v)
}

// answer returns a function that writes v with status, or err.
func (s *Server) answer(w http.ResponseWriter, r *http.Request, status int) func(v any, err error) {
	return func(v any, err error) {
		if err != nil {
			w.Header().Del("Location")
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, status, shown(v))
	}
}

func (s *Server) noContent(w http.ResponseWriter, r *http.Request, err error) {
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
