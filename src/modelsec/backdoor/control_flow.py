"""Control flow in the backdoor analysis: ``If``, ``Loop``, ``Scan`` and other ops with
bodies.

A body is evaluated once in a scope nested in the caller's. Where a trigger decides which
value comes out (the branch taken, whether a loop runs at all), a constant on one side and
a computed value on the other is a switch; otherwise the outputs are the :func:`join` of
everything that could come out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelsec.backdoor.graph import DataflowGraph, OpNode
from modelsec.backdoor.lattice import (
    AUX,
    CONST_UNKNOWN,
    DATA_UNKNOWN,
    Scope,
    Val,
    describe_fill,
    join,
)

if TYPE_CHECKING:  # the analyzer calls in here and is called back
    from modelsec.backdoor.analysis import Analyzer


def _run_body(analyzer: Analyzer, g: DataflowGraph, scope: Scope, inputs: list[Val]) -> list[Val]:
    inner = Scope(scope)
    for name, val in zip(g.inputs, inputs):
        inner.set(name, val)
    for name in g.inputs[len(inputs) :]:
        inner.set(name, DATA_UNKNOWN)
    return analyzer.run_graph(g, inner)


def _control_switch(
    analyzer: Analyzer,
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
    trigger, _pol = analyzer.trigger_of(cond)
    joined = join([fixed, computed, extra])
    if not fixed.data and computed.data:
        effect = analyzer.new_switch(kind, node, label, trigger, describe_fill(fixed), fixed.uniform == 0.0)
        return Val(
            data=True, trig=joined.trig | cond.trig, effects=joined.effects | {effect}, src=computed.src
        )
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


def if_(analyzer: Analyzer, node: OpNode, ins: list[Val | None], scope: Scope, label: str) -> list[Val]:
    cond = ins[0] if ins and ins[0] is not None else DATA_UNKNOWN
    then_g = node.subgraphs.get("then_branch")
    else_g = node.subgraphs.get("else_branch")
    then_outs = _run_body(analyzer, then_g, scope, []) if then_g else []
    else_outs = _run_body(analyzer, else_g, scope, []) if else_g else []
    outs: list[Val] = []
    for i in range(len(node.outputs)):
        tv = then_outs[i] if i < len(then_outs) else DATA_UNKNOWN
        ev = else_outs[i] if i < len(else_outs) else DATA_UNKNOWN
        triggered = bool(cond.trig) and cond.gated
        if triggered and tv.data != ev.data:
            fixed, computed = (tv, ev) if not tv.data else (ev, tv)
            outs.append(_control_switch(analyzer, "if", node, label, cond, fixed, computed, cond))
        elif triggered and not tv.data and not ev.data:
            outs.append(_control_switch(analyzer, "if", node, label, cond, tv, ev, cond))
        else:
            joined = join([tv, ev])
            if cond.data:
                joined = join([joined, Val(data=True, trig=cond.trig, gated=cond.gated)])
            outs.append(joined)
    return outs


def loop(analyzer: Analyzer, node: OpNode, ins: list[Val | None], scope: Scope, label: str) -> list[Val]:
    body = node.subgraphs["body"]
    trip = ins[0] if len(ins) > 0 and ins[0] is not None else CONST_UNKNOWN
    cond = ins[1] if len(ins) > 1 and ins[1] is not None else CONST_UNKNOWN
    carried = [v if v is not None else CONST_UNKNOWN for v in ins[2:]]
    body_outs = _run_body(analyzer, body, scope, [AUX, cond, *carried])
    control = join([trip, cond])
    outs: list[Val] = []
    for j in range(len(node.outputs)):
        produced = body_outs[1 + j] if 1 + j < len(body_outs) else DATA_UNKNOWN
        if j < len(carried):
            init = carried[j]
            if control.trig and control.gated and not init.data and produced.data:
                outs.append(_control_switch(analyzer, "loop", node, label, control, init, produced, control))
                continue
            val = join([init, produced])
        else:
            val = produced
        if control.data:
            val = join([val, Val(data=True, trig=control.trig)])
        outs.append(val)
    return outs


def scan(analyzer: Analyzer, node: OpNode, ins: list[Val | None], scope: Scope, label: str) -> list[Val]:
    body = node.subgraphs["body"]
    values = [v if v is not None else CONST_UNKNOWN for v in ins]
    m = node.ints.get("num_scan_inputs")
    if m is None or m > len(values):
        return [join([*values, *_run_body(analyzer, body, scope, values)])] * len(node.outputs)
    n = len(values) - m
    body_outs = _run_body(analyzer, body, scope, values)
    outs = []
    for j in range(len(node.outputs)):
        produced = body_outs[j] if j < len(body_outs) else DATA_UNKNOWN
        outs.append(join([values[j], produced]) if j < n else produced)
    return outs


def other_subgraphs(
    analyzer: Analyzer, node: OpNode, ins: list[Val | None], scope: Scope, outs: list[Val]
) -> list[Val]:
    """Bodies of ops we do not model (SequenceMap, custom ops): evaluated with every
    input joined, so switches inside them are still found and their effects kept."""
    joined = join([v for v in ins if v is not None])
    extra: list[Val] = []
    for sub in node.subgraphs.values():
        extra.extend(_run_body(analyzer, sub, scope, [joined] * len(sub.inputs)))
    if not extra:
        return outs
    return [join([o, *extra]) for o in outs]
