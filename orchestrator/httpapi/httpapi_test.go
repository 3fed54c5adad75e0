package httpapi

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/internal/testenv"
	"github.com/mao-research/mao/orchestrator/errs"
	"github.com/mao-research/mao/orchestrator/etcdembed"
	"github.com/mao-research/mao/orchestrator/runlog"
	"github.com/mao-research/mao/orchestrator/store"
)

// fakeLauncher records a pending run at its site and writes a log for it.
type fakeLauncher struct {
	st   *store.Store
	logs *runlog.Dir
	site string
}

func (f *fakeLauncher) Request(ctx context.Context, tool string, _ api.RunRequest, requestedBy string) ([]api.Run, error) {
	t, err := f.st.Tool(ctx, tool)
	if err != nil {
		return nil, err
	}
	run := api.Run{ID: tool + "-1", Tool: tool, Site: f.site, State: api.StatePending, CreatedAt: time.Unix(1, 0).UTC(),
		RequestedBy: requestedBy, DataRepo: t.DataRepo}
	l, err := f.logs.Create(run.ID)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(l, "line 1 at %s\nline 2\nline 3\n", f.site)
	l.Close()
	return []api.Run{run}, f.st.CreateRun(ctx, run)
}

// Replay records a pending replay of orig at its site, refusing a run that
// did not succeed, as the dispatcher does.
func (f *fakeLauncher) Replay(ctx context.Context, orig api.Run, req api.ReplayRequest, requestedBy string) (api.Run, error) {
	if orig.State != api.StateSucceeded {
		return api.Run{}, errs.New(errs.ErrConflict, "run "+orig.ID+" cannot be replayed: it is "+string(orig.State))
	}
	run := api.Run{ID: orig.Tool + "-2", Tool: orig.Tool, Site: cmp.Or(req.Site, f.site), State: api.StatePending,
		Trigger: api.TriggerReplay, RequestedBy: requestedBy, DataRepo: orig.DataRepo, CreatedAt: time.Unix(2, 0).UTC(),
		Replay: &api.Replay{Of: orig.ID, Site: orig.Site}}
	return run, f.st.CreateRun(ctx, run)
}

// fakeHealth answers with status, "ok" when empty, and counts the checks.
type fakeHealth struct {
	status string
	checks atomic.Int32
}

func (f *fakeHealth) Check(context.Context) api.Health {
	f.checks.Add(1)
	return api.Health{Status: cmp.Or(f.status, "ok"), Site: "s1", Etcd: "ok", Docker: "dial unix /var/run/docker.sock: secret detail"}
}

// fakeTester answers a notify test without sending anything.
type fakeTester struct{}

func (fakeTester) Test(_ context.Context, url string) ([]api.Notification, error) {
	return []api.Notification{{Kind: "test", Channel: url, Status: "sent"}}, nil
}

// fakeLeaver is a site that can always leave.
type fakeLeaver struct{ site string }

func (f fakeLeaver) Leave(context.Context) (api.LeaveResult, error) {
	return api.LeaveResult{Site: f.site, Voting: api.Voting{Note: "site " + f.site + " removes its etcd member"}}, nil
}

var (
	_ Leaver     = fakeLeaver{}
	_ Launcher   = (*fakeLauncher)(nil)
	_ Health     = (*fakeHealth)(nil)
	_ Runs       = (*store.Store)(nil)
	_ Sites      = (*store.Store)(nil)
	_ Federation = (*store.Store)(nil)
)

type env struct {
	etcd   *clientv3.Client
	client *api.Client // with the first token
	url    string
	store  *store.Store
	site   string
	logs   *runlog.Dir
	health *fakeHealth
	srv    *Server
	log    *bytes.Buffer // the server's log, as JSON lines
}

// admin returns tokens of scope admin with the given secrets, named
// admin-1, admin-2, ...
func admin(secrets ...string) []Token {
	out := make([]Token, len(secrets))
	for i, s := range secrets {
		out[i] = Token{Name: fmt.Sprintf("admin-%d", i+1), Scope: ScopeAdmin, Secret: s}
	}
	return out
}

func newEnv(t *testing.T, endpoints []string, tokens ...Token) env {
	t.Helper()
	return newSiteEnv(t, "s1", endpoints, tokens...)
}

// newSiteEnv serves the API of the named site; its site record is not
// written (see join).
func newSiteEnv(t *testing.T, site string, endpoints []string, tokens ...Token) env {
	t.Helper()
	return newOptsEnv(t, endpoints, Options{Site: site, Tokens: tokens, Timezone: "Europe/Zurich"})
}

// newProxyingEnv is newSiteEnv with a proxy to other sites' logs.
func newProxyingEnv(t *testing.T, site string, endpoints []string, proxy LogProxy, tokens ...Token) env {
	t.Helper()
	return newEnvWith(t, endpoints, Options{Site: site, Tokens: tokens, Timezone: "Europe/Zurich"}, proxy)
}

// newOptsEnv serves the API with opts on a loopback port.
func newOptsEnv(t *testing.T, endpoints []string, opts Options) env {
	t.Helper()
	return newEnvWith(t, endpoints, opts, nil)
}

// newEnvWith is newOptsEnv with a proxy to other sites' logs.
func newEnvWith(t *testing.T, endpoints []string, opts Options, proxy LogProxy) env {
	t.Helper()
	site, tokens := opts.Site, opts.Tokens
	c, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	st := store.New(c, store.Options{Prefix: "/mao/", Timeout: time.Second})
	logs, err := runlog.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	health, log := &fakeHealth{}, &bytes.Buffer{}
	opts.Log = slog.New(slog.NewJSONHandler(&lockedWriter{w: log}, nil))
	srv := New(Deps{Tools: st, ToolEdits: st, Datasets: st, DatasetEdits: st, Runs: st, Sites: st, Federation: st,
		Leaver: fakeLeaver{site}, Series: st, Notifications: st, NotifyTester: fakeTester{},
		Schedules: st, ScheduleEdits: st, ScheduleEditor: st, ScheduleRuns: st,
		Launcher: &fakeLauncher{st, logs, site}, Logs: logs, Health: health, LogProxy: proxy, Invalid: st}, opts)
	ts := httptest.NewServer(validated(t, srv))
	t.Cleanup(ts.Close)
	token := ""
	if len(tokens) > 0 {
		token = tokens[0].Secret
	}
	client, err := api.NewClient(ts.URL, token, nil)
	if err != nil {
		t.Fatal(err)
	}
	return env{etcd: c, client: client, url: ts.URL, store: st, site: site, logs: logs, health: health, srv: srv, log: log}
}

// as is a client of e's API with the given bearer token.
func (e env) as(t *testing.T, token string) *api.Client {
	t.Helper()
	c, err := api.NewClient(e.url, token, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// lockedWriter serialises writes to w: the server logs from its handlers'
// goroutines while a test reads the log.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (e env) keys(t *testing.T) []string {
	t.Helper()
	r, err := e.etcd.Get(context.Background(), "/mao/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, kv := range r.Kvs {
		keys = append(keys, string(kv.Key))
	}
	return keys
}

func wantStatus(t *testing.T, err error, status int, mentions ...string) *api.Error {
	t.Helper()
	var e *api.Error
	if !errors.As(err, &e) || e.Status != status {
		t.Fatalf("err = %v, want HTTP %d", err, status)
	}
	for _, m := range mentions {
		if !strings.Contains(e.Error(), m) {
			t.Errorf("error %q does not mention %q", e.Error(), m)
		}
	}
	return e
}

func TestBadSpecsAreRejectedWhole(t *testing.T) {
	e := newEnv(t, testenv.Etcd(t))
	ctx := context.Background()
	good := api.Tool{Name: "ok", Author: "a", Image: "busybox", DataRepo: "file:///r"}
	tests := []struct {
		name   string
		tool   api.Tool
		fields []string
	}{
		{"bad name", api.Tool{Name: "Bad Name", Author: "a", Image: "busybox", DataRepo: "file:///r"}, []string{"name:"}},
		{"slash in name", api.Tool{Name: "a/b", Author: "a", Image: "busybox", DataRepo: "file:///r"}, []string{"name: \"a/b\" must not contain '/'"}},
		{"bad image", api.Tool{Name: "t", Author: "a", Image: "UPPER/Case:tag", DataRepo: "file:///r"}, []string{"image:"}},
		{"bad url", api.Tool{Name: "t", Author: "a", Image: "busybox", DataRepo: "ftp://h.example/r"}, []string{"data_repo:"}},
		{"quotes", api.Tool{Name: `t"x`, Author: "a", Image: `busy"box`, DataRepo: `file:///r"`}, []string{"name:", "image:", "data_repo:"}},
		{"everything", api.Tool{}, []string{"name:", "author:", "image:", "data_repo:"}},
		{"unknown input dataset", api.Tool{Name: "t", Author: "a", Image: "busybox", DataRepo: "file:///r", InputDataset: "nope"}, []string{"input_dataset:"}},
		{"a channel no service takes", api.Tool{Name: "t", Author: "a", Image: "busybox", DataRepo: "file:///r",
			Notify: []string{"generic://127.0.0.1:9/ok", "ftp://u:pw@127.0.0.1/x"}}, []string{`notify[1]: names no service`}},
		{"a channel no service takes, and more", api.Tool{Name: "t", Image: "busybox", DataRepo: "file:///r",
			Notify: []string{"ftp://u:pw@127.0.0.1/x"}}, []string{"author:", "notify[0]:"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.client.RegisterTool(ctx, tc.tool)
			apiErr := wantStatus(t, err, http.StatusBadRequest, tc.fields...)
			if len(apiErr.Details) != len(tc.fields) {
				t.Errorf("details %q, want one per field %v", apiErr.Details, tc.fields)
			}
			if keys := e.keys(t); len(keys) != 0 {
				t.Fatalf("a rejected spec wrote %v", keys)
			}
		})
	}
	if _, err := e.client.RegisterDataset(ctx, api.Dataset{Name: "x/y", URL: "nope"}); err == nil {
		t.Fatal("bad dataset accepted")
	} else {
		wantStatus(t, err, http.StatusBadRequest, "name:", "url:")
	}
	// Quotes in free text are data, not syntax: they round-trip intact.
	quoted := good
	quoted.Author, quoted.Description = `O'Brien "Bob"`, `say "hi" \ bye`
	if _, err := e.client.RegisterTool(ctx, quoted); err != nil {
		t.Fatal(err)
	}
	got, err := e.client.Tool(ctx, "ok")
	if err != nil || got.Author != quoted.Author || got.Description != quoted.Description {
		t.Fatalf("round trip: %+v %v", got, err)
	}
}

func TestMalformedBodies(t *testing.T) {
	e := newEnv(t, testenv.Etcd(t))
	const tools, notifyTest = "/api/v1/tools", "/api/v1/notifications/test"
	tests := []struct {
		path    string
		body    string
		mention string
	}{
		{tools, `{"name":"t","imagee":"x"}`, "unknown field"},
		{tools, `{"name":`, "malformed JSON"},
		{tools, `[1,2]`, "malformed JSON"},
		{tools, strings.Repeat(" ", maxBody+1), "larger than"},
		{notifyTest, `{"url":"ftp://u:pw@127.0.0.1/x"}`, `url: names no service that mao can send to (\"ftp\"`},
		{notifyTest, `{"url":"nothing"}`, "url: is not a channel URL"},
		{notifyTest, `{"url":"slack+https://127.0.0.1:9/"}`, "url: service slack takes no custom URL"},
	}
	for _, tc := range tests {
		resp, err := http.Post(e.url+tc.path, "application/json; charset=utf-8", strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), tc.mention) {
			t.Errorf("POST %.20q: %d %s", tc.body, resp.StatusCode, body)
		}
	}
}

func TestRegistryCodes(t *testing.T) {
	e := newEnv(t, testenv.Etcd(t))
	ctx := context.Background()
	tool := api.Tool{Name: "t1", Author: "a", Image: "busybox", DataRepo: "file:///r", InputDataset: "ds"}
	ds := api.Dataset{Name: "ds", URL: "file:///ds"}
	if _, err := e.client.RegisterDataset(ctx, ds); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.RegisterTool(ctx, tool); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		call   func() error
		status int
	}{
		{"duplicate tool", func() error { _, err := e.client.RegisterTool(ctx, tool); return err }, http.StatusConflict},
		{"duplicate dataset", func() error { _, err := e.client.RegisterDataset(ctx, ds); return err }, http.StatusConflict},
		{"dataset in use", func() error { return e.client.RemoveDataset(ctx, "ds") }, http.StatusConflict},
		{"unknown tool", func() error { _, err := e.client.Tool(ctx, "nope"); return err }, http.StatusNotFound},
		{"unknown dataset", func() error { _, err := e.client.Dataset(ctx, "nope"); return err }, http.StatusNotFound},
		{"remove unknown tool", func() error { return e.client.RemoveTool(ctx, "nope") }, http.StatusNotFound},
		{"remove unknown dataset", func() error { return e.client.RemoveDataset(ctx, "nope") }, http.StatusNotFound},
		{"run unknown tool", func() error { _, err := e.client.RunTool(ctx, "nope", api.RunRequest{}); return err }, http.StatusNotFound},
		{"unknown run", func() error { _, err := e.client.Run(ctx, "nope"); return err }, http.StatusNotFound},
		{"replay of an unknown run", func() error { _, err := e.client.ReplayRun(ctx, "nope", api.ReplayRequest{}); return err }, http.StatusNotFound},
		{"logs of unknown run", func() error { return e.client.RunLogs(ctx, "nope", api.LogOptions{}, io.Discard) }, http.StatusNotFound},
		{"tail with follow", func() error {
			return e.client.RunLogs(ctx, "t1-1", api.LogOptions{Tail: 2, Follow: true}, io.Discard)
		}, http.StatusBadRequest},
	}
	for _, tc := range tests {
		err := tc.call()
		if tc.status == 0 {
			continue
		}
		var apiErr *api.Error
		if !errors.As(err, &apiErr) || apiErr.Status != tc.status {
			t.Errorf("%s: %v, want HTTP %d", tc.name, err, tc.status)
		}
	}
	// The happy paths through the same client.
	runs, err := e.client.RunTool(ctx, "t1", api.RunRequest{})
	if err != nil || len(runs) != 1 || runs[0].State != api.StatePending {
		t.Fatalf("run: %+v %v", runs, err)
	}
	run := runs[0]
	var logs strings.Builder
	if err := e.client.RunLogs(ctx, run.ID, api.LogOptions{Tail: 2}, &logs); err != nil || logs.String() != "line 2\nline 3\n" {
		t.Fatalf("tail: %q %v", logs.String(), err)
	}
	if runs, err := e.client.Runs(ctx, api.RunFilter{Tool: "t1"}); err != nil || len(runs.Items) != 1 {
		t.Fatalf("runs: %v %v", runs, err)
	}
	var apiErr *api.Error
	if _, err := e.client.ReplayRun(ctx, run.ID, api.ReplayRequest{}); !errors.As(err, &apiErr) || apiErr.Status != http.StatusConflict {
		t.Fatalf("replay of a pending run: %v, want 409", err)
	}
	// By push state: the run's commit failed to push.
	if _, err := e.store.UpdateRun(ctx, run.ID, func(r api.Run) (api.Run, error) {
		r.State, r.Push = api.StateSucceeded, &api.Push{State: api.PushFailed, Reason: "push to https://***@h/x: down", Attempts: 2}
		return r, nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		push api.PushState
		want int
	}{{api.PushFailed, 1}, {api.PushPending, 0}, {"", 1}} {
		if runs, err := e.client.Runs(ctx, api.RunFilter{Push: tc.push}); err != nil || len(runs.Items) != tc.want {
			t.Errorf("runs with push %q: %v %v; want %d", tc.push, runs, err, tc.want)
		}
	}
	if _, err := e.client.Runs(ctx, api.RunFilter{Push: "forced"}); !errors.As(err, &apiErr) || apiErr.Status != http.StatusBadRequest {
		t.Errorf("runs with push forced: %v, want 400", err)
	}
	if err := e.client.RemoveTool(ctx, "t1"); err != nil {
		t.Fatal(err)
	}
	if err := e.client.RemoveDataset(ctx, "ds"); err != nil {
		t.Fatal(err)
	}
	if list, err := e.client.Tools(ctx); err != nil || len(list.Items) != 0 {
		t.Fatalf("tools after remove: %v %v", list, err)
	}
}

func TestTokens(t *testing.T) {
	endpoints := testenv.Etcd(t)
	e := newEnv(t, endpoints, admin("s3cret", "other")...)
	ctx := context.Background()
	if _, err := e.client.Tools(ctx); err != nil {
		t.Fatalf("right token: %v", err)
	}
	for _, token := range []string{"", "wrong", "s3cret2"} {
		c, _ := api.NewClient(e.url, token, nil)
		_, err := c.Tools(ctx)
		wantStatus(t, err, http.StatusUnauthorized, "bearer token")
		_, err = c.Health(ctx)
		wantStatus(t, err, http.StatusUnauthorized)
	}
	req, _ := http.NewRequest(http.MethodGet, e.url+"/api/v1/tools", nil)
	req.Header.Set("Authorization", "Basic s3cret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" {
		t.Fatalf("basic auth: %d %v", resp.StatusCode, resp.Header)
	}
}

func TestEtcdUnreachable(t *testing.T) {
	srv, err := etcdembed.Start(context.Background(), etcdembed.Options{Dir: t.TempDir(), ClientURL: "http://127.0.0.1:0", PeerURL: "http://127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, srv.Endpoints())
	srv.Close()
	ctx := context.Background()
	calls := map[string]func() error{
		"list": func() error { _, err := e.client.Tools(ctx); return err },
		"register": func() error {
			_, err := e.client.RegisterDataset(ctx, api.Dataset{Name: "d", URL: "file:///d"})
			return err
		},
		"show": func() error { _, err := e.client.Run(ctx, "r"); return err },
	}
	for name, call := range calls {
		err := call()
		apiErr := wantStatus(t, err, http.StatusServiceUnavailable, "etcd unavailable")
		if apiErr.Code != api.CodeUnavailable {
			t.Errorf("%s: code %q", name, apiErr.Code)
		}
	}
}

func TestNoRoute(t *testing.T) {
	e := newEnv(t, testenv.Etcd(t))
	tests := []struct {
		method, path string
		status       int
		allow        string
	}{
		{http.MethodGet, "/api/v1/nope", http.StatusNotFound, ""},
		{http.MethodGet, "/", http.StatusNotFound, ""},
		{http.MethodPut, "/api/v1/tools/x", http.StatusMethodNotAllowed, "GET, DELETE"},
		{http.MethodDelete, "/api/v1/tools", http.StatusMethodNotAllowed, "GET, POST"},
	}
	for _, tc := range tests {
		req, _ := http.NewRequest(tc.method, e.url+tc.path, nil)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status || resp.Header.Get("Content-Type") != "application/json" || resp.Header.Get("Allow") != tc.allow {
			t.Errorf("%s %s: %d %q allow %q", tc.method, tc.path, resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Allow"))
		}
	}
}

func mustZone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// TestLeaveNamesTheSite: a request to leave the federation must name the
// site asked (a guard against the wrong --addr): another name is a 400
// naming this site, and the site's own is 202 with what the leaver said.
func TestLeaveNamesTheSite(t *testing.T) {
	e := newEnv(t, testenv.Etcd(t))
	_, err := e.client.Leave(context.Background(), "s2")
	wantStatus(t, err, http.StatusBadRequest, "site", "this is site s1")
	res, err := e.client.Leave(context.Background(), "s1")
	if err != nil || res.Site != "s1" || !strings.Contains(res.Voting.Note, "removes its etcd member") {
		t.Fatalf("leave s1: %+v, %v", res, err)
	}
}
