// Package outbox pushes the commits of successful runs to their tools'
// data repositories, and keeps the runs' records of it: a durable outbox
// that nothing empties but a push that landed.
//
// The queue is each clone itself: its branch's commits after its pushed
// mark are not on the remote yet (see gitrepo), and they stay there
// through failures, restarts and crashes. This package keeps, per run,
// what its record says (api.Push, changed only through runs.Apply): the
// runner queues a run whose commit was kept (Enqueue), the run's final
// record says pending, and a worker of the tool's clone pushes it (Git),
// onto the tool's branch or mao/<site> (push: branch, site-branch), and
// records pushed (the remote commit) or conflict (the branch), or failed
// with the reason and the count of attempts. A failing clone is tried
// again after 1s, 2s, 4s, ... up to a ceiling ([git] push_retry_max), and
// at once when another of its runs is queued. On start the outbox reads
// the records of this site's runs whose push is pending or failed, and
// tries every clone of a tool that pushes: commits whose record was lost
// (a crash between the commit and the record) are pushed too. A run's
// commit that an earlier push sent but whose record was not updated is
// found on the remote (Git's Want), never sent twice.
//
// A push that has failed for longer than the site allows ([git]
// push_failed_after) is told to Alerts once per run; alerts tells
// push_failed once per site and tool while its pushes fail. A push that
// lands after failures is told too, so that the next lasting failure is.
//
// Record updates wait for the run's final record: the runner queues the
// run before it stores the record, so a push may land first; its result
// is kept until Ended says the record is stored.
//
// Each clone has one goroutine, started by Run and stopped when Run's
// context ends (an attempt under way is cut short: its commits stay
// queued). Its waits use the injected Clock.
//
// The outbox links neither etcd nor Docker nor go-git: it works through
// small interfaces (Git, Records, Tools, Alerts, Clock) that the daemon
// fills with gitrepo, the store, the registry and alerts.
//
// # Rules
//
// Imports from mao: only api, orchestrator/errs, orchestrator/runs, toolspec.
// Never links: etcd, Docker, go-git.
package outbox
