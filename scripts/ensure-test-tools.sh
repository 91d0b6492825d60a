#!/usr/bin/env bash
# System tools the test suite drives for real: Debian's Chromium (the dashboard's browser
# test; Playwright uses it instead of downloading a browser), Java for Spark's local mode
# (the Spark feature pipeline's parity test) and redis-sentinel (the failover test).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v chromium >/dev/null || bash scripts/apt-install.sh chromium
command -v java >/dev/null || bash scripts/apt-install.sh openjdk-17-jre-headless
command -v redis-sentinel >/dev/null || bash scripts/apt-install.sh redis-sentinel
