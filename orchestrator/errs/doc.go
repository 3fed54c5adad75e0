// Package errs holds the orchestrator's error kinds. Every package wraps
// one of them into its own errors, and the API maps each kind to one HTTP
// status (httpapi/errors.go).
//
// # Rules
//
// Imports from mao: nothing.
// Never links: etcd, Docker, go-git, net/http.
package errs
