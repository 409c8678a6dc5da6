"""Operator tests. Unit tests need nothing; ``cluster`` tests use the real control plane
from hack/envtest.sh (instance ``pytest-operator``), started once per session."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# The operator package lives in operator/ (see DEVELOPERS.md); an editable install made
# before it existed does not map it, so make it importable for the tests either way.
if str(REPO / "operator") not in sys.path:
    sys.path.insert(0, str(REPO / "operator"))
