"""The test Hub fixture of the integrity tests."""

from __future__ import annotations

from remote_fixtures import hub, no_credentials  # noqa: E402,F401  (fixtures)
