"""Which values the template's variables may hold: every binding site (``set``, ``for``,
``with``, macro parameters and their call sites, namespace attributes) joined per name, and
iterated to a fixpoint so that values built across several statements are followed
(``{% set a = '__cla' %}{% set b = a ~ 'ss__' %}``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeGuard

from jinja2 import nodes

from modelsec.templates import fold
from modelsec.templates.evaluator import ANY_ATTRIBUTE, Environment, Evaluator
from modelsec.templates.names import MUTATING_METHODS
from modelsec.templates.values import NOTHING, OBJ, TEXT, TOP, Val, elements, from_values

MAX_ROUNDS = 12

Thunk = Callable[[Evaluator], Val]


@dataclass(frozen=True)
class Site:
    """One place a variable is bound: its name (or ``ns.attr``) and how to evaluate its value."""

    key: str  # variable name, or "ns.attr"
    value: Thunk


def _evaluates(expr: nodes.Node) -> Thunk:
    """A site whose value is ``expr`` evaluated in the environment of the current round."""
    return lambda ev: ev.eval(expr)


def _constant(val: Val) -> Thunk:
    """A site whose value does not depend on the environment."""
    return lambda ev: val


def _iterated(expr: nodes.Node) -> Thunk:
    """What a ``for`` loop over ``expr`` binds: any element of its value."""
    return lambda ev: elements(ev.eval(expr))


def _element(value: Thunk, index: int, count: int) -> Thunk:
    """Element ``index`` of a ``count``-tuple destructured from ``value``."""
    return lambda ev: _unpack(value(ev), index, count)


def _unpack(val: Val, index: int, count: int) -> Val:
    """Element ``index`` of a ``count``-tuple destructured from ``val``."""
    parts = []
    for v in val.values:
        if isinstance(v, (tuple, str)) and len(v) == count:
            parts.append(v[index])
    rest = Val(num=val.num, data=val.data, text=val.text, obj=val.obj, seq=val.seq)
    out = from_values(parts)
    if rest != NOTHING:
        out = out.join(elements(rest))
    return out


def _targets(target: nodes.Node, value: Thunk, sites: list[Site]) -> None:
    if isinstance(target, nodes.Name):
        sites.append(Site(target.name, value))
    elif isinstance(target, nodes.NSRef):
        sites.append(Site(f"{target.name}.{target.attr}", value))
    elif isinstance(target, nodes.Tuple):
        count = len(target.items)
        for i, item in enumerate(target.items):
            _targets(item, _element(value, i, count), sites)


def _body_value(body: list[nodes.Node]) -> Thunk:
    """What ``{% set x %}...{% endset %}`` captures: the concatenated output."""
    outputs = [n for n in body if isinstance(n, nodes.Output)]
    exact = len(outputs) == len(body)
    parts = [child for out in outputs for child in out.nodes]

    def value(ev: Evaluator) -> Val:
        joined = fold.lift([ev.eval(p) for p in parts], fold.concat, TEXT) if parts else Val.of("")
        return joined if exact else joined.join(TEXT)

    return value


def _root_name(node: nodes.Node) -> tuple[str | None, str | None]:
    """The variable (and first attribute) a Getattr/Getitem chain starts from."""
    first_attr = None
    while isinstance(node, (nodes.Getattr, nodes.Getitem)):
        if isinstance(node, nodes.Getattr):
            first_attr = node.attr
        elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            first_attr = node.arg.value
        node = node.node
    return (node.name, first_attr) if isinstance(node, nodes.Name) else (None, None)


def _walk(tree: nodes.Node) -> list[nodes.Node]:
    out, stack = [], [tree]
    while stack:
        node = stack.pop()
        out.append(node)
        stack.extend(node.iter_child_nodes())
    return out


def collect(tree: nodes.Template) -> tuple[Environment, list[Site]]:
    env = Environment()
    all_nodes = _walk(tree)
    macros: dict[str, nodes.Macro] = {}
    for node in all_nodes:
        if isinstance(node, nodes.Macro):
            macros[node.name] = node
        elif isinstance(node, nodes.Block):
            env.blocks.add(node.name)
    env.macros = set(macros)
    sites: list[Site] = []

    for node in all_nodes:
        if isinstance(node, nodes.Assign):
            expr = node.node
            _targets(node.target, _evaluates(expr), sites)
            if isinstance(node.target, nodes.Name) and _is_namespace_call(expr):
                _namespace_sites(node.target.name, expr, sites)
        elif isinstance(node, nodes.AssignBlock):
            body = _body_value(node.body)
            flt = node.filter
            if flt is not None:

                def filtered(ev: Evaluator, body: Thunk = body, flt: nodes.Filter = flt) -> Val:
                    args, kwargs = ev._args(flt, 0)
                    return fold.apply_filter(flt.name, body(ev), args, kwargs)

                _targets(node.target, filtered, sites)
            else:
                _targets(node.target, body, sites)
        elif isinstance(node, nodes.For):
            _targets(node.target, _iterated(node.iter), sites)
        elif isinstance(node, nodes.With):
            for target, value in zip(node.targets, node.values):
                _targets(target, _evaluates(value), sites)
        elif isinstance(node, nodes.Macro):
            defaults_from = len(node.args) - len(node.defaults)
            for i, param in enumerate(node.args):
                if i >= defaults_from:
                    _targets(param, _evaluates(node.defaults[i - defaults_from]), sites)
                else:
                    sites.append(Site(param.name, _constant(NOTHING)))
        elif isinstance(node, nodes.CallBlock):
            for param in node.args:
                _targets(param, _constant(TOP), sites)
        elif isinstance(node, nodes.Import):
            sites.append(Site(node.target, _constant(OBJ)))
        elif isinstance(node, nodes.FromImport):
            for name in node.names:
                sites.append(Site(name[1] if isinstance(name, tuple) else name, _constant(OBJ)))
        elif isinstance(node, nodes.Call):
            _call_sites(node, macros, sites, env)
        elif isinstance(node, nodes.Name) and node.name in macros and node.ctx == "load":
            pass  # handled with its Call parent, or below as an escaping macro reference

    # A macro passed around as a value can be called from anywhere: its parameters are
    # whatever any caller passes.
    called = {id(n.node) for n in all_nodes if isinstance(n, nodes.Call)}
    for node in all_nodes:
        if (
            isinstance(node, nodes.Name)
            and node.name in macros
            and node.ctx == "load"
            and id(node) not in called
        ):
            for param in macros[node.name].args:
                sites.append(Site(param.name, _constant(TOP)))

    env.bound = {s.key for s in sites if "." not in s.key}
    return env, sites


def _is_namespace_call(expr: nodes.Node) -> TypeGuard[nodes.Call]:
    return (
        isinstance(expr, nodes.Call) and isinstance(expr.node, nodes.Name) and expr.node.name == "namespace"
    )


def _namespace_sites(name: str, call: nodes.Call, sites: list[Site]) -> None:
    for kw in call.kwargs:
        sites.append(Site(f"{name}.{kw.key}", _evaluates(kw.value)))
    if call.args or call.dyn_args is not None or call.dyn_kwargs is not None:
        # namespace({...}) / namespace(**d): attribute names not known statically
        sites.append(Site(f"{name}.{ANY_ATTRIBUTE}", _constant(TOP)))


def _call_sites(
    call: nodes.Call, macros: dict[str, nodes.Macro], sites: list[Site], env: Environment
) -> None:
    callee = call.node
    if isinstance(callee, nodes.Getattr) and callee.attr in MUTATING_METHODS:
        env.mutation = True
        root, first = _root_name(callee.node)
        if root is not None:
            sites.append(Site(root, _constant(TOP)))
            if first is not None:
                sites.append(Site(f"{root}.{first}", _constant(TOP)))
        return
    if not (isinstance(callee, nodes.Name) and callee.name in macros):
        return
    macro = macros[callee.name]
    params = [p.name for p in macro.args]
    for i, arg in enumerate(call.args):
        if i < len(params):
            sites.append(Site(params[i], _evaluates(arg)))
    for kw in call.kwargs:
        if kw.key in params:
            sites.append(Site(kw.key, _evaluates(kw.value)))
    if call.dyn_args is not None or call.dyn_kwargs is not None:
        for p in params:
            sites.append(Site(p, _constant(TOP)))


def solve(tree: nodes.Template) -> Environment:
    """The environment at fixpoint (values that do not settle widen to TOP)."""
    env, sites = collect(tree)
    for _ in range(MAX_ROUNDS):
        ev = Evaluator(env)
        new: dict[str, Val] = {}
        for site in sites:
            try:
                val = site.value(ev)
            except RecursionError:
                val = TOP
            new[site.key] = new.get(site.key, NOTHING).join(val)
        for key, old in env.values.items():
            new[key] = new.get(key, NOTHING).join(old)  # monotone
        if new == env.values:
            return env
        env.values = new
    ev = Evaluator(env)
    unsettled = {}
    for site in sites:
        val = site.value(ev)
        if env.values.get(site.key, NOTHING).join(val) != env.values.get(site.key):
            unsettled[site.key] = TOP
    env.values.update({k: env.values[k].join(v) for k, v in unsettled.items()})
    return env
