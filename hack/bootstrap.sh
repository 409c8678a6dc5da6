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
# Reinstall when the pins change or a package appears (the editable install maps package
# names when it is made, so a new package under operator/ or webhook/ needs one).
stamp=.venv/.modelsec-installed
want=$( { cat pyproject.toml; find src operator webhook -name __init__.py -path '*/*/__init__.py' 2>/dev/null | sort; } | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "bootstrap: installing modelsec and its pinned dependencies into .venv" >&2
  .venv/bin/python -m pip install --quiet --upgrade "pip==25.3"
  .venv/bin/python -m pip install --quiet -e ".[cluster,remote,integrity,test]"
  echo "$want" > "$stamp"
fi
