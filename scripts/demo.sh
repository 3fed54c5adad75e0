#!/usr/bin/env bash
# `make demo`: one site, end to end. Builds mao, makes sure Docker runs,
# starts an orchestrator on the embedded etcd, builds the example tool image,
# creates local git repositories for its data and input, registers the
# dataset and the tool, runs the tool, and prints the run's result.
# Everything lives in .demo/; the orchestrator is stopped at the end unless
# KEEP=1 is set.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
demo=$top/.demo

# stop_demo stops the demo's orchestrator, if one runs, and waits until it
# has exited (SIGTERM lets it finish its runs and leave cleanly).
stop_demo() {
  local pid
  pid=$(cat "$demo/orchestrator.pid" 2>/dev/null) || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 60); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.5
  done
  echo "demo: orchestrator $pid did not stop within 30s" >&2
  return 1
}
if [ "${1:-}" = stop ]; then
  stop_demo
  exit
fi

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "build mao"
go build -o bin/ ./cmd/orchestrator ./cmd/maoctl
export PATH=$top/bin:$PATH

step "make sure a Docker engine answers"
scripts/ensure-docker.sh
docker version --format 'Docker engine {{.Server.Version}}'

step "build the example tool image"
scripts/build-example.sh

step "start an orchestrator (embedded etcd, API on 127.0.0.1)"
stop_demo # an earlier demo's orchestrator
rm -rf "$demo"
mkdir -p "$demo"
cat >"$demo/config.ini" <<INI
[site]
name = demo
data_dir = $demo/site
labels = purpose=demo

[etcd]
# free ports, so the demo never collides with a real etcd
client_url = https://127.0.0.1:0
peer_url = https://127.0.0.1:0

[api]
listen = 127.0.0.1:0

[runs]
shutdown_grace = 10s
INI
orchestrator -config "$demo/config.ini" >"$demo/orchestrator.log" 2>&1 &
echo $! >"$demo/orchestrator.pid"
if [ "${KEEP:-0}" != 1 ]; then
  trap stop_demo EXIT
fi
for _ in $(seq 1 120); do
  [ -s "$demo/site/api.addr" ] && break
  if ! kill -0 "$(cat "$demo/orchestrator.pid")" 2>/dev/null; then
    cat "$demo/orchestrator.log" >&2
    exit 1
  fi
  sleep 0.5
done
MAO_ADDR=$(cat "$demo/site/api.addr")
export MAO_ADDR
echo "orchestrator at $MAO_ADDR (log: $demo/orchestrator.log)"
maoctl site list

step "create local git repositories: the tool's data repo and an input dataset"
git_init() { # dir, then files to create
  local dir=$1
  shift
  mkdir -p "$dir"
  git -C "$dir" init -q -b main
  for f in "$@"; do
    mkdir -p "$(dirname "$dir/$f")"
    echo "example content of $f" >"$dir/$f"
  done
  git -C "$dir" add -A
  git -C "$dir" -c user.name="mao demo" -c user.email=demo@localhost commit -q -m "initial content"
}
git_init "$demo/repos/file-count-data" README.md
git_init "$demo/repos/example-input" README.md data/a.csv data/b.csv data/c.json notes/today.txt
echo "data repo:     file://$demo/repos/file-count-data"
echo "input dataset: file://$demo/repos/example-input"

step "register the dataset and the tool"
maoctl dataset register -f examples/file-count/dataset.yaml --url "file://$demo/repos/example-input"
maoctl tool register -f examples/file-count/tool.yaml --data-repo "file://$demo/repos/file-count-data"
maoctl tool list

step "run the tool, following its log"
id=$(maoctl tool run file-count --quiet)
set +e
maoctl run logs "$id" --follow
set -e

step "the run's result"
maoctl run show "$id"

if [ "${KEEP:-0}" = 1 ]; then
  printf '\nThe orchestrator keeps running. Try:\n  export MAO_ADDR=%s PATH=%s/bin:$PATH\n  maoctl run list\n  maoctl tool run file-count --follow\nStop it with: make demo-stop\n' "$MAO_ADDR" "$top"
else
  printf '\nDone. Run `make demo KEEP=1` to keep the orchestrator running and explore with maoctl.\n'
fi
