#!/usr/bin/env bash
# A running Docker engine for `make images` / `make e2e`: installs Debian's docker.io when the
# engine is missing and starts dockerd itself when none answers (no systemd needed).
# Idempotent: a daemon that already answers is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if docker info >/dev/null 2>&1; then
  exit 0
fi
# `docker` alone may be just a client (no engine on this machine): docker.io brings the
# engine (dockerd) and a client.
command -v dockerd >/dev/null || bash scripts/apt-install.sh docker.io
echo "starting dockerd (log: /tmp/credit-dockerd.log)"
as_root bash -c 'nohup dockerd >/tmp/credit-dockerd.log 2>&1 &'
for _ in $(seq 1 150); do
  docker info >/dev/null 2>&1 && exit 0
  sleep 0.2
done
echo "dockerd did not start; its log:" >&2
tail -n 30 /tmp/credit-dockerd.log >&2
exit 1
