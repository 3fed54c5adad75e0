// Package dirlock serialises work on one directory among goroutines of one
// process: a lock per key (a directory's path) that a waiter can give up
// on when its context ends. The runner locks each clone's work tree with
// it, and gitrepo each clone's git directory.
//
// # Rules
//
// Imports from mao: nothing.
// Never links: etcd, Docker, go-git, net/http.
package dirlock
