// Package config loads the orchestrator's config.ini: defaults first, then a
// strict parse of the file (an unknown section or key is an error that names
// it and its line), then Validate, which reports every problem at once.
//
// It also reads the sections of the predecessor's config.ini
// ([WORKING_ENVIRONMENT], [ETCD], [POSTGRES], [DATA_REPOS]) so that a
// migrating site's file still loads; each one it maps or ignores adds a note
// to Config.Warnings.
//
// Loading does no I/O beyond reading the config file, api.tokens_file and
// the time zone database (to check site.timezone), and opening the API's and etcd's TLS
// files and the [git] section's files to check that they are readable (it
// reads none of their secrets): it never creates directories. The package only describes settings, so it must
// not import etcd, Docker or git packages, nor other orchestrator packages.
//
// # Rules
//
// Imports from mao: only toolspec.
// Never links: etcd, Docker, go-git, net/http, orchestrator.
package config
