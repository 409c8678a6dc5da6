"""Every bypass class the soundness campaign found (tests/soundness,
benchmarks/soundness_campaign.py, docs/soundness.md), as a regression test named after it.

Each test asserts that the built-in ``local-default`` group BLOCKS the class's minimal
program (tests/pickle/bypass_programs.py) *and* that a finding sits at the class's gap
(the opcode that makes the hidden call, or the argument a contract must reject): a file
blocked for an unrelated reason does not close a class. Classes still open are strict
xfails: once the fix lands the test XPASSes, and fails until its marker is removed.
tests/soundness/test_soundness_regressions.py checks that each program really does
something dangerous in the real loaders.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from bypass_programs import PROGRAMS, BypassProgram

from modelsec.engine import Engine
from modelsec.policy import Outcome, evaluate, load_group
from modelsec.rules.base import EvaluationInput, SourceType


def open_bypass(name: str) -> pytest.MarkDecorator:
    return pytest.mark.xfail(strict=True, reason=f"open bypass: {name}")


def assert_blocked_at_its_gap(program: BypassProgram, tmp_path: Path) -> None:
    """Engine and local-default, exactly as the corpus test judges a file."""
    path = tmp_path / program.filename
    path.write_bytes(program.data)
    report = Engine().scan_path(path)
    verdict = evaluate(load_group("local-default"), EvaluationInput(report, SourceType.LOCAL))
    findings = report.all_findings()
    summary = f"{verdict.outcome.value}: " + "; ".join(f"{f.threat} {f.subject} @{f.offset}" for f in findings)
    summary += " | incomplete: " + "; ".join(i.reason for i in report.all_incompletes())
    assert verdict.outcome is Outcome.BLOCKED, summary
    if program.subject is not None:
        assert any(f.subject == program.subject for f in findings), f"nothing names {program.subject}: {summary}"
    elif program.sites:
        assert any(f.offset in program.sites for f in findings), (
            f"blocked, but nothing reported at {sorted(program.sites)}: {summary}")


# -- calls the unpickler makes without a call opcode (issue 9, point 1) ------------------


def test_build_setstate_from_instance_dict(tmp_path: Path) -> None:
    # BUILD #1 puts __setstate__ = numpy.memmap into the namespace's __dict__; BUILD #2
    # calls numpy.memmap("weights.dat"), which opens the file for writing.
    assert_blocked_at_its_gap(PROGRAMS["build_setstate_from_instance_dict"], tmp_path)


def test_append_calls_append_from_instance_dict(tmp_path: Path) -> None:
    assert_blocked_at_its_gap(PROGRAMS["append_calls_append_from_instance_dict"], tmp_path)


def test_append_calls_extend_from_instance_dict(tmp_path: Path) -> None:
    assert_blocked_at_its_gap(PROGRAMS["append_calls_extend_from_instance_dict"], tmp_path)


def test_append_calls_append_from_bunch_getattr(tmp_path: Path) -> None:
    assert_blocked_at_its_gap(PROGRAMS["append_calls_append_from_bunch_getattr"], tmp_path)


def test_append_calls_extend_from_bunch_getattr(tmp_path: Path) -> None:
    assert_blocked_at_its_gap(PROGRAMS["append_calls_extend_from_bunch_getattr"], tmp_path)


def test_additems_calls_add_from_instance_dict(tmp_path: Path) -> None:
    assert_blocked_at_its_gap(PROGRAMS["additems_calls_add_from_instance_dict"], tmp_path)


# -- trusted helpers given computed arguments (point 2) -----------------------------------


def test_ufunc_reconstruct_imports_computed_name(tmp_path: Path) -> None:
    # _ufunc_reconstruct(str("tabnanny"), "__name__") imports a module no allowlist names.
    assert_blocked_at_its_gap(PROGRAMS["ufunc_reconstruct_imports_computed_name"], tmp_path)


def test_randomstate_ctor_calls_computed_callable(tmp_path: Path) -> None:
    # __randomstate_ctor(name, ctor) returns RandomState(ctor(name)): os.system("true").
    assert_blocked_at_its_gap(PROGRAMS["randomstate_ctor_calls_computed_callable"], tmp_path)


def test_generator_ctor_calls_computed_callable(tmp_path: Path) -> None:
    assert_blocked_at_its_gap(PROGRAMS["generator_ctor_calls_computed_callable"], tmp_path)


def test_bit_generator_ctor_instantiates_computed_class(tmp_path: Path) -> None:
    # __bit_generator_ctor(cls) returns cls() for any type: socket.socket() here.
    assert_blocked_at_its_gap(PROGRAMS["bit_generator_ctor_instantiates_computed_class"], tmp_path)


# -- caps and lost identity (point 4): joblib's file-backed array wrappers ---------------


def test_joblib_wrapper_filename_in_slotstate(tmp_path: Path) -> None:
    # BUILD with (None, {...}) sets the same attributes as a dict state, one setattr each.
    assert_blocked_at_its_gap(PROGRAMS["joblib_wrapper_filename_in_slotstate"], tmp_path)


def test_joblib_wrapper_filename_past_64_items(tmp_path: Path) -> None:
    assert_blocked_at_its_gap(PROGRAMS["joblib_wrapper_filename_past_64_items"], tmp_path)


@pytest.mark.parametrize(
    "how",
    ["reduce", "obj", "inst"],
)
def test_joblib_wrapper_built_by_calling_the_class(tmp_path: Path, how: str) -> None:
    # NDArrayWrapper(filename, subclass) through REDUCE, OBJ or INST, then an empty BUILD.
    assert_blocked_at_its_gap(PROGRAMS[f"joblib_wrapper_built_by_{how}"], tmp_path)


# -- joblib's inline arrays, read differently by joblib.load and pickle.load -------------


def test_joblib_array_elsize_larger(tmp_path: Path) -> None:
    assert_blocked_at_its_gap(PROGRAMS["joblib_array_elsize_larger"], tmp_path)


def test_joblib_array_pad_payload(tmp_path: Path) -> None:
    assert_blocked_at_its_gap(PROGRAMS["joblib_array_pad_payload"], tmp_path)


# -- found open by the campaign, closed since ---------------------------------------------


def test_side_effect_in_scoring_monitor_setstate(tmp_path: Path) -> None:
    # Data only: ScoringMonitor.__setstate__ connects to the listener its state names.
    assert_blocked_at_its_gap(PROGRAMS["side_effect_in_scoring_monitor_setstate"], tmp_path)


@pytest.mark.parametrize("label", ["upper", "bare", "space", "plus", "underscore", "tab"])
def test_joblib_zf_header_spelling(tmp_path: Path, label: str) -> None:
    # joblib.load reads the legacy ZF header's length with int(text, 16): every spelling
    # it accepts must reach the pickle inside.
    assert_blocked_at_its_gap(PROGRAMS[f"joblib_header_zf_{label}"], tmp_path)


def test_every_program_has_a_test() -> None:
    tested = {name for name in PROGRAMS if not name.startswith(("joblib_header_zf_", "joblib_wrapper_built_by_"))}
    here = {name.removeprefix("test_") for name in globals() if name.startswith("test_")}
    assert tested <= here, tested - here
