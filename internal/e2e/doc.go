// Package e2e holds end-to-end tests: maoctl, as a user types it, against a
// real orchestrator on embedded etcd, running real containers on the local
// Docker engine. It has no code of its own.
//
// # Rules
//
// Imports from mao: nothing.
// Imported by: tests only.
package e2e
