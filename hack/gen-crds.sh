#!/usr/bin/env bash
# Regenerate crds/*.yaml from the pydantic models in src/modelsec/k8s (the one source of
# truth). tests/operator/test_crds.py fails when the committed files are out of date.
#
#   hack/gen-crds.sh            write crds/
#   hack/gen-crds.sh --check    exit 1 (with a diff) if crds/ is out of date
set -euo pipefail
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${PYTHON:-$REPO_ROOT/.venv/bin/python}
[ -x "$PY" ] || { echo "gen-crds: no $PY; run hack/bootstrap.sh first" >&2; exit 1; }
cd "$REPO_ROOT"
if [ "${1:-}" = "--check" ]; then
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  PYTHONPATH=src "$PY" -m modelsec.k8s.crds --out "$tmp" >/dev/null
  if ! diff -ru crds "$tmp"; then
    echo "gen-crds: crds/ is out of date; run hack/gen-crds.sh" >&2
    exit 1
  fi
  echo "gen-crds: crds/ is up to date" >&2
  exit 0
fi
PYTHONPATH=src "$PY" -m modelsec.k8s.crds --out crds
