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
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from modelsec.backdoor import ops as O
from modelsec.backdoor.graph import Constant, DataflowGraph, DataflowModel, OpNode

# A path is a cons list: (label, rest) ... None. Values share tails, so keeping a path per
# value costs one tuple.
Path = tuple[str, "Path"] | None

SWITCH = "switch"  # output becomes a constant when triggered
OFFSET = "offset"  # output is shifted or scaled by a constant when triggered


@dataclass(frozen=True, slots=True)
class Effect:
    sid: int
    strength: str
    path: Path = field(compare=False, hash=False, default=None)


@dataclass(frozen=True, slots=True)
class Val:
    data: bool = False  # depends on input element values
    aux: bool = False  # depends on shapes/randomness, not on embedded constants only
    const: Constant | None = None  # what is known of a non-data value
    reduced: bool = False  # a reduction/selection of data, through transparent ops
    trig: frozenset[int] = frozenset()  # triggers this value depends on
    ind: frozenset[tuple[int, bool]] = frozenset()  # is the indicator "trigger == pol"
    gated: bool = False  # data-dependent only through triggers
    gate_uniform: bool = False  # gated, and one uniform value per trigger outcome
    # gated, and a mere selection between constants by the trigger's boolean (casts,
    # logic, Where(c, K1, K2), c*K): the values that can be switched or blended in. A
    # value computed from a mask (CumSum position ids, an embedding lookup) is gated but
    # is not a constant being switched in.
    selector: bool = False
    effects: frozenset[Effect] = frozenset()
    src: Path = field(default=None, compare=False, hash=False)  # input -> here

    @property
    def pure_const(self) -> bool:
        return not self.data and not self.aux

    @property
    def uniform(self) -> float | None:
        return self.const.uniform if self.const is not None and not self.data else None


DATA_UNKNOWN = Val(data=True)
CONST_UNKNOWN = Val()
AUX = Val(aux=True)


@dataclass(frozen=True)
class Trigger:
    id: int
    node: str
    op: str
    constant: str
    constant_uniform: float | None
    reduced: bool
    source: Path


@dataclass(frozen=True)
class Switch:
    id: int
    kind: str  # where | if | loop | gate | blend | offset
    node: str
    where: str
    trigger: Trigger
    fill: str
    fill_zero: bool = False  # what is switched in is 0: adding it to other data is no-op
    offset: int | None = None


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
    paths: list[BackdoorPath] = field(default_factory=list)
    incomplete: str | None = None


@dataclass(frozen=True)
class AnalysisLimits:
    max_visits: int = 3_000_000  # node evaluations, inlined functions and bodies included
    max_call_depth: int = 8  # nested function inlining


class _Budget(Exception):
    pass


class Scope:
    __slots__ = ("values", "parent")

    def __init__(self, parent: "Scope | None" = None) -> None:
        self.values: dict[str, Val] = {}
        self.parent = parent

    def get(self, name: str) -> Val:
        scope: Scope | None = self
        while scope is not None:
            found = scope.values.get(name)
            if found is not None:
                return found
            scope = scope.parent
        return DATA_UNKNOWN  # undefined: assume it is data (computed, not a constant)

    def set(self, name: str, value: Val) -> None:
        if name:
            self.values[name] = value


def path_list(path: Path) -> list[str]:
    out: list[str] = []
    while path is not None:
        out.append(path[0])
        path = path[1]
    out.reverse()
    return out


def _label(node: OpNode) -> str:
    return f"{node.name or '<unnamed>'} ({node.op})"


class Analyzer:
    def __init__(self, model: DataflowModel, limits: AnalysisLimits | None = None) -> None:
        self.model = model
        self.limits = limits or AnalysisLimits()
        self.triggers: list[Trigger] = []
        self.switches: list[Switch] = []
        self.visits = 0
        self._free: dict[int, frozenset[str]] = {}
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
            report.incomplete = (
                f"backdoor analysis stopped after {self.limits.max_visits} node evaluations"
            )
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
        for node in self._order(g):
            self.visits += 1
            if self.visits > self.limits.max_visits:
                raise _Budget()
            self.visit(node, scope, g)
        return [scope.get(name) for name in g.outputs]

    def free_names(self, g: DataflowGraph) -> frozenset[str]:
        """Names a graph reads from its enclosing scopes (for ordering outer nodes)."""
        key = id(g)
        cached = self._free.get(key)
        if cached is not None:
            return cached
        defined = set(g.inputs) | set(g.constants)
        used: set[str] = set()
        for node in g.nodes:
            used.update(n for n in node.inputs if n)
            for sub in node.subgraphs.values():
                used.update(self.free_names(sub))
            defined.update(node.outputs)
        result = frozenset(used - defined)
        self._free[key] = result
        return result

    def _order(self, g: DataflowGraph) -> list[OpNode]:
        """Topological order (runtimes sort nodes themselves, so file order proves
        nothing); nodes on a cycle, which no runtime would accept, come last."""
        producer: dict[str, int] = {}
        for i, node in enumerate(g.nodes):
            for out in node.outputs:
                if out:
                    producer.setdefault(out, i)
        deps: list[set[int]] = []
        users: dict[int, list[int]] = {}
        for i, node in enumerate(g.nodes):
            needs = set(n for n in node.inputs if n)
            for sub in node.subgraphs.values():
                needs |= self.free_names(sub)
            d = {producer[n] for n in needs if n in producer and producer[n] != i}
            deps.append(d)
            for j in d:
                users.setdefault(j, []).append(i)
        remaining = [len(d) for d in deps]
        ready = [i for i, r in enumerate(remaining) if r == 0]
        order: list[int] = []
        while ready:
            i = ready.pop()
            order.append(i)
            for u in users.get(i, ()):
                remaining[u] -= 1
                if remaining[u] == 0:
                    ready.append(u)
        if len(order) < len(g.nodes):
            placed = set(order)
            order.extend(i for i in range(len(g.nodes)) if i not in placed)
        return [g.nodes[i] for i in order]

    # -- nodes -------------------------------------------------------------------------------

    def visit(self, node: OpNode, scope: Scope, g: DataflowGraph) -> None:
        ins = [scope.get(n) if n else None for n in node.inputs]
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
        elif op == "Where" and len(ins) == 3 and all(v is not None for v in ins):
            outs = [self.where(node, ins, label)]  # type: ignore[arg-type]
        elif op == "If" and node.subgraphs:
            outs = self.if_(node, ins, scope, label)
        elif op == "Loop" and "body" in node.subgraphs:
            outs = self.loop(node, ins, scope, label)
        elif op == "Scan" and "body" in node.subgraphs:
            outs = self.scan(node, ins, scope, label)
        elif op in ("Mul", "Add", "Sub") and len(ins) == 2 and None not in ins:
            outs = [self.arith(node, ins, label)]  # type: ignore[arg-type]
        else:
            outs = [self.generic(node, ins, label)] * max(len(node.outputs), 1)
            if node.subgraphs:
                outs = self.other_subgraphs(node, ins, scope, outs)
        for name, val in zip(node.outputs, outs):
            scope.set(name, val)

    def generic(self, node: OpNode, ins: list[Val | None], label: str) -> Val:
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
        if len(ins) != 2 or ins[0] is None or ins[1] is None:
            return base
        a, b = ins
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

    def _trigger_of(self, cond: Val) -> tuple[Trigger, bool | None]:
        if cond.ind:
            tid, pol = min(cond.ind)
            return self.triggers[tid], pol
        return self.triggers[min(cond.trig)], None

    def _new_switch(
        self, kind: str, node: OpNode, label: str, trigger: Trigger, fill: str, fill_zero: bool = False
    ) -> Effect:
        sw = Switch(len(self.switches), kind, label, node.where, trigger, fill, fill_zero, node.offset)
        self.switches.append(sw)
        return Effect(sw.id, OFFSET if kind == "offset" else SWITCH, (label, None))

    @staticmethod
    def _describe_fill(v: Val) -> str:
        if v.const is not None:
            return v.const.describe()
        return "a constant computed in the graph"

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
        trigger, pol = self._trigger_of(cond)
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
        effect = self._new_switch(
            "where", node, label, trigger, self._describe_fill(fill), fill.uniform == 0.0
        )
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
        trigger, _pol = self._trigger_of(g)
        elementwise = not (g.reduced or trigger.reduced)
        own = [e for e in d.effects if self.switches[e.sid].trigger.id == trigger.id and e.strength == SWITCH]
        if node.op == "Mul":
            if g.ind:
                if elementwise:
                    return base  # a 0/1 mask applied elementwise
                effect = self._new_switch(
                    "gate", node, label, trigger, "0 (the value is multiplied by the trigger)", True
                )
            else:
                if elementwise and g.gate_uniform:
                    return base
                effect = self._new_switch("offset", node, label, trigger, "a trigger-chosen scale")
            return Val(data=True, trig=base.trig, effects=base.effects | {effect}, src=base.src)
        # Add / Sub
        if own:
            # c*K + (1-c)*f(x): the gated part fills in what the gate zeroed out
            if elementwise and g.gate_uniform:
                return base
            effect = self._new_switch("blend", node, label, trigger, "a trigger-gated constant")
            kept = frozenset(e for e in base.effects if e.sid not in {o.sid for o in own})
            return Val(data=True, trig=base.trig, effects=kept | {effect}, src=base.src)
        if elementwise and g.gate_uniform:
            return base  # additive mask (-inf where masked, 0 elsewhere)
        effect = self._new_switch("offset", node, label, trigger, "a trigger-gated constant added")
        return Val(data=True, trig=base.trig, effects=base.effects | {effect}, src=base.src)

    # -- control flow -----------------------------------------------------------------------

    @staticmethod
    def join(vals: Iterable[Val]) -> Val:
        vals = list(vals)
        if not vals:
            return DATA_UNKNOWN
        data_vals = [v for v in vals if v.data]
        consts = {id(v.const) for v in vals}
        return Val(
            data=bool(data_vals),
            aux=any(v.aux for v in vals),
            const=vals[0].const if not data_vals and len(consts) == 1 else None,
            trig=frozenset().union(*(v.trig for v in vals)),
            gated=bool(data_vals) and all(v.gated for v in data_vals),
            selector=bool(data_vals) and all(v.selector for v in data_vals),
            effects=frozenset().union(*(v.effects for v in vals)),
            src=next((v.src for v in data_vals if v.src is not None), None),
        )

    def _run_body(self, g: DataflowGraph, scope: Scope, inputs: list[Val]) -> list[Val]:
        inner = Scope(scope)
        for name, val in zip(g.inputs, inputs):
            inner.set(name, val)
        for name in g.inputs[len(inputs) :]:
            inner.set(name, DATA_UNKNOWN)
        return self.run_graph(g, inner)

    def _control_switch(
        self,
        kind: str,
        node: OpNode,
        label: str,
        cond: Val,
        fixed: Val,
        computed: Val,
        extra: Val,
    ) -> Val:
        """``fixed`` is what the output is when the trigger fires (a branch, the initial
        loop state), ``computed`` what it is otherwise."""
        trigger, _pol = self._trigger_of(cond)
        joined = self.join([fixed, computed, extra])
        if not fixed.data and computed.data:
            effect = self._new_switch(
                kind, node, label, trigger, self._describe_fill(fixed), fixed.uniform == 0.0
            )
            return Val(data=True, trig=joined.trig | cond.trig, effects=joined.effects | {effect}, src=computed.src)
        if not fixed.data and not computed.data:
            return Val(
                data=True,
                reduced=True,
                trig=joined.trig | cond.trig,
                gated=True,
                gate_uniform=cond.selector and fixed.uniform is not None and computed.uniform is not None,
                selector=cond.selector,
                effects=joined.effects,
            )
        return Val(data=True, trig=joined.trig | cond.trig, effects=joined.effects, src=joined.src)

    def if_(self, node: OpNode, ins: list[Val | None], scope: Scope, label: str) -> list[Val]:
        cond = ins[0] if ins and ins[0] is not None else DATA_UNKNOWN
        then_g = node.subgraphs.get("then_branch")
        else_g = node.subgraphs.get("else_branch")
        then_outs = self._run_body(then_g, scope, []) if then_g else []
        else_outs = self._run_body(else_g, scope, []) if else_g else []
        outs: list[Val] = []
        for i in range(len(node.outputs)):
            tv = then_outs[i] if i < len(then_outs) else DATA_UNKNOWN
            ev = else_outs[i] if i < len(else_outs) else DATA_UNKNOWN
            triggered = bool(cond.trig) and cond.gated
            if triggered and tv.data != ev.data:
                fixed, computed = (tv, ev) if not tv.data else (ev, tv)
                outs.append(self._control_switch("if", node, label, cond, fixed, computed, cond))
            elif triggered and not tv.data and not ev.data:
                outs.append(self._control_switch("if", node, label, cond, tv, ev, cond))
            else:
                joined = self.join([tv, ev])
                if cond.data:
                    joined = self.join([joined, Val(data=True, trig=cond.trig, gated=cond.gated)])
                outs.append(joined)
        return outs

    def loop(self, node: OpNode, ins: list[Val | None], scope: Scope, label: str) -> list[Val]:
        body = node.subgraphs["body"]
        trip = ins[0] if len(ins) > 0 and ins[0] is not None else CONST_UNKNOWN
        cond = ins[1] if len(ins) > 1 and ins[1] is not None else CONST_UNKNOWN
        carried = [v if v is not None else CONST_UNKNOWN for v in ins[2:]]
        body_outs = self._run_body(body, scope, [AUX, cond, *carried])
        control = self.join([trip, cond])
        outs: list[Val] = []
        for j in range(len(node.outputs)):
            produced = body_outs[1 + j] if 1 + j < len(body_outs) else DATA_UNKNOWN
            if j < len(carried):
                init = carried[j]
                if control.trig and control.gated and not init.data and produced.data:
                    outs.append(self._control_switch("loop", node, label, control, init, produced, control))
                    continue
                val = self.join([init, produced])
            else:
                val = produced
            if control.data:
                val = self.join([val, Val(data=True, trig=control.trig)])
            outs.append(val)
        return outs

    def scan(self, node: OpNode, ins: list[Val | None], scope: Scope, label: str) -> list[Val]:
        body = node.subgraphs["body"]
        values = [v if v is not None else CONST_UNKNOWN for v in ins]
        m = node.ints.get("num_scan_inputs")
        if m is None or m > len(values):
            return [self.join([*values, *self._run_body(body, scope, values)])] * len(node.outputs)
        n = len(values) - m
        body_outs = self._run_body(body, scope, values)
        outs = []
        for j in range(len(node.outputs)):
            produced = body_outs[j] if j < len(body_outs) else DATA_UNKNOWN
            outs.append(self.join([values[j], produced]) if j < n else produced)
        return outs

    def other_subgraphs(
        self, node: OpNode, ins: list[Val | None], scope: Scope, outs: list[Val]
    ) -> list[Val]:
        """Bodies of ops we do not model (SequenceMap, custom ops): evaluated with every
        input joined, so switches inside them are still found and their effects kept."""
        joined = self.join([v for v in ins if v is not None])
        extra: list[Val] = []
        for sub in node.subgraphs.values():
            extra.extend(self._run_body(sub, scope, [joined] * len(sub.inputs)))
        if not extra:
            return outs
        return [self.join([o, *extra]) for o in outs]

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
                    v.data, v.aux, v.const, v.reduced, v.trig, v.ind, v.gated, v.gate_uniform,
                    v.selector, effects, src,
                )
            )
        return result


def analyze(model: DataflowModel, limits: AnalysisLimits | None = None) -> BackdoorReport:
    """Find switches whose effect reaches an output of ``model.main``."""
    return Analyzer(model, limits).run()
