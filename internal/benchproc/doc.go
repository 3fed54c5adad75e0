// Package benchproc runs an orchestrator process for the benchmarks of
// bench/: it starts the binary on a config file, waits until the API and
// the scheduler are ready (their log lines), reads the process's CPU time
// and resident memory from /proc, and stops it with SIGTERM.
//
// # Rules
//
// Imports from mao: only api.
// Never links: etcd, Docker, go-git.
package benchproc
