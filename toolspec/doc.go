// Package toolspec owns mao's data model for registry records: a Tool (a
// Docker image that follows the MAO tool contract) and a Dataset (a git
// repository that tools may read). It validates them and decodes them from
// YAML or JSON files.
//
// The package does no I/O beyond reading a file the caller names, and it must
// not import etcd, Docker or git packages: the orchestrator, maoctl and the
// detector all depend on it, so it stays a leaf.
//
// A record with exactly the six fields of the predecessor's registry
// (name, author, image, data_repo, code_repo, artefact) is a valid Tool;
// every other field is optional and has a documented default.
package toolspec
