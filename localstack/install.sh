#!/usr/bin/env bash
# Installs LocalStack for host mode into its own venv (.venv-localstack), once.
# Recipe from the field notes: localstack-core 2026.3.0 on Python 3.13, resolved with uv and
# --exclude-newer so later releases of its dependencies (which break it) are not picked.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv-localstack
STAMP=$VENV/.installed
LOCALSTACK_VERSION=2026.3.0
EXCLUDE_NEWER=2026-03-24
UV_VERSION=0.13.9
[[ -f $STAMP ]] && exit 0
PY313=$(ls "$HOME"/.pyenv/versions/3.13*/bin/python3.13 2>/dev/null | head -1)
PY313=${PY313:-$(command -v python3.13)}
echo "==> installing LocalStack $LOCALSTACK_VERSION (host mode) into $VENV with $PY313"
"$PY313" -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check "uv==$UV_VERSION"
"$VENV/bin/uv" pip install --quiet --python "$VENV/bin/python" --exclude-newer "$EXCLUDE_NEWER" \
  "localstack-core[runtime]==$LOCALSTACK_VERSION"
touch "$STAMP"
