"""Read TensorFlow protos from the wire: SavedModel, GraphDef, SavedMetadata.

Only what a security review needs is kept: every op name with its first occurrence, the
nodes whose op reaches outside the graph (with their string attributes), string constants
that may be paths, object-graph metadata (Keras configs), asset file names. Field numbers
follow tensorflow/core/protobuf/{saved_model,meta_graph,saved_object_graph}.proto and
tensorflow/core/framework/{graph,node_def,function,attr_value,tensor}.proto.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from modelsec.bytesource import ByteSource, LimitExceeded
from modelsec.protobuf_wire import LEN, VARINT, BlockCache, Field, Message, WireError
from modelsec.tensorflow import ops as tfops

MAX_DETAILED_NODES = 2_000  # risky nodes kept with their attributes
MAX_CONST_STRINGS = 20_000  # Const string values kept to resolve path inputs
MAX_CONST_STRING_BYTES = 1024
MAX_METADATA_BYTES = 64 << 20  # Keras metadata JSON kept for the config walker, in total
MAX_ATTR_STRINGS = 16
DT_STRING = 7
# Ops judged by a string attribute (where they print to, which file a descriptor is read from).
ATTR_CHECKED_OPS = frozenset({"PrintV2", "DecodeProtoV2", "EncodeProto"})


@dataclass
class NodeInfo:
    """One node whose op matters (risky, or the first of an unknown op)."""

    name: str
    op: str
    scope: str  # "graph" or "function <name>"
    offset: int
    device: str = ""
    inputs: list[str] = field(default_factory=list)
    attrs: dict[str, list[str]] = field(default_factory=dict)  # string-valued attrs only


@dataclass
class OpUse:
    """How many nodes use one op, and the first of them."""

    count: int
    first: NodeInfo


@dataclass
class GraphSummary:
    """What one file's graphs and functions contain."""

    kind: str = ""  # "saved_model", "graph_def", "keras_metadata"
    schema_version: int | None = None
    tensorflow_version: str = ""
    ops: dict[str, OpUse] = field(default_factory=dict)
    risky: list[NodeInfo] = field(default_factory=list)
    dropped_risky: int = 0
    functions: set[str] = field(default_factory=set)
    declared_ops: set[str] = field(default_factory=set)  # meta_info_def.stripped_op_list
    # (scope, node name) -> string values of Const nodes, for path inputs
    const_strings: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    keras_metadata: list[tuple[str, str]] = field(default_factory=list)  # (where, json)
    metadata_bytes: int = 0
    asset_files: list[str] = field(default_factory=list)
    registered_names: set[str] = field(default_factory=set)
    nodes: int = 0


def _is_op_name(text: str) -> bool:
    return bool(text) and len(text) < 256 and all(c.isalnum() or c in "_>." for c in text)


def _text(msg: Message, f: Field, limit: int = 1024) -> str:
    """A string field, truncated to ``limit`` bytes (names never need more)."""
    return msg.read_prefix(f, limit).decode("utf-8", "replace")


def _children(msg: Message, number: int) -> Iterator[Message]:
    """Every occurrence of a message-typed field. Occurrences with another wire type are
    unknown fields to TensorFlow's parser too, so they are skipped, not trusted."""
    for f in msg.fields():
        if f.number == number and f.wire_type == LEN:
            yield msg.child(f)


# --- attributes ---------------------------------------------------------------------


def _attr_strings(value: Message) -> list[str]:
    """String-ish contents of an AttrValue: ``s``, ``list.s``, ``func.name``, placeholder."""
    out: list[str] = []
    for f in value.fields():
        if f.wire_type != LEN:
            continue
        if f.number in (2, 9):  # s, placeholder
            out.append(_text(value, f))
        elif f.number in (1, 10):  # list (s=2), func: NameAttrList (name=1)
            inner = value.child(f)
            wanted = 2 if f.number == 1 else 1
            for g in inner.fields():
                if g.number == wanted and g.wire_type == LEN and len(out) < MAX_ATTR_STRINGS:
                    out.append(_text(inner, g))
    return out[:MAX_ATTR_STRINGS]


def _tensor_strings(value: Message) -> list[str] | None:
    """``string_val`` of a DT_STRING TensorProto inside an AttrValue (else None)."""
    for tensor in _children(value, 8):
        dtype = None
        strings: list[str] = []
        for g in tensor.fields():
            if g.number == 1 and g.wire_type == VARINT:
                dtype = g.value
            elif g.number == 8 and g.wire_type == LEN and len(strings) < MAX_ATTR_STRINGS:
                strings.append(_text(tensor, g, MAX_CONST_STRING_BYTES))
        return strings if dtype == DT_STRING else None
    return None


# --- nodes ----------------------------------------------------------------------------


def _read_node(node: Message, scope: str, out: GraphSummary) -> None:
    """NodeDef: name=1, op=2, input=3, device=4, attr=5 (map<string, AttrValue>)."""
    name = op = device = ""
    inputs: list[str] = []
    attrs: list[tuple[str, Message]] = []
    for f in node.fields():
        if f.wire_type != LEN:
            continue
        if f.number == 1:
            name = _text(node, f)
        elif f.number == 2:
            op = _text(node, f)
        elif f.number == 3 and len(inputs) < 8:
            inputs.append(_text(node, f))
        elif f.number == 4:
            device = _text(node, f)
        elif f.number == 5:
            entry = node.child(f)
            key, value = "", None
            for g in entry.fields():
                if g.number == 1 and g.wire_type == LEN:
                    key = _text(entry, g, 256)
                elif g.number == 2 and g.wire_type == LEN:
                    value = entry.child(g)
            if value is not None:
                attrs.append((key, value))
    out.nodes += 1
    info = NodeInfo(name=name, op=op, scope=scope, offset=node.start, device=device, inputs=inputs)
    use = out.ops.get(op)
    if use is None:
        out.ops[op] = OpUse(1, info)
    else:
        use.count += 1
    if op in ("Const", "HostConst"):
        for key, value in attrs:
            if key == "value" and len(out.const_strings) < MAX_CONST_STRINGS:
                strings = _tensor_strings(value)
                if strings:
                    out.const_strings[(scope, name)] = strings
    elif tfops.classify(op) is not None or op in ATTR_CHECKED_OPS:
        for key, value in attrs:
            strings = _attr_strings(value)
            if strings:
                info.attrs[key] = strings
        if len(out.risky) < MAX_DETAILED_NODES:
            out.risky.append(info)
        else:
            out.dropped_risky += 1


def _read_function(function: Message, out: GraphSummary) -> None:
    """FunctionDef: signature=1 (OpDef: name=1), node_def=3."""
    name = ""
    for signature in _children(function, 1):
        for g in signature.fields():
            if g.number == 1 and g.wire_type == LEN:
                name = _text(signature, g)
    # Nodes are read in a second pass so that they carry the function's name (the
    # signature may follow them on the wire).
    out.functions.add(name)
    for node in _children(function, 3):
        _read_node(node, f"function {name}", out)


def read_graph_def(graph: Message, out: GraphSummary) -> None:
    """GraphDef: node=1, library=2 (FunctionDefLibrary: function=1)."""
    for f in graph.fields():
        if f.wire_type != LEN:
            continue
        if f.number == 1:
            _read_node(graph.child(f), "graph", out)
        elif f.number == 2:
            for function in _children(graph.child(f), 1):
                _read_function(function, out)


def _read_meta_info(info: Message, out: GraphSummary) -> None:
    """MetaInfoDef: stripped_op_list=2 (OpList: op=1 OpDef: name=1), tensorflow_version=5."""
    for f in info.fields():
        if f.number == 5 and f.wire_type == LEN:
            out.tensorflow_version = _text(info, f, 128)
        elif f.number == 2 and f.wire_type == LEN:
            for opdef in _children(info.child(f), 1):
                for h in opdef.fields():
                    if h.number == 1 and h.wire_type == LEN:
                        out.declared_ops.add(_text(opdef, h))


def _keep_metadata(msg: Message, f: Field, where: str, out: GraphSummary) -> None:
    if out.metadata_bytes + f.value > MAX_METADATA_BYTES:
        raise LimitExceeded(
            f"Keras metadata exceeds {MAX_METADATA_BYTES} bytes in total; not inspected further"
        )
    out.metadata_bytes += f.value
    out.keras_metadata.append((where, msg.text(f, MAX_METADATA_BYTES)))


def _read_object_graph(graph: Message, out: GraphSummary) -> None:
    """SavedObjectGraph: nodes=1 (SavedObject: user_object=4 {identifier=1, metadata=3},
    registered_name=13)."""
    for index, obj in enumerate(_children(graph, 1)):
        for g in obj.fields():
            if g.number == 4 and g.wire_type == LEN:
                user = obj.child(g)
                identifier = ""
                for h in user.fields():
                    if h.number == 1 and h.wire_type == LEN:
                        identifier = _text(user, h, 256)
                    elif h.number == 3 and h.wire_type == LEN and h.value:
                        _keep_metadata(user, h, f"object {index} ({identifier or 'user object'})", out)
            elif g.number == 13 and g.wire_type == LEN and g.value:
                out.registered_names.add(_text(obj, g, 256))


def _read_meta_graph(meta: Message, out: GraphSummary) -> None:
    for f in meta.fields():
        if f.wire_type != LEN:
            continue
        if f.number == 1:
            _read_meta_info(meta.child(f), out)
        elif f.number == 2:
            read_graph_def(meta.child(f), out)
        elif f.number == 6:  # AssetFileDef: filename=2
            asset = meta.child(f)
            for g in asset.fields():
                if g.number == 2 and g.wire_type == LEN:
                    out.asset_files.append(_text(asset, g))
        elif f.number == 7:
            _read_object_graph(meta.child(f), out)


def open_message(source: ByteSource) -> Message:
    """The whole source as a message, read through a bounded block cache."""
    return Message(BlockCache(source))


def read_saved_model(root: Message, out: GraphSummary) -> None:
    """SavedModel: saved_model_schema_version=1, meta_graphs=2."""
    for f in root.fields():
        if f.number == 1 and f.wire_type == VARINT:
            out.schema_version = f.value
        elif f.number == 2 and f.wire_type == LEN:
            _read_meta_graph(root.child(f), out)


def read_keras_metadata(root: Message, out: GraphSummary) -> None:
    """SavedMetadata: nodes=1 (SavedObject: node_path=3, identifier=4, metadata=5)."""
    for obj in _children(root, 1):
        path = identifier = ""
        meta: Field | None = None
        for g in obj.fields():
            if g.wire_type != LEN:
                continue
            if g.number == 3:
                path = _text(obj, g, 256)
            elif g.number == 4:
                identifier = _text(obj, g, 256)
            elif g.number == 5:
                meta = g
        if meta is not None and meta.value:
            _keep_metadata(obj, meta, f"{path or 'object'} ({identifier or 'keras object'})", out)


READERS = {
    "saved_model": read_saved_model,
    "graph_def": read_graph_def,
    "keras_metadata": read_keras_metadata,
}


def read(root: Message, kind: str, out: GraphSummary) -> None:
    """Fill ``out`` from ``root``; on malformed data it raises with what was read so far
    kept in ``out`` (findings before the bad byte still count)."""
    out.kind = kind
    READERS[kind](root, out)


# --- detection --------------------------------------------------------------------------

# Expected wire type per field number, for the structural checks below.
_SAVED_MODEL = {1: VARINT, 2: LEN}
_META_GRAPH = {n: LEN for n in range(1, 8)}
_GRAPH_DEF = {1: LEN, 2: LEN, 3: VARINT, 4: LEN, 5: LEN}
_NODE_DEF = {1: LEN, 2: LEN, 3: LEN, 4: LEN, 5: LEN, 6: LEN, 7: LEN}
_SAVED_METADATA = {1: LEN}
_METADATA_OBJECT = {2: VARINT, 3: LEN, 4: LEN, 5: LEN, 6: LEN}
DETECT_FIELDS = 4096  # fields of a message examined before deciding


def _matches(msg: Message, shape: dict[int, int], limit: int = DETECT_FIELDS) -> list[Field] | None:
    """The message's first ``limit`` fields if they all fit ``shape``, else None."""
    fields: list[Field] = []
    try:
        for f in msg.fields():
            if shape.get(f.number) != f.wire_type:
                return None
            fields.append(f)
            if len(fields) >= limit:
                break
    except (WireError, LimitExceeded):
        return None
    return fields


def _looks_like_node(node: Message) -> bool:
    fields = _matches(node, _NODE_DEF, 64)
    if not fields:
        return False
    ops = [g for g in fields if g.number == 2]
    return bool(ops) and _is_op_name(_text(node, ops[0], 256))


def _looks_like_graph(graph: Message, limit: int = DETECT_FIELDS) -> bool:
    fields = _matches(graph, _GRAPH_DEF, limit)
    if not fields:
        return False
    nodes = [f for f in fields if f.number == 1]
    if not all(_looks_like_node(graph.child(n)) for n in nodes[:4]):
        return False
    return bool(nodes) or any(f.number in (2, 4) for f in fields)


def detect_kind(root: Message) -> str | None:
    """``saved_model``, ``graph_def``, ``keras_metadata`` or None, from structure alone."""
    if root.size == 0:
        return None
    top = _matches(root, _SAVED_MODEL)
    metas = [f for f in top or [] if f.number == 2]
    if metas:
        meta = root.child(metas[0])
        inner = _matches(meta, _META_GRAPH, 64)
        if inner:
            graphs = [f for f in inner if f.number == 2]
            if graphs and _looks_like_graph(meta.child(graphs[0]), 64):
                return "saved_model"
            if not graphs and any(f.number in (1, 7) for f in inner):
                return "saved_model"
    if _looks_like_graph(root):
        return "graph_def"
    top = _matches(root, _SAVED_METADATA)
    if top:
        first = _matches(root.child(top[0]), _METADATA_OBJECT, 16)
        if first and any(g.number == 5 and root.read_prefix(g, 1) == b"{" for g in first):
            return "keras_metadata"
    return None


def read_node_def(node: Message, scope: str, out: GraphSummary) -> None:
    """One standalone NodeDef (TFLite Flex ops embed them) into ``out``."""
    _read_node(node, scope, out)
