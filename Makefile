# mao: the two commands a new user needs are `make demo` and `make test`.

.PHONY: all build demo demo-stop test bench example-image clean

all: build

build:
	go build -o bin/ ./cmd/orchestrator ./cmd/maoctl

# One site end to end: Docker, orchestrator on embedded etcd, example tool, a run.
# KEEP=1 leaves the orchestrator running.
demo:
	scripts/demo.sh

demo-stop:
	scripts/demo.sh stop

# The whole test suite against real Docker and etcd.
test:
	scripts/test.sh

# `maoctl tool run --follow` against bare `docker run --rm`, same image; then
# the scheduler with 1,000 schedules and its tick lateness against bare
# create+start calls to the Docker engine; then federation propagation
# against a raw etcd watch (plaintext and mutual TLS with auth, side by side),
# failover after SIGKILL against the lease TTL, and two minutes without quorum
# (ticks run offline, records journaled, time to replay them); then 1,000 sequential etcd
# writes with and without mutual TLS and auth; then pushes of runs' results
# against the git CLI (run end to push done, a 1 GiB repository of 100,000
# files, a backlog of 100 commits); a real NOSPACE (a 16 MiB quota filled,
# then freed: times to degraded, notified and healthy again); scalebench's
# 10,000 tools and 1,000,000 runs (lists, restart time and RSS, tool list
# against etcdctl); then the spike detector on
# 1,000,000 values and per run, the cost of handing a notification over, and a
# /metrics scrape at 1,000 tools next to the runtime's metrics alone.
bench: build
	scripts/ensure-docker.sh
	scripts/build-example.sh
	go run ./bench/runbench -maoctl bin/maoctl -orchestrator bin/orchestrator
	go run ./bench/schedbench -orchestrator bin/orchestrator
	MAO_REQUIRE_DOCKER=1 go test -run '^$$' -bench . -benchtime 1x ./bench/fedbench/
	go test -run '^$$' -bench . -benchtime 1x -timeout 60m ./bench/etcdbench/
	go test -count=1 -run '^TestNoSpaceRecovers$$' -v ./orchestrator/daemon/ | grep 'nospace:'
	scripts/build-etcdctl.sh
	go run ./bench/scalebench -orchestrator bin/orchestrator -maoctl bin/maoctl -etcdctl bin/etcdctl
	MAO_REQUIRE_DOCKER=1 go test -run '^$$' -bench . -benchtime 1x -timeout 60m ./bench/pushbench/
	go test -run '^$$' -bench . ./detector/ ./notify/ ./orchestrator/metrics/

example-image:
	scripts/build-example.sh

clean:
	rm -rf bin .demo examples/*/build
