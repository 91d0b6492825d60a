#!/usr/bin/env bash
# Start the local services the platform and its tests use, installing them when missing.
# Idempotent: a service already answering on its port is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() {
  local name=$1 port=$2
  for _ in $(seq 1 50); do
    listening "$port" && return 0
    sleep 0.2
  done
  echo "$name did not start on 127.0.0.1:$port" >&2
  return 1
}

REDIS_PORT=${REDIS_PORT:-6379}
if ! listening "$REDIS_PORT"; then
  command -v redis-server >/dev/null || bash scripts/apt-install.sh redis-server
  echo "starting redis-server on 127.0.0.1:$REDIS_PORT"
  redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" \
    --save "" --appendonly no --dir /tmp --logfile /tmp/credit-redis.log
  wait_for redis "$REDIS_PORT"
fi
