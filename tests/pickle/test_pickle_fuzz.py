"""Hostile input: no exception escapes, time and memory stay bounded."""

from __future__ import annotations

import pickle
import tracemalloc

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pklbuild import call, v4

from modelsec.bytesource import BytesSource
from modelsec.context import Limits, ScanContext, ScanSink
from modelsec.engine import dispatch
from modelsec.formats.pickle import SCANNER
from modelsec.interpretations import REGISTERED
from modelsec.pickle.scanner import looks_like_pickle, probe, starts_a_pickle

SMALL_LIMITS = Limits(max_pickle_opcodes=20_000, max_pickle_memo=2_000, max_inline_bytes=1 << 20)

SEEDS = [pickle.dumps({"w": [1.5, 2.5], "n": "x", "t": (1, 2), "s": {3}}, protocol=p) for p in range(6)] + [
    pickle.dumps(np.arange(6.0).reshape(2, 3), protocol=2),
    pickle.dumps(np.random.RandomState(0), protocol=4),
    v4(call("os", "system", "id")),
    v4(call("pickle", "loads", "x")),
]


def scan_directly(data: bytes) -> ScanSink:
    """Call the format scanner itself (not the engine, which would catch an escape)."""
    sink = ScanSink(SMALL_LIMITS)
    ctx = ScanContext("fuzz.pkl", sink, dispatch, formats=REGISTERED)
    SCANNER.scan(BytesSource(data), ctx)
    return sink


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 8))):
        action = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "splice"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if action == "flip" and data:
            data[at] = draw(st.integers(0, 255))
        elif action == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=12))
        elif action == "delete" and data:
            del data[at : at + draw(st.integers(1, 8))]
        elif action == "truncate":
            del data[at:]
        else:
            data[at:at] = draw(st.sampled_from(SEEDS))[: draw(st.integers(1, 40))]
    return bytes(data)


COMMON = settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow])


@COMMON
@given(st.binary(max_size=400))
def test_random_bytes_never_escape(data: bytes) -> None:
    looks_like_pickle(data, len(data))
    scan_directly(data)


@COMMON
@given(mutated())
def test_mutated_pickles_never_escape(data: bytes) -> None:
    looks_like_pickle(data, len(data))
    sink = scan_directly(data)
    assert all(f.threat.startswith("MS-") for f in sink.findings)


@COMMON
@given(st.lists(st.sampled_from(list(b"()0N]}aesuthq\x94\x85\x86\x87\x8c\x93R\x81b.KJ")), max_size=300))
def test_opcode_soup_never_escapes(ops: list[int]) -> None:
    # Valid-looking opcode bytes in random order (arguments filled from what follows).
    scan_directly(bytes(ops) + b"\x00" * 8)


def test_injected_payload_survives_mutation_elsewhere() -> None:
    # A payload after a corrupted benign prefix is still a pickle that runs os.system.
    data = pickle.dumps([1, 2], protocol=2) + v4(call("os", "system", "id"))
    sink = scan_directly(data)
    assert {f.subject for f in sink.findings} == {"os.system"}


class _HugeArrayPickle:
    """A 1 GiB pickle of one float array, generated on the fly (nothing stored)."""

    def __init__(self, payload: int) -> None:
        # numpy's own pickle of a one-element array, its SHORT_BINBYTES data widened to a
        # BINBYTES8 of ``payload`` zero bytes (the shape is left alone: nobody loads it)
        head = pickle.dumps(np.zeros(1), protocol=4)
        data = b"C\x08" + bytes(8)
        at = head.index(data)
        # As the pickler frames it: the frame ends before a large literal, which is written
        # unframed (FRAME is opcode 0x95 at offset 2, its length the next 8 bytes).
        assert head[2] == 0x95
        head = head[:3] + (at - 11).to_bytes(8, "little") + head[11:]
        self.prefix = head[:at] + b"\x8e" + payload.to_bytes(8, "little")
        self.suffix = head[at + len(data) :]
        self.payload = payload
        self.size = len(self.prefix) + payload + len(self.suffix)
        self.bytes_read = 0

    def read_at(self, offset: int, length: int) -> bytes:
        out = bytearray()
        end = min(self.size, offset + length)
        pos = offset
        while pos < end:
            if pos < len(self.prefix):
                chunk = self.prefix[pos : min(end, len(self.prefix))]
            elif pos < len(self.prefix) + self.payload:
                chunk = bytes(min(end, len(self.prefix) + self.payload) - pos)
            else:
                rel = pos - len(self.prefix) - self.payload
                chunk = self.suffix[rel : rel + end - pos]
            out += chunk
            pos += len(chunk)
        self.bytes_read += len(out)
        return bytes(out)


def test_one_gib_array_pickle_in_bounded_memory() -> None:
    source = _HugeArrayPickle(1 << 30)
    sink = ScanSink(Limits())
    ctx = ScanContext("huge.pkl", sink, dispatch, formats=REGISTERED)
    tracemalloc.start()
    try:
        SCANNER.scan(source, ctx)  # type: ignore[arg-type]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert not sink.findings and not sink.incompletes
    assert source.bytes_read >= 1 << 30  # read through (a file source hashes as it goes)
    assert peak < 32 << 20, peak


def test_deep_nesting_and_wide_containers_stay_bounded() -> None:
    deep = b"\x80\x04" + b"(" * 100_000 + b"N" + b"t" * 100_000 + b"."
    wide = b"\x80\x04]" + b"(" + b"N" * 200_000 + b"e."
    tracemalloc.start()
    try:
        for data in (deep, wide):
            sink = ScanSink(Limits())
            SCANNER.scan(BytesSource(data), ScanContext("x.pkl", sink, dispatch, formats=REGISTERED))
            assert not sink.findings and not sink.incompletes
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20, peak


def test_long_call_chains_do_not_recurse() -> None:
    # f()()()... 200k deep: every step calls the previous result
    data = b"\x80\x04" + b"\x8c\x01a\x8c\x01b\x93" + b")R" * 200_000 + b"."
    sink = ScanSink(Limits())
    SCANNER.scan(BytesSource(data), ScanContext("chain.pkl", sink, dispatch, formats=REGISTERED))
    subjects = {f.subject for f in sink.findings}
    assert subjects == {"a.b", "result of a.b"}, subjects


@COMMON
@given(st.one_of(mutated(), st.binary(max_size=60).map(lambda tail: b"\x80" + tail)))
def test_detection_that_stops_early_answers_as_a_full_parse(data: bytes) -> None:
    # looks_like_pickle stops a PROTO-led head after two opcodes; parsing all of it must
    # give the same answer (for whole files and for heads cut from longer ones).
    for size in (len(data), len(data) + 1):
        full = starts_a_pickle(probe(BytesSource(data), Limits()), len(data), size)
        assert looks_like_pickle(data, size) == full
