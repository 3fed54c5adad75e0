// Package etcdembed runs the etcd member that an orchestrator starts when
// config.ini names no external endpoints: alone in a new cluster (mao's
// zero-config default), joining the running cluster of a federation, or,
// for the last member of a cluster whose others are gone for good, a new
// cluster of itself alone with its data (refused for a learner).
// Tests use it too, so every test talks to a real etcd.
//
// It owns the server's lifecycle only; it must not know mao's key layout.
//
// # Rules
//
// Imports from mao: nothing.
// Never links: Docker, go-git, orchestrator.
package etcdembed
