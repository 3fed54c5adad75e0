// Package daemon wires one orchestrator together and owns its lifecycle:
// etcd (embedded or external), the store, the Docker runtime, the git
// clones (with the site's [git] credentials) and their outbox, the runner,
// site membership and the HTTP API. Run starts them in
// order and, when its context ends (SIGTERM), stops them in reverse: stop
// accepting requests, finish or record running runs, leave the federation,
// close etcd.
//
// It holds the data directory's lock (orchestrator.lock) while the
// orchestrator runs, and the directory's instance ID (instance), which the
// site's record carries so that a restart after a crash knows its previous
// life's record.
//
// It is the only package that knows every other orchestrator package; no
// package imports it except the main package and internal/testsite, which
// runs it in the process of tests of clients.
//
// # Rules
//
// Imports from mao: only api, internal/randid, internal/version, notify, orchestrator/alerts, orchestrator/config, orchestrator/dockerrt, orchestrator/etcdclient, orchestrator/etcdembed, orchestrator/federation, orchestrator/gitrepo, orchestrator/httpapi, orchestrator/metrics, orchestrator/offline, orchestrator/outbox, orchestrator/peer, orchestrator/pki, orchestrator/runlog, orchestrator/runner, orchestrator/scheduler, orchestrator/store, orchestrator/upkeep, orchestrator/voters, toolspec.
// Imported by: only cmd/orchestrator, internal/testsite.
package daemon
