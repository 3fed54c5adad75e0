// Package offline owns a site's work while etcd does not answer it (no
// quorum, or the site cut off): the runs no other site may ever hold
// (runs.OwnOnly: its --site schedules' ticks, its own runs of --all
// schedules, runs asked of it through its own API with no target or a
// target naming it) go on, and their records go to a journal in the data
// directory instead of etcd; everything another site could claim waits.
//
//   - Journal is the file (<data_dir>/journal/journal.jsonl): one JSON
//     entry per line (a tick's claim, a run's creation, each state change),
//     synced before the run goes on; read back in order; a last line cut
//     short by a crash is dropped; emptied once every entry is in etcd.
//   - Work routes records: those of runs the site carries go to the
//     journal (Records, Claims, History for the runner, the scheduler and
//     the dispatcher), answers for them meanwhile (reads, a schedule's
//     overlap, the site's own row and health), tells the runner which runs
//     its lease does not fence (Carries), defers their notifications and
//     leaves their detector series alone, and replays the journal into etcd
//     (store.ReplayRun, as runs.Replay decides) once etcd answers and the
//     site's lease is valid; a previous life's journal is replayed at
//     start-up, before the runner recovers.
//
// Why the lease need not fence these runs: no other site claims their IDs,
// and when another site sees this one's lease expire, runs.Lose makes them
// wait for this very site again, never for another; while the site carries
// such a run it claims no request for it, and the replay's record of the
// attempt wins over the settlement as lost (and ends the request).
//
// # Rules
//
// Imports from mao: only api, detector, toolspec, orchestrator/errs, orchestrator/runs.
// Never links: etcd, Docker, go-git.
package offline
