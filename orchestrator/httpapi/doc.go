// Package httpapi serves mao's REST JSON API under /api/v1: tools,
// datasets, runs and their logs, sites and health. It authenticates bearer
// tokens, decodes and validates requests, and maps errors to HTTP status
// codes in one place (errors.go).
//
// It declares the small interfaces it needs and imports nothing that knows
// etcd, Docker or git (error kinds come from the leaf package errs); the
// daemon wires in the store, the runner and the log directory.
//
// # Rules
//
// Imports from mao: only api, internal/randid, notify, orchestrator/errs, toolspec.
// Never links: etcd, Docker, go-git.
package httpapi
