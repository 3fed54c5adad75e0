// Package toolspec owns mao's data model for registry records: a Tool (a
// Docker image that follows the MAO tool contract) and a Dataset (a git
// repository that tools may read). It validates them and decodes them from
// YAML or JSON files.
//
// The package does no I/O beyond reading a file the caller names. The
// orchestrator and maoctl both depend on it, so it stays free of etcd,
// Docker, git and HTTP; of mao it imports only package detector, whose
// Config is a tool's `detector:` block.
//
// A record with exactly the six fields of the predecessor's registry
// (name, author, image, data_repo, code_repo, artefact) is a valid Tool;
// every other field is optional and has a documented default.
//
// # Rules
//
// Imports from mao: only detector.
// Never links: etcd, Docker, go-git, net/http.
package toolspec
