#!/usr/bin/env bash
# Regenerate the CRDs from the pydantic models in src/modelsec/k8s (the one source of
# truth) into crds/ and into the Helm chart's charts/modelsec/crds/ (identical files: Helm
# installs crds/ verbatim, never templated). tests/operator/test_crds.py and
# tests/chart/test_chart_render.py fail when the committed files are out of date.
#
#   hack/gen-crds.sh            write crds/ and charts/modelsec/crds/
#   hack/gen-crds.sh --check    exit 1 (with a diff) if either is out of date
set -euo pipefail
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${PYTHON:-$REPO_ROOT/.venv/bin/python}
[ -x "$PY" ] || { echo "gen-crds: no $PY; run hack/bootstrap.sh first" >&2; exit 1; }
cd "$REPO_ROOT"
TARGETS=(crds charts/modelsec/crds)
if [ "${1:-}" = "--check" ]; then
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  PYTHONPATH=src "$PY" -m modelsec.k8s.crds --out "$tmp" >/dev/null
  stale=0
  for target in "${TARGETS[@]}"; do
    if ! diff -ru "$target" "$tmp"; then
      echo "gen-crds: $target/ is out of date; run hack/gen-crds.sh" >&2
      stale=1
    fi
  done
  [ "$stale" -eq 0 ] || exit 1
  echo "gen-crds: ${TARGETS[*]} are up to date" >&2
  exit 0
fi
for target in "${TARGETS[@]}"; do
  PYTHONPATH=src "$PY" -m modelsec.k8s.crds --out "$target"
done
