// Package fedtest runs federations of real orchestrator processes for
// tests and benchmarks: it builds the orchestrator and maoctl binaries,
// writes each site's config.ini, starts the processes with JSON logs, and
// lets a test read their log records, kill them (SIGKILL), freeze them
// (SIGSTOP, then SIGCONT) or stop them.
// etcd comes from testenv.EtcdCluster or a site's embedded member.
//
// It is test support: only _test.go files and benchmarks import it.
//
// # Rules
//
// Imports from mao: only api, internal/testenv, orchestrator/pki.
// Imported by: tests only.
package fedtest
