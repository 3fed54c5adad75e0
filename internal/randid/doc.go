// Package randid makes the random parts of run, schedule and notification
// IDs.
//
// # Rules
//
// Imports from mao: nothing.
// Never links: etcd, Docker, go-git, net/http.
package randid
