#!/bin/sh
# Builds etcdctl, of the etcd version mao links, into bin/etcdctl: the
# baseline of bench/scalebench. etcdctl's own go.mod has replace
# directives, so `go install` refuses it; a throwaway module that requires
# it builds it from the module proxy.
set -eu
out="$(cd "$(dirname "$0")/.." && pwd)/bin/etcdctl"
version=$(go list -m -f '{{.Version}}' go.etcd.io/etcd/client/v3)
[ -x "$out" ] && "$out" version 2>/dev/null | grep -q "etcdctl version: ${version#v}" && exit 0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
printf 'module etcdctlbuild\n\ngo 1.26\n' > go.mod
printf '//go:build tools\n\npackage tools\n\nimport _ "go.etcd.io/etcd/etcdctl/v3"\n' > tools.go
go get "go.etcd.io/etcd/etcdctl/v3@$version"
go build -o "$out" go.etcd.io/etcd/etcdctl/v3
