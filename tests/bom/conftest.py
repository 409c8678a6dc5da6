"""The test Hub fixture of the integrity tests."""

from __future__ import annotations

import sys
from pathlib import Path

INTEGRITY_TESTS = Path(__file__).resolve().parents[1] / "integrity"
if str(INTEGRITY_TESTS) not in sys.path:
    sys.path.insert(0, str(INTEGRITY_TESTS))

from remote_fixtures import hub, no_credentials  # noqa: E402,F401  (fixtures)
