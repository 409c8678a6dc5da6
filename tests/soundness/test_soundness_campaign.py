"""A CI-sized soundness campaign: 2,000 generated programs, fixed seed, real scanner,
real loaders.

It fails on any bypass (ALLOWED by ``local-default`` while a real loader does something
dangerous) or false alarm (a data-only program blocked although the loaders load it) of a
class not listed below. Classes still open when this test was written are listed in
``OPEN_BYPASSES`` / ``OPEN_FALSE_ALARMS``: each has a strict xfail test of its own, so the
suite is neither silently green nor red on main, and the moment a class is closed its test
XPASSes and fails until the class is removed from the list. The million-program run is
``benchmarks/soundness_campaign.py``; ``docs/soundness.md`` explains both.
"""

from __future__ import annotations

import pytest
from soundness_judge import Scanner
from soundness_oracle import Oracle
from soundness_runner import ChunkResult, run_chunk

SEED = 20261206
PROGRAMS = 2000

# Classes this campaign finds open (see tests/pickle/test_bypasses.py for one minimal
# program each). Remove a class here once its fix lands: its xfail below turns into XPASS.
OPEN_BYPASSES: tuple[str, ...] = ()
OPEN_FALSE_ALARMS: tuple[str, ...] = ()


@pytest.fixture(scope="module")
def campaign() -> ChunkResult:
    scanner = Scanner()
    try:
        # A generous deadline: on a loaded machine a load must not time out and turn a
        # class that one program finds into a spurious XPASS.
        with Oracle(timeout=10.0) as oracle:
            return run_chunk(SEED, 0, PROGRAMS, scanner, oracle, minimise_bypasses=False)
    finally:
        scanner.close()


def describe(found: dict, names: set[str]) -> str:
    return "\n".join(
        f"{name}: {found[name].count} program(s), e.g. index {found[name].indexes[0]} "
        f"({found[name].filename}, {found[name].event}); bytes {found[name].example_hex[:200]}"
        for name in sorted(names)
    )


def test_the_campaign_ran_and_the_oracle_saw_what_the_scanner_blocks(campaign: ChunkResult) -> None:
    assert sum(campaign.families.values()) == PROGRAMS
    assert len(campaign.families) >= 14
    assert campaign.oracle_runs > PROGRAMS // 3
    # The sample of blocked attack programs: the oracle must see most of them act.
    assert campaign.blocked_and_dangerous > campaign.blocked_and_quiet, campaign


def test_no_bypass_of_a_new_class(campaign: ChunkResult) -> None:
    new = set(campaign.bypasses) - set(OPEN_BYPASSES)
    assert not new, "new bypass classes (ALLOWED, yet a loader did something dangerous):\n" + describe(
        campaign.bypasses, new
    )


def test_no_false_alarm_of_a_new_class(campaign: ChunkResult) -> None:
    new = set(campaign.false_alarms) - set(OPEN_FALSE_ALARMS)
    assert not new, "data-only programs blocked although the loaders load them:\n" + describe(
        campaign.false_alarms, new
    )


OPEN = [("bypass", name) for name in OPEN_BYPASSES] + [("false alarm", name) for name in OPEN_FALSE_ALARMS]


@pytest.mark.parametrize(
    "kind, name",
    [
        pytest.param(k, n, marks=pytest.mark.xfail(strict=True, reason=f"open {k}: {n}"), id=n)
        for k, n in OPEN
    ],
)
def test_open_class_is_closed(campaign: ChunkResult, kind: str, name: str) -> None:
    found = campaign.bypasses if kind == "bypass" else campaign.false_alarms
    assert name not in found, describe(found, {name})
