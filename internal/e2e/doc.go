// Package e2e holds end-to-end tests: maoctl, as a user types it, against a
// real orchestrator on embedded etcd, running real containers on the local
// Docker engine. It has no code of its own.
package e2e
