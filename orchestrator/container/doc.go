// Package container holds the plain description of a container run that
// the runner hands to a container runtime, and what comes back: Spec,
// Mount, Image and Exit; and how two outputs differ (Difference), for a
// replay. It is a leaf of plain types, so that the runner
// can describe a run without linking a container engine's SDK; package
// dockerrt carries them out through the Docker Engine API.
//
// # Rules
//
// Imports from mao: nothing.
// Never links: etcd, Docker, go-git, net/http.
package container
