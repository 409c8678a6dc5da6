#!/usr/bin/env bash
# The main job, locally: set everything up and scan the bundled example models.
# (The cluster demo with the operator and the admission webhook replaces this once they
# land; see docs/.)
set -euo pipefail
cd "$(dirname "$0")/.."
bash hack/bootstrap.sh
ms=.venv/bin/modelsec
echo "== a clean model directory (safetensors + npy): expect ALLOWED"
$ms scan examples/clean || true
echo
echo "== malicious models (a pickle and a PyTorch archive that call os.system): expect BLOCKED"
set +e
$ms scan examples/malicious/os-system.pkl examples/malicious/pytorch_model.bin
rc=$?
set -e
echo
echo "modelsec exited $rc (0 ALLOWED, 1 BLOCKED, 2 ERROR). Try: $ms scan --help"
