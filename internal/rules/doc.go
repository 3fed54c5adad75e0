// Package rules checks that mao's packages keep to their rooms. It has no
// code of its own: its test reads the rules in each package's doc.go and
// the map in docs/architecture.md, and checks both against `go list`.
//
// A package states its rules in a "# Rules" section of its doc.go, one per
// line:
//
//	Imports from mao: only api, toolspec, orchestrator/errs.
//	Never links: etcd, Docker, go-git.
//	Imported by: only cmd/orchestrator.
//
// "Imports from mao" lists the packages of this module that the package
// may import directly ("nothing" for none). "Never links" names what must
// not be among its dependencies at any depth: etcd, Docker, go-git,
// gocron, shoutrrr, net/http, orchestrator (any orchestrator package but
// itself), or a package of this module by path. "Imported by" lists the
// only packages that may import it ("tests only": none but tests). Test
// files are not counted: tests may import what they need.
//
// # Rules
//
// Imports from mao: nothing.
// Imported by: tests only.
package rules
