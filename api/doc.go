// Package api is mao's wire contract: the JSON types that the orchestrator's
// REST API (/api/v1) sends and receives, and a Go client for it.
//
// maoctl and other Go clients build on it, so it stays free of etcd,
// Docker, git and the orchestrator's packages. Tool, Dataset, Schedule and
// Target are the records of package toolspec, and Verdict is the spike
// detector's, re-exported here as the types of the wire format; their
// functions (loading a spec, scanning a series) are called in their own
// packages.
//
// # Rules
//
// Imports from mao: only detector, toolspec.
// Never links: etcd, Docker, go-git, orchestrator.
package api
