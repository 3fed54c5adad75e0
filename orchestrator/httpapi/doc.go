// Package httpapi serves mao's REST JSON API under /api/v1: tools,
// datasets, runs and their logs, sites and health, GET /healthz, and GET
// /metrics (the handler the daemon passes in; a token of scope read,
// or none with Options.OpenMetrics), and its own OpenAPI 3 document at
// GET /api/v1/openapi.json (openapi.json, embedded; a test makes it and
// docs/schemas from one routeDoc per route and the api types, with
// kin-openapi, which the orchestrator does not link). It
// refuses what a browser's page of another origin can send (guard.go),
// authenticates named bearer tokens and checks the scope that the one
// route table (auth.go) gives each route, logs every write with the
// token's name, decodes and validates requests (decode.go), shows records
// without their secrets (redact.go), and maps errors to HTTP status codes
// in one place (errors.go). HTTPServer has the server's timeouts.
//
// It declares the small interfaces it needs and imports nothing that knows
// etcd, Docker or git (error kinds come from the leaf package errs); the
// daemon wires in the store, the runner and the log directory.
//
// # Rules
//
// Imports from mao: only api, internal/randid, internal/version, notify, orchestrator/errs, toolspec.
// Never links: etcd, Docker, go-git.
package httpapi
