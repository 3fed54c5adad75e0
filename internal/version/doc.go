// Package version holds mao's release version, shown by both binaries and
// recorded in each site's membership record.
//
// # Rules
//
// Imports from mao: nothing.
// Never links: etcd, Docker, go-git, net/http.
package version
