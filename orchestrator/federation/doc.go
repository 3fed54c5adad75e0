// Package federation is what a site does as one of many sites over one etcd
// cluster:
//
//   - Registry keeps the tool and dataset registries in memory, fed by an
//     etcd watch, so that a tool registered at another site is usable here
//     at once, with no restart and no polling.
//   - Images tells whether this site can run an image (it has it, or its
//     registry offers it), which makes the site eligible for a target.
//   - Dispatcher turns run requests into runs: it writes a request to etcd
//     for runs meant for other or any sites, refuses a target no site can
//     meet, and claims and launches the requests this site is eligible for.
//   - Failover watches sites leave. When a site's lease expires, the runs it
//     held are lost; with attempts left they are requested again, so that
//     another eligible site runs them (the rules are runs.Lose's).
//   - PrunedLogs removes the logs this site keeps of runs whose records
//     were pruned, whichever site pruned them.
//
// It works through small interfaces over the store, the runner and the
// container runtime, and it serves no HTTP.
//
// # Rules
//
// Imports from mao: only api, toolspec, orchestrator/errs, orchestrator/runs.
// Never links: etcd, Docker, go-git.
package federation
