#!/usr/bin/env bash
# Create (or refresh) the project's virtualenv in .venv with every pinned dependency.
# Idempotent and quick when nothing changed: the install is skipped while pyproject.toml
# is older than the stamp file.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv with $($PY --version)" >&2
  "$PY" -m venv .venv
fi
stamp=.venv/.modelsec-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "bootstrap: installing modelsec and its pinned dependencies into .venv" >&2
  .venv/bin/python -m pip install --quiet --upgrade "pip==25.3"
  .venv/bin/python -m pip install --quiet -e ".[cluster,remote,test]"
  touch "$stamp"
fi
