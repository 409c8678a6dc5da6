"""The generator: deterministic, every family builds, data-only programs are really data,
attack families really attack, and the minimiser shrinks while keeping the property and
the class."""

from __future__ import annotations

import pickletools
import re

import pytest
from bypass_programs import PROGRAMS
from soundness_grammar import FAMILIES, Program, finding_class, generate
from soundness_judge import Judgement, ScanVerdict, anchor_of, ddmin, minimise, opcode_spans, opcodes_of
from soundness_oracle import Oracle

SEED = 4242
PER_FAMILY = 25


@pytest.fixture(scope="module")
def oracle() -> Oracle:
    with Oracle(timeout=3.0) as instance:
        yield instance


def test_a_program_depends_only_on_seed_and_index() -> None:
    first = [generate(SEED, i) for i in range(40)]
    again = [generate(SEED, i) for i in reversed(range(40))][::-1]
    assert [p.data for p in first] == [p.data for p in again]
    assert len({p.data for p in first}) > 30
    assert generate(SEED + 1, 0).data != first[0].data or generate(SEED + 1, 1).data != first[1].data


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_family_builds_programs_with_provenance(family: str) -> None:
    data_only = FAMILIES[family][2]
    for index in range(PER_FAMILY):
        program = generate(SEED, index, family)
        assert program.family == family and program.data and program.mechanism
        assert re.fullmatch(r"[a-z0-9_]+", finding_class(program)), finding_class(program)
        assert program.filename and "/" not in program.filename
        if not data_only:
            assert not program.data_only, (family, program.rules)


def test_data_only_programs_are_data_the_real_loaders_load(oracle: Oracle) -> None:
    """The premise of a false alarm: a data-only program loads, and does nothing."""
    checked = 0
    for family in ("data_dumps", "data_grammar"):
        for index in range(40):
            program = generate(SEED, index, family)
            result = oracle.run(program.data, program.filename)
            assert result.event is None, (program.rules, result.event)
            assert result.loaded, (program.rules, result.runs)
            checked += 1
    assert checked == 80


@pytest.mark.parametrize(
    "family",
    [
        "build_setstate",
        "append_method",
        "additems_method",
        "helper_callable",
        "joblib_wrapper",
        "joblib_array",
        "polyglot",
        "joblib_header",
        "direct_call",
        "unlisted_import",
        "resolver_import",
    ],
)
def test_attack_families_produce_real_attacks(oracle: Oracle, family: str) -> None:
    """Without this the campaign could report no bypass because nothing it generates
    does anything."""
    events = 0
    for index in range(PER_FAMILY):
        program = generate(SEED, index, family)
        events += oracle.run(program.data, program.filename).dangerous
    assert events >= PER_FAMILY // 5, f"{family}: only {events}/{PER_FAMILY} programs did something dangerous"


def test_opcode_spans_cut_a_stream_and_keep_what_follows() -> None:
    program = generate(SEED, 3, "build_setstate")
    spans, tail = opcode_spans(program.data + b"trailing bytes")
    assert b"".join(spans) + tail == program.data + b"trailing bytes"
    assert tail == b"trailing bytes"
    assert len(spans) == len(list(pickletools.genops(program.data)))


def test_ddmin_finds_a_one_minimal_failing_subset() -> None:
    items = [bytes([i]) for i in range(40)]
    needed = {bytes([3]), bytes([17]), bytes([18]), bytes([31])}
    result = ddmin(items, lambda candidate: needed <= set(candidate))
    assert set(result) == needed


class AlwaysAllowed:
    """The minimiser's scanner, for this test only: every candidate counts as ALLOWED, so
    what stays is decided by the oracle and the class's anchor alone."""

    def verdict(self, data: bytes, filename: str) -> ScanVerdict:
        return ScanVerdict("ALLOWED", "stand-in", ())


def test_minimising_keeps_what_makes_the_class(oracle: Oracle) -> None:
    """A wrapper whose filename comes in a (None, slots) state would shrink to a wrapper
    built by INST (another class) without the anchor; with it, the tuple state stays."""
    original = PROGRAMS["joblib_wrapper_filename_in_slotstate"]
    padded = original.data[:-1] + b"N0" * 20 + b"."  # junk for ddmin to remove
    program = Program(
        0, 0, padded, original.filename, "joblib_wrapper", "joblib_wrapper:NEWOBJ:slotstate:small", (), False
    )
    judgement = Judgement(program, ScanVerdict("ALLOWED", "", ()), oracle.run(padded, original.filename))
    assert judgement.bypass
    smaller = minimise(judgement, AlwaysAllowed(), oracle, "joblib_wrapper_filename_in_slotstate")  # type: ignore[arg-type]
    assert len(smaller) < len(padded)
    assert anchor_of("joblib_wrapper_filename_in_slotstate")(opcodes_of(smaller))
    assert oracle.run(smaller, original.filename).event is not None
