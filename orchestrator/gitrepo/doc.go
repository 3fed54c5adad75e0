// Package gitrepo manages a site's local clones of git repositories: the
// data repository of each tool (mounted read-write into the tool's
// container) and the registered datasets. It clones and fast-forwards them
// (Sync), re-cloning a directory whose URL changed and keeping the old clone
// aside rather than deleting it, records a run's output as a commit (Commit)
// and throws away a failed run's output (Discard). It never pushes or
// deletes commits.
//
// It talks to git only through go-git and never runs the git binary itself.
// Note that go-git serves file:// URLs by running git-upload-pack, so a site
// that uses file:// remotes needs git installed.
//
// A Repos does no locking: callers must serialise calls on the same
// directory (the orchestrator holds a per-directory lock). Calls on
// different directories may run concurrently.
//
// The package must not import mao's registry, scheduler, Docker or API
// packages: it knows directories and URLs, not tools or runs.
//
// # Rules
//
// Imports from mao: nothing.
// Never links: etcd, Docker, orchestrator.
package gitrepo
