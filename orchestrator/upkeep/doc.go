// Package upkeep keeps a site's etcd within bounds, in one goroutine that
// the daemon owns (Keeper.Run, stopped by its context):
//
//   - it looks at the cluster's alarms every interval; a NOSPACE alarm
//     (etcd refuses writes) makes Alarms non-empty, which health reports as
//     degraded, and is notified once (kind etcd_nospace) through package
//     notify to the site's channels, until it is disarmed;
//   - for the site's own embedded member only (never another's, so members
//     are defragmented one at a time, each by its site), it defragments
//     when the free share of the database is large, and recovers from
//     NOSPACE: compact to the current revision, defragment, and disarm once
//     the database is back under its quota;
//   - it defragments only after renewing the site's lease, and only when
//     the defragmentation, as long as the last one took for its size, fits
//     well within the lease's validity: the member answers nothing,
//     renewals included, while it defragments.
//
// Compaction itself is etcd's (the embedded member's auto-compaction); an
// external cluster's compaction and defragmentation are its
// administrators'. The state of what was notified is the site's own, in
// memory: etcd takes no writes while the alarm lasts.
//
// # Rules
//
// Imports from mao: only notify, orchestrator/store.
// Never links: Docker, go-git.
package upkeep
