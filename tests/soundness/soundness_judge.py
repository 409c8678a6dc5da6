"""Judging a generated program: the scanner's verdict against what the loaders did.

The scanner's verdict is computed exactly as ``tests/corpus/test_corpora.py`` does: the
real engine scans the bytes written to a file with the program's realistic name, and the
built-in ``local-default`` group decides. Then:

* a **bypass** is a program the scanner ALLOWS while the oracle records a dangerous event;
* a **false alarm** is a data-only program the scanner BLOCKS (or ERRORs) that the real
  loaders load without any event (a data-only program the loaders reject is not counted:
  blocking what no loader accepts costs nobody anything).

The oracle runs on every ALLOWED program, on every data-only program, and on a stable
sample of the rest (to check that the oracle itself sees what the scanner blocks).

``minimise`` shrinks a bypass by delta debugging over its opcodes (ddmin): a smaller
program is kept while it is still a bypass with an event of the same kind.
"""

from __future__ import annotations

import pickletools
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from soundness_grammar import Program
from soundness_oracle import Oracle, OracleResult

from modelsec.engine import Engine
from modelsec.policy import evaluate, load_group
from modelsec.rules.base import EvaluationInput, SourceType

ALLOWED = "ALLOWED"


@dataclass(frozen=True)
class ScanVerdict:
    outcome: str  # ALLOWED, BLOCKED, ERROR
    reason: str
    codes: tuple[str, ...]  # threat codes of the findings, then incomplete codes


class Scanner:
    """The product's verdict on one file, as the corpus test computes it."""

    def __init__(self, workdir: Path | None = None) -> None:
        self._tmp = (
            tempfile.TemporaryDirectory(prefix="modelsec-soundness-scan-") if workdir is None else None
        )
        self.workdir = Path(self._tmp.name) if self._tmp else workdir  # type: ignore[union-attr]
        self.group = load_group("local-default")

    def verdict(self, data: bytes, filename: str) -> ScanVerdict:
        path = self.workdir / (Path(filename).name or "model.pkl")
        path.write_bytes(data)
        try:
            report = Engine().scan_path(path)
        finally:
            path.unlink(missing_ok=True)
        verdict = evaluate(self.group, EvaluationInput(report, SourceType.LOCAL))
        codes = tuple(f.threat for f in report.all_findings()) + tuple(
            i.code for i in report.all_incompletes()
        )
        return ScanVerdict(verdict.outcome.value, verdict.reason, codes)

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()


@dataclass(frozen=True)
class Judgement:
    program: Program
    scan: ScanVerdict
    oracle: OracleResult | None

    @property
    def bypass(self) -> bool:
        return self.scan.outcome == ALLOWED and self.oracle is not None and self.oracle.dangerous

    @property
    def false_alarm(self) -> bool:
        return (
            self.program.data_only
            and self.scan.outcome != ALLOWED
            and self.oracle is not None
            and not self.oracle.dangerous
            and bool(self.oracle.loaded)
        )


def sampled(program: Program, rate: float) -> bool:
    """A stable choice of about ``rate`` of all programs (same programs every run)."""
    return zlib.crc32(program.key.encode()) < rate * 2**32


def judge(program: Program, scanner: Scanner, oracle: Oracle, sample_rate: float) -> Judgement:
    scan = scanner.verdict(program.data, program.filename)
    run_oracle = scan.outcome == ALLOWED or program.data_only or sampled(program, sample_rate)
    result = oracle.run(program.data, program.filename) if run_oracle else None
    return Judgement(program, scan, result)


# -- minimisation ------------------------------------------------------------------------


def opcode_spans(data: bytes) -> tuple[list[bytes], bytes]:
    """The leading pickle stream of ``data`` cut into opcodes, and the bytes after it (kept
    whole: raw array data, a container behind a pickle, a second stream)."""
    starts: list[int] = []
    stopped = False
    try:
        for opcode, _, position in pickletools.genops(data):
            starts.append(position)
            stopped = opcode.name == "STOP"
    except Exception:  # genops stops at the first byte that is not an opcode
        pass
    if not starts:
        return [], data
    # Each opcode runs to the next one; the last is whole only if it is STOP (1 byte).
    ends = starts[1:] + ([starts[-1] + 1] if stopped else [])
    spans = [data[start:end] for start, end in zip(starts, ends)]
    return spans, data[ends[-1] if ends else 0 :]


def ddmin(items: list[bytes], still_fails: Callable[[list[bytes]], bool], budget: int = 400) -> list[bytes]:
    """Zeller's delta debugging: a 1-minimal sublist of ``items`` that still fails."""
    granularity = 2
    tests = 0
    while len(items) >= 2 and tests < budget:
        size = max(1, len(items) // granularity)
        chunks = [items[i : i + size] for i in range(0, len(items), size)]
        reduced = False
        for index in range(len(chunks)):
            complement = [x for j, chunk in enumerate(chunks) if j != index for x in chunk]
            tests += 1
            if complement and still_fails(complement):
                items, granularity, reduced = complement, max(granularity - 1, 2), True
                break
        if not reduced:
            if granularity >= len(items):
                break
            granularity = min(len(items), granularity * 2)
    return items


Ops = list[tuple[str, object]]  # (opcode name, argument)


def opcodes_of(data: bytes) -> Ops:
    ops: Ops = []
    try:
        for opcode, arg, _ in pickletools.genops(data):
            ops.append((opcode.name, arg))
    except Exception:
        pass
    return ops


def _names(ops: Ops) -> list[str]:
    return [name for name, _ in ops]


def _strings(ops: Ops) -> set[str]:
    return {arg if isinstance(arg, str) else "" for _, arg in ops} | {
        part
        for name, arg in ops
        if name in ("GLOBAL", "INST") and isinstance(arg, str)
        for part in arg.split()
    }


def _before_build(ops: Ops) -> set[str]:
    return {ops[i - 1][0] for i, (name, _) in enumerate(ops) if name == "BUILD" and i}


# What a minimised program must keep to stay in its class: ddmin keeps whatever is still a
# bypass, and a smaller program may exercise another gap (a slotstate wrapper shrinks to a
# wrapper built by INST). Keyed by class prefix; classes not listed keep any bypass.
ANCHORS: dict[str, Callable[[Ops], bool]] = {
    "build_setstate_": lambda ops: _names(ops).count("BUILD") >= 2 and "__setstate__" in _strings(ops),
    "append_calls_append_": lambda ops: (
        bool({"APPEND", "APPENDS"} & set(_names(ops))) and "append" in _strings(ops)
    ),
    "append_calls_extend_": lambda ops: (
        bool({"APPEND", "APPENDS"} & set(_names(ops))) and "extend" in _strings(ops)
    ),
    "additems_calls_add_": lambda ops: "ADDITEMS" in _names(ops) and "add" in _strings(ops),
    "randomstate_ctor_": lambda ops: "__randomstate_ctor" in _strings(ops),
    "generator_ctor_": lambda ops: "__generator_ctor" in _strings(ops),
    "bit_generator_ctor_": lambda ops: "__bit_generator_ctor" in _strings(ops),
    "ufunc_reconstruct_": lambda ops: "_ufunc_reconstruct" in _strings(ops),
    "trampoline_in_": lambda ops: "REDUCE" in _names(ops),
    "joblib_wrapper_filename_in_slotstate": lambda ops: (
        not {"REDUCE", "OBJ", "INST"} & set(_names(ops)) and bool({"TUPLE2", "TUPLE"} & _before_build(ops))
    ),
    "joblib_wrapper_filename_past_64_items": lambda ops: (
        not {"REDUCE", "OBJ", "INST"} & set(_names(ops)) and len(_strings(ops)) > 64
    ),
    "joblib_wrapper_built_by_reduce": lambda ops: "REDUCE" in _names(ops),
    "joblib_wrapper_built_by_obj": lambda ops: "OBJ" in _names(ops),
    "joblib_wrapper_built_by_inst": lambda ops: "INST" in _names(ops),
}


def anchor_of(finding_class: str) -> Callable[[Ops], bool]:
    return next(
        (test for prefix, test in ANCHORS.items() if finding_class.startswith(prefix)), lambda ops: True
    )


def minimise(judgement: Judgement, scanner: Scanner, oracle: Oracle, finding_class: str = "") -> bytes:
    """The smallest variant of a bypass's bytes found by ddmin over its opcodes that is
    still a bypass (same event kind) and still has what makes ``finding_class``."""
    assert judgement.oracle is not None and judgement.oracle.event is not None
    kind = judgement.oracle.event.kind
    program = judgement.program
    spans, tail = opcode_spans(program.data)
    if len(spans) < 2:
        return program.data
    anchored = anchor_of(finding_class)

    def still_bypass(candidate: list[bytes]) -> bool:
        data = b"".join(candidate) + tail
        if not anchored(opcodes_of(data)):
            return False
        if scanner.verdict(data, program.filename).outcome != ALLOWED:
            return False
        result = oracle.run(data, program.filename)
        return result.event is not None and result.event.kind == kind

    frameless = [span for span in spans if span[:1] != b"\x95"]
    if len(frameless) < len(spans) and still_bypass(frameless):
        spans = frameless
    spans = ddmin(spans, still_bypass)
    # ddmin removes single opcodes or aligned chunks; a key/value pair or a literal and
    # its memo PUT only go together: try every window of two to six opcodes.
    for width in (2, 3, 4, 5, 6):
        index = 0
        while index + width <= len(spans) and len(spans) > width:
            candidate = spans[:index] + spans[index + width :]
            if still_bypass(candidate):
                spans = candidate
            else:
                index += 1
    return b"".join(spans) + tail
