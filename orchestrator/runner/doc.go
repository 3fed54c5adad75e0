// Package runner executes tool runs at one site. A run goes
// pending → running → succeeded | failed | timed_out: the runner syncs the
// tool's data repository (and input dataset) clone, makes sure the image is
// present, runs the container with the clone mounted at /usr/src/app/data,
// streams its output into the run's log, and commits what the tool wrote
// (or discards it when the run did not succeed). Every step is recorded in
// the run's record.
//
// The runner declares what it needs as small interfaces (Registry, Records,
// Containers, Git, Clock) and never imports etcd, the Docker SDK or go-git
// directly; the daemon wires in store, dockerrt and gitrepo.
package runner
