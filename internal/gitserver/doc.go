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
// address: a closed loopback port.
//
// # Rules
//
// Imports from mao: only internal/testenv.
// Imported by: tests only.
package gitserver
