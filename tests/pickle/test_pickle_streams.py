"""Several pickles back to back, broken streams, slices, and the legacy-torch helper API."""

from __future__ import annotations

import pickle

import pytest
from pklbuild import (
    EMPTY_DICT,
    MARK,
    NONE,
    REDUCE,
    STOP,
    TUPLE,
    TUPLE1,
    binbytes,
    binint1,
    call,
    codes,
    global_,
    proto,
    sbu,
    scan,
    stack_global,
    string,
    subjects,
    summary,
    v4,
    with_code,
)

from modelsec.bytesource import BytesSource, SliceSource
from modelsec.context import Limits, ScanContext, ScanSink
from modelsec.engine import dispatch
from modelsec.interpretations import REGISTERED
from modelsec.pickle import machine, scan_pickle_stream, scanner

PAYLOAD = v4(call("os", "system", "id"))


def test_payload_in_the_second_stream() -> None:
    data = pickle.dumps({"weights": [1.0]}, protocol=4) + pickle.dumps([1, 2], protocol=2) + PAYLOAD
    result = scan(data)
    assert subjects(result, "MS-PKL-100") == {"os.system"}, summary(result)
    offset = with_code(result, "MS-PKL-100")[0].offset
    assert offset is not None and offset > len(data) - len(PAYLOAD)


def test_weak_protocol0_streams_back_to_back() -> None:
    data = (
        pickle.dumps("a", protocol=0) + global_("os", "system") + MARK + string("id") + TUPLE + REDUCE + STOP
    )
    assert subjects(scan(data), "MS-PKL-100") == {"os.system"}


def test_trailing_bytes_no_loader_reads_are_ignored() -> None:
    data = pickle.dumps({"a": 1}, protocol=4) + b"\n\x00\x01 trailing junk"
    result = scan(data)
    assert not result.findings and not result.incompletes, summary(result)
    assert result.format == "pickle"


def test_stream_breaking_after_a_payload_reports_both() -> None:
    data = proto(4) + call("os", "system", "id") + b"h\x63"  # BINGET of a memo entry that never existed
    result = scan(data)
    assert codes(result) == {"MS-PKL-100", "MS-PKL-110"}, summary(result)
    broken = with_code(result, "MS-PKL-110")[0]
    assert broken.offset == len(data) - 2 and "code had already run" in broken.message


def test_truncated_after_payload() -> None:
    data = PAYLOAD[:-1]  # no STOP
    assert codes(scan(data)) == {"MS-PKL-100", "MS-PKL-110"}


def test_strong_stream_breaking_before_anything_ran_is_malformed() -> None:
    data = proto(4) + EMPTY_DICT + b"e"  # APPENDS without a mark
    result = scan(data)
    assert codes(result) == {"MS-PKL-110"}, summary(result)


def test_weak_stream_breaking_before_anything_ran_is_not_a_pickle() -> None:
    data = b"N(\x00\x01\x02 not really a pickle" * 3
    result = scan(data, name="weird.bin")
    assert not result.findings and not result.incompletes, summary(result)
    assert result.format in ("unknown", "text")


def test_proto_followed_by_garbage_is_not_a_pickle() -> None:
    # TFRecord-like: a little-endian length whose first bytes read as PROTO 2
    data = b"\x80\x02\x00\x00\x00\x00\x00\x00" + bytes(range(256))
    result = scan(data, name="train.tfrecord")
    assert not result.findings, summary(result)


def test_each_stream_of_a_file_in_a_slice() -> None:
    inner = pickle.dumps([1], protocol=2) + PAYLOAD
    outer = b"HEADER--" + inner + b"--FOOTER"
    source = SliceSource(BytesSource(outer), 8, len(inner))
    result = scan(source)
    assert subjects(result, "MS-PKL-100") == {"os.system"}
    assert with_code(result, "MS-PKL-100")[0].offset == len(pickle.dumps([1], protocol=2)) + PAYLOAD.index(
        b"\x93"
    )


def _legacy_torch_file() -> tuple[bytes, list[int]]:
    """magic number, protocol, sys info, object, storage keys, raw storage bytes."""
    streams = [
        pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2),
        pickle.dumps(1001, protocol=2),
        pickle.dumps({"protocol_version": 1001, "little_endian": True}, protocol=2),
        proto(2) + global_("collections", "OrderedDict") + b")" + REDUCE + STOP,
        pickle.dumps(["0"], protocol=2),
    ]
    starts, data = [], b""
    for stream in streams:
        starts.append(len(data))
        data += stream
    return data + (4).to_bytes(8, "little") + b"\x00" * 16, starts


def _ctx(limits: Limits | None = None) -> tuple[ScanContext, ScanSink]:
    sink = ScanSink(limits or Limits())
    return ScanContext("model.pt", sink, dispatch, formats=REGISTERED), sink


def test_scan_pickle_stream_walks_a_legacy_torch_file() -> None:
    data, starts = _legacy_torch_file()
    source = BytesSource(data)
    ctx, sink = _ctx()
    offset: int | None = 0
    ends = []
    for _ in range(5):
        assert offset is not None
        offset = scan_pickle_stream(source, ctx, offset)
        ends.append(offset)
    assert ends == starts[1:] + [starts[4] + len(pickle.dumps(["0"], protocol=2))]
    assert not sink.findings and not sink.incompletes


def test_scan_pickle_stream_reports_and_returns_none_on_a_break() -> None:
    data = b"\x00" * 4 + proto(2) + global_("os", "system") + b"N"  # no STOP
    ctx, sink = _ctx()
    assert scan_pickle_stream(BytesSource(data), ctx, 4) is None
    assert {f.threat for f in sink.findings} == {"MS-PKL-100", "MS-PKL-110"}
    assert all(f.file == "model.pt" for f in sink.findings)


def test_scan_pickle_stream_payload_in_the_object_stream() -> None:
    data, starts = _legacy_torch_file()
    evil = data[: starts[3]] + PAYLOAD
    ctx, sink = _ctx()
    assert scan_pickle_stream(BytesSource(evil), ctx, starts[3]) == len(evil)
    assert [f.subject for f in sink.findings] == ["os.system"]


def test_opcode_limit_fails_closed_with_an_incomplete() -> None:
    data = proto(4) + NONE + b"0N" * 5000 + STOP  # 10k opcodes
    result = scan(data, limits=Limits(max_pickle_opcodes=1000))
    assert [i.code for i in result.incompletes] == ["MS-PKL-120"], summary(result)


def test_stack_bound_is_checked_while_the_stream_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    # The driver checks the stack every BOUNDS_EVERY opcodes (a bound of 2M entries cannot
    # be built here): shrunk, a stream that only pushes is stopped, closed, at a checkpoint.
    monkeypatch.setattr(scanner, "BOUNDS_EVERY", 16)
    monkeypatch.setattr(machine, "MAX_STACK", 40)
    data = proto(4) + NONE * 100 + STOP
    result = scan(data)
    assert [i.code for i in result.incompletes] == ["MS-PKL-120"], summary(result)
    assert "stack deeper than 40" in result.incompletes[0].reason
    assert not scan(proto(4) + NONE * 30 + STOP).incompletes  # under the bound: no checkpoint trips


def test_memo_limit_fails_closed() -> None:
    data = proto(4) + NONE + b"\x94" * 50 + STOP
    result = scan(data, limits=Limits(max_pickle_memo=10))
    assert [i.code for i in result.incompletes] == ["MS-PKL-120"], summary(result)


def test_limit_after_a_payload_keeps_the_finding() -> None:
    data = proto(4) + call("os", "system", "x") + b"0" + NONE + b"0N" * 5000 + STOP
    result = scan(data, limits=Limits(max_pickle_opcodes=500))
    assert "MS-PKL-100" in codes(result) and result.incompletes


def test_big_literals_are_references_not_memory() -> None:
    blob = bytes(range(256)) * 4096  # 1 MiB, far above the inline limit
    data = proto(4) + EMPTY_DICT + sbu("w") + binbytes(blob) + b"s" + STOP
    result = scan(data)
    assert not result.findings and not result.incompletes, summary(result)


def test_stack_global_fed_by_memo_across_a_frame() -> None:
    body = (
        sbu("os")
        + b"\x94"
        + sbu("system")
        + b"\x94"
        + b"0"
        + b"0"
        + b"h\x00h\x01\x93"
        + binint1(1)
        + TUPLE1
        + REDUCE
    )
    data = proto(4) + b"\x95" + len(body).to_bytes(8, "little") + body + STOP
    assert subjects(scan(data), "MS-PKL-100") == {"os.system"}


def test_short_frame_is_still_read() -> None:
    # pickle._Unpickler (joblib's) decodes a frame shorter than announced
    body = stack_global("nt", "system")
    data = proto(4) + b"\x95" + (len(body) + 10).to_bytes(8, "little") + body + STOP
    assert subjects(scan(data), "MS-PKL-100") == {"nt.system"}


def test_names_seen_in_trailing_junk_are_not_reported() -> None:
    data = pickle.dumps([1], protocol=2) + b"cacme\nthing\n\x00junk"
    result = scan(data)
    assert not result.findings, summary(result)


def test_scanning_non_pickle_bytes_as_pickle_reports_nothing() -> None:
    from modelsec.formats.pickle import SCANNER

    ctx, sink = _ctx()
    SCANNER.scan(BytesSource(b"certifi\nidna\nnumpy\n"), ctx)
    assert not sink.findings and not sink.incompletes
