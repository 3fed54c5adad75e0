// Package gitserver serves bare git repositories the ways users reach
// them, on loopback, for tests of what mao does with remotes: `git
// daemon` with receive-pack enabled (git://), smart HTTP through `git
// http-backend` behind basic auth (http://), and SSH through a server the
// test starts (golang.org/x/crypto/ssh) that runs git-upload-pack and
// git-receive-pack, with a host key and a client key the test generates
// (ssh://). Every repository it makes refuses non-fast-forward pushes
// (receive.denyNonFastForwards), as shared research repositories should.
//
// Servers stop when the test ends. A remote that is down is Down's
// address: a closed loopback port; GatedDaemon's Gate takes a remote down
// and brings it back at the same address. HTTPS serves with a test
// authority's certificate, whose PEM file it returns; PublicHTTPS serves
// reads to anyone and takes pushes only with the password, as a public
// repository does. Race makes a push
// find its branch moved just before it lands, as when another site
// pushed first.
//
// # Rules
//
// Imports from mao: only internal/testenv.
// Imported by: tests only.
package gitserver
