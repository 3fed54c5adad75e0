// Package maoctl is mao's command-line client: the commands behind the
// maoctl binary (tool, dataset, run, schedule, site, federation, notify,
// detector, health, completion), built on urfave/cli v2 and the REST client
// of package api. detector check runs the spike detector offline, through
// package api, and needs no orchestrator.
//
// Run executes one command line and returns an error; PrintError and
// ExitCode turn that error into the one line on stderr and the exit status,
// so cmd/maoctl stays a thin main. Output goes to the writers Run is given:
// tables (text/tabwriter, UTC RFC 3339 times) or, with --output json, the
// API objects as indented JSON.
//
// Besides the standard library and its CLI, git and terminal libraries,
// maoctl imports only package api from this module: it must not import the
// orchestrator, etcd or Docker packages. The bearer token is sent, never
// printed.
package maoctl
