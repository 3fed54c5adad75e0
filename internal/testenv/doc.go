// Package testenv gives tests the real services mao runs on: an embedded
// etcd member on free loopback ports, clusters of etcd member processes
// (./etcdmember, built from etcd's embed package, so that a test can stop,
// start or kill one member) with optional client TLS (TLSFiles), the local
// Docker engine, and a test tool image built locally (no registry is
// needed).
//
// Docker tests skip when no engine answers, unless MAO_REQUIRE_DOCKER=1 (set
// by `make test` and CI), in which case they fail: integration tests must run
// in CI, not skip. Only tests import this package.
//
// # Rules
//
// Imports from mao: only orchestrator/config, orchestrator/etcdclient, orchestrator/etcdembed.
// Imported by: only internal/fedtest, internal/gitserver, internal/testsite.
package testenv
