"""The regression programs of tests/pickle/test_bypasses.py are real attacks: each makes a
real loader do something dangerous (in the oracle's sandbox). Without this, a regression
test could guard against a file that does nothing, and pass for the wrong reason."""

from __future__ import annotations

import pytest
from bypass_programs import PROGRAMS
from soundness_oracle import Oracle


@pytest.fixture(scope="module")
def oracle() -> Oracle:
    with Oracle(timeout=3.0) as instance:
        yield instance


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_regression_program_is_a_real_attack(oracle: Oracle, name: str) -> None:
    program = PROGRAMS[name]
    result = oracle.run(program.data, program.filename, loaders=program.loaders)
    assert result.event is not None, f"{name} does nothing dangerous in {program.loaders}: {result.runs}"
    assert result.event.loader in program.loaders
