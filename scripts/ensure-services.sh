#!/usr/bin/env bash
# Start the local services the platform and its tests use, installing them when missing.
# Idempotent: a service already answering on its port is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() {
  local name=$1 port=$2
  for _ in $(seq 1 100); do
    listening "$port" && return 0
    sleep 0.2
  done
  echo "$name did not start on 127.0.0.1:$port" >&2
  return 1
}

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# Redis: the production online store (tests use their own db numbers / key prefixes).
REDIS_PORT=${REDIS_PORT:-6379}
if ! listening "$REDIS_PORT"; then
  command -v redis-server >/dev/null || bash scripts/apt-install.sh redis-server
  echo "starting redis-server on 127.0.0.1:$REDIS_PORT"
  redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" \
    --save "" --appendonly no --dir /tmp --logfile /tmp/credit-redis.log
  wait_for redis "$REDIS_PORT"
fi

# PostgreSQL: the production decision log (tests create and drop their own databases).
PG_PORT=${PG_PORT:-5432}
if ! listening "$PG_PORT"; then
  fresh=0
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    bash scripts/apt-install.sh postgresql
    fresh=1
  fi
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  echo "starting PostgreSQL $version on 127.0.0.1:$PG_PORT"
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start
  wait_for postgresql "$PG_PORT"
  if [ "$fresh" -eq 1 ]; then
    # A fresh cluster only trusts the postgres OS user: give tests a password login.
    as_root su postgres -c "psql -q -c \"ALTER USER postgres PASSWORD 'postgres'\""
  fi
fi
