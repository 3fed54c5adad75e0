// Command orchestrator is mao's per-site daemon. See README.md and
// config.ini.example.
// All behaviour lives in package orchestrator/daemon; this main only
// parses flags, loads the config, starts the daemon (or, with -leave, has
// the stopped site leave the federation) and maps its error to an exit
// status.
//
// # Rules
//
// Imports from mao: only internal/version, orchestrator/daemon.
package main
