"""Read an ONNX ``ModelProto`` from bytes into :mod:`modelsec.onnx.model` records.

Parsed with :mod:`modelsec.protobuf_wire`, never with ``onnx``/``protobuf``: the weights are
located, not read, so a model with gigabytes of initializers costs a few reads around the
tags. Field numbers are those of ``onnx/onnx.proto`` (stable since IR version 3).

Protobuf semantics kept on purpose, because a real runtime parses the file that way and an
attacker can rely on it:

* fields may come in any order; a repeated singular message (two ``graph`` fields) is
  *merged*, so every occurrence is parsed into the same record;
* a singular scalar seen twice keeps the last value;
* a field with an unexpected wire type is an unknown field and is ignored.

Hostile input is bounded by :class:`ReaderLimits` (nodes, attributes, nesting, string
bytes). Malformed bytes or a reached limit stop the read; what was read before is kept
and the reason recorded in :attr:`OnnxModel.errors`.
"""

from __future__ import annotations

import hashlib
import math
import struct
from collections.abc import Callable
from dataclasses import dataclass

from modelsec.bytesource import ByteSource, LimitExceeded, SliceSource, iter_chunks
from modelsec.onnx.model import (
    Attribute,
    ExternalData,
    Function,
    Graph,
    Node,
    OnnxModel,
    OpsetImport,
    Tensor,
)
from modelsec.protobuf_wire import (
    I32,
    LEN,
    VARINT,
    Field,
    Message,
    PackedKind,
    WireError,
    WireLimits,
    to_double,
    to_float,
    to_int32,
    to_int64,
)


@dataclass(frozen=True)
class ReaderLimits:
    """Bounds on what one model may make the reader hold."""

    max_nodes: int = 500_000  # across all graphs and functions
    max_attributes: int = 2_000_000
    max_tensors: int = 2_000_000  # initializers and attribute tensors
    max_functions: int = 50_000
    max_graph_depth: int = 24  # subgraph in subgraph in ...
    max_name: int = 4096  # bytes of one name kept verbatim; longer ones are abbreviated
    max_string_bytes: int = 256 << 20  # all names and strings kept
    max_list: int = 1024  # ints/floats/strings kept per attribute
    max_attr_bytes: int = 4096  # bytes kept of one string attribute
    max_values: int = 256  # elements decoded of a small constant tensor
    max_dims: int = 64
    max_external_entries: int = 64


# ModelProto
M_IR_VERSION, M_PRODUCER_NAME, M_PRODUCER_VERSION, M_DOMAIN, M_MODEL_VERSION = 1, 2, 3, 4, 5
M_GRAPH, M_OPSET_IMPORT, M_TRAINING_INFO, M_FUNCTIONS = 7, 8, 20, 25
# GraphProto
G_NODE, G_NAME, G_INITIALIZER, G_INPUT, G_OUTPUT, G_SPARSE_INITIALIZER = 1, 2, 5, 11, 12, 15
# NodeProto
N_INPUT, N_OUTPUT, N_NAME, N_OP_TYPE, N_ATTRIBUTE, N_DOMAIN, N_OVERLOAD = 1, 2, 3, 4, 5, 7, 8
# AttributeProto
A_NAME, A_F, A_I, A_S, A_T, A_G, A_FLOATS, A_INTS, A_STRINGS = 1, 2, 3, 4, 5, 6, 7, 8, 9
A_TENSORS, A_GRAPHS, A_TYPE, A_REF_ATTR_NAME, A_SPARSE_TENSOR, A_SPARSE_TENSORS = 10, 11, 20, 21, 22, 23
# TensorProto
T_DIMS, T_DATA_TYPE, T_FLOAT_DATA, T_INT32_DATA, T_INT64_DATA, T_NAME = 1, 2, 4, 5, 7, 8
T_RAW_DATA, T_DOUBLE_DATA, T_UINT64_DATA, T_EXTERNAL_DATA, T_DATA_LOCATION = 9, 10, 11, 13, 14
# SparseTensorProto
S_VALUES, S_INDICES = 1, 2
# FunctionProto
F_NAME, F_INPUT, F_OUTPUT, F_ATTRIBUTE, F_NODE, F_OPSET_IMPORT = 1, 4, 5, 6, 7, 9
F_DOMAIN, F_ATTRIBUTE_PROTO, F_OVERLOAD = 10, 11, 13
# TrainingInfoProto
TI_INITIALIZATION, TI_ALGORITHM = 1, 2
# ValueInfoProto / OperatorSetIdProto / StringStringEntryProto: name|domain|key = 1, version|value = 2

# TensorProto.DataType -> (struct code for raw_data, which typed field holds it)
_DTYPES: dict[int, tuple[str, int]] = {
    1: ("f", T_FLOAT_DATA),  # FLOAT
    2: ("B", T_INT32_DATA),  # UINT8
    3: ("b", T_INT32_DATA),  # INT8
    4: ("H", T_INT32_DATA),  # UINT16
    5: ("h", T_INT32_DATA),  # INT16
    6: ("i", T_INT32_DATA),  # INT32
    7: ("q", T_INT64_DATA),  # INT64
    9: ("?", T_INT32_DATA),  # BOOL
    10: ("e", T_INT32_DATA),  # FLOAT16 (bit patterns in int32_data)
    11: ("d", T_DOUBLE_DATA),  # DOUBLE
    12: ("I", T_UINT64_DATA),  # UINT32
    13: ("Q", T_UINT64_DATA),  # UINT64
    16: ("bf16", T_INT32_DATA),  # BFLOAT16
}


_FLOAT16: Callable[[bytes], tuple[float]] = struct.Struct("<e").unpack  # one IEEE half


def _bf16(bits: int) -> float:
    return to_float((bits & 0xFFFF) << 16)  # bfloat16: the top half of a float32


class _Reader:
    def __init__(self, source: ByteSource, limits: ReaderLimits) -> None:
        self.source = source
        self.limits = limits
        # Each subgraph level costs node + attribute + graph messages; leave headroom.
        self.wire = WireLimits(max_depth=4 * limits.max_graph_depth + 16)
        self.nodes = 0
        self.attributes = 0
        self.tensors = 0
        self.string_bytes = 0

    # -- budgets ---------------------------------------------------------------------------

    def _count(self, what: str, current: int, limit: int) -> int:
        if current + 1 > limit:
            raise LimitExceeded(f"ONNX model has more than {limit} {what}; not inspected further")
        return current + 1

    def _charge(self, n: int) -> None:
        self.string_bytes += n
        if self.string_bytes > self.limits.max_string_bytes:
            raise LimitExceeded(
                f"ONNX model names and strings exceed {self.limits.max_string_bytes} bytes; "
                "not inspected further"
            )

    # -- scalars ---------------------------------------------------------------------------

    def text(self, msg: Message, f: Field) -> str:
        """A name. Names are compared byte for byte (they wire the dataflow graph), so bytes
        that are not UTF-8 survive as surrogate escapes; over-long names keep a prefix and
        a digest of the whole, so distinct names stay distinct."""
        if f.value <= self.limits.max_name:
            data = msg.read(f, self.limits.max_name)
            self.string_bytes += len(data)
            if self.string_bytes > self.limits.max_string_bytes:
                self._charge(0)
            return data.decode("utf-8", errors="surrogateescape")
        digest = hashlib.sha256()
        for chunk in iter_chunks(SliceSource(msg.source, f.start, f.length)):
            digest.update(chunk)
        prefix = msg.read_prefix(f, self.limits.max_name).decode("utf-8", errors="surrogateescape")
        self._charge(self.limits.max_name + 40)
        return f"{prefix}...[{f.length} bytes, sha256 {digest.hexdigest()[:32]}]"

    def blob(self, msg: Message, f: Field) -> bytes:
        """A string attribute: at most ``max_attr_bytes`` kept (a preview, not a name)."""
        data = msg.read_prefix(f, self.limits.max_attr_bytes)
        self._charge(len(data))
        return data

    # -- messages --------------------------------------------------------------------------

    def model(self, out: OnnxModel) -> None:
        """Two passes over the top level: small fields first (so the opset imports are
        known even if the graph is cut short or over a limit), then the graph, training
        graphs and functions, in file order. A malformed top level stops the first pass;
        what was located before it is still read, then the error is raised."""
        msg = Message(self.source, limits=self.wire)
        heavy: list[Field] = []
        error: WireError | None = None
        try:
            for f in msg.fields():
                n, w = f.number, f.wire_type
                if n == M_IR_VERSION and w == VARINT:
                    out.ir_version = to_int64(f.value)
                elif n == M_MODEL_VERSION and w == VARINT:
                    out.model_version = to_int64(f.value)
                elif w != LEN:
                    continue
                elif n == M_PRODUCER_NAME:
                    out.producer_name = self.text(msg, f)
                elif n == M_PRODUCER_VERSION:
                    out.producer_version = self.text(msg, f)
                elif n == M_DOMAIN:
                    out.domain = self.text(msg, f)
                elif n == M_OPSET_IMPORT:
                    out.opset_imports.append(self.opset(msg.child(f)))
                elif n in (M_GRAPH, M_TRAINING_INFO, M_FUNCTIONS):
                    if len(heavy) >= self.limits.max_functions + 1024:
                        raise LimitExceeded(
                            f"ONNX model has more than {len(heavy)} graph, training and function "
                            "fields; not inspected further"
                        )
                    heavy.append(f)
        except WireError as exc:
            error = exc
        for f in heavy:
            if f.number == M_GRAPH:
                if out.graph is None:
                    out.graph = Graph(where="graph")
                self.graph(msg.child(f), out.graph, 0)
            elif f.number == M_TRAINING_INFO:
                self.training_info(msg.child(f), out)
            else:
                fn = Function(offset=f.offset)
                self.functions_budget(len(out.functions))
                out.functions.append(fn)
                self.function(msg.child(f), fn)
        if error is not None:
            raise error

    def functions_budget(self, current: int) -> None:
        self._count("model-local functions", current, self.limits.max_functions)

    def opset(self, msg: Message) -> OpsetImport:
        op = OpsetImport("", 0)
        for f in msg.fields():
            if f.number == 1 and f.wire_type == LEN:
                op.domain = self.text(msg, f)
            elif f.number == 2 and f.wire_type == VARINT:
                op.version = to_int64(f.value)
        return op

    def training_info(self, msg: Message, out: OnnxModel) -> None:
        graphs: dict[int, Graph] = {}
        for f in msg.fields():
            if f.number in (TI_INITIALIZATION, TI_ALGORITHM) and f.wire_type == LEN:
                if f.number not in graphs:
                    label = "initialization" if f.number == TI_INITIALIZATION else "algorithm"
                    graphs[f.number] = Graph(where=f"training_info[{len(out.training_graphs)}].{label}")
                    out.training_graphs.append(graphs[f.number])
                self.graph(msg.child(f), graphs[f.number], 0)

    def graph(self, msg: Message, g: Graph, depth: int) -> None:
        if depth > self.limits.max_graph_depth:
            raise LimitExceeded(
                f"ONNX subgraphs nested deeper than {self.limits.max_graph_depth} levels at "
                f"offset {msg.start}; not inspected further"
            )
        for f in msg.fields():
            if f.wire_type != LEN:
                continue
            n = f.number
            if n == G_NODE:
                self.nodes = self._count("nodes", self.nodes, self.limits.max_nodes)
                node = Node(offset=f.offset)
                g.nodes.append(node)
                self.node(msg.child(f), node, depth)
            elif n == G_NAME:
                g.name = self.text(msg, f)
            elif n == G_INITIALIZER:
                g.initializers.append(self.tensor([(msg.child(f), f.offset)]))
            elif n == G_SPARSE_INITIALIZER:
                values, indices = self.sparse(msg.child(f))
                g.sparse_initializers.append(values)
                g.sparse_indices.append(indices)
            elif n in (G_INPUT, G_OUTPUT):
                name = self.value_info_name(msg.child(f))
                (g.inputs if n == G_INPUT else g.outputs).append(name)

    def value_info_name(self, msg: Message) -> str:
        name = ""
        for f in msg.fields():
            if f.number == 1 and f.wire_type == LEN:
                name = self.text(msg, f)
        return name

    def node(self, msg: Message, node: Node, depth: int) -> None:
        for f in msg.fields():
            if f.wire_type != LEN:
                continue
            n = f.number
            if n == N_INPUT:
                node.inputs.append(self.text(msg, f))
            elif n == N_OUTPUT:
                node.outputs.append(self.text(msg, f))
            elif n == N_NAME:
                node.name = self.text(msg, f)
            elif n == N_OP_TYPE:
                node.op_type = self.text(msg, f)
            elif n == N_DOMAIN:
                node.domain = self.text(msg, f)
            elif n == N_OVERLOAD:
                node.overload = self.text(msg, f)
            elif n == N_ATTRIBUTE:
                self.attributes = self._count("attributes", self.attributes, self.limits.max_attributes)
                attr = Attribute()
                node.attributes.append(attr)
                self.attribute(msg.child(f), attr, depth)

    def attribute(self, msg: Message, attr: Attribute, depth: int) -> None:
        tensor_parts: list[tuple[Message, int]] = []
        graph: Graph | None = None
        lim = self.limits
        for f in msg.fields():
            n, w = f.number, f.wire_type
            if n == A_TYPE and w == VARINT:
                attr.type = to_int32(f.value)
            elif n == A_I and w == VARINT:
                attr.i = to_int64(f.value)
            elif n == A_F and w == I32:
                attr.f = to_float(f.value)
            elif n == A_INTS:
                for raw in msg.iter_packed(f, "varint"):
                    if len(attr.ints) >= lim.max_list:
                        break
                    attr.ints.append(to_int64(raw))
            elif n == A_FLOATS:
                for raw in msg.iter_packed(f, "fixed32"):
                    if len(attr.floats) >= lim.max_list:
                        break
                    attr.floats.append(to_float(raw))
            elif w != LEN:
                continue
            elif n == A_NAME:
                attr.name = self.text(msg, f)
            elif n == A_REF_ATTR_NAME:
                attr.ref_attr_name = self.text(msg, f)
            elif n == A_S:
                attr.s = self.blob(msg, f)
            elif n == A_STRINGS:
                if len(attr.strings) < lim.max_list:
                    attr.strings.append(self.blob(msg, f))
            elif n == A_T:
                tensor_parts.append((msg.child(f), f.offset))
            elif n == A_TENSORS:
                attr.tensors.append(self.tensor([(msg.child(f), f.offset)]))
            elif n in (A_SPARSE_TENSOR, A_SPARSE_TENSORS):
                attr.tensors.extend(self.sparse(msg.child(f)))
            elif n == A_G:
                if graph is None:
                    graph = Graph()
                    attr.graphs.insert(0, graph)
                self.graph(msg.child(f), graph, depth + 1)
            elif n == A_GRAPHS:
                sub = Graph()
                attr.graphs.append(sub)
                self.graph(msg.child(f), sub, depth + 1)
        if tensor_parts:
            attr.tensors.insert(0, self.tensor(tensor_parts))

    def sparse(self, msg: Message) -> tuple[Tensor, Tensor]:
        parts: dict[int, list[tuple[Message, int]]] = {S_VALUES: [], S_INDICES: []}
        for f in msg.fields():
            if f.number in parts and f.wire_type == LEN:
                parts[f.number].append((msg.child(f), f.offset))
        return self.tensor(parts[S_VALUES] or []), self.tensor(parts[S_INDICES] or [])

    def tensor(self, parts: list[tuple[Message, int]]) -> Tensor:
        """One TensorProto, possibly split over several occurrences (merged)."""
        self.tensors = self._count("tensors", self.tensors, self.limits.max_tensors)
        lim = self.limits
        t = Tensor(offset=parts[0][1] if parts else 0)
        raw: tuple[Message, Field] | None = None
        typed: dict[int, list[tuple[Message, Field]]] = {}
        too_many_dims = False
        for msg, _ in parts:
            for f in msg.fields():
                n, w = f.number, f.wire_type
                if n == T_DIMS:
                    for v in msg.iter_packed(f, "varint"):
                        if len(t.dims) >= lim.max_dims:
                            too_many_dims = True
                            break
                        t.dims.append(to_int64(v))
                elif n == T_DATA_TYPE and w == VARINT:
                    t.data_type = to_int32(f.value)
                elif n == T_DATA_LOCATION and w == VARINT:
                    # proto2 enum: an unknown value is an unknown field, not a value
                    if f.value in (0, 1):
                        t.data_location = f.value
                elif n in (T_FLOAT_DATA, T_INT32_DATA, T_INT64_DATA, T_DOUBLE_DATA, T_UINT64_DATA):
                    typed.setdefault(n, []).append((msg, f))
                elif w != LEN:
                    continue
                elif n == T_NAME:
                    t.name = self.text(msg, f)
                elif n == T_RAW_DATA:
                    raw = (msg, f)  # last one wins; located, not read
                elif n == T_EXTERNAL_DATA:
                    if t.external is None:
                        t.external = ExternalData()
                    entry = self.entry(msg.child(f))
                    if len(t.external.entries) < lim.max_external_entries:
                        t.external.entries.append(entry)
                    elif entry[0] == "location":  # past the cap, the one that wins is kept
                        t.external.late_location = entry[1]
        if not too_many_dims and not t.is_external:
            t.values = self.values(t, raw, typed)
        return t

    def entry(self, msg: Message) -> tuple[str, str]:
        key = value = ""
        for f in msg.fields():
            if f.wire_type == LEN and f.number == 1:
                key = self.text(msg, f)
            elif f.wire_type == LEN and f.number == 2:
                value = self.text(msg, f)
        return key, value

    def values(
        self,
        t: Tensor,
        raw: tuple[Message, Field] | None,
        typed: dict[int, list[tuple[Message, Field]]],
    ) -> tuple[float, ...] | None:
        """Decode a small numeric tensor; None if large, non-numeric or inconsistent."""
        spec = _DTYPES.get(t.data_type)
        if spec is None or any(d < 0 for d in t.dims):
            return None
        count = math.prod(t.dims) if t.dims else 1
        if count > self.limits.max_values:
            return None
        code, field_number = spec
        if raw is not None:
            msg, f = raw
            width = 2 if code == "bf16" else struct.calcsize("<" + code)
            if f.length != count * width:
                return None
            data = msg.read(f, count * width)
            if code == "bf16":
                return tuple(_bf16(int.from_bytes(data[i : i + 2], "little")) for i in range(0, len(data), 2))
            return tuple(float(v) for v in struct.unpack(f"<{count}{code}", data))
        out: list[float] = []
        kinds: dict[int, PackedKind] = {T_FLOAT_DATA: "fixed32", T_DOUBLE_DATA: "fixed64"}
        kind = kinds.get(field_number, "varint")
        for msg, f in typed.get(field_number, []):
            for v in msg.iter_packed(f, kind):
                if len(out) > count:
                    return None
                out.append(self._typed_value(code, v))
        return tuple(out) if len(out) == count else None

    @staticmethod
    def _typed_value(code: str, v: int) -> float:
        if code == "f":
            return to_float(v)
        if code == "d":
            return to_double(v)  # v is a fixed64: below 2**64, so the mask changes nothing
        if code == "e":
            return _FLOAT16((v & 0xFFFF).to_bytes(2, "little"))[0]
        if code == "bf16":
            return _bf16(v)
        if code in ("q", "i", "b", "h"):
            return float(to_int64(v))
        if code == "?":
            return 1.0 if v else 0.0
        return float(v)

    def function(self, msg: Message, fn: Function) -> None:
        for f in msg.fields():
            if f.wire_type != LEN:
                continue
            n = f.number
            if n == F_NAME:
                fn.name = self.text(msg, f)
            elif n == F_DOMAIN:
                fn.domain = self.text(msg, f)
            elif n == F_OVERLOAD:
                fn.overload = self.text(msg, f)
            elif n == F_INPUT:
                fn.inputs.append(self.text(msg, f))
            elif n == F_OUTPUT:
                fn.outputs.append(self.text(msg, f))
            elif n == F_ATTRIBUTE:
                fn.attribute_names.append(self.text(msg, f))
            elif n == F_OPSET_IMPORT:
                fn.opset_imports.append(self.opset(msg.child(f)))
            elif n == F_NODE:
                self.nodes = self._count("nodes", self.nodes, self.limits.max_nodes)
                node = Node(offset=f.offset)
                fn.nodes.append(node)
                self.node(msg.child(f), node, 0)
            elif n == F_ATTRIBUTE_PROTO:
                self.attributes = self._count("attributes", self.attributes, self.limits.max_attributes)
                attr = Attribute()
                fn.attribute_defaults.append(attr)
                self.attribute(msg.child(f), attr, 0)


def read_model(source: ByteSource, limits: ReaderLimits | None = None) -> OnnxModel:
    """Read what can be read; never raises for bad bytes (see :attr:`OnnxModel.errors`)."""
    model = OnnxModel()
    reader = _Reader(source, limits or ReaderLimits())
    try:
        reader.model(model)
    except WireError as exc:
        model.malformed = True
        model.errors.append(f"malformed protobuf: {exc}")
    except LimitExceeded as exc:
        model.errors.append(str(exc))
    _label(model)
    return model


def _label(model: OnnxModel) -> None:
    """Name every subgraph by where it sits (``graph > node 'loop' .body``), once all
    names are known (a node's name may follow its attributes in the bytes)."""
    stack: list[tuple[list[Node], str]] = []
    if model.graph is not None:
        stack.append((model.graph.nodes, model.graph.where))
    stack.extend((g.nodes, g.where) for g in model.training_graphs)
    for fn in model.functions:
        stack.append((fn.nodes, fn.where))
        for attr in fn.attribute_defaults:
            for i, g in enumerate(attr.graphs):
                g.where = f"{fn.where} > default {attr.name!r}" + (f"[{i}]" if len(attr.graphs) > 1 else "")
                stack.append((g.nodes, g.where))
    while stack:
        nodes, where = stack.pop()
        for node in nodes:
            for attr in node.attributes:
                for i, g in enumerate(attr.graphs):
                    suffix = f"[{i}]" if len(attr.graphs) > 1 else ""
                    g.where = f"{where} > node {node.label!r} ({node.op_type}).{attr.name}{suffix}"
                    stack.append((g.nodes, g.where))
