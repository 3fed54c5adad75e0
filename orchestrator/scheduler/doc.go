// Package scheduler turns schedules into runs. It loads the schedules from
// etcd and watches them, so that an edit, pause or removal takes effect at
// once; gocron/v2 drives the timing, one job per schedule armed at its next
// tick. A tick at scheduled time T is claimed as run <schedule-id>-<T unix>
// (runs.Tick) with a create-only transaction, so however many sites watch
// the same etcd, each tick yields at most one run.
//
// At start-up, and whenever etcd comes back, it catches up: the most recent
// tick missed since a schedule's last recorded run is run once (catchup
// once, within the deadline) and older misses are recorded as missed. A
// tick that fires well after it was due (the site was stopped or starved)
// is caught up in the same way, never run as on time; a claim that fails
// (etcd unreachable, or the site not live under its lease) is caught up a
// little later. It
// records skipped ticks (overlap forbid), orphaned ticks (tool removed) and
// prunes each schedule's history; the records and their states come from
// package runs.
//
// It declares what it needs as small interfaces and takes its clock from
// the caller, so its logic is tested with a fake clock.
//
// # Rules
//
// Imports from mao: only api, toolspec, orchestrator/errs, orchestrator/runs.
// Never links: etcd, Docker, go-git.
package scheduler
