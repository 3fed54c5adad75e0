// Package runner executes tool runs at one site. It moves each run through
// its states with package runs (pending → running → succeeded | failed |
// timed_out, with retries): it syncs the tool's data repository (and input
// dataset) clone, makes sure the image is present, runs the container with
// the clone mounted at /usr/src/app/data, streams its output into the
// run's log, and commits what the tool wrote (or discards it when the run
// did not succeed, or its output was refused). Committing and discarding
// stop when the run is stopped (shutdown, or the site lost the run): the
// run fails, and the next sync of the clone discards what is left. Every
// step is recorded in the run's record.
//
// It applies the site's container policy: a tool on the host network runs
// only where the site allows it (CheckTool says so at registration too),
// every container gets the site's pids limit and, unless the tool sets
// its own, its default memory limit, and runs as the tool's user (at an
// orchestrator that is not root: as the orchestrator's user, and never as
// another). Before anything is committed or discarded, everything in the
// data folder becomes the orchestrator's user's again, without setuid and
// setgid bits, never following a link.
//
// It acts for a run only while the site holds it (Options.Lease, the
// site's membership): no container starts while the site's lease may have
// expired by the site's own clock (it waits for the next renewal), an
// attempt whose start the store refuses (another site holds the run now)
// does not run, and a successful attempt's output is committed and given
// to the detector only after the lease has said, just before each, that
// the site still holds that attempt; otherwise it is discarded. Each
// attempt's container is named mao-<run-id>-<attempt>.
//
// The runner declares what it needs as small interfaces (Registry, Records,
// Containers, Git, Outputs, Lease, Clock), described with the plain types of
// package container; the daemon wires in the store, dockerrt and gitrepo.
//
// # Rules
//
// Imports from mao: only api, detector, toolspec, orchestrator/container, orchestrator/errs, orchestrator/runlog, orchestrator/runs.
// Never links: etcd, Docker, go-git.
package runner
