package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/santhosh-tekuri/jsonschema/v6"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/mao-research/mao/api"
	"github.com/mao-research/mao/detector"
	"github.com/mao-research/mao/internal/testenv"
)

// TestOpenAPIDocument walks the router: every route has its operation in
// the document, with its success status and every error status, and the
// document has no operation the router does not serve. The document is
// valid OpenAPI 3, and GET /api/v1/openapi.json serves it.
func TestOpenAPIDocument(t *testing.T) {
	doc, err := Document()
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("the document is not valid OpenAPI: %v", err)
	}
	docs := routeDocs()
	served := map[string]bool{}
	for _, rt := range routes() {
		served[rt.pattern] = true
		method, path, _ := strings.Cut(rt.pattern, " ")
		item := doc.Paths.Find(path)
		if item == nil || item.GetOperation(method) == nil {
			t.Errorf("%s: no operation in the document", rt.pattern)
			continue
		}
		op := item.GetOperation(method)
		for _, code := range append([]int{docs[rt.pattern].status}, errorStatuses...) {
			if op.Responses.Status(code) == nil {
				t.Errorf("%s: status %d is not documented", rt.pattern, code)
			}
		}
	}
	for _, pattern := range slices.Sorted(maps.Keys(docs)) {
		if !served[pattern] {
			t.Errorf("%s is documented, but not served", pattern)
		}
	}
	for _, name := range []string{"Tool", "Dataset", "Schedule", "Run", "ErrorBody"} {
		if doc.Components.Schemas[name] == nil {
			t.Errorf("no schema of the %s record", name)
		}
	}

	// The embedded document is the one the code makes.
	made, err := documentJSON()
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile("openapi.json", made, 0o644); err != nil {
			t.Fatal(err)
		}
		openAPIDocument = made
	}
	if !bytes.Equal(openAPIDocument, made) {
		t.Errorf("openapi.json is not what the code makes (go test ./orchestrator/httpapi -run TestOpenAPIDocument -update)")
	}

	e := newEnv(t, testenv.Etcd(t))
	resp, err := http.Get(e.url + "/api/v1/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got openapi3.T
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != http.StatusOK || got.Paths.Len() == 0 {
		t.Fatalf("GET /api/v1/openapi.json without a token: %d, %v", resp.StatusCode, err)
	}
}

// validated serves h, checking each answer of a route against the
// OpenAPI document as it goes by: its status must be documented, and its
// body must match the schema; a request the API took (2xx) must match
// the document too. Every test of this package that serves the
// API (newEnvWith) goes through it, so the document is checked against
// hundreds of real answers, errors included.
func validated(t *testing.T, h http.Handler) http.Handler {
	t.Helper()
	doc, err := Document()
	if err != nil {
		t.Fatal(err)
	}
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		route, params, err := router.FindRoute(r)
		if err != nil {
			h.ServeHTTP(w, r) // no route: the router's 404 or 405
			return
		}
		var body []byte
		if r.Body != nil {
			body, _ = io.ReadAll(io.LimitReader(r.Body, maxBody+1))
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		tee := &teeWriter{ResponseWriter: w}
		h.ServeHTTP(tee, r)
		checkAnswer(t, r, route, params, tee)
		if tee.status < 300 { // a request the API took is one the document describes
			r.Body = io.NopCloser(bytes.NewReader(body))
			in := &openapi3filter.RequestValidationInput{Request: r, PathParams: params, Route: route,
				Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
			if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
				t.Errorf("%s %s was taken (%d), but the OpenAPI document does not describe it: %v\nbody: %.500s", r.Method, r.URL, tee.status, err, body)
			}
		}
	})
}

func checkAnswer(t *testing.T, r *http.Request, route *routers.Route, params map[string]string, tee *teeWriter) {
	status := tee.status
	if status == 0 {
		status = http.StatusOK
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: r, PathParams: params, Route: route},
		Status:                 status,
		Header:                 tee.Header(),
		Options:                &openapi3filter.Options{IncludeResponseStatus: true},
	}
	if tee.truncated {
		in.Options.ExcludeResponseBody = true
	}
	in.SetBodyBytes(tee.body.Bytes())
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		t.Errorf("%s %s answered %d, which the OpenAPI document does not describe: %v\nbody: %.500s", r.Method, r.URL, status, err, tee.body.String())
	}
}

// teeWriter passes an answer on and keeps its status and the first MiB
// of its body.
type teeWriter struct {
	http.ResponseWriter
	status    int
	body      bytes.Buffer
	truncated bool
}

func (w *teeWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *teeWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	room := 1<<20 - w.body.Len()
	w.truncated = w.truncated || len(p) > room
	if room > 0 {
		w.body.Write(p[:min(len(p), room)])
	}
	return w.ResponseWriter.Write(p)
}

// Flush keeps a followed log streaming.
func (w *teeWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (w *teeWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

var update = flag.Bool("update", false, "rewrite docs/schemas from the code")

// TestRecordSchemas checks that docs/schemas holds the JSON Schemas the
// code makes (go test ./orchestrator/httpapi -run TestRecordSchemas
// -update rewrites them), and that the records the API writes to etcd, as
// a collaborator reads them there, pass them, while a hand-written record
// that the API would refuse the shape of does not.
func TestRecordSchemas(t *testing.T) {
	schemas, err := RecordSchemas()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join("..", "..", "docs", "schemas")
	c := jsonschema.NewCompiler()
	c.AssertFormat() // date-time is checked, as a collaborator's validator must
	for file, b := range schemas {
		path := filepath.Join(dir, file)
		if *update {
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, b) {
			t.Errorf("%s is not what the code makes (go test ./orchestrator/httpapi -run TestRecordSchemas -update): %v", path, err)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.AddResource(file, doc); err != nil {
			t.Fatal(err)
		}
	}
	compiled := map[string]*jsonschema.Schema{}
	for _, kind := range []string{"tool", "dataset", "schedule", "run"} {
		if compiled[kind], err = c.Compile(kind + ".schema.json"); err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
	}

	e := newEnv(t, testenv.Etcd(t))
	ctx := context.Background()
	if _, err := e.client.RegisterDataset(ctx, api.Dataset{Name: "inputs", URL: "file:///d"}); err != nil {
		t.Fatal(err)
	}
	tool := api.Tool{Name: "crawl", Author: "a", Image: "busybox", DataRepo: "file:///r", InputDataset: "inputs",
		Env: map[string]string{"K": "v"}, Detector: &detector.Config{Window: 10}}
	if _, err := e.client.RegisterTool(ctx, tool); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.CreateSchedule(ctx, api.Schedule{Tool: "crawl", Spec: "daily", At: "03:00"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.RunTool(ctx, "crawl", api.RunRequest{}); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"tool", "dataset", "schedule", "run"} {
		resp, err := e.etcd.Get(ctx, "/mao/"+kind+"s/", clientv3.WithPrefix())
		if err != nil || len(resp.Kvs) == 0 {
			t.Fatalf("%s records in etcd: %v, %v", kind, resp, err)
		}
		for _, kv := range resp.Kvs {
			v, err := jsonschema.UnmarshalJSON(bytes.NewReader(kv.Value))
			if err != nil {
				t.Fatal(err)
			}
			if err := compiled[kind].Validate(v); err != nil {
				t.Errorf("%s as etcd holds it does not pass %s.schema.json: %v\n%s", kv.Key, kind, err, kv.Value)
			}
		}
	}
	// Records with one defect each, taken from good ones.
	good := map[string]map[string]any{}
	for _, kind := range []string{"tool", "run"} {
		resp, err := e.etcd.Get(ctx, "/mao/"+kind+"s/", clientv3.WithPrefix(), clientv3.WithLimit(1))
		if err != nil || len(resp.Kvs) == 0 {
			t.Fatalf("a %s record: %v", kind, err)
		}
		var m map[string]any
		if err := json.Unmarshal(resp.Kvs[0].Value, &m); err != nil {
			t.Fatal(err)
		}
		good[kind] = m
	}
	for _, tc := range []struct {
		kind, field string
		value       any // nil: the field left out
	}{
		{"tool", "data_repo", nil},
		{"tool", "env", "K=v"},
		{"run", "created_at", "yesterday"},
		{"run", "state", 7},
	} {
		bad := maps.Clone(good[tc.kind])
		if tc.value == nil {
			delete(bad, tc.field)
		} else {
			bad[tc.field] = tc.value
		}
		b, _ := json.Marshal(bad)
		v, _ := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err := compiled[tc.kind].Validate(v); err == nil {
			t.Errorf("a %s with %s = %v passes %s.schema.json", tc.kind, tc.field, tc.value, tc.kind)
		}
	}
}
