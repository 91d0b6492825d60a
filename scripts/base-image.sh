#!/usr/bin/env bash
# A local Python 3.11 base image made from Debian packages, for machines that cannot pull
# registry images (python:*-slim). debootstrap of bookworm with python3, python3-venv,
# python-is-python3, libgomp1 and ca-certificates, imported as one layer.
#
# The host's CA bundle replaces the image's: pip and uv inside the image builds then trust
# exactly what the host trusts (a TLS-intercepting proxy's CA included).
#   bash scripts/base-image.sh [TAG]        (default: credit-python:3.11-bookworm)
# Reuses the image when it already exists (FORCE=1 rebuilds it).
set -euo pipefail
cd "$(dirname "$0")/.."
TAG=${1:-${BASE_IMAGE:-credit-python:3.11-bookworm}}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm

if [ -z "${FORCE:-}" ] && docker image inspect "$TAG" >/dev/null 2>&1; then
  echo "base image $TAG: present"
  exit 0
fi
command -v debootstrap >/dev/null || bash scripts/apt-install.sh debootstrap
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

root=$(mktemp -d /tmp/credit-base.XXXXXX)
trap 'as_root rm -rf "$root"' EXIT
started=$(date +%s)
echo "debootstrap $SUITE into $root (~2-3 minutes)"
as_root debootstrap --variant=minbase \
  --include=python3,python3-venv,python-is-python3,libgomp1,ca-certificates \
  "$SUITE" "$root" "$MIRROR" >"$root.log" 2>&1 || { tail -n 30 "$root.log" >&2; exit 1; }
rm -f "$root.log"
# The host's trust store, and apt sources like the host's (security updates included).
as_root cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
printf 'deb %s %s main\ndeb %s %s-updates main\ndeb %s-security %s-security main\n' \
  "$MIRROR" "$SUITE" "$MIRROR" "$SUITE" "${MIRROR%/debian}/debian-security" "$SUITE" \
  | as_root tee "$root/etc/apt/sources.list" >/dev/null
# Smaller image: no apt lists, caches, docs or man pages.
as_root rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin \
  "$root"/var/cache/apt/archives/*.deb "$root"/usr/share/doc/* "$root"/usr/share/man/* \
  "$root"/usr/share/locale/*
as_root tar -C "$root" -c . | docker import \
  --change 'ENV LANG=C.UTF-8' \
  --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
  --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
  --change 'CMD ["python3"]' \
  - "$TAG" >/dev/null
echo "base image $TAG: built in $(( $(date +%s) - started )) s," \
  "$(docker image inspect -f '{{.Size}}' "$TAG" | awk '{printf "%.0f MB", $1/1e6}')"
