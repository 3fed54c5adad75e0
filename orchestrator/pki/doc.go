// Package pki is the federation's certificate authority: the CA a
// federation's first site creates in its data directory, the certificates
// it issues (a site's, the federation administrator's, a collaborator's
// read-only one), the files they are kept in, the TLS configurations that
// use them, and the one-time join tokens that let a new site get its
// certificate without anyone copying key files by hand.
//
// Identities are certificate common names, which etcd takes as user
// names: "site:<name>" for a site, "root" for the federation's
// administration (etcd's root user: cluster membership, compaction,
// users), and "reader:<name>" for a collaborator who may only read.
//
// It does no network I/O and knows nothing of etcd or HTTP routes: it
// creates and reads keys, certificates and tokens.
//
// # Rules
//
// Imports from mao: nothing.
// Never links: etcd, Docker, go-git, orchestrator.
package pki
