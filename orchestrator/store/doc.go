// Package store owns mao's etcd key layout and its JSON values: the tool and
// dataset registries, run records, requests, schedules, series,
// notifications and site membership. It keeps keys, transactions and
// compare-and-swap, and nothing else: what a run record may become is
// package runs' to say (the store calls runs.Apply inside its
// transactions). Every write is a single etcd transaction, so nothing
// partial is ever stored, and etcd failures surface as ErrUnavailable.
//
// Site membership fences the sites' work: a site claims runs (ClaimRun,
// ClaimRequest) only while its record lives under the lease it joined
// with, checked in the claim's transaction; Membership.Holds tells whether
// it still holds an attempt and Membership.Valid whether its lease is
// valid by its own clock. ReplayRun writes a record from a site's journal
// (its own runs, recorded while etcd did not answer it) as runs.Replay
// decides, only while the site is live.
//
// The layout is a public interface (collaborators read it with etcdctl) and
// is documented in docs/etcd-keys.md; change both together. It serves no
// HTTP.
//
// # Rules
//
// Imports from mao: only api, notify, toolspec, internal/randid, orchestrator/errs, orchestrator/pki, orchestrator/runs.
// Never links: Docker, go-git.
package store
