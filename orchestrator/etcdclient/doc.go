// Package etcdclient turns the orchestrator's [etcd] settings into an etcd
// client configuration: endpoints, dial timeout and client TLS.
//
// It only builds configuration; it neither dials etcd nor knows mao's key
// layout. It may import orchestrator/config and etcd's client modules, and
// must not import other orchestrator packages.
//
// # Rules
//
// Imports from mao: only orchestrator/config.
// Never links: Docker, go-git, orchestrator/store.
package etcdclient
