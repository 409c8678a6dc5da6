"""Translate an :class:`~modelsec.onnx.model.OnnxModel` into the format-neutral dataflow
graph of :mod:`modelsec.backdoor.graph`."""

from __future__ import annotations

from modelsec.backdoor.graph import Constant, DataflowGraph, DataflowModel, OpNode
from modelsec.onnx.model import (
    ATTR_FLOAT,
    ATTR_FLOATS,
    ATTR_INT,
    ATTR_INTS,
    Function,
    Graph,
    Node,
    OnnxModel,
    Tensor,
)
from modelsec.onnx.opsets import canonical_domain


def function_key(domain: str, name: str, overload: str = "") -> str:
    return f"{canonical_domain(domain)}::{name}::{overload}"


def _constant(t: Tensor) -> Constant:
    return Constant(values=t.values, shape=tuple(t.dims), name=t.name)


def _constant_of(node: Node) -> Constant | None:
    """The value a ``Constant`` / ``ConstantOfShape`` node produces, when known."""
    if node.op_type == "ConstantOfShape":
        attr = node.attribute("value")
        if attr is None:
            return Constant(values=(0.0,))  # the operator's default fill
        t = attr.tensor
        return Constant(values=t.values if t else None, name=node.label)
    for attr in node.attributes:
        if attr.ref_attr_name:
            return None  # a function attribute reference: known only per call
        if attr.name == "value" and attr.tensor is not None:
            c = _constant(attr.tensor)
            return Constant(c.values, c.shape, node.label)
        if attr.name == "value_float" and attr.f is not None and attr.type in (0, ATTR_FLOAT):
            return Constant((attr.f,), (), node.label)
        if attr.name == "value_int" and attr.i is not None and attr.type in (0, ATTR_INT):
            return Constant((float(attr.i),), (), node.label)
        if attr.name == "value_floats" and attr.type == ATTR_FLOATS:
            return Constant(tuple(attr.floats), (len(attr.floats),), node.label)
        if attr.name == "value_ints" and attr.type == ATTR_INTS:
            return Constant(tuple(float(i) for i in attr.ints), (len(attr.ints),), node.label)
    return Constant(name=node.label)


class _Converter:
    def __init__(self, model: OnnxModel) -> None:
        self.functions = {function_key(f.domain, f.name, f.overload) for f in model.functions}

    def node(self, node: Node, where: str) -> OpNode:
        domain = canonical_domain(node.domain)
        key = function_key(node.domain, node.op_type, node.overload)
        call = key if key in self.functions else None
        op = node.op_type if domain == "ai.onnx" and call is None else f"{domain}::{node.op_type}"
        subgraphs: dict[str, DataflowGraph] = {}
        ints: dict[str, int] = {}
        for attr in node.attributes:
            for i, g in enumerate(attr.graphs):
                role = attr.name if len(attr.graphs) == 1 else f"{attr.name}[{i}]"
                subgraphs[role] = self.graph(g)
            if attr.i is not None and attr.type in (0, ATTR_INT):
                ints[attr.name] = attr.i
        constant = _constant_of(node) if op in ("Constant", "ConstantOfShape") else None
        return OpNode(
            name=node.name,
            op=op,
            inputs=node.inputs,  # shared, not copied: big graphs have many nodes
            outputs=node.outputs,
            where=where,
            subgraphs=subgraphs,
            constant=constant,
            call=call,
            ints=ints,
            offset=node.offset,
        )

    def graph(self, g: Graph) -> DataflowGraph:
        constants = {t.name: _constant(t) for t in g.initializers if t.name}
        for t in g.sparse_initializers:
            if t.name:
                constants[t.name] = Constant(name=t.name)
        return DataflowGraph(
            name=g.name,
            where=g.where,
            inputs=[n for n in g.inputs if n not in constants],
            outputs=list(g.outputs),
            constants=constants,
            nodes=[self.node(n, g.where) for n in g.nodes],
        )

    def function(self, fn: Function) -> DataflowGraph:
        return DataflowGraph(
            name=fn.name,
            where=fn.where,
            inputs=list(fn.inputs),
            outputs=list(fn.outputs),
            nodes=[self.node(n, fn.where) for n in fn.nodes],
        )


def to_dataflow(model: OnnxModel) -> DataflowModel | None:
    """The model's main graph and functions, or None if it has no graph."""
    if model.graph is None:
        return None
    conv = _Converter(model)
    functions = {function_key(f.domain, f.name, f.overload): conv.function(f) for f in model.functions}
    return DataflowModel(main=conv.graph(model.graph), functions=functions)
