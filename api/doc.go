// Package api is mao's wire contract: the JSON types that the orchestrator's
// REST API (/api/v1) sends and receives, and a Go client for it.
//
// It is the only mao package that maoctl imports, so it must stay free of
// etcd, Docker and git dependencies and of the orchestrator's packages. Tool
// and Dataset are the registry records of package toolspec, re-exported here.
package api
