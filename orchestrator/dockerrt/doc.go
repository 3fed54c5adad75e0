// Package dockerrt is the orchestrator's container runtime: it makes sure a
// tool image is present, runs one container per job to completion through the
// Docker Engine API (create, wait, start, then its json-file log followed
// from the start: no attach delays the start), streams its output, enforces
// the job timeout, and guarantees the container is gone afterwards. It also removes containers a
// crashed orchestrator left behind.
//
// Every container it creates gets the same security defaults, which no
// caller can turn off: no-new-privileges, Docker's capabilities dropped but
// for Capabilities (what a root process needs to write into the data
// folder), and never the Docker socket in a mount. The Spec sets the pids
// and memory limits and the user.
//
// It owns the conversation with the Docker engine only. It must not import
// mao's registries (etcd), the tool model (toolspec) or the HTTP API (api):
// callers translate a tool run into a container.Spec. It never shells out to `docker`.
//
// # Rules
//
// Imports from mao: only orchestrator/container.
// Never links: etcd, go-git, api, toolspec.
package dockerrt
