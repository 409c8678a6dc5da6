"""A small, format-neutral dataflow graph for the backdoor analysis.

Format adapters (ONNX today, TensorFlow later) translate their graphs into these records.
Operator names use the ONNX vocabulary (``Equal``, ``Where``, ``If``, ``ReduceSum``...) as
the canonical one: an adapter maps its framework's ops onto it (TF ``Select``/``SelectV2``
-> ``Where``, ``StatelessIf`` -> ``If``, ``Sum`` -> ``ReduceSum``...) and leaves ops without
a counterpart under any other name, which the analysis treats conservatively.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Constant:
    """What is known about an embedded constant: its elements when small, else at least
    whether all its elements are one value (``uniform``)."""

    values: tuple[float, ...] | None = None
    shape: tuple[int, ...] | None = None
    name: str = ""

    @property
    def uniform(self) -> float | None:
        if not self.values:
            return None
        first = self.values[0]
        if all(v == first or (v != v and first != first) for v in self.values):
            return first
        return None

    def describe(self, limit: int = 8) -> str:
        label = f"{self.name!r} " if self.name else ""
        if self.values is None:
            shape = f" shape {list(self.shape)}" if self.shape is not None else ""
            return f"{label}(values not decoded{shape})".strip()
        shown = ", ".join(_fmt(v) for v in self.values[:limit])
        more = f", ... ({len(self.values)} values)" if len(self.values) > limit else ""
        if len(self.values) == 1 and not self.shape:
            return f"{label}{shown}".strip()
        return f"{label}[{shown}{more}]".strip()


def _fmt(v: float) -> str:
    if v != v:
        return "nan"
    if v in (float("inf"), float("-inf")):
        return "inf" if v > 0 else "-inf"
    return str(int(v)) if v == int(v) and abs(v) < 1e15 else f"{v:.6g}"


@dataclass(slots=True)
class OpNode:
    """One operation. ``inputs``/``outputs`` are value names ("" = omitted optional
    input). ``subgraphs`` holds control-flow bodies by role (``then_branch``,
    ``else_branch``, ``body``); ``constant`` the value a ``Constant``/``ConstantOfShape``
    op produces; ``call`` names a :attr:`DataflowModel.functions` entry the op invokes."""

    name: str
    op: str
    inputs: list[str]
    outputs: list[str]
    where: str = ""
    subgraphs: dict[str, DataflowGraph] = field(default_factory=dict)
    constant: Constant | None = None
    call: str | None = None
    ints: dict[str, int] = field(default_factory=dict)  # small integer attributes
    offset: int | None = None  # where the op is defined in the file, for reports


@dataclass(slots=True)
class DataflowGraph:
    """A graph or subgraph. ``inputs`` are the values fed from outside (model inputs, or a
    body's formal parameters); names not defined inside a subgraph refer to the enclosing
    graph's values. ``constants`` are embedded tensors (initializers)."""

    name: str
    where: str
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    constants: dict[str, Constant] = field(default_factory=dict)
    nodes: list[OpNode] = field(default_factory=list)


@dataclass(slots=True)
class DataflowModel:
    """A model to analyse: its main graph and the functions its ops may call, by name."""

    main: DataflowGraph
    functions: dict[str, DataflowGraph] = field(default_factory=dict)
