// Package testsite starts a real orchestrator (orchestrator/daemon) in the
// test process, for tests of clients such as maoctl: its embedded etcd
// member (mutual TLS and etcd's access control, as in production) and its
// API on free loopback ports, a clock whose time stands still but for the
// test's Advance while its timers are real (Clock), so that times,
// durations and next ticks are the same on every run, and, unless a test
// asks for the Docker engine, a Docker host that does not exist, so that
// nothing reaches Docker. A site may have named, scoped API tokens, serve
// its API over HTTPS, run on an external etcd, or join another site's
// federation with a join token, as a new site does.
//
// Its seeding helpers put in place what a test needs that the API cannot
// make (other sites, live or gone; runs held by other sites; series;
// notifications; scheduled runs), through the real store (orchestrator/
// store, with the site's prefix and clock) over an etcd client that is the
// site's own (its certificate, its etcd user), or as documented files and
// keys (docs/etcd-keys.md), never through a fake. Settle and WaitRun wait
// for the site's own work through etcd watches, not sleeps.
//
// # Rules
//
// Imports from mao: only api, internal/testenv, orchestrator/config, orchestrator/daemon, orchestrator/errs, orchestrator/etcdclient, orchestrator/peer, orchestrator/pki, orchestrator/runs, orchestrator/store, toolspec.
// Imported by: tests only.
package testsite
