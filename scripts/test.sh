#!/usr/bin/env bash
# `make test`: the whole test suite, with the race detector, against a real
# Docker engine (started here if none answers) and real embedded etcd.
# Docker tests fail rather than skip (MAO_REQUIRE_DOCKER=1), and the report
# counts every test that ran; any skipped test fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-docker.sh
go build -o bin/testreport ./internal/testreport
export MAO_REQUIRE_DOCKER=1
set +e
go test -race -count=1 -timeout 12m -json ./... > bin/test.json 2>&1
status=$?
set -e
bin/testreport -strict < bin/test.json || status=1
exit $status
