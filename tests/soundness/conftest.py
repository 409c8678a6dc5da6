"""The soundness tests build candidates with the pickle tests' opcode helpers."""

from __future__ import annotations

import sys
from pathlib import Path

PICKLE_TESTS = Path(__file__).resolve().parents[1] / "pickle"
if str(PICKLE_TESTS) not in sys.path:
    sys.path.append(str(PICKLE_TESTS))
