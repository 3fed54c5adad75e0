// Package testsite starts a real orchestrator (orchestrator/daemon) in the
// test process, for tests of clients such as maoctl: its embedded etcd
// member and its API on free loopback ports, a fixed fake clock so that
// times, durations and next ticks are the same on every run, and, unless a
// test asks for the Docker engine, a Docker host that does not exist, so
// that nothing reaches Docker.
//
// Its seeding helpers put in place what a test needs that the API cannot
// make (other sites, live or gone; runs held by other sites; series;
// notifications; scheduled runs), through the real store (orchestrator/
// store, with the site's prefix and clock) or as documented files and keys
// (docs/etcd-keys.md), never through a fake. Settle and WaitRun wait for
// the site's own work through etcd watches, not sleeps.
//
// Only tests import it.
package testsite
