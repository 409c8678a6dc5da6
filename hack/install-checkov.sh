#!/usr/bin/env bash
# Install checkov (the IaC scanner tests/chart runs over the rendered chart) into its own
# virtualenv, .cache/checkov, from the pins in hack/checkov/requirements.txt; prints the
# path of the checkov executable. Idempotent: reinstalls only when the pins change.
# checkov lives apart from .venv because it pins boto3 and others to versions that
# conflict with modelsec's own pins.
set -euo pipefail
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${MODELSEC_CACHE_DIR:-$REPO_ROOT/.cache}/checkov
PINS=$REPO_ROOT/hack/checkov/requirements.txt
want=$(sha256sum < "$PINS" | cut -c1-64)
if [ "$(cat "$VENV/.installed" 2>/dev/null)" != "$want" ]; then
  echo "install-checkov: installing $(grep '^checkov==' "$PINS") into $VENV" >&2
  rm -rf "$VENV"
  "${PYTHON:-python3}" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --no-deps -r "$PINS" >&2
  "$VENV/bin/python" -m pip check >&2
  echo "$want" > "$VENV/.installed"
fi
echo "$VENV/bin/checkov"
