"""What the ONNX reader extracts from a ``ModelProto``: structure and metadata, never weights.

These are plain records; :mod:`modelsec.onnx.reader` fills them from protobuf bytes and the
checks read them. Tensor payloads are only *located* (offset/length); small constant tensors
(a scalar threshold, a short vector) also carry their decoded values because the backdoor
analysis needs to know what a comparison is compared with.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

# AttributeProto.AttributeType values used by the checks.
ATTR_FLOAT = 1
ATTR_INT = 2
ATTR_STRING = 3
ATTR_TENSOR = 4
ATTR_GRAPH = 5
ATTR_FLOATS = 6
ATTR_INTS = 7
ATTR_STRINGS = 8
ATTR_TENSORS = 9
ATTR_GRAPHS = 10
ATTR_SPARSE_TENSOR = 11
ATTR_SPARSE_TENSORS = 12

DATA_LOCATION_EXTERNAL = 1


@dataclass(slots=True)
class ExternalData:
    """A tensor's ``external_data`` key/value entries (``location``, ``offset``, ...)."""

    entries: list[tuple[str, str]] = field(default_factory=list)
    # the last "location" among the entries past the reader's cap (they are not kept, but
    # the runtime reads this one)
    late_location: str | None = None

    @property
    def location(self) -> str | None:
        # Like onnx's loader, the last "location" entry wins.
        if self.late_location is not None:
            return self.late_location
        found = None
        for key, value in self.entries:
            if key == "location":
                found = value
        return found


@dataclass(slots=True)
class Tensor:
    """A TensorProto's metadata. ``values`` holds the decoded elements of small numeric
    tensors only (None when too large, external, or of a type we do not decode)."""

    name: str = ""
    data_type: int = 0
    dims: list[int] = field(default_factory=list)
    data_location: int = 0
    external: ExternalData | None = None
    values: tuple[float, ...] | None = None
    offset: int = 0  # where the TensorProto starts in the file

    @property
    def is_external(self) -> bool:
        return self.data_location == DATA_LOCATION_EXTERNAL


@dataclass(slots=True)
class Attribute:
    """An AttributeProto: name, type, and its value (in the fields of that type) or what it refers to."""

    name: str = ""
    type: int = 0
    f: float | None = None
    i: int | None = None
    s: bytes | None = None
    floats: list[float] = field(default_factory=list)
    ints: list[int] = field(default_factory=list)
    strings: list[bytes] = field(default_factory=list)
    tensors: list[Tensor] = field(default_factory=list)  # t, tensors, sparse values/indices
    graphs: list[Graph] = field(default_factory=list)  # g and graphs
    ref_attr_name: str | None = None

    @property
    def tensor(self) -> Tensor | None:
        return self.tensors[0] if self.tensors else None


@dataclass(slots=True)
class Node:
    """A NodeProto: one operator call (domain, op, overload) with its inputs, outputs and attributes."""

    name: str = ""
    op_type: str = ""
    domain: str = ""
    overload: str = ""
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    attributes: list[Attribute] = field(default_factory=list)
    offset: int = 0

    def attribute(self, name: str) -> Attribute | None:
        found = None
        for attr in self.attributes:
            if attr.name == name:
                found = attr
        return found

    @property
    def label(self) -> str:
        """How reports name the node: its name, else its op and offset."""
        return self.name or f"<{self.op_type or '?'}@{self.offset}>"


@dataclass(slots=True)
class Graph:
    """A GraphProto. ``where`` says where it sits in the model, for reports."""

    name: str = ""
    where: str = "graph"
    nodes: list[Node] = field(default_factory=list)
    initializers: list[Tensor] = field(default_factory=list)
    sparse_initializers: list[Tensor] = field(default_factory=list)  # values tensors
    sparse_indices: list[Tensor] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)


@dataclass(slots=True)
class OpsetImport:
    """An OperatorSetIdProto: a domain and the version of its operator set that is imported."""

    domain: str
    version: int


@dataclass(slots=True)
class Function:
    """A model-local FunctionProto: callable as an operator ``(domain, name[, overload])``."""

    name: str = ""
    domain: str = ""
    overload: str = ""
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    attribute_names: list[str] = field(default_factory=list)
    attribute_defaults: list[Attribute] = field(default_factory=list)
    nodes: list[Node] = field(default_factory=list)
    opset_imports: list[OpsetImport] = field(default_factory=list)
    offset: int = 0

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.domain, self.name, self.overload)

    @property
    def where(self) -> str:
        return f"function {self.domain + '.' if self.domain else ''}{self.name}"


@dataclass(slots=True)
class OnnxModel:
    """A ModelProto: header metadata, opset imports, graphs, functions, and why it was not read whole."""

    ir_version: int | None = None
    producer_name: str = ""
    producer_version: str = ""
    domain: str = ""
    model_version: int | None = None
    opset_imports: list[OpsetImport] = field(default_factory=list)
    graph: Graph | None = None
    functions: list[Function] = field(default_factory=list)
    training_graphs: list[Graph] = field(default_factory=list)
    # Why the model could not be read completely (malformed bytes, a limit). What was read
    # before the problem is kept and checked.
    errors: list[str] = field(default_factory=list)
    malformed: bool = False

    def all_graphs(self) -> list[Graph]:
        """Every graph reachable in the model (main, training, and all nested
        subgraphs of nodes in graphs and functions), outermost first."""
        out: list[Graph] = []
        stack: deque[Graph] = deque()
        if self.graph is not None:
            stack.append(self.graph)
        stack.extend(self.training_graphs)
        for fn in self.functions:
            for node in fn.nodes:
                stack.extend(g for a in node.attributes for g in a.graphs)
            stack.extend(g for a in fn.attribute_defaults for g in a.graphs)
        while stack:
            g = stack.popleft()
            out.append(g)
            for node in g.nodes:
                stack.extend(sub for a in node.attributes for sub in a.graphs)
        return out
