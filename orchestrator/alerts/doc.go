// Package alerts checks every run's output with the spike detector and
// tells people what they need to know, once:
//
//   - Detect extracts a successful run's metrics (package detector), checks
//     each against its series, the metric's values at this site, and
//     appends the value to the series in etcd, which is bounded in length.
//   - Ended decides, for a run that has ended, which events to notify:
//     spike and spike_resolved per series, run_failed, run_timed_out,
//     run_lost and run_recovered per tool, each grouped by a state kept in
//     etcd and changed by compare-and-swap, so that one site decides each
//     event and a condition that lasts is notified once per cooldown. The
//     messages go out through package notify, asynchronously: nothing here
//     blocks or fails a run.
//   - PushFailing and PushLanded hear of a run's commit that has not
//     reached its data repository for longer than the site allows, or
//     that reached it: push_failed is told once per site and tool while
//     its pushes fail (scope <site>/push/failed, notify.DecidePush).
//
// It works through small interfaces over the store and the notifier; it
// must not import the etcd client, Docker or git, and it serves no HTTP.
//
// # Rules
//
// Imports from mao: only api, detector, notify, toolspec.
// Never links: etcd, Docker, go-git.
package alerts
