// Package maoctl is mao's command-line client: the commands behind the
// maoctl binary (tool, dataset, run, schedule, site, federation, notify,
// detector, health, completion), built on urfave/cli v2 and the REST client
// of package api. detector check runs the spike detector (package
// detector) offline, and needs no orchestrator.
//
// Run executes one command line and returns an error; PrintError and
// ExitCode turn that error into the one line on stderr and the exit status,
// so cmd/maoctl stays a thin main. Output goes to the writers Run is given:
// tables (text/tabwriter, UTC RFC 3339 times) or, with --output json, the
// API objects as indented JSON.
//
// Besides the standard library and its CLI, git and terminal libraries,
// maoctl imports from this module only the wire types and client (api),
// the records (toolspec) and the spike detector (detector, for detector
// check): never the orchestrator, etcd or Docker. The bearer token is sent,
// never printed.
//
// # Rules
//
// Imports from mao: only api, detector, toolspec.
// Never links: etcd, Docker, orchestrator.
// Imported by: only cmd/maoctl.
package maoctl
