"""Read what a TFLite model runs: its operator codes, which operators use them, and the
TensorFlow NodeDefs embedded in Flex (select-TF-ops) operators.

Schema: tensorflow/lite/schema/schema.fbs. Model: operator_codes=1, subgraphs=2,
buffers=4, external_buffer_groups=8. OperatorCode: deprecated_builtin_code=0 (int8),
custom_code=1, version=2, builtin_code=3 (int32). SubGraph: operators=3.
Operator: opcode_index=0, custom_options=5, large_custom_options_offset/size=9/10.
Buffer: data=0, offset=1, size=2.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from modelsec.bytesource import ByteSource
from modelsec.tensorflow.flatbuffer import FlatBuffer, FlatBufferError, Table, flex_root_strings

CUSTOM = 32  # BuiltinOperator.CUSTOM
PLACEHOLDER_FOR_GREATER_OP_CODES = 127
MAX_OPCODES = 100_000
MAX_SUBGRAPHS = 10_000
MAX_OPERATORS = 2_000_000
MAX_BUFFERS = 1_000_000
MAX_FLEX_OPTIONS = 16 << 20
FLEX_PREFIX = "Flex"


@dataclass(frozen=True)
class OpCode:
    """One of the model's operator codes: its index, builtin code, custom name (if any) and version."""

    index: int
    builtin: int
    custom: str | None
    version: int


@dataclass
class FlexUse:
    """One operator whose code is a Flex op, with the NodeDef it carries (if readable)."""

    code: OpCode
    where: str  # "subgraph 0 operator 12"
    op_in_options: str = ""
    node_def: bytes | None = None
    error: str = ""


@dataclass
class TFLiteSummary:
    """What a TFLite model runs: its operator codes, how often each is used, its Flex ops, problems."""

    version: int = 0
    codes: list[OpCode] = field(default_factory=list)
    used: Counter[int] = field(default_factory=Counter)
    flex: list[FlexUse] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    external_groups: list[str] = field(default_factory=list)
    truncated: str = ""
    operators: int = 0


def is_tflite(head: bytes) -> bool:
    """File identifier ``TFL3`` at bytes 4-8 and a root offset inside the head."""
    if len(head) < 8 or head[4:8] != b"TFL3":
        return False
    root = int.from_bytes(head[0:4], "little")
    return 8 <= root


def _opcode(index: int, table: Table) -> OpCode:
    deprecated = table.sint(0, 1, 0)
    builtin = table.sint(3, 4, 0)
    # Readers take the larger of the two: old files only have the int8 field, new ones put
    # a placeholder (127) there for codes above it.
    code = max(deprecated, builtin)
    custom = table.string(1, 1024)
    return OpCode(index, code, custom, table.sint(2, 4, 1))


def read_tflite(source: ByteSource, out: TFLiteSummary) -> None:
    """Fill ``out``; a :class:`FlatBufferError` propagates with what was read kept."""
    fb = FlatBuffer(source)
    model = fb.root()
    out.version = model.uint(0, 4, 0)
    for index, table in enumerate(model.tables(1, MAX_OPCODES)):
        out.codes.append(_opcode(index, table))
    if model.vector_len(1, 4) > MAX_OPCODES:
        out.truncated = f"more than {MAX_OPCODES} operator codes"
    flex_codes = {
        c.index for c in out.codes if c.builtin == CUSTOM and (c.custom or "").startswith(FLEX_PREFIX)
    }
    budget = MAX_OPERATORS
    for s, subgraph in enumerate(model.tables(2, MAX_SUBGRAPHS)):
        start, count = subgraph.vector(3, 4)
        for i, operator in enumerate(subgraph.tables(3, budget)):
            out.operators += 1
            index = operator.uint(0, 4, 0)
            if index >= len(out.codes):
                out.problems.append(
                    f"subgraph {s} operator {i} uses operator code {index}, but only {len(out.codes)} exist"
                )
                continue
            out.used[index] += 1
            if index in flex_codes:
                out.flex.append(_flex_use(fb, operator, out.codes[index], f"subgraph {s} operator {i}"))
        budget -= min(count, budget)
        if budget <= 0:
            out.truncated = f"more than {MAX_OPERATORS} operators"
            break
    _check_buffers(model, fb, out)
    for group in model.tables(8, 10_000):
        name = group.string(0, 1024)
        if name:
            out.external_groups.append(name)


def _flex_use(fb: FlatBuffer, operator: Table, code: OpCode, where: str) -> FlexUse:
    use = FlexUse(code, where)
    start, length = operator.vector(5, 1)
    if not length:
        large_offset = operator.uint(9, 8, 0)
        large_size = operator.uint(10, 8, 0)
        if large_size:
            if large_offset + large_size > fb.size:
                use.error = "custom options outside the file"
                return use
            start, length = large_offset, large_size
    if not length:
        use.error = "no custom options"
        return use
    if length > MAX_FLEX_OPTIONS:
        use.error = f"custom options of {length} bytes not inspected"
        return use
    try:
        strings = flex_root_strings(fb.bytes_at(start, length))
    except FlatBufferError as exc:
        use.error = f"custom options unreadable: {exc}"
        return use
    if strings:
        use.op_in_options = strings[0][:256].decode("utf-8", "replace")
    if len(strings) > 1:
        use.node_def = strings[1]
    return use


def _check_buffers(model: Table, fb: FlatBuffer, out: TFLiteSummary) -> None:
    for b, buffer in enumerate(model.tables(4, MAX_BUFFERS)):
        buffer.vector(0, 1)  # raises if the inline data overruns the file
        offset, size = buffer.uint(1, 8, 0), buffer.uint(2, 8, 0)
        if offset > 1 and offset + size > fb.size:
            out.problems.append(
                f"buffer {b} claims {size} bytes at offset {offset}, past the end of the {fb.size}-byte file"
            )
