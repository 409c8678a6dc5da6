"""GGUF: valid files from the gguf package pass; every malformation is reported with its
MS-GGUF code; chat templates in the metadata are analysed; big files cost their header."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import gguf
import numpy as np
import pytest
from gguf_build import ARRAY, BOOL, F32, GGUF, INT8, KV, Q4_0, STRING, UINT8, UINT32, UINT64, Tensor, layout
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelsec.bytesource import BytesSource, FileSource
from modelsec.context import Limits, ScanContext, ScanSink
from modelsec.engine import ENGINE_ERROR, Engine
from modelsec.formats.gguf import GGML_TYPES, parse_header
from modelsec.policy import Outcome, evaluate, load_group
from modelsec.rules.base import EvaluationInput, SourceType

BENIGN_TEMPLATE = "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{% endfor %}"
EVIL_TEMPLATE = "{{ cycler.__init__.__globals__.os.popen('id').read() }}"


def scan(data: bytes, limits: Limits | None = None):
    return Engine(limits).scan_source("model.gguf", BytesSource(data))


def codes(result) -> list[str]:
    return sorted({f.threat for f in result.findings})


def write_with_gguf(path: Path, template=BENIGN_TEMPLATE, named=None, tokens=50) -> Path:
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("tiny")
    w.add_context_length(128)
    if template is not None:
        w.add_chat_template(template)
    if named:
        w.add_chat_template([{"name": k, "template": v} for k, v in named.items()])
    w.add_token_list([f"tok{i}" for i in range(tokens)])
    w.add_token_scores([0.0] * tokens)
    w.add_tensor("token_embd.weight", np.zeros((tokens, 8), dtype=np.float32))
    w.add_tensor("blk.0.attn_q.weight", np.ones((8, 8), dtype=np.float16))
    w.add_tensor("q4", np.zeros((2, 18), dtype=np.uint8), raw_dtype=gguf.GGMLQuantizationType.Q4_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


# --- valid files ---------------------------------------------------------------------------


def test_valid_file_from_gguf_package_is_clean_and_allowed(tmp_path: Path) -> None:
    path = write_with_gguf(tmp_path / "m.gguf")
    report = Engine().scan_path(path)
    assert [f.format for f in report.files] == ["gguf"]
    assert report.all_findings() == [] and report.all_incompletes() == []
    verdict = evaluate(load_group("local-default"), EvaluationInput(report, SourceType.LOCAL))
    assert verdict.outcome == Outcome.ALLOWED, verdict.reason


def test_header_fields_are_read(tmp_path: Path) -> None:
    path = write_with_gguf(tmp_path / "m.gguf", named={"tool_use": BENIGN_TEMPLATE})
    sink = ScanSink(Limits())
    with FileSource(path) as src:
        header = parse_header(src, ScanContext(str(path), sink, lambda *a: None))
    assert header.version == 3 and header.tensors == 3 and header.alignment == 32
    assert set(header.templates) == {"tokenizer.chat_template", "tokenizer.chat_template.tool_use"}
    assert sink.findings == []


def test_our_table_matches_the_gguf_package() -> None:
    from gguf.constants import GGML_QUANT_SIZES

    for qtype, (block, size) in GGML_QUANT_SIZES.items():
        assert GGML_TYPES[int(qtype)][1:] == (block, size), qtype.name


def test_malicious_chat_template_blocks(tmp_path: Path) -> None:
    path = write_with_gguf(tmp_path / "m.gguf", template=EVIL_TEMPLATE)
    report = Engine().scan_path(path)
    tpl = [f for f in report.all_findings() if f.threat.startswith("MS-TPL-")]
    assert tpl and all("tokenizer.chat_template" in f.message for f in tpl)
    verdict = evaluate(load_group("local-default"), EvaluationInput(report, SourceType.LOCAL))
    assert verdict.outcome == Outcome.BLOCKED


def test_malicious_named_template_is_found(tmp_path: Path) -> None:
    path = write_with_gguf(tmp_path / "m.gguf", named={"rag": "{{ x['__cla' ~ 'ss__'] }}"})
    result = Engine().scan_file(path)
    assert any(
        f.threat == "MS-TPL-002" and "tokenizer.chat_template.rag" in f.message for f in result.findings
    )


def test_unparseable_template_is_not_inspected(tmp_path: Path) -> None:
    path = write_with_gguf(tmp_path / "m.gguf", template="{% for x in %}")
    result = Engine().scan_file(path)
    assert [i.code for i in result.incompletes] == ["MS-TPL-090"]


def test_big_endian_and_v1_and_v2_parse() -> None:
    kvs = [KV("general.architecture", STRING, "llama"), KV("tokenizer.chat_template", STRING, EVIL_TEMPLATE)]
    for version, endian in ((3, ">"), (2, "<"), (1, "<")):
        data = GGUF(kvs=kvs, tensors=layout([("a", [4, 4])]), version=version, endian=endian).build()
        result = scan(data)
        assert not any(c.startswith("MS-GGUF") for c in codes(result)), (version, endian, codes(result))
        assert "MS-TPL-001" in codes(result), (version, endian)


def test_alignment_is_honoured() -> None:
    kvs = [KV("general.alignment", UINT32, 64)]
    tensors = layout([("a", [3]), ("b", [5])], alignment=64)
    assert codes(scan(GGUF(kvs=kvs, tensors=tensors, alignment=64).build())) == []
    # the same offsets checked against the default alignment of 32 are fine too; against
    # an alignment of 128 they are not
    kvs = [KV("general.alignment", UINT32, 128)]
    assert "MS-GGUF-004" in codes(scan(GGUF(kvs=kvs, tensors=tensors, alignment=128).build()))


# --- malformed headers ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"GGUF",
        b"GGUF\x03\x00\x00\x00",
        b"GGUF" + struct.pack("<I", 4) + bytes(16),
        b"GGUF" + struct.pack("<I", 0) + bytes(16),
        b"GGUF" + struct.pack("<IQQ", 3, 0, 1 << 40),
        b"GGUF" + struct.pack("<IQQ", 3, 1 << 40, 0),
        b"GGUF" + struct.pack("<IQQ", 3, 5, 0) + bytes(10),
    ],
    ids=[
        "magic-only",
        "no-counts",
        "version-4",
        "version-0",
        "kv-count",
        "tensor-count",
        "truncated-tensors",
    ],
)
def test_malformed_header(data: bytes) -> None:
    result = scan(data)
    assert codes(result) == ["MS-GGUF-001"], codes(result)
    assert not result.incompletes


# --- malformed metadata --------------------------------------------------------------------


def _meta(*kvs: KV, **kw) -> list[str]:
    return codes(scan(GGUF(kvs=list(kvs), **kw).build()))


def test_unknown_value_type() -> None:
    assert _meta(KV("a", 13, b"\x00", raw=True)) == ["MS-GGUF-002"]


def test_string_longer_than_file() -> None:
    assert _meta(KV("a", STRING, struct.pack("<Q", 1 << 40) + b"xx", raw=True)) == ["MS-GGUF-002"]


def test_array_longer_than_file() -> None:
    assert _meta(KV("a", ARRAY, struct.pack("<IQ", UINT64, 1 << 40), raw=True)) == ["MS-GGUF-002"]


def test_string_array_longer_than_file() -> None:
    assert _meta(KV("a", ARRAY, struct.pack("<IQ", STRING, 10) + struct.pack("<Q", 1) + b"x", raw=True)) == [
        "MS-GGUF-002"
    ]


def test_array_unknown_element_type() -> None:
    assert _meta(KV("a", ARRAY, struct.pack("<IQ", 99, 0), raw=True)) == ["MS-GGUF-002"]


def test_array_nesting_is_bounded() -> None:
    nested = (ARRAY, [(ARRAY, [(ARRAY, [(UINT8, [1])])])])
    assert _meta(KV("ok", ARRAY, (ARRAY, [(ARRAY, [(UINT8, [1])])]))) == []
    assert _meta(KV("deep", ARRAY, nested)) == ["MS-GGUF-002"]


def test_empty_and_non_utf8_keys() -> None:
    assert _meta(KV("", UINT8, 1)) == ["MS-GGUF-002"]
    assert _meta(KV(b"\xff\xfekey", UINT8, 1)) == ["MS-GGUF-002"]


def test_bool_out_of_range() -> None:
    assert _meta(KV("flag", BOOL, b"\x02", raw=True)) == ["MS-GGUF-002"]
    assert _meta(KV("flag", BOOL, True)) == []


@pytest.mark.parametrize(
    "kv",
    [
        KV("general.alignment", UINT32, 0),
        KV("general.alignment", UINT32, 48),
        KV("general.alignment", UINT64, 32),
        KV("general.alignment", STRING, "32"),
    ],
    ids=["zero", "not-power-of-two", "wrong-int-type", "string"],
)
def test_bad_alignment(kv: KV) -> None:
    assert _meta(kv) == ["MS-GGUF-002"]


def test_duplicate_keys_and_both_templates_analysed() -> None:
    result = scan(
        GGUF(
            kvs=[
                KV("tokenizer.chat_template", STRING, BENIGN_TEMPLATE),
                KV("tokenizer.chat_template", STRING, EVIL_TEMPLATE),
            ]
        ).build()
    )
    assert "MS-GGUF-005" in codes(result) and "MS-TPL-001" in codes(result)


def test_template_not_utf8_is_reported_and_still_analysed() -> None:
    raw = b"\xff{{ x.__class__ }}"
    result = scan(GGUF(kvs=[KV("tokenizer.chat_template", STRING, raw)]).build())
    assert {"MS-GGUF-002", "MS-TPL-001"} <= set(codes(result))


def test_huge_template_is_not_inspected() -> None:
    big = "{{ a }}" + "x" * (9 << 20)
    result = scan(GGUF(kvs=[KV("tokenizer.chat_template", STRING, big)]).build())
    assert [i.code for i in result.incompletes] == ["MS-GGUF-090"]


def test_templates_only_under_template_keys() -> None:
    # a token list full of template syntax is data, not a template
    tokens = (STRING, ["{{", "{%", "{{ x.__class__ }}"])
    assert _meta(KV("tokenizer.ggml.tokens", ARRAY, tokens), KV("general.name", STRING, "{{ self }}")) == []


# --- malformed tensor infos ----------------------------------------------------------------


def _tensors(*tensors: Tensor, **kw) -> list[str]:
    return codes(scan(GGUF(tensors=list(tensors), **kw).build()))


def test_too_many_dimensions() -> None:
    assert _tensors(Tensor("t", [1, 1, 1, 1, 1])) == ["MS-GGUF-003"]
    assert _tensors(Tensor("t", [1, 1, 1, 1])) == []


def test_unknown_and_removed_ggml_types() -> None:
    assert _tensors(Tensor("t", [32], 4)) == ["MS-GGUF-003"]
    assert _tensors(Tensor("t", [32], 31)) == ["MS-GGUF-003"]
    assert _tensors(Tensor("t", [32], 1000)) == ["MS-GGUF-003"]


def test_dimension_overflow_and_negative() -> None:
    assert _tensors(Tensor("t", [1 << 40, 1 << 40]), data=b"") == ["MS-GGUF-003"]
    assert _tensors(Tensor("t", [(1 << 64) - 1]), data=b"") == ["MS-GGUF-003"]


def test_rows_must_be_whole_blocks() -> None:
    assert _tensors(Tensor("t", [33, 1], Q4_0), data=bytes(64)) == ["MS-GGUF-003"]
    assert _tensors(Tensor("t", [32, 1], Q4_0), data=bytes(32)) == []


def test_long_and_duplicate_names() -> None:
    assert _tensors(Tensor("x" * 64, [1])) == ["MS-GGUF-003"]
    assert _tensors(Tensor("x" * 63, [1])) == []
    assert _tensors(Tensor("a", [1], offset=0), Tensor("a", [1], offset=32)) == ["MS-GGUF-005"]


# --- tensor data placement -----------------------------------------------------------------


def test_misaligned_offset() -> None:
    assert _tensors(Tensor("a", [1], offset=4), data=bytes(64)) == ["MS-GGUF-004"]


def test_data_past_end_of_file() -> None:
    assert _tensors(Tensor("a", [1024]), data=bytes(100)) == ["MS-GGUF-004"]
    assert _tensors(Tensor("a", [1], offset=1 << 50), data=bytes(0)) == ["MS-GGUF-004"]


def test_overlapping_tensors() -> None:
    assert _tensors(Tensor("a", [16]), Tensor("b", [16], offset=32)) == ["MS-GGUF-004"]
    assert _tensors(Tensor("a", [8]), Tensor("b", [16], offset=32)) == []


def test_data_section_past_end() -> None:
    for name in ("a", "ab"):
        header = GGUF(tensors=[Tensor(name, [1])]).header()
        if len(header) % 32:
            break
    # the file ends before the padding that precedes the data section
    assert codes(scan(header)) == ["MS-GGUF-004"]


# --- bounds ----------------------------------------------------------------------------------


def test_header_budget_is_enforced() -> None:
    data = GGUF(kvs=[KV("tokenizer.ggml.tokens", ARRAY, (STRING, ["t" * 100] * 200))]).build()
    result = scan(data, Limits(max_header_bytes=4096))
    assert [i.code for i in result.incompletes] == ["MS-GEN-003"]
    assert "4096" in result.incompletes[0].reason


def test_multi_gigabyte_file_reads_only_its_header(tmp_path: Path) -> None:
    tensors = [Tensor("big", [1 << 29], F32, 0)]  # 2 GiB of F32, sparse on disk
    g = GGUF(kvs=[KV("tokenizer.chat_template", STRING, BENIGN_TEMPLATE)], tensors=tensors, data=b"")
    path = tmp_path / "big.gguf"
    head = g.build()
    with open(path, "wb") as fh:
        fh.write(head)
        fh.truncate(len(head) + (1 << 31))
    sink = ScanSink(Limits())
    with FileSource(path) as src:
        parse_header(src, ScanContext(str(path), sink, lambda *a: None))
        assert src.bytes_read < 2 << 20
    assert sink.findings == [] and sink.incompletes == []
    os.remove(path)


def test_large_vocabulary_parses(tmp_path: Path) -> None:
    path = write_with_gguf(tmp_path / "m.gguf", tokens=100_000)
    result = Engine().scan_file(path)
    assert result.findings == [] and result.incompletes == []


# --- fuzzing ---------------------------------------------------------------------------------

_SEED = GGUF(
    kvs=[
        KV("general.architecture", STRING, "llama"),
        KV("general.alignment", UINT32, 32),
        KV("tokenizer.chat_template", STRING, BENIGN_TEMPLATE),
        KV("tokenizer.ggml.tokens", ARRAY, (STRING, ["a", "bb", "{{"])),
        KV("arr", ARRAY, (ARRAY, [(INT8, [1, 2]), (UINT8, [3])])),
        KV("flag", BOOL, True),
    ],
    tensors=layout([("a", [4, 2]), ("b", [3])]),
).build()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(st.integers(min_value=0, max_value=len(_SEED) - 1), st.integers(0, 255)), max_size=12),
    st.integers(min_value=4, max_value=len(_SEED)),
)
def test_mutated_files_never_crash(flips: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(_SEED)
    for pos, value in flips:
        data[pos] = value
    result = scan(bytes(data[:cut]))
    assert not [i for i in result.incompletes if i.code == ENGINE_ERROR], result.incompletes


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=512))
def test_random_bytes_after_magic_never_crash(tail: bytes) -> None:
    result = scan(b"GGUF" + tail)
    assert not [i for i in result.incompletes if i.code == ENGINE_ERROR], result.incompletes
