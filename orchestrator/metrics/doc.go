// Package metrics owns a site's Prometheus metrics: their names, labels,
// help and buckets, and the registry that GET /metrics serves (Handler).
// Nothing here is package-level state: the daemon makes one Metrics per
// site, and feeds it from the edges of the packages that do the work
// (runs started and ended, claims, notification outcomes, etcd requests
// through a gRPC interceptor, backlogs read when scraped), so that none
// of them imports Prometheus.
//
// Every metric is named mao_… and carries the label site. Labels never
// hold a value a request could make up: tool names are those of the
// registry, states and outcomes are closed sets.
//
// # Rules
//
// Imports from mao: only api.
// Never links: Docker, go-git.
package metrics
