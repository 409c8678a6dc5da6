"""Nested loaders with literal (or decoded literal) payloads, and pickles hidden in data."""

from __future__ import annotations

import base64
import bz2
import pickle
import zlib

from pklbuild import (
    EMPTY_DICT,
    MARK,
    MEMOIZE,
    REDUCE,
    SETITEM,
    STOP,
    TUPLE,
    TUPLE1,
    TUPLE2,
    binbytes,
    binint1,
    binunicode,
    call,
    codes,
    global_,
    proto,
    sbu,
    scan,
    short_binbytes,
    stack_global,
    string,
    subjects,
    summary,
    unicode_line,
    v4,
    with_code,
)

from modelsec.context import Limits

INNER = v4(call("os", "system", "id"))  # the payload every test hides
BENIGN_INNER = pickle.dumps({"weights": [1, 2, 3]}, protocol=4)


def loads_of(argument: bytes, loader: tuple[str, str] = ("pickle", "loads")) -> bytes:
    return v4(stack_global(*loader) + argument + TUPLE1 + REDUCE)


def inner_findings(result) -> list:  # type: ignore[no-untyped-def]
    return [f for f in result.findings if "!" in f.file]


def assert_inner_payload_found(result, loader: str = "pickle.loads") -> None:  # type: ignore[no-untyped-def]
    assert loader in subjects(result, "MS-PKL-102"), summary(result)
    inner = inner_findings(result)
    assert any(f.subject == "os.system" and f.threat == "MS-PKL-100" for f in inner), summary(result)
    nested = next(f for f in inner if f.subject == "os.system")
    assert nested.file.startswith(f"model.pkl!<{loader} argument @offset "), nested.file


def test_raw_bytes_literal() -> None:
    assert_inner_payload_found(scan(loads_of(binbytes(INNER))))


def test_large_literal_is_scanned_as_a_slice_not_kept() -> None:
    padding = b"N0" * 10_000  # a valid pickle prefix that pushes the payload past the inline limit
    payload = proto(4) + padding + call("os", "system", "id") + STOP
    assert_inner_payload_found(scan(loads_of(binbytes(payload))))


def test_underscore_pickle_and_dill() -> None:
    assert_inner_payload_found(scan(loads_of(binbytes(INNER), ("_pickle", "loads"))), "_pickle.loads")
    result = scan(loads_of(binbytes(INNER), ("dill", "loads")))
    assert any(f.subject == "os.system" for f in inner_findings(result)), summary(result)


def test_base64_chain() -> None:
    decoded = stack_global("base64", "b64decode") + sbu(base64.b64encode(INNER).decode()) + TUPLE1 + REDUCE
    result = scan(loads_of(decoded))
    assert_inner_payload_found(result)
    assert "base64.b64decode" in subjects(result, "MS-PKL-101")  # decoding at load time is unlisted


def test_hex_via_bytes_fromhex() -> None:
    decoded = stack_global("builtins", "bytes.fromhex") + sbu(INNER.hex()) + TUPLE1 + REDUCE
    assert_inner_payload_found(scan(loads_of(decoded)))


def test_hex_via_getattr_bytes_fromhex() -> None:
    fromhex = (
        stack_global("builtins", "getattr")
        + stack_global("builtins", "bytes")
        + sbu("fromhex")
        + TUPLE2
        + REDUCE
    )
    decoded = fromhex + sbu(INNER.hex()) + TUPLE1 + REDUCE
    assert_inner_payload_found(scan(loads_of(decoded)))


def test_codecs_decode_hex_and_base64() -> None:
    for codec, text in (("hex", INNER.hex()), ("base64", base64.b64encode(INNER).decode())):
        decoded = stack_global("codecs", "decode") + sbu(text) + sbu(codec) + TUPLE2 + REDUCE
        assert_inner_payload_found(scan(loads_of(decoded)))


def test_latin1_codecs_encode_protocol0() -> None:
    # malicious13a: pickle.loads(_codecs.encode(u'...', 'latin1')) in protocol 0 opcodes
    data = (
        global_("pickle", "loads")
        + MARK
        + global_("_codecs", "encode")
        + MARK
        + unicode_line(INNER.decode("latin-1"))
        + string("latin1")
        + TUPLE
        + REDUCE
        + TUPLE
        + REDUCE
        + STOP
    )
    assert_inner_payload_found(scan(data))


def test_zlib_and_bz2_decompress() -> None:
    for module, packed in (("zlib", zlib.compress(INNER)), ("bz2", bz2.compress(INNER))):
        decoded = stack_global(module, "decompress") + binbytes(packed) + TUPLE1 + REDUCE
        assert_inner_payload_found(scan(loads_of(decoded)))


def test_decompression_bomb_is_bounded() -> None:
    packed = zlib.compress(b"N" * (4 << 20))
    decoded = stack_global("zlib", "decompress") + binbytes(packed) + TUPLE1 + REDUCE
    result = scan(loads_of(decoded), limits=Limits(max_inline_bytes=1 << 20))
    assert "pickle.loads" in subjects(result, "MS-PKL-102")
    assert [i.code for i in result.incompletes] == ["MS-PKL-122"], summary(result)


def test_bytesio_and_file_loader() -> None:
    bytesio = stack_global("io", "BytesIO") + binbytes(INNER) + TUPLE1 + REDUCE
    assert_inner_payload_found(scan(loads_of(bytesio, ("pickle", "load"))), "pickle.load")


def test_file_loader_given_a_path_is_not_followed() -> None:
    result = scan(loads_of(sbu("/tmp/other.pkl"), ("torch", "load")))
    assert subjects(result, "MS-PKL-102") == {"torch.load"}
    assert not inner_findings(result)


def test_torch_load_from_bytes_detects_content() -> None:
    result = scan(loads_of(binbytes(INNER), ("torch.storage", "_load_from_bytes")))
    assert_inner_payload_found(result, "torch.storage._load_from_bytes")


def test_non_literal_argument_still_flags_the_loader() -> None:
    result = scan(loads_of(call("acme", "fetch")))
    assert subjects(result, "MS-PKL-102") == {"pickle.loads"}
    assert not inner_findings(result)


def test_nesting_depth_is_bounded() -> None:
    payload = INNER
    for _ in range(10):
        payload = loads_of(binbytes(payload))
    result = scan(payload)
    assert "MS-ARC-011" in {i.code for i in result.incompletes}, summary(result)


def test_embedded_raw_pickle_without_a_loader() -> None:
    data = v4(EMPTY_DICT + sbu("blob") + binbytes(INNER) + SETITEM)
    result = scan(data)
    inner = inner_findings(result)
    assert [f.subject for f in inner] == ["os.system"], summary(result)
    assert inner[0].file.startswith("model.pkl!<embedded raw pickle @offset ")


def test_embedded_base64_and_hex_pickles() -> None:
    for text, encoding in ((base64.b64encode(INNER).decode(), "base64"), (INNER.hex(), "hex")):
        result = scan(v4(EMPTY_DICT + sbu("cfg") + binunicode(text) + SETITEM))
        inner = inner_findings(result)
        assert [f.subject for f in inner] == ["os.system"], summary(result)
        assert f"<embedded {encoding} pickle @offset " in inner[0].file


def test_embedded_benign_pickle_is_clean() -> None:
    data = v4(
        EMPTY_DICT
        + sbu("a")
        + short_binbytes(BENIGN_INNER)
        + SETITEM
        + sbu("b")
        + sbu(base64.b64encode(BENIGN_INNER).decode())
        + SETITEM
    )
    result = scan(data)
    assert not result.findings and not result.incompletes, summary(result)


def test_binary_data_that_merely_starts_like_a_pickle_is_ignored() -> None:
    data = v4(
        EMPTY_DICT
        + sbu("w")
        + binbytes(b"\x80\x03" + bytes(range(256)) * 4)
        + SETITEM
        + sbu("s")
        + sbu("gAAAAA-not-base64-!!")
        + SETITEM
    )
    result = scan(data)
    assert not result.findings and not result.incompletes, summary(result)


def test_nested_payload_offsets_are_inside_the_member() -> None:
    result = scan(loads_of(binbytes(INNER)))
    nested = next(f for f in inner_findings(result) if f.subject == "os.system")
    assert nested.offset == INNER.index(b"\x93")


def test_memo_reused_literal_is_scanned_once() -> None:
    data = v4(binbytes(INNER) + MEMOIZE + b"0" + b"h\x00" + b"0" + b"h\x00" + b"0" + binint1(1))
    result = scan(data)
    assert len(inner_findings(result)) == 1, summary(result)
    assert codes(result) == {"MS-PKL-100"}
    assert len(with_code(result, "MS-PKL-100")) == 1


def test_a_memoised_payload_loaded_many_times_is_scanned_once() -> None:
    call_loads = stack_global("pickle", "loads") + b"h\x00" + TUPLE1 + REDUCE + b"0"
    data = proto(4) + binbytes(INNER) + b"\x94" + b"0" + call_loads * 50 + b"N" + STOP
    result = scan(data)
    assert len([f for f in inner_findings(result) if f.subject == "os.system"]) == 1, summary(result)


def test_trial_parses_share_the_opcode_budget() -> None:
    # Embedded candidates that are long valid streams cost opcodes like the file itself.
    candidate = proto(4) + b"N0" * 3000 + b"N."
    data = v4(EMPTY_DICT + b"".join(sbu(f"k{i}") + binbytes(candidate) + SETITEM for i in range(20)))
    result = scan(data, limits=Limits(max_pickle_opcodes=50_000))
    assert "MS-PKL-120" in {i.code for i in result.incompletes}, summary(result)


def test_rebuilt_payload_bytes_are_budgeted() -> None:
    # Each decode builds a new in-memory payload: the total is bounded per file.
    decode = stack_global("codecs", "decode") + sbu(INNER.hex()) + sbu("hex") + TUPLE2 + REDUCE
    one = stack_global("pickle", "loads") + decode + TUPLE1 + REDUCE + b"0"
    data = proto(4) + one * 40 + b"N" + STOP
    result = scan(data, limits=Limits(max_inline_bytes=200))  # budget: 4 * 200 bytes
    assert "MS-PKL-122" in {i.code for i in result.incompletes}, summary(result)
    assert "pickle.loads" in subjects(result, "MS-PKL-102")


def test_deep_decode_chains_are_not_followed_forever() -> None:
    chain = binbytes(INNER)
    for _ in range(40):
        chain = stack_global("builtins", "bytes") + chain + TUPLE1 + REDUCE
    result = scan(loads_of(chain))
    assert subjects(result, "MS-PKL-102") == {"pickle.loads"}, summary(result)
