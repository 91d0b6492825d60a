#!/usr/bin/env bash
# System tools the test suite drives for real: Debian's Chromium (the dashboard's browser
# test; Playwright uses it instead of downloading a browser).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v chromium >/dev/null || bash scripts/apt-install.sh chromium
