#!/usr/bin/env bash
# Regenerate the per-image pinned (hashed) requirement files from pyproject.toml.
# Run after changing a dependency group: bash docker/compile-locks.sh
set -euo pipefail
cd "$(dirname "$0")/.."
UV=${UV:-.venv/bin/uv}
compile() { "$UV" pip compile --quiet --generate-hashes --python-version 3.11 \
  --python-platform x86_64-manylinux_2_28 --no-header "$@"; }
compile pyproject.toml --extra scoring -o docker/requirements-scoring.lock
compile pyproject.toml --extra explainer -o docker/requirements-explainer.lock
compile pyproject.toml --extra gateway -o docker/requirements-gateway.lock
compile pyproject.toml --extra ui -o docker/requirements-ui.lock
compile pyproject.toml docker/jobs-extra.in --extra training -o docker/requirements-jobs.lock
compile docker/build.in -o docker/requirements-build.lock
