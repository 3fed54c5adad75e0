package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3gen"

	"github.com/mao-research/mao/api"
)

// routeDoc is what the OpenAPI document says of one route of routes():
// the test that walks the router fails when a route has none.
type routeDoc struct {
	summary string
	query   []param
	body    any   // a value of the request body's type; nil: none
	status  int   // the answer's status when all went well
	answer  any   // a value of its body's type; nil: none; text: text/plain
	same    []int // other statuses whose body is answer's type, not an error's
}

// param is a query parameter.
type param struct{ name, typ, about string }

// text marks an answer of text/plain (a run's log).
type text struct{}

var (
	pageParams = []param{{"limit", "integer", "the most items in the page"}, {"continue", "string", "the token of the page before's continue"}}
	runParams  = append(slices.Clone(pageParams), param{"tool", "string", "runs of this tool"}, param{"schedule", "string", "runs of this schedule"},
		param{"site", "string", "runs held by this site"}, param{"state", "string", "runs in this state (running and pending too)"},
		param{"push", "string", "runs whose push is in this state: pending, pushed, conflict or failed"}, param{"since", "string", "runs created at or after this time (RFC 3339)"})
)

// routeDocs documents each route, by its pattern in routes().
func routeDocs() map[string]routeDoc {
	p := "/api/" + api.Version
	return map[string]routeDoc{
		"GET /healthz": {summary: "ok or degraded, for monitors: no token", status: http.StatusOK, answer: healthzBody{},
			same: []int{http.StatusServiceUnavailable}},
		"GET /metrics":                     {summary: "the site's metrics in the Prometheus text format", status: http.StatusOK, answer: text{}},
		"GET " + p + "/health":             {summary: "the site's health in detail", status: http.StatusOK, answer: api.Health{}},
		"GET " + p + "/openapi.json":       {summary: "this document", status: http.StatusOK, answer: map[string]any{}},
		"GET " + p + "/tools":              {summary: "a page of the tool registry, by name", query: pageParams, status: http.StatusOK, answer: api.List[api.Tool]{}},
		"POST " + p + "/tools":             {summary: "register a tool", body: api.Tool{}, status: http.StatusCreated, answer: api.Tool{}},
		"GET " + p + "/tools/{name}":       {summary: "a tool, secrets masked", status: http.StatusOK, answer: api.Tool{}},
		"DELETE " + p + "/tools/{name}":    {summary: "remove a tool; its runs stay", status: http.StatusNoContent},
		"POST " + p + "/tools/{name}/runs": {summary: "run a tool (here, or where its target says)", body: api.RunRequest{}, status: http.StatusAccepted, answer: []api.Run{}},
		"GET " + p + "/tools/{name}/series": {summary: "a tool's detector series", query: []param{{"site", "string", "the series of this site"},
			{"metric", "string", "the series of this metric"}}, status: http.StatusOK, answer: api.List[api.Series]{}},
		"GET " + p + "/datasets":           {summary: "a page of the dataset registry, by name", query: pageParams, status: http.StatusOK, answer: api.List[api.Dataset]{}},
		"POST " + p + "/datasets":          {summary: "register a dataset", body: api.Dataset{}, status: http.StatusCreated, answer: api.Dataset{}},
		"GET " + p + "/datasets/{name}":    {summary: "a dataset", status: http.StatusOK, answer: api.Dataset{}},
		"DELETE " + p + "/datasets/{name}": {summary: "remove a dataset no tool reads", status: http.StatusNoContent},
		"GET " + p + "/runs":               {summary: "a page of runs, newest first", query: runParams, status: http.StatusOK, answer: api.List[api.Run]{}},
		"GET " + p + "/runs/{id}":          {summary: "a run's record", status: http.StatusOK, answer: api.Run{}},
		"GET " + p + "/runs/{id}/logs": {summary: "a run's log, followed while it runs with follow=true", query: []param{
			{"follow", "boolean", "stream until the run ends"}, {"tail", "integer", "only the last lines"}}, status: http.StatusOK, answer: text{}},
		"POST " + p + "/runs/{id}/replay":          {summary: "replay a run as it ran", body: api.ReplayRequest{}, status: http.StatusAccepted, answer: api.Run{}},
		"GET " + p + "/sites":                      {summary: "the federation's sites", status: http.StatusOK, answer: api.List[api.SiteInfo]{}},
		"GET " + p + "/notifications":              {summary: "notification outcomes, newest first", query: []param{{"tool", "string", "of this tool"}, {"limit", "integer", "the most outcomes"}}, status: http.StatusOK, answer: api.List[api.Notification]{}},
		"POST " + p + "/notifications/test":        {summary: "send a test message to the site's channels, or to one URL (admin)", body: api.NotifyTestRequest{}, status: http.StatusOK, answer: []api.Notification{}},
		"GET " + p + "/federation":                 {summary: "the federation's etcd cluster", status: http.StatusOK, answer: api.Federation{}},
		"GET " + p + "/federation/check":           {summary: "every invalid record in etcd, and why", status: http.StatusOK, answer: api.Check{}},
		"POST " + p + "/federation/sites":          {summary: "add a site: its join token", body: api.AddSiteRequest{}, status: http.StatusCreated, answer: api.AddSiteResult{}},
		"DELETE " + p + "/federation/sites/{name}": {summary: "remove a gone site", status: http.StatusNoContent},
		"POST " + p + "/federation/credentials":    {summary: "credentials for a collaborator's etcd client", body: api.CredentialsRequest{}, status: http.StatusCreated, answer: api.Credentials{}},
		"POST " + p + "/federation/leave":          {summary: "this site leaves the federation", body: api.LeaveRequest{}, status: http.StatusAccepted, answer: api.LeaveResult{}},
		"GET " + p + "/schedules":                  {summary: "a page of schedules, by ID", query: append(slices.Clone(pageParams), param{"tool", "string", "schedules of this tool"}), status: http.StatusOK, answer: api.List[api.ScheduleInfo]{}},
		"POST " + p + "/schedules":                 {summary: "create a schedule", body: api.Schedule{}, status: http.StatusCreated, answer: api.ScheduleInfo{}},
		"GET " + p + "/schedules/{id}":             {summary: "a schedule, its next tick and last run", status: http.StatusOK, answer: api.ScheduleInfo{}},
		"PUT " + p + "/schedules/{id}":             {summary: "change a schedule", body: api.Schedule{}, status: http.StatusOK, answer: api.ScheduleInfo{}},
		"DELETE " + p + "/schedules/{id}":          {summary: "remove a schedule; its runs stay", status: http.StatusNoContent},
		"POST " + p + "/schedules/{id}/pause":      {summary: "pause a schedule", status: http.StatusOK, answer: api.ScheduleInfo{}},
		"POST " + p + "/schedules/{id}/resume":     {summary: "resume a schedule", status: http.StatusOK, answer: api.ScheduleInfo{}},
	}
}

// healthzBody is what GET /healthz answers.
type healthzBody struct {
	Status string `json:"status"`
}

// errorStatuses are the statuses ErrorBody (the one mapping of errors to
// statuses) and the router answer, each with an api.ErrorBody: any route
// may answer them.
var errorStatuses = []int{http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound,
	http.StatusMethodNotAllowed, http.StatusConflict, http.StatusUnsupportedMediaType, http.StatusMisdirectedRequest,
	http.StatusInternalServerError, http.StatusServiceUnavailable, http.StatusInsufficientStorage}

// Document is the OpenAPI 3 document of the API: every route of routes(),
// its parameters, request and answers, errors included, with the JSON
// Schema of each record (components/schemas).
func Document() (*openapi3.T, error) {
	gen := newSchemas()
	doc := &openapi3.T{
		OpenAPI: "3.0.3",
		Info: &openapi3.Info{Title: "mao", Version: api.Version,
			Description: "The REST API of a mao orchestrator. Bearer tokens: Authorization: Bearer <token>; scopes read (every GET), run, admin."},
		Paths: openapi3.NewPaths(),
		Components: &openapi3.Components{Schemas: gen.schemas, SecuritySchemes: openapi3.SecuritySchemes{
			"token": &openapi3.SecuritySchemeRef{Value: openapi3.NewJWTSecurityScheme().WithBearerFormat("opaque")}}},
	}
	errRef, err := gen.ref(api.ErrorBody{})
	if err != nil {
		return nil, err
	}
	// The records in etcd, as collaborators read them (RecordSchemas).
	for _, record := range []any{api.Tool{}, api.Dataset{}, api.Schedule{}, api.Run{}} {
		if _, err := gen.ref(record); err != nil {
			return nil, err
		}
	}
	docs := routeDocs()
	for _, rt := range routes() {
		d, ok := docs[rt.pattern]
		if !ok {
			return nil, fmt.Errorf("route %s is not documented", rt.pattern)
		}
		method, path, _ := strings.Cut(rt.pattern, " ")
		op := &openapi3.Operation{Summary: d.summary, OperationID: operationID(method, path), Responses: openapi3.NewResponses()}
		if rt.scope != scopePublic {
			op.Security = &openapi3.SecurityRequirements{{"token": {}}}
		}
		for _, seg := range strings.Split(path, "/") {
			if name, ok := strings.CutPrefix(seg, "{"); ok {
				op.AddParameter(openapi3.NewPathParameter(strings.TrimSuffix(name, "}")).WithSchema(openapi3.NewStringSchema()))
			}
		}
		for _, q := range d.query {
			op.AddParameter(openapi3.NewQueryParameter(q.name).WithDescription(q.about).WithSchema(&openapi3.Schema{Type: &openapi3.Types{q.typ}}))
		}
		if d.body != nil {
			ref, err := gen.input(d.body)
			if err != nil {
				return nil, err
			}
			op.RequestBody = &openapi3.RequestBodyRef{Value: openapi3.NewRequestBody().WithRequired(false).
				WithContent(openapi3.NewContentWithJSONSchemaRef(ref))}
		}
		ok200 := openapi3.NewResponse().WithDescription(http.StatusText(d.status))
		switch d.answer.(type) {
		case nil:
		case text:
			ok200.WithContent(openapi3.Content{"text/plain": openapi3.NewMediaType().WithSchema(openapi3.NewStringSchema())})
		default:
			ref, err := gen.ref(d.answer)
			if err != nil {
				return nil, err
			}
			ok200.WithContent(openapi3.NewContentWithJSONSchemaRef(ref))
		}
		op.AddResponse(d.status, ok200)
		for _, code := range errorStatuses {
			op.AddResponse(code, openapi3.NewResponse().WithDescription(http.StatusText(code)).WithContent(openapi3.NewContentWithJSONSchemaRef(errRef)))
		}
		for _, code := range d.same {
			op.AddResponse(code, openapi3.NewResponse().WithDescription(http.StatusText(code)).WithContent(ok200.Content))
		}
		doc.AddOperation(path, method, op)
	}
	// Loaded from its JSON, as a client loads it: every $ref resolved.
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	return openapi3.NewLoader().LoadFromData(b)
}

// operationID names an operation: "GET /api/v1/tools/{name}" is
// get-tools-name.
func operationID(method, path string) string {
	path = strings.TrimPrefix(path, "/api/"+api.Version)
	r := strings.NewReplacer("/", "-", "{", "", "}", "", ".", "-")
	return strings.ToLower(method) + r.Replace(path)
}

// schemas makes the JSON Schemas of the API's types, each a component.
// The answers' schemas are the records' (their fields without omitempty
// are required); a request body's are their Input twins, without required
// fields: the server fills in, defaults or refuses what a body leaves out
// (decode.go), which its 400 says.
type schemas struct {
	schemas   openapi3.Schemas
	gen, body *openapi3gen.Generator
}

func newSchemas() *schemas {
	export := openapi3gen.CreateComponentSchemas(openapi3gen.ExportComponentSchemasOptions{ExportComponentSchemas: true, ExportTopLevelSchema: true})
	return &schemas{schemas: openapi3.Schemas{},
		gen: openapi3gen.NewGenerator(export, openapi3gen.CreateTypeNameGenerator(typeName), openapi3gen.SchemaCustomizer(required)),
		body: openapi3gen.NewGenerator(export, openapi3gen.CreateTypeNameGenerator(func(t reflect.Type) string {
			if name := typeName(t); name != "" {
				return name + "Input"
			}
			return ""
		}), openapi3gen.SchemaCustomizer(strictInput)),
	}
}

// input is the schema of a request body of v's type.
func (s *schemas) input(v any) (*openapi3.SchemaRef, error) {
	ref, err := s.body.NewSchemaRefForValue(v, s.schemas)
	if err != nil {
		return nil, fmt.Errorf("the schema of %T: %w", v, err)
	}
	return ref, nil
}

func (s *schemas) ref(v any) (*openapi3.SchemaRef, error) {
	ref, err := s.gen.NewSchemaRefForValue(v, s.schemas)
	if err != nil {
		return nil, fmt.Errorf("the schema of %T: %w", v, err)
	}
	return ref, nil
}

// typeName names a type's component: List[…toolspec.Tool] is ToolList.
func typeName(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	name := t.Name()
	if name == "" {
		return ""
	}
	if i := strings.IndexByte(name, '['); i >= 0 {
		inner := strings.TrimSuffix(name[i+1:], "]")
		inner = inner[strings.LastIndexByte(inner, '.')+1:]
		return inner + name[:i]
	}
	return strings.ToUpper(name[:1]) + name[1:]
}

// nullable lets a slice or map without omitempty be null, as Go writes a
// nil one.
func nullable(_ string, t reflect.Type, tag reflect.StructTag, schema *openapi3.Schema) error {
	if k := t.Kind(); k == reflect.Slice || k == reflect.Map {
		if _, opts, _ := strings.Cut(tag.Get("json"), ","); !strings.Contains(opts, "omitempty") {
			schema.Nullable = true
		}
	}
	return nil
}

// strictInput is nullable for a request body, whose objects may hold no
// field they do not name: the API refuses unknown fields (decode.go).
func strictInput(name string, t reflect.Type, tag reflect.StructTag, schema *openapi3.Schema) error {
	if t.Kind() == reflect.Struct && t.PkgPath() != "time" && len(schema.Properties) > 0 {
		no := false
		schema.AdditionalProperties = openapi3.AdditionalProperties{Has: &no}
	}
	return nullable(name, t, tag, schema)
}

// required marks a struct's fields that its JSON always has (no
// omitempty) as required, so that a record without them does not pass.
//
// A slice or map without omitempty is null in JSON when Go's is nil: its
// schema allows null.
func required(name string, t reflect.Type, tag reflect.StructTag, schema *openapi3.Schema) error {
	if k := t.Kind(); k == reflect.Slice || k == reflect.Map {
		return nullable(name, t, tag, schema)
	}
	if t.Kind() != reflect.Struct || t.PkgPath() == "time" {
		return nil
	}
	for f := range t.Fields() {
		tag := f.Tag.Get("json")
		name, opts, _ := strings.Cut(tag, ",")
		if !f.IsExported() || tag == "-" || name == "" || f.Anonymous || strings.Contains(opts, "omitempty") || strings.Contains(opts, "omitzero") {
			continue
		}
		if _, ok := schema.Properties[name]; ok && !slices.Contains(schema.Required, name) {
			schema.Required = append(schema.Required, name)
		}
	}
	return nil
}

// RecordSchemas are the JSON Schemas (draft 2020-12) of the records that
// collaborators read from etcd directly, by file name: tool, dataset,
// schedule and run, each with the schemas it refers to under $defs. They
// are the document's own components, with OpenAPI's nullable written as
// JSON Schema's type null.
func RecordSchemas() (map[string][]byte, error) {
	doc, err := Document()
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(doc.Components.Schemas)
	if err != nil {
		return nil, err
	}
	var defs map[string]any
	if err := json.Unmarshal(b, &defs); err != nil {
		return nil, err
	}
	for name, s := range defs {
		defs[name] = jsonSchema(s)
	}
	out := map[string][]byte{}
	for file, rec := range map[string]struct{ name, key string }{"tool": {"Tool", "tools/<name>"}, "dataset": {"Dataset", "datasets/<name>"},
		"schedule": {"Schedule", "schedules/<id>"}, "run": {"Run", "runs/<id>"}} {
		name := rec.name
		used := map[string]any{}
		collectDefs(name, defs, used)
		b, err := json.MarshalIndent(map[string]any{
			"$schema": "https://json-schema.org/draft/2020-12/schema",
			"$id":     "https://github.com/mao-research/mao/docs/schemas/" + file + ".schema.json",
			"title":   "mao's " + file + " record, the value of /mao/" + rec.key,
			"$ref":    "#/$defs/" + name,
			"$defs":   used,
		}, "", "  ")
		if err != nil {
			return nil, err
		}
		out[file+".schema.json"] = append(b, '\n')
	}
	return out, nil
}

// jsonSchema rewrites an OpenAPI 3.0 schema (decoded JSON) as JSON
// Schema: refs to #/$defs, nullable as a type that allows null.
func jsonSchema(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, x := range v {
			out[k] = jsonSchema(x)
		}
		if ref, ok := out["$ref"].(string); ok {
			out["$ref"] = strings.Replace(ref, "#/components/schemas/", "#/$defs/", 1)
		}
		if out["nullable"] == true {
			delete(out, "nullable")
			if typ, ok := out["type"].(string); ok {
				out["type"] = []any{typ, "null"}
			}
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = jsonSchema(x)
		}
		return out
	}
	return v
}

// collectDefs copies the schema name and those it refers to into used.
func collectDefs(name string, defs, used map[string]any) {
	if _, ok := used[name]; ok || defs[name] == nil {
		return
	}
	used[name] = defs[name]
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok {
				collectDefs(strings.TrimPrefix(ref, "#/$defs/"), defs, used)
			}
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(defs[name])
}

// documentJSON is the document in JSON.
func documentJSON() ([]byte, error) {
	doc, err := Document()
	if err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	return append(b, '\n'), err
}
