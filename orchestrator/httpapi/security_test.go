package httpapi

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/internal/testenv"
	"github.com/mao-research/mao/toolspec"
)

// Tokens of each scope, for the tests below.
var (
	readToken  = Token{Name: "dashboard", Scope: ScopeRead, Secret: "read-0123456789abcdef"}
	runToken   = Token{Name: "ci", Scope: ScopeRun, Secret: "run-0123456789abcdef"}
	adminToken = Token{Name: "ada", Scope: ScopeAdmin, Secret: "admin-0123456789abcdef"}
)

// placeholder fills a route pattern's wildcards.
var placeholder = regexp.MustCompile(`\{[a-z]+\}`)

// TestEveryRouteHasAScope walks every route the server registers: each
// needs a scope, GETs need read, writes need run or admin, and only
// /healthz and the OpenAPI document are public (and /metrics with
// open_metrics).
func TestEveryRouteHasAScope(t *testing.T) {
	s := New(Deps{}, Options{})
	seen := map[string]bool{}
	for _, rt := range routes() {
		method, path, _ := strings.Cut(rt.pattern, " ")
		req := httptest.NewRequest(method, placeholder.ReplaceAllString(path, "x"), nil)
		_, pattern := s.mux.Handler(req)
		scope, registered := s.scopes[pattern]
		switch {
		case pattern != rt.pattern || !registered:
			t.Errorf("%s routes to %q", rt.pattern, pattern)
		case seen[pattern]:
			t.Errorf("%s is in the table twice", pattern)
		case pattern == "GET /healthz" || pattern == "GET /api/v1/openapi.json":
			if scope != scopePublic {
				t.Errorf("%s has scope %s, want public", pattern, scope)
			}
		case scope != ScopeRead && scope != ScopeRun && scope != ScopeAdmin:
			t.Errorf("%s has no scope (%s)", pattern, scope)
		case method == http.MethodGet && scope != ScopeRead:
			t.Errorf("%s has scope %s; every GET needs read", pattern, scope)
		case method != http.MethodGet && scope == ScopeRead:
			t.Errorf("%s is a write with scope read", pattern)
		}
		seen[pattern] = true
	}
	if len(seen) != len(s.scopes) {
		t.Errorf("%d routes in the table, %d scopes", len(seen), len(s.scopes))
	}
}

// do sends a raw request to the API. body "" sends none; a write gets
// Content-Type: application/json unless header says otherwise.
func do(t *testing.T, e env, method, path, token, body string, header map[string]string) (int, string) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.url+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if method != http.MethodGet {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range header {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data)
}

// TestScopes sends every route with a token of each scope: a token whose
// scope is below the route's gets 403 naming the scope needed, the others
// get past the check, and a wrong token gets 401.
func TestScopes(t *testing.T) {
	e := newOptsEnv(t, testenv.Etcd(t), Options{Site: "s1", Tokens: []Token{readToken, runToken, adminToken}})
	for _, rt := range routes() {
		if rt.scope == scopePublic {
			continue
		}
		method, path, _ := strings.Cut(rt.pattern, " ")
		path = placeholder.ReplaceAllString(path, "x")
		body := ""
		if method != http.MethodGet {
			body = "{}"
		}
		for _, tok := range []Token{readToken, runToken, adminToken} {
			status, answer := do(t, e, method, path, tok.Secret, body, nil)
			switch {
			case tok.Scope < rt.scope && (status != http.StatusForbidden || !strings.Contains(answer, "needs scope "+rt.scope.String())):
				t.Errorf("%s %s with scope %s: %d %s, want 403 naming scope %s", method, path, tok.Scope, status, answer, rt.scope)
			case tok.Scope >= rt.scope && (status == http.StatusForbidden || status == http.StatusUnauthorized):
				t.Errorf("%s %s with scope %s: %d %s", method, path, tok.Scope, status, answer)
			}
		}
		if status, _ := do(t, e, method, path, "wrong-0123456789abcdef", body, nil); status != http.StatusUnauthorized {
			t.Errorf("%s %s with a wrong token: %d, want 401", method, path, status)
		}
	}
	// A notify test to a URL of the caller's choosing needs admin.
	const withURL = `{"url":"generic://127.0.0.1:9/hook"}`
	if status, answer := do(t, e, http.MethodPost, "/api/v1/notifications/test", runToken.Secret, withURL, nil); status != http.StatusForbidden ||
		!strings.Contains(answer, "needs scope admin") {
		t.Errorf("notify test with a URL, scope run: %d %s", status, answer)
	}
	if status, answer := do(t, e, http.MethodPost, "/api/v1/notifications/test", adminToken.Secret, withURL, nil); status != http.StatusOK {
		t.Errorf("notify test with a URL, scope admin: %d %s", status, answer)
	}
	var apiErr *api.Error
	if _, err := e.as(t, runToken.Secret).RegisterDataset(context.Background(), api.Dataset{Name: "d", URL: "file:///d"}); !errors.As(err, &apiErr) ||
		apiErr.Status != http.StatusForbidden || apiErr.Code != api.CodeForbidden {
		t.Errorf("register with scope run: %v", err)
	}
}

// TestWhoDidWhat checks that writes are logged with the token's name, never
// its secret, and that runs and schedules record the name.
func TestWhoDidWhat(t *testing.T) {
	e := newOptsEnv(t, testenv.Etcd(t), Options{Site: "s1", Tokens: []Token{runToken, adminToken}})
	ctx := context.Background()
	admin, ci := e.as(t, adminToken.Secret), e.as(t, runToken.Secret)
	if _, err := admin.RegisterTool(ctx, api.Tool{Name: "t1", Author: "a", Image: "busybox", DataRepo: "file:///r"}); err != nil {
		t.Fatal(err)
	}
	runs, err := ci.RunTool(ctx, "t1", api.RunRequest{})
	if err != nil || len(runs) != 1 || runs[0].RequestedBy != "ci" {
		t.Fatalf("run: %+v %v; want requested_by ci", runs, err)
	}
	sch, err := admin.CreateSchedule(ctx, api.Schedule{Tool: "t1", Spec: "daily"})
	if err != nil || sch.CreatedBy != "ada" {
		t.Fatalf("schedule: %+v %v; want created_by ada", sch, err)
	}
	updated, err := admin.UpdateSchedule(ctx, api.Schedule{ID: sch.ID, Spec: "weekly", CreatedBy: "mallory"})
	if err != nil || updated.CreatedBy != "ada" {
		t.Fatalf("update: %+v %v; want created_by ada kept", updated, err)
	}
	_, err = admin.CreateSchedule(ctx, api.Schedule{Tool: "t1", Spec: "daily", CreatedBy: "mallory"})
	wantStatus(t, err, http.StatusBadRequest, "created_by")

	type entry struct {
		Msg, Method, Path, Token string
		Status                   int
	}
	var writes []entry
	sc := bufio.NewScanner(strings.NewReader(e.log.String()))
	for sc.Scan() {
		var en entry
		if err := json.Unmarshal(sc.Bytes(), &en); err != nil {
			t.Fatal(err)
		}
		if en.Msg == "api write" {
			writes = append(writes, en)
		}
	}
	want := []entry{
		{"api write", "POST", "/api/v1/tools", "ada", 201},
		{"api write", "POST", "/api/v1/tools/t1/runs", "ci", 202},
		{"api write", "POST", "/api/v1/schedules", "ada", 201},
		{"api write", "PUT", "/api/v1/schedules/" + sch.ID, "ada", 200},
		{"api write", "POST", "/api/v1/schedules", "ada", 400},
	}
	if !reflect.DeepEqual(writes, want) {
		t.Errorf("logged writes\n%+v\nwant\n%+v", writes, want)
	}
	for _, secret := range []string{runToken.Secret, adminToken.Secret} {
		if strings.Contains(e.log.String(), secret) {
			t.Errorf("the log shows a secret")
		}
	}
}

// TestHealthz checks the one route without a token: it says ok or
// degraded and nothing else, and checks at most once a second.
func TestHealthz(t *testing.T) {
	var mu sync.Mutex
	now := time.Unix(1700000000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); defer mu.Unlock(); now = now.Add(d) }
	e := newOptsEnv(t, testenv.Etcd(t), Options{Site: "s1", Tokens: []Token{readToken}, Now: clock})
	check := func(wantCode int, wantStatus string, wantChecks int32) {
		t.Helper()
		code, body := do(t, e, http.MethodGet, "/healthz", "", "", nil)
		var got map[string]any
		if err := json.Unmarshal([]byte(body), &got); err != nil || code != wantCode || !reflect.DeepEqual(got, map[string]any{"status": wantStatus}) {
			t.Errorf("GET /healthz: %d %s, want %d {\"status\":%q}", code, body, wantCode, wantStatus)
		}
		if n := e.health.checks.Load(); n != wantChecks {
			t.Errorf("%d checks, want %d", n, wantChecks)
		}
	}
	check(http.StatusOK, "ok", 1)
	check(http.StatusOK, "ok", 1) // within the second: the same answer
	e.health.status = "degraded"
	advance(healthzEvery)
	check(http.StatusServiceUnavailable, "degraded", 2)
	if code, _ := do(t, e, http.MethodGet, "/api/v1/health", "", "", nil); code != http.StatusUnauthorized {
		t.Errorf("GET /api/v1/health without a token: %d, want 401", code)
	}
	if h, err := e.as(t, readToken.Secret).Health(context.Background()); err != nil || h.Docker == "" {
		t.Errorf("GET /api/v1/health with a token: %+v %v", h, err)
	}
}

// TestTailIsBounded replays the attack that killed the daemon:
// tail=10000000000000 made it allocate that many lines.
func TestTailIsBounded(t *testing.T) {
	e := newEnv(t, testenv.Etcd(t))
	ctx := context.Background()
	if _, err := e.client.RegisterTool(ctx, api.Tool{Name: "t1", Author: "a", Image: "busybox", DataRepo: "file:///r"}); err != nil {
		t.Fatal(err)
	}
	runs, err := e.client.RunTool(ctx, "t1", api.RunRequest{})
	if err != nil {
		t.Fatal(err)
	}
	logs := "/api/v1/runs/" + runs[0].ID + "/logs?tail="
	tests := []struct {
		tail   string
		status int
		body   string
	}{
		{"10000000000000", http.StatusBadRequest, "from 0 to 100000"},
		{"100001", http.StatusBadRequest, "from 0 to 100000"},
		{"-1", http.StatusBadRequest, "from 0 to 100000"},
		{"99999999999999999999999", http.StatusBadRequest, "from 0 to 100000"},
		{"100000", http.StatusOK, "line 1 at s1\nline 2\nline 3\n"},
		{"1", http.StatusOK, "line 3\n"},
	}
	for _, tc := range tests {
		if status, body := do(t, e, http.MethodGet, logs+tc.tail, "", "", nil); status != tc.status || !strings.Contains(body, tc.body) {
			t.Errorf("tail=%s: %d %q, want %d with %q", tc.tail, status, body, tc.status, tc.body)
		}
	}
}

// TestBrowserAttacks replays what a hostile web page can make a browser
// send to the API: a form or a no-cors fetch from its own origin (CSRF),
// and requests under its own name rebound to the API's address (DNS
// rebinding). All are refused before anything is written, with and without
// tokens (a browser may hold no token, but an API without tokens needs
// none). Requests of programs and of the API's own origin still work.
func TestBrowserAttacks(t *testing.T) {
	endpoints := testenv.Etcd(t)
	tool := `{"name":"evil","author":"x","image":"busybox","data_repo":"file:///r"}`
	for _, tokens := range [][]Token{nil, {adminToken}} {
		e := newOptsEnv(t, endpoints, Options{Site: "s1", Tokens: tokens, Hosts: []string{"mao.lab.example.org"}})
		token := ""
		if tokens != nil {
			token = adminToken.Secret
		}
		own := strings.TrimPrefix(e.url, "http://")
		_, port, _ := net.SplitHostPort(own)
		tests := []struct {
			name   string
			method string
			header map[string]string
			status int
		}{
			{"text/plain POST from another origin", "POST", map[string]string{"Content-Type": "text/plain;charset=UTF-8",
				"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
			{"form POST from another origin", "POST", map[string]string{"Content-Type": "application/x-www-form-urlencoded",
				"Origin": "http://evil.example"}, http.StatusForbidden},
			{"form POST without an Origin", "POST", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, http.StatusUnsupportedMediaType},
			{"multipart POST", "POST", map[string]string{"Content-Type": "multipart/form-data; boundary=x"}, http.StatusUnsupportedMediaType},
			{"POST without a Content-Type", "POST", map[string]string{"Content-Type": ""}, http.StatusUnsupportedMediaType},
			{"JSON POST from another origin", "POST", map[string]string{"Origin": "http://evil.example"}, http.StatusForbidden},
			{"JSON POST from another port of the host", "POST", map[string]string{"Origin": "http://127.0.0.1:1", "Sec-Fetch-Site": "same-site"}, http.StatusForbidden},
			{"JSON POST from a sandboxed page", "POST", map[string]string{"Origin": "null"}, http.StatusForbidden},
			{"GET from another site", "GET", map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
			{"GET rebound to evil.example", "GET", map[string]string{"Host": "evil.example"}, http.StatusMisdirectedRequest},
			{"POST rebound to evil.example", "POST", map[string]string{"Host": "evil.example:" + port, "Origin": "http://evil.example:" + port}, http.StatusMisdirectedRequest},
			{"GET rebound to a name under localhost", "GET", map[string]string{"Host": "localhost.evil.example"}, http.StatusMisdirectedRequest},
		}
		for _, tc := range tests {
			path := "/api/v1/tools"
			body := ""
			if tc.method == "POST" {
				body = tool
			}
			if status, answer := do(t, e, tc.method, path, token, body, tc.header); status != tc.status {
				t.Errorf("tokens %v: %s: %d %s, want %d", tokens != nil, tc.name, status, answer, tc.status)
			}
		}
		if keys := e.keys(t); len(keys) != 0 {
			t.Fatalf("refused requests wrote %v", keys)
		}
		allowed := []struct {
			name   string
			header map[string]string
		}{
			{"a program", nil},
			{"the API's own origin", map[string]string{"Origin": e.url, "Sec-Fetch-Site": "same-origin"}},
			{"localhost", map[string]string{"Host": "localhost:" + port}},
			{"IPv6 loopback", map[string]string{"Host": "[::1]:" + port}},
			{"a configured name", map[string]string{"Host": "MAO.lab.example.org.:" + port}},
			{"a typed URL", map[string]string{"Sec-Fetch-Site": "none"}},
		}
		for _, a := range allowed {
			if status, answer := do(t, e, "GET", "/api/v1/tools", token, "", a.header); status != http.StatusOK {
				t.Errorf("tokens %v: %s: %d %s", tokens != nil, a.name, status, answer)
			}
		}
		if status, answer := do(t, e, "POST", "/api/v1/tools", token, tool, map[string]string{"Origin": e.url}); status != http.StatusCreated {
			t.Errorf("tokens %v: POST from the API's own origin: %d %s", tokens != nil, status, answer)
		}
		if status, _ := do(t, e, "DELETE", "/api/v1/tools/evil", token, "", nil); status != http.StatusNoContent {
			t.Errorf("DELETE: %d", status)
		}
	}
}

// TestCredentialsInURLs checks that git URLs with credentials never enter
// etcd through the API, and that records written before are shown without
// them.
func TestCredentialsInURLs(t *testing.T) {
	e := newEnv(t, testenv.Etcd(t))
	ctx := context.Background()
	const secret = "hunter2"
	refused := []struct {
		name string
		call func() error
	}{
		{"tool data_repo with a password", func() error {
			_, err := e.client.RegisterTool(ctx, api.Tool{Name: "t", Author: "a", Image: "busybox", DataRepo: "https://ada:" + secret + "@git.example.org/d.git"})
			return err
		}},
		{"tool data_repo with a token as user", func() error {
			_, err := e.client.RegisterTool(ctx, api.Tool{Name: "t", Author: "a", Image: "busybox", DataRepo: "https://" + secret + "@git.example.org/d.git"})
			return err
		}},
		{"tool code_repo with a password", func() error {
			_, err := e.client.RegisterTool(ctx, api.Tool{Name: "t", Author: "a", Image: "busybox", DataRepo: "file:///r",
				CodeRepo: "https://ada:" + secret + "@git.example.org/code"})
			return err
		}},
		{"dataset url with a password", func() error {
			_, err := e.client.RegisterDataset(ctx, api.Dataset{Name: "d", URL: "https://ada:" + secret + "@git.example.org/d.git"})
			return err
		}},
	}
	for _, tc := range refused {
		apiErr := wantStatus(t, tc.call(), http.StatusBadRequest, "[git] section of each site's config.ini")
		if strings.Contains(apiErr.Error(), secret) {
			t.Errorf("%s: the error shows the secret: %v", tc.name, apiErr)
		}
	}
	if keys := e.keys(t); len(keys) != 0 {
		t.Fatalf("refused records wrote %v", keys)
	}
	if _, err := e.client.RegisterDataset(ctx, api.Dataset{Name: "ssh", URL: "ssh://git@git.example.org/d.git"}); err != nil {
		t.Fatalf("an ssh login name is no secret: %v", err)
	}

	// Records from before: written to etcd directly.
	old := toolspec.Tool{Name: "old", Author: "a", Image: "busybox", DataRepo: "https://ada:" + secret + "@git.example.org/d.git",
		CodeRepo: "https://" + secret + "@git.example.org/c", Notify: []string{"generic://hooks.example.org/" + secret}}
	if err := e.store.CreateTool(ctx, old); err != nil {
		t.Fatal(err)
	}
	if err := e.store.CreateDataset(ctx, toolspec.Dataset{Name: "old", URL: "https://" + secret + "@git.example.org/d.git"}); err != nil {
		t.Fatal(err)
	}
	if err := e.store.CreateRun(ctx, api.Run{ID: "old-0", Tool: "old", Site: "s1", State: api.StateFailed, DataRepo: old.DataRepo,
		Reason:   "git fetch " + old.DataRepo + ": authentication required",
		Attempts: []api.Attempt{{Attempt: 1, State: api.StateFailed, Reason: "clone " + old.DataRepo}}}); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/api/v1/tools", "/api/v1/tools/old", "/api/v1/datasets", "/api/v1/datasets/old",
		"/api/v1/runs", "/api/v1/runs/old-0", "/api/v1/runs?tool=old"} {
		status, body := do(t, e, http.MethodGet, path, "", "", nil)
		if status != http.StatusOK || strings.Contains(body, secret) || !strings.Contains(body, "***@git.example.org") {
			t.Errorf("GET %s: %d %s", path, status, body)
		}
	}
	status, body := do(t, e, http.MethodPost, "/api/v1/tools/old/runs", "", "", nil)
	if status != http.StatusAccepted || strings.Contains(body, secret) {
		t.Errorf("run old: %d %s", status, body)
	}
}

// TestShown checks that every record type the API answers with is shown
// without credentials.
func TestShown(t *testing.T) {
	const repo, hidden = "https://u:pw@h/r", "https://u:***@h/r"
	run := api.Run{DataRepo: repo, Reason: "clone " + repo, Attempts: []api.Attempt{{Reason: repo}}}
	wantRun := api.Run{DataRepo: hidden, Reason: "clone https://***@h/r", Attempts: []api.Attempt{{Reason: "https://***@h/r"}}}
	tests := []struct{ in, want any }{
		{toolspec.Tool{DataRepo: repo, CodeRepo: repo}, toolspec.Tool{DataRepo: hidden, CodeRepo: hidden}},
		{[]toolspec.Tool{{DataRepo: repo}}, []toolspec.Tool{{DataRepo: hidden}}},
		{toolspec.Dataset{URL: repo}, toolspec.Dataset{URL: hidden}},
		{[]toolspec.Dataset{{URL: repo}}, []toolspec.Dataset{{URL: hidden}}},
		{run, wantRun},
		{[]api.Run{run}, []api.Run{wantRun}},
		{api.ScheduleInfo{LastRun: &run}, api.ScheduleInfo{LastRun: &wantRun}},
		{[]api.ScheduleInfo{{LastRun: &run}}, []api.ScheduleInfo{{LastRun: &wantRun}}},
		{[]toolspec.Tool(nil), []toolspec.Tool(nil)},
		// Secret env values: a tool's, and a schedule's on a run.
		{toolspec.Tool{Env: map[string]string{"K": "s3cret", "A": "b"}, SecretEnv: []string{"K"}},
			toolspec.Tool{Env: map[string]string{"K": "***", "A": "b"}, SecretEnv: []string{"K"}}},
		{api.Run{Env: map[string]string{"K": "s3cret"}, Spec: &api.RunSpec{Env: map[string]string{"K": "***"}, SecretEnv: []string{"K"}}},
			api.Run{Env: map[string]string{"K": "***"}, Spec: &api.RunSpec{Env: map[string]string{"K": "***"}, SecretEnv: []string{"K"}}}},
	}
	for _, tc := range tests {
		if got := shown(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("shown(%+v) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
	if run.DataRepo != repo || run.Attempts[0].Reason != repo {
		t.Errorf("shown changed its argument: %+v", run)
	}
}

// TestTLS serves the API over HTTPS: a client that trusts the certificate's
// authority uses it, and the API's own origin is its https one.
func TestTLS(t *testing.T) {
	e := newEnv(t, testenv.Etcd(t), adminToken)
	caFile, certFile, keyFile := testenv.TLSFiles(t)
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := e.srv.HTTPServer()
	srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	served := make(chan error, 1)
	go func() { served <- srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Error(err)
		}
	})
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	url := "https://" + ln.Addr().String()
	c, err := api.NewClient(url, adminToken.Secret, hc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.RegisterDataset(context.Background(), api.Dataset{Name: "d", URL: "file:///d"}); err != nil {
		t.Fatalf("over https: %v", err)
	}
	req, _ := http.NewRequest(http.MethodDelete, url+"/api/v1/datasets/d", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken.Secret)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", url)
	if resp, err := hc.Do(req); err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("from the https origin: %v %v", resp, err)
	}
	if _, err := api.NewClient(url, adminToken.Secret, nil); err != nil {
		t.Fatal(err)
	}
	untrusting, _ := api.NewClient(url, adminToken.Secret, nil)
	if _, err := untrusting.Tools(context.Background()); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("a client that does not trust the authority: %v", err)
	}
	plain, _ := api.NewClient("http://"+ln.Addr().String(), adminToken.Secret, nil)
	if _, err := plain.Tools(context.Background()); err == nil {
		t.Error("plain http to the https API worked")
	}
}

// TestFollowOutlivesWriteTimeout follows a log for longer than the
// server's write timeout, which the logs route lifts; other routes keep
// it.
func TestFollowOutlivesWriteTimeout(t *testing.T) {
	e := newEnv(t, testenv.Etcd(t))
	ctx := context.Background()
	ts := httptest.NewUnstartedServer(e.srv)
	ts.Config = e.srv.HTTPServer()
	const timeout = 100 * time.Millisecond
	ts.Config.WriteTimeout = timeout
	ts.Start()
	t.Cleanup(ts.Close)
	if err := e.store.CreateRun(ctx, api.Run{ID: "r1", Tool: "t", Site: "s1", State: api.StateRunning}); err != nil {
		t.Fatal(err)
	}
	l, err := e.logs.Create("r1")
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(l, "first\n")
	resp, err := http.Get(ts.URL + "/api/v1/runs/r1/logs?follow=true")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body := bufio.NewReader(resp.Body)
	if line, err := body.ReadString('\n'); line != "first\n" {
		t.Fatalf("first line %q %v", line, err)
	}
	time.Sleep(3 * timeout) // past the write timeout: not a synchronisation
	io.WriteString(l, "second\n")
	l.Close()
	if rest, err := io.ReadAll(body); string(rest) != "second\n" || err != nil {
		t.Fatalf("after the write timeout: %q %v", rest, err)
	}
}

// TestHTTPServerLimits checks that the API's server has its timeouts and
// header limit.
func TestHTTPServerLimits(t *testing.T) {
	srv := New(Deps{}, Options{}).HTTPServer()
	if srv.ReadHeaderTimeout <= 0 || srv.ReadTimeout <= 0 || srv.WriteTimeout <= 0 || srv.IdleTimeout <= 0 ||
		srv.MaxHeaderBytes <= 0 || srv.MaxHeaderBytes > 1<<20 {
		t.Fatalf("limits: %+v", srv)
	}
}

// TestHosts checks the names a site answers to.
func TestHosts(t *testing.T) {
	hostname, _ := os.Hostname()
	if got := Hosts("10.0.0.5:8080", []string{"mao.example.org"}); !reflect.DeepEqual(got, []string{"10.0.0.5", "mao.example.org"}) {
		t.Errorf("a listen address: %v", got)
	}
	for _, listen := range []string{"0.0.0.0:8080", "[::]:8080", ":8080"} {
		got := Hosts(listen, nil)
		if len(got) < 2 || got[0] != hostname || !slicesContains(got, "127.0.0.1") {
			t.Errorf("%s: %v, want the host name and the interfaces' addresses", listen, got)
		}
	}
	s := New(Deps{}, Options{Hosts: []string{"Mao.Example.org", "fd00::0005"}})
	for host, want := range map[string]bool{"mao.example.org": true, "fd00::5": true, "localhost": true, "127.0.0.2": true,
		"::1": true, "evil.example": false, "": false, "mao.example.org.evil": false} {
		if got := s.knownHost(hostOnly(host)); got != want {
			t.Errorf("knownHost(%q) = %v, want %v", host, got, want)
		}
	}
}

func slicesContains(list []string, v string) bool {
	for _, s := range list {
		if s == v {
			return true
		}
	}
	return false
}
