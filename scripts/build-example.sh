#!/usr/bin/env bash
# Builds the example tool image mao-examples/file-count:latest locally:
# a static Go binary in an image FROM scratch (no registry needed).
set -euo pipefail
cd "$(dirname "$0")/.."
out=examples/file-count/build
mkdir -p "$out"
CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$out/file-count" ./examples/file-count
cp examples/file-count/Dockerfile "$out/Dockerfile"
DOCKER_BUILDKIT=0 docker build -q -t mao-examples/file-count:latest "$out" >/dev/null 2>&1 ||
  DOCKER_BUILDKIT=0 docker build -t mao-examples/file-count:latest "$out"
echo "built image mao-examples/file-count:latest" >&2
