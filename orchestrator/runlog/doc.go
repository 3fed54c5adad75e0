// Package runlog owns the per-run log files of a site: one file per run in
// the site's log directory, written while the run's container runs and read,
// or followed live, by the API.
//
// Followers wait on a notification from the writer, not on a timer. The
// package knows nothing of etcd, Docker or HTTP.
//
// # Rules
//
// Imports from mao: only orchestrator/errs.
// Never links: etcd, Docker, go-git, net/http.
package runlog
