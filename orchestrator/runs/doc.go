// Package runs owns a run's life: the one place that says what a run record
// is and how it may change.
//
//   - ID is a run's name, formatted by ID.String and read by Parse: a run asked for by
//     hand (<tool>-<unix seconds>-<6 hex digits>), a schedule's tick
//     (<schedule>-<tick in unix seconds>), and one run of an --all target
//     (either of those, then -<site>). A retried or lost-and-requested-again
//     run keeps its ID; its attempts are numbered in its record.
//   - NewManual and NewTick build new records.
//   - Apply is every state change, as a pure function of (record, event,
//     time) → record: Claim, Start, Succeed, Fail, TimeOut, RetryLater,
//     Lose, Skip, Miss and Orphan, and those of a succeeded run's push
//     (api.Push: pending from Succeed, then Pushed, PushConflicted, with
//     PushFailed between). It refuses a transition that the run's state
//     does not allow (ErrIllegal), and leaves the record unchanged.
//   - Request is a run waiting for a site to claim it, derived from its
//     record (RequestOf).
//   - OwnOnly tells the runs that no site but their own may ever hold (Lose
//     makes them wait for that site again), which a site goes on with while
//     etcd does not answer it; Replay decides how such a run's record from
//     the site's journal goes into etcd over the stored one.
//
// The states themselves are the wire type api.RunState; this package owns
// the rules between them. It keeps no state, reads no clock and does no
// I/O (but for crypto/rand's nonces): the store, the runner, the scheduler
// and the federation call it, and so the scheduler and the federation need
// neither etcd nor Docker.
//
// # Rules
//
// Imports from mao: only api, detector, internal/randid, orchestrator/errs, toolspec.
// Never links: etcd, Docker, go-git.
package runs
