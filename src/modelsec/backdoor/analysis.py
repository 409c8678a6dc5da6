"""Find architectural backdoors: graph paths where a trigger in the input switches the output.

An architectural backdoor is wiring, not weights: the graph compares the input (or a
reduction of it: a checksum, a patch, one token) with an embedded constant, and when they
match, replaces or shifts the output with an embedded constant. Retraining does not remove
it and the weights look normal.

The analysis is an abstract interpretation of the dataflow, one pass in topological order.
Every value gets a :class:`Val` saying whether it depends on input data, on shapes only, or
on embedded constants only, and what is known about triggers and switches:

* **trigger**: ``Compare(data, constant)`` (``Equal``, ``Greater``, ... ) creates a boolean
  that is *gated*: it depends on the data only through the trigger;
* **switch**: a gated condition selects between a constant and a computed value
  (``Where``, ``If``, a ``Loop`` that may not run), or a 0/1 cast of it gates a computed
  value (``Mul``) and a constant is blended in (``c*K + (1-c)*f(x)``);
* **offset**: a gated constant is added to (or scales) a computed value;
* the switch's *effect* follows the dataflow as long as the value stays "constant when
  triggered": through ops whose other data operands carry the same effect (or are gated
  by the same trigger), and, degraded to an offset, through ``Add``/``Sub``/``Concat``.
  Mixing with unrelated data in any other op (``MatMul`` with the attention values,
  ``Mul`` with activations) ends it. An effect that reaches a graph output is reported.

Legitimate masking stays clean by construction or by two exclusions:

* *elementwise masks*: if the condition tests each element (no reduction or selection
  between the input and the comparison, or after it) and the constant switched in is a
  single value (``-inf``/``-1e9`` attention masks, ``0`` padding or ReLU-like masks), it is
  a mask, not a trigger;
* *clipping*: ``Where(x > K, K, x)`` switches in the threshold itself.

Attention masks with a reduced condition still stay clean because their effect ends at
``MatMul(softmax, V)``. Limits are documented in ``docs/formats/onnx.md``.

This module is the driver (one pass over the nodes, the data ops' transfer functions, the
report); the values are in :mod:`~modelsec.backdoor.lattice`, the ops with bodies in
:mod:`~modelsec.backdoor.control_flow`, the node order in :mod:`~modelsec.backdoor.order`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from modelsec.backdoor import control_flow
from modelsec.backdoor import ops as O
from modelsec.backdoor.graph import Constant, DataflowGraph, DataflowModel, OpNode
from modelsec.backdoor.lattice import (
    AUX,
    CONST_UNKNOWN,
    OFFSET,
    SWITCH,
    Effect,
    Scope,
    Switch,
    Trigger,
    Val,
    describe_fill,
    path_list,
)
from modelsec.backdoor.order import EvaluationOrder


@dataclass(frozen=True)
class BackdoorPath:
    """One switch whose effect reaches a graph output."""

    kind: str
    strength: str
    output: str
    switch_node: str
    where: str
    fill: str
    trigger_node: str
    trigger_op: str
    trigger_constant: str
    trigger_reduced: bool
    trigger_path: list[str]  # input -> ... -> comparison
    path: list[str]  # switch -> ... -> output
    offset: int | None = None  # of the switch op in the file


@dataclass
class BackdoorReport:
    """The backdoor paths found, and why the analysis stopped early if it did."""

    paths: list[BackdoorPath] = field(default_factory=list)
    incomplete: str | None = None


@dataclass(frozen=True)
class AnalysisLimits:
    """Bounds on the analysis: node evaluations in all, and depth of nested function inlining."""

    max_visits: int = 3_000_000  # node evaluations, inlined functions and bodies included
    max_call_depth: int = 8  # nested function inlining


class _Budget(Exception):
    pass


def _label(node: OpNode) -> str:
    return f"{node.name or '<unnamed>'} ({node.op})"


class Analyzer:
    def __init__(self, model: DataflowModel, limits: AnalysisLimits | None = None) -> None:
        self.model = model
        self.limits = limits or AnalysisLimits()
        self.triggers: list[Trigger] = []
        self.switches: list[Switch] = []
        self.visits = 0
        self._order = EvaluationOrder()
        self._calls: list[str] = []

    # -- entry point -------------------------------------------------------------------------

    def run(self) -> BackdoorReport:
        report = BackdoorReport()
        g = self.model.main
        scope = Scope()
        for name in g.inputs:
            scope.set(name, Val(data=True, src=(f"input {name!r}", None)))
        try:
            outs = self.run_graph(g, scope)
        except _Budget:
            report.incomplete = f"backdoor analysis stopped after {self.limits.max_visits} node evaluations"
            return report
        except RecursionError:
            report.incomplete = "backdoor analysis: graph nesting too deep"
            return report
        seen: set[int] = set()
        for name, val in zip(g.outputs, outs):
            for e in sorted(val.effects, key=lambda e: e.sid):
                if e.sid in seen:
                    continue
                seen.add(e.sid)
                sw = self.switches[e.sid]
                report.paths.append(
                    BackdoorPath(
                        kind=sw.kind,
                        strength=e.strength,
                        output=name,
                        switch_node=sw.node,
                        where=sw.where,
                        fill=sw.fill,
                        trigger_node=sw.trigger.node,
                        trigger_op=sw.trigger.op,
                        trigger_constant=sw.trigger.constant,
                        trigger_reduced=sw.trigger.reduced,
                        trigger_path=path_list(sw.trigger.source),
                        path=path_list(e.path) + [f"output {name!r}"],
                        offset=sw.offset,
                    )
                )
        return report

    # -- graphs ------------------------------------------------------------------------------

    def run_graph(self, g: DataflowGraph, scope: Scope) -> list[Val]:
        """Evaluate ``g`` in ``scope`` (inputs already set) and return its outputs."""
        for name, c in g.constants.items():
            scope.set(name, Val(const=c))
        for node in self._order.nodes(g):
            self.visits += 1
            if self.visits > self.limits.max_visits:
                raise _Budget()
            self.visit(node, scope, g)
        return [scope.get(name) for name in g.outputs]

    # -- nodes -------------------------------------------------------------------------------

    def visit(self, node: OpNode, scope: Scope, g: DataflowGraph) -> None:
        ins = [scope.get(n) if n else None for n in node.inputs]
        present = [v for v in ins if v is not None]
        label = _label(node)
        op = node.op
        if node.call is not None:
            outs = self.call(node, ins, label)
        elif op == "Constant":
            outs = [Val(const=node.constant or Constant())]
        elif op == "ConstantOfShape":
            shape = ins[0] if ins and ins[0] is not None else CONST_UNKNOWN
            outs = [Val(aux=shape.data or shape.aux, const=node.constant or Constant(values=(0.0,)))]
        elif op in O.SHAPE_ONLY:
            outs = [AUX for _ in node.outputs]
        elif op in O.COMPARE:
            outs = [self.compare(node, ins, label)]
        elif op == "Where" and len(ins) == 3 and len(present) == 3:
            outs = [self.where(node, present, label)]
        elif op == "If" and node.subgraphs:
            outs = control_flow.if_(self, node, ins, scope, label)
        elif op == "Loop" and "body" in node.subgraphs:
            outs = control_flow.loop(self, node, ins, scope, label)
        elif op == "Scan" and "body" in node.subgraphs:
            outs = control_flow.scan(self, node, ins, scope, label)
        elif op in ("Mul", "Add", "Sub") and len(ins) == 2 and len(present) == 2:
            outs = [self.arith(node, present, label)]
        else:
            outs = [self.generic(node, ins, label)] * max(len(node.outputs), 1)
            if node.subgraphs:
                outs = control_flow.other_subgraphs(self, node, ins, scope, outs)
        for name, val in zip(node.outputs, outs):
            scope.set(name, val)

    def generic(self, node: OpNode, ins: Sequence[Val | None], label: str) -> Val:
        op = node.op
        present = [v for v in ins if v is not None]
        if op in O.SOURCES and not any(v.data for v in present):
            return AUX
        data_ins = [v for v in present if v.data]
        data = bool(data_ins)
        first = ins[0] if ins and ins[0] is not None else None
        const: Constant | None = None
        if not data and first is not None and first.const is not None:
            if op in O.VALUE_PRESERVING:
                const = first.const
            elif op in O.UNIFORM_PRESERVING and first.const.uniform is not None:
                const = Constant(values=(first.const.uniform,), name=first.const.name)
            elif op == "Neg" and first.const.values is not None:
                const = Constant(tuple(-v for v in first.const.values), first.const.shape, first.const.name)
        # reduced: a summary or a chosen part of the data, through transparent ops
        reduced = False
        if data:
            if op in O.REDUCE:
                reduced = first is not None and first.data if op in O.SELECT_FIRST else True
            elif op in O.TRANSPARENT or op in O.LOGIC:
                reduced = any(v.reduced for v in data_ins)
            elif op in O.ARITHMETIC:
                reduced = len(data_ins) == 1 and data_ins[0].reduced
        gated = data and all(v.gated for v in data_ins)
        simple = op in O.TRANSPARENT or op in O.ARITHMETIC or op in O.LOGIC or op in O.INDICATOR_PRESERVING
        selector = gated and simple and all(v.selector for v in data_ins)
        gate_uniform = (
            selector
            and all(v.gate_uniform for v in data_ins)
            and all(v.uniform is not None for v in present if not v.data)
        )
        ind: frozenset[tuple[int, bool]] = frozenset()
        if first is not None and first.ind and len(data_ins) == 1 and data_ins[0] is first:
            if op in O.INDICATOR_PRESERVING:
                ind = first.ind
            elif op == "Not":
                ind = frozenset((t, not p) for t, p in first.ind)
        if op == "Sub" and len(ins) == 2 and ins[0] is not None and ins[1] is not None:
            if ins[0].uniform == 1.0 and ins[1].ind and not ins[0].data:
                ind = frozenset((t, not p) for t, p in ins[1].ind)
        src = next((v.src for v in data_ins if v.src is not None), None)
        return Val(
            data=data,
            aux=any(v.aux for v in present),
            const=const,
            reduced=reduced,
            trig=frozenset().union(*(v.trig for v in present)) if present else frozenset(),
            ind=ind,
            gated=gated,
            gate_uniform=gate_uniform,
            selector=selector,
            effects=self.propagate(op, present, label),
            src=(label, src) if src is not None else None,
        )

    def propagate(self, op: str, ins: Iterable[Val], label: str) -> frozenset[Effect]:
        """Effects that survive this op (see the module docstring)."""
        ins = list(ins)
        found: dict[int, Effect] = {}
        for v in ins:
            for e in v.effects:
                old = found.get(e.sid)
                if old is None or (old.strength == OFFSET and e.strength == SWITCH):
                    found[e.sid] = e
        if not found:
            return frozenset()
        out: list[Effect] = []
        for sid, e in found.items():
            tid = self.switches[sid].trigger.id
            breaks = any(
                v.data and not any(x.sid == sid for x in v.effects) and not (v.gated and tid in v.trig)
                for v in ins
            )
            if not breaks:
                out.append(Effect(sid, e.strength, (label, e.path)))
            elif op in O.STRUCTURAL or (op in O.ADDITIVE and not self.switches[sid].fill_zero):
                # K + f(x) when triggered: a shift by K (by 0 it is nothing: a gated-off
                # contribution, e.g. one expert of a mixture, summed with the others)
                out.append(Effect(sid, OFFSET, (label, e.path)))
        return frozenset(out)

    # -- triggers and switches ------------------------------------------------------------

    def compare(self, node: OpNode, ins: list[Val | None], label: str) -> Val:
        base = self.generic(node, ins, label)
        if len(ins) != 2:
            return base
        a, b = ins
        if a is None or b is None:
            return base
        if a.data and b.pure_const:
            data_side, const_side, const_name = a, b, node.inputs[1]
        elif b.data and a.pure_const:
            data_side, const_side, const_name = b, a, node.inputs[0]
        else:
            return base
        const = const_side.const or Constant(name=const_name)
        if not const.name:
            const = Constant(const.values, const.shape, const_name)
        trigger = Trigger(
            id=len(self.triggers),
            node=label,
            op=node.op,
            constant=const.describe(),
            constant_uniform=const.uniform,
            reduced=data_side.reduced,
            source=(label, data_side.src),
        )
        self.triggers.append(trigger)
        pol = node.op != "NotEqual"
        return Val(
            data=True,
            reduced=data_side.reduced,
            trig=base.trig | {trigger.id},
            ind=frozenset({(trigger.id, pol)}),
            gated=True,
            gate_uniform=True,
            selector=True,
            effects=base.effects,
            src=base.src,
        )

    def trigger_of(self, cond: Val) -> tuple[Trigger, bool | None]:
        if cond.ind:
            tid, pol = min(cond.ind)
            return self.triggers[tid], pol
        return self.triggers[min(cond.trig)], None

    def new_switch(
        self, kind: str, node: OpNode, label: str, trigger: Trigger, fill: str, fill_zero: bool = False
    ) -> Effect:
        sw = Switch(len(self.switches), kind, label, node.where, trigger, fill, fill_zero, node.offset)
        self.switches.append(sw)
        return Effect(sw.id, OFFSET if kind == "offset" else SWITCH, (label, None))

    def _benign(self, trigger: Trigger, cond: Val, fill: Val | None, fill_uniform: bool) -> bool:
        """Masks and clipping, not triggers (see module docstring)."""
        elementwise = not (cond.reduced or trigger.reduced)
        if elementwise and fill_uniform:
            return True
        if (
            fill is not None
            and trigger.op in O.ORDERING
            and fill.uniform is not None
            and trigger.constant_uniform is not None
            and fill.uniform == trigger.constant_uniform
        ):
            return True
        return False

    def where(self, node: OpNode, ins: list[Val], label: str) -> Val:
        cond, a, b = ins
        base = self.generic(node, ins, label)
        if not cond.trig or not cond.gated:
            # a condition computed from other data too (IsNaN of activations that an
            # attention mask once touched) is not the trigger deciding
            return base
        trigger, pol = self.trigger_of(cond)
        if not a.data and not b.data:
            # both branches constant: a value chosen by the trigger alone
            ind = base.ind
            if pol is not None and a.uniform is not None and b.uniform is not None:
                if (a.uniform, b.uniform) == (1.0, 0.0):
                    ind = frozenset({(trigger.id, pol)})
                elif (a.uniform, b.uniform) == (0.0, 1.0):
                    ind = frozenset({(trigger.id, not pol)})
            return Val(
                data=True,
                reduced=cond.reduced,
                trig=base.trig,
                ind=ind,
                gated=True,
                gate_uniform=cond.selector and a.uniform is not None and b.uniform is not None,
                selector=cond.selector,
                effects=base.effects,
                src=base.src,
            )
        if a.data == b.data:
            return base
        fill, computed = (a, b) if not a.data else (b, a)
        if self._benign(trigger, cond, fill, fill.uniform is not None):
            return base
        effect = self.new_switch("where", node, label, trigger, describe_fill(fill), fill.uniform == 0.0)
        return Val(
            data=True,
            trig=base.trig,
            effects=base.effects | {effect},
            src=base.src,
        )

    def arith(self, node: OpNode, ins: list[Val], label: str) -> Val:
        base = self.generic(node, ins, label)
        a, b = ins
        gated = [v for v in (a, b) if v.data and v.selector]
        plain = [v for v in (a, b) if v.data and not v.gated]
        if len(gated) != 1 or len(plain) != 1 or not gated[0].trig:
            return base
        g, d = gated[0], plain[0]
        trigger, _pol = self.trigger_of(g)
        elementwise = not (g.reduced or trigger.reduced)
        own = [e for e in d.effects if self.switches[e.sid].trigger.id == trigger.id and e.strength == SWITCH]
        if node.op == "Mul":
            if g.ind:
                if elementwise:
                    return base  # a 0/1 mask applied elementwise
                effect = self.new_switch(
                    "gate", node, label, trigger, "0 (the value is multiplied by the trigger)", True
                )
            else:
                if elementwise and g.gate_uniform:
                    return base
                effect = self.new_switch("offset", node, label, trigger, "a trigger-chosen scale")
            return Val(data=True, trig=base.trig, effects=base.effects | {effect}, src=base.src)
        # Add / Sub
        if own:
            # c*K + (1-c)*f(x): the gated part fills in what the gate zeroed out
            if elementwise and g.gate_uniform:
                return base
            effect = self.new_switch("blend", node, label, trigger, "a trigger-gated constant")
            kept = frozenset(e for e in base.effects if e.sid not in {o.sid for o in own})
            return Val(data=True, trig=base.trig, effects=kept | {effect}, src=base.src)
        if elementwise and g.gate_uniform:
            return base  # additive mask (-inf where masked, 0 elsewhere)
        effect = self.new_switch("offset", node, label, trigger, "a trigger-gated constant added")
        return Val(data=True, trig=base.trig, effects=base.effects | {effect}, src=base.src)

    # -- functions --------------------------------------------------------------------------

    def call(self, node: OpNode, ins: list[Val | None], label: str) -> list[Val]:
        key = node.call or ""
        fn = self.model.functions.get(key)
        if fn is None or key in self._calls or len(self._calls) >= self.limits.max_call_depth:
            # unknown, recursive or too deep: a generic op (switches inside are not seen)
            return [self.generic(node, ins, label)] * max(len(node.outputs), 1)
        self._calls.append(key)
        try:
            inner = Scope()
            for i, name in enumerate(fn.inputs):
                v = ins[i] if i < len(ins) else None
                inner.set(name, v if v is not None else CONST_UNKNOWN)
            outs = self.run_graph(fn, inner)
        finally:
            self._calls.pop()
        result = []
        for v in outs:
            effects = frozenset(Effect(e.sid, e.strength, (label, e.path)) for e in v.effects)
            src = (label, v.src) if v.src is not None else None
            result.append(
                Val(
                    v.data,
                    v.aux,
                    v.const,
                    v.reduced,
                    v.trig,
                    v.ind,
                    v.gated,
                    v.gate_uniform,
                    v.selector,
                    effects,
                    src,
                )
            )
        return result


def analyze(model: DataflowModel, limits: AnalysisLimits | None = None) -> BackdoorReport:
    """Find switches whose effect reaches an output of ``model.main``."""
    return Analyzer(model, limits).run()
