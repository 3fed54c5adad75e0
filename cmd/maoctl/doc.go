// Command maoctl is mao's command-line client. All behaviour lives in
// package maoctl; this main only wires signals, arguments and the exit
// status, and imports nothing else from mao.
//
// # Rules
//
// Imports from mao: only maoctl.
// Never links: etcd, Docker, orchestrator.
package main
