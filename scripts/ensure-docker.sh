#!/usr/bin/env bash
# Makes sure a Docker engine answers on this machine, and that git is there
# (go-git uses git-upload-pack for file:// repositories).
# If no engine answers, it installs Debian's docker.io when dockerd is missing
# and starts dockerd in the background (no bridge network, no iptables).
set -euo pipefail

need_root() {
  if [ "$(id -u)" != 0 ]; then
    echo "ensure-docker: $1 needs root; run as root or do it yourself (see README.md)" >&2
    exit 1
  fi
}

apt_install() {
  need_root "installing $*"
  echo "ensure-docker: installing $* from Debian's packages" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq "$@" >/dev/null
}

command -v git >/dev/null 2>&1 || apt_install git

if docker info >/dev/null 2>&1; then
  exit 0
fi
if [ -S /var/run/docker.sock ] && [ "$(id -u)" != 0 ] && pgrep -x dockerd >/dev/null 2>&1; then
  echo "ensure-docker: dockerd runs but this user cannot use /var/run/docker.sock; run as root or join the docker group" >&2
  exit 1
fi
command -v dockerd >/dev/null 2>&1 || apt_install docker.io
command -v docker >/dev/null 2>&1 || apt_install docker.io
need_root "starting dockerd"

root=${MAO_DOCKER_ROOT:-/var/lib/mao-docker}
mkdir -p "$root/data" "$root/exec"
echo "ensure-docker: starting dockerd (data in $root, log in $root/dockerd.log)" >&2
nohup dockerd --data-root "$root/data" --exec-root "$root/exec" \
  -H unix:///var/run/docker.sock --bridge=none --iptables=false --ip-masq=false \
  >"$root/dockerd.log" 2>&1 &

for _ in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then
    echo "ensure-docker: Docker engine $(docker version --format '{{.Server.Version}}') is up" >&2
    exit 0
  fi
  sleep 1
done
echo "ensure-docker: dockerd did not answer within 60s; see $root/dockerd.log" >&2
tail -20 "$root/dockerd.log" >&2 || true
exit 1
