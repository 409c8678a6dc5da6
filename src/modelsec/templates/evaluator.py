"""Abstract evaluation of Jinja expressions: what each expression may evaluate to.

The evaluator never touches a Python object: it maps AST nodes to :class:`~.values.Val`
descriptions, folding constants through :mod:`.fold`. Variables come from a flow- and
scope-insensitive environment (every assignment to a name anywhere in the template is joined
into its value), computed to a fixpoint by :mod:`.bindings`. Insensitivity only ever makes a
value *less* exact, so names it cannot prove harmless are reported, never missed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from jinja2 import nodes

from modelsec.templates import fold
from modelsec.templates.names import JINJA_GADGETS
from modelsec.templates.values import (
    BOOL,
    DATA,
    NOTHING,
    NUM,
    OBJ,
    TEXT,
    TOP,
    Val,
    elements,
    from_values,
    join_all,
    only_data,
)

MAX_DEPTH = 150
# Attributes that exist on constants of each type (a str has its methods, nothing else).
_CONST_ATTRIBUTES: dict[type, frozenset[str]] = {
    t: frozenset(dir(t)) for t in (str, int, float, bool, tuple, type(None))
}
LOOP_NUMBERS = frozenset({"index", "index0", "revindex", "revindex0", "length", "depth", "depth0"})
LOOP_FLAGS = frozenset({"first", "last", "changed"})
ANY_ATTRIBUTE = "*"  # namespace attributes set from a dict or **kwargs


@dataclass
class Environment:
    """What the template binds: variable values and the names that have definitions."""

    values: dict[str, Val] = field(default_factory=dict)  # name or "ns.attr" -> value
    bound: set[str] = field(default_factory=set)  # names assigned anywhere in the template
    macros: set[str] = field(default_factory=set)
    blocks: set[str] = field(default_factory=set)
    mutation: bool = False  # the template mutates a list or dict in place

    def is_free(self, name: str) -> bool:
        return name not in self.bound and name not in self.macros


def may_str(v: Val) -> bool:
    return bool(v.strings) or v.text or v.data or v.obj


def may_num(v: Val) -> bool:
    return any(isinstance(x, (int, float)) for x in v.values) or v.num or v.data or v.obj


def may_seq(v: Val) -> bool:
    return any(isinstance(x, tuple) for x in v.values) or v.seq is not None or v.data or v.obj


class Evaluator:
    def __init__(self, env: Environment, memo: bool = False) -> None:
        self.env = env
        self._memo: dict[int, Val] | None = {} if memo else None

    # --- variables ------------------------------------------------------------------------
    def variable(self, name: str) -> Val:
        env = self.env
        if name in env.bound:
            # A name assigned somewhere may still be unset where it is read, and then comes
            # from the caller's context.
            val = env.values.get(name, NOTHING).join(DATA)
        elif name in env.macros:
            val = OBJ
        elif name in JINJA_GADGETS or name in ("self", "caller", "varargs", "kwargs", "loop"):
            val = OBJ if name not in ("varargs", "kwargs") else TOP
        else:
            val = DATA  # messages, tools, bos_token ...: the caller's data
        return self._mutable(val)

    def _mutable(self, val: Val) -> Val:
        if self.env.mutation and (
            val.seq is not None or val.obj or any(isinstance(v, tuple) for v in val.values)
        ):
            return val.join(TOP)
        return val

    def namespace_attr(self, name: str, attr: str) -> Val | None:
        values = self.env.values
        key, wild = f"{name}.{attr}", f"{name}.{ANY_ATTRIBUTE}"
        if key not in values and wild not in values:
            return None
        return self._mutable(values.get(key, NOTHING).join(values.get(wild, NOTHING)))

    # --- expressions ----------------------------------------------------------------------
    def eval(self, node: nodes.Node | None, depth: int = 0) -> Val:
        if node is None:
            return Val.of(None)
        if depth > MAX_DEPTH:
            return TOP
        if self._memo is not None:
            cached = self._memo.get(id(node))
            if cached is not None:
                return cached
        try:
            val = self._eval(node, depth + 1)
        except RecursionError:
            val = TOP
        if self._memo is not None:
            self._memo[id(node)] = val
        return val

    def _eval(self, node: nodes.Node, d: int) -> Val:
        ev = self.eval
        if isinstance(node, nodes.Const):
            return Val.of(node.value)
        if isinstance(node, nodes.TemplateData):
            return Val.of(node.data)
        if isinstance(node, nodes.Name):
            return self.variable(node.name)
        if isinstance(node, (nodes.MarkSafe, nodes.MarkSafeIfAutoescape)):
            return ev(node.expr, d)
        if isinstance(node, (nodes.List, nodes.Tuple)):
            return self._sequence([ev(i, d) for i in node.items])
        if isinstance(node, nodes.Dict):
            parts = [ev(p.key, d).join(ev(p.value, d)) for p in node.items]
            return Val(seq=join_all(parts))
        if isinstance(node, nodes.Getattr):
            return self._getattr(node, d)
        if isinstance(node, nodes.Getitem):
            return self._getitem(node, d)
        if isinstance(node, nodes.Concat):
            parts = [ev(n, d) for n in node.nodes]
            # data ~ data is still only data; a constant or computed part makes it computed
            pure = all(only_data(p) and not p.consts for p in parts)
            return fold.lift(parts, fold.concat, DATA if pure else TEXT)
        if isinstance(node, nodes.Add):
            return self._add(ev(node.left, d), ev(node.right, d))
        if isinstance(node, nodes.Mul):
            left, right = ev(node.left, d), ev(node.right, d)
            fallback = NOTHING
            if may_num(left) and may_num(right):
                fallback = fallback.join(NUM)
            if may_str(left) or may_str(right):
                fallback = fallback.join(TEXT)
            if may_seq(left) or may_seq(right):
                fallback = fallback.join(Val(seq=elements(left).join(elements(right))))
            return fold.lift([left, right], fold.mul, fallback)
        if isinstance(node, nodes.Mod):
            left, right = ev(node.left, d), ev(node.right, d)
            fallback = TEXT if may_str(left) else NOTHING
            if may_num(left):
                fallback = fallback.join(NUM)
            return fold.lift([left, right], fold.modulo, fallback)
        if isinstance(node, nodes.Pow):
            return fold.lift([ev(node.left, d), ev(node.right, d)], fold.pow_, NUM)
        if isinstance(node, (nodes.Sub, nodes.Div, nodes.FloorDiv)):
            op = {nodes.Sub: "-", nodes.Div: "/", nodes.FloorDiv: "//"}[type(node)]
            return fold.lift([ev(node.left, d), ev(node.right, d)], fold.arith(op), NUM)
        if isinstance(node, nodes.Neg):
            return fold.lift(
                [ev(node.node, d)], lambda v: -v if isinstance(v, (int, float)) else fold._raise(), NUM
            )
        if isinstance(node, nodes.Pos):
            return fold.lift(
                [ev(node.node, d)], lambda v: +v if isinstance(v, (int, float)) else fold._raise(), NUM
            )
        if isinstance(node, (nodes.Not, nodes.Compare, nodes.Test)):
            return BOOL
        if isinstance(node, (nodes.And, nodes.Or)):
            return ev(node.left, d).join(ev(node.right, d))
        if isinstance(node, nodes.CondExpr):
            return ev(node.expr1, d).join(ev(node.expr2, d))
        if isinstance(node, nodes.Filter):
            return self._filter(node, d)
        if isinstance(node, nodes.Call):
            return self._call(node, d)
        if isinstance(node, nodes.Slice):
            return OBJ
        return TOP  # extension nodes and anything new: unknown

    def _sequence(self, items: list[Val]) -> Val:
        if all(i.exact and len(i.consts) == 1 for i in items):
            return from_values([tuple(next(i.values) for i in items)])
        return Val(seq=join_all(items))

    def _add(self, left: Val, right: Val) -> Val:
        fallback = NOTHING
        if may_num(left) and may_num(right):
            fallback = fallback.join(NUM)
        if may_str(left) and may_str(right):
            pure = only_data(left) and only_data(right) and not left.consts and not right.consts
            fallback = fallback.join(DATA if pure else TEXT)
        if may_seq(left) and may_seq(right):
            fallback = fallback.join(
                Val(data=left.data and right.data, seq=elements(left).join(elements(right)))
            )
        if left.obj or right.obj:
            fallback = fallback.join(OBJ)
        return fold.lift([left, right], fold.add, fallback)

    def _getattr(self, node: nodes.Getattr, d: int) -> Val:
        target = node.node
        if isinstance(target, nodes.Name):
            if target.name == "loop" and self.env.is_free("loop"):
                if node.attr in LOOP_NUMBERS:
                    return NUM
                if node.attr in LOOP_FLAGS:
                    return BOOL
                return TOP  # previtem/nextitem/cycle: follow nothing
            attr = self.namespace_attr(target.name, node.attr)
            if attr is not None:
                return attr.join(DATA) if target.name in self.env.bound else attr
        receiver = self.eval(target, d)
        out = NOTHING
        if receiver.data:
            out = out.join(DATA)  # an attribute of the caller's data is the caller's data
        if receiver.seq is not None:
            out = out.join(receiver.seq)  # d.key on a dict falls back to d['key']
        if receiver.rec:
            out = out.join(receiver)  # nested containers: their values are like themselves
        if receiver.obj or receiver.text or receiver.num:
            out = out.join(OBJ)  # a method or attribute of a Python value
        elif any(node.attr in _CONST_ATTRIBUTES[type(v)] for v in receiver.values):
            out = out.join(OBJ)  # 'abc'.upper: a bound method
        # any other attribute of a constant is undefined
        return out

    def _getitem(self, node: nodes.Getitem, d: int) -> Val:
        value = self.eval(node.node, d)
        if isinstance(node.arg, nodes.Slice):
            s = node.arg
            return fold.getslice(value, self.eval(s.start, d), self.eval(s.stop, d), self.eval(s.step, d))
        key = self.eval(node.arg, d)
        out = fold.getitem(value, key)
        if isinstance(node.node, nodes.Name):
            for name in key.strings:
                attr = self.namespace_attr(node.node.name, name)
                if attr is not None:
                    out = out.join(attr)
        if value.data:
            out = out.join(DATA)
        if value.seq is not None:
            out = out.join(value.seq)
        if value.obj or key.computed:
            out = out.join(OBJ)
        elif key.strings and (value.consts or value.text or value.num):
            out = out.join(OBJ)  # 'abc'['upper']: a string key falls back to an attribute
        return out

    def _args(self, node: nodes.Filter | nodes.Call | nodes.Test, d: int) -> tuple[list[Val], dict[str, Val]]:
        args = [self.eval(a, d) for a in node.args]
        kwargs: dict[str, Val] = {}
        for k in node.kwargs:
            if isinstance(k, nodes.Keyword):
                kwargs[k.key] = self.eval(k.value, d)
            else:  # jinja2 annotates Filter and Test keywords as Pair; its parser builds Keyword
                kwargs["**"] = TOP
        if node.dyn_args is not None:
            args.append(TOP)
        if node.dyn_kwargs is not None:
            kwargs["**"] = TOP
        return args, kwargs

    def _filter(self, node: nodes.Filter, d: int) -> Val:
        value = TEXT if node.node is None else self.eval(node.node, d)
        args, kwargs = self._args(node, d)
        if "**" in kwargs:
            return TOP
        return fold.apply_filter(node.name, value, args, kwargs)

    def _call(self, node: nodes.Call, d: int) -> Val:
        args, kwargs = self._args(node, d)
        callee = node.node
        if isinstance(callee, nodes.Name) and self.env.is_free(callee.name):
            name = callee.name
            if name == "range":
                return self._range(args, kwargs)
            if name == "dict":
                keys = Val.of(*kwargs.keys()) if "**" not in kwargs else TOP
                return Val(seq=keys.join(join_all(kwargs.values())).join(join_all(elements(a) for a in args)))
            if name in ("lipsum", "strftime_now", "caller", "loop"):
                return TEXT
            if name in ("namespace", "cycler", "joiner"):
                return OBJ
            if name == "raise_exception":
                return NOTHING
            return TOP  # a function the application passed in
        if isinstance(callee, nodes.Name) and callee.name in self.env.macros:
            return TEXT  # a macro returns what it renders
        if isinstance(callee, nodes.Getattr):
            return self._method(callee, args, kwargs, d)
        return TOP

    def _range(self, args: list[Val], kwargs: dict[str, Val]) -> Val:
        def fn(*a: object) -> tuple[int, ...]:
            bounds = [x for x in a if isinstance(x, int)]
            if len(bounds) != len(a):
                raise fold.Unfoldable("range")
            r = range(*bounds)
            if len(r) > 4096:
                raise fold.Unfoldable("range too long")
            return tuple(r)

        if kwargs or not 1 <= len(args) <= 3:
            return Val(seq=NUM)
        return fold.lift(args, fn, Val(seq=NUM))

    def _method(self, callee: nodes.Getattr, args: list[Val], kwargs: dict[str, Val], d: int) -> Val:
        method = callee.attr
        target = callee.node
        if isinstance(target, nodes.Name) and target.name == "loop" and self.env.is_free("loop"):
            return join_all(args) if method == "cycle" else TOP
        receiver = self.eval(target, d)
        out = NOTHING
        if method in ("format", "format_map"):
            if (
                method == "format"
                and all(a.exact and len(a.consts) == 1 for a in args)
                and all(v.exact and len(v.consts) == 1 for v in kwargs.values())
            ):
                fixed_args = tuple(next(a.values) for a in args)
                fixed_kw = {k: next(v.values) for k, v in kwargs.items()}
                return fold.lift([receiver], lambda s: fold.str_format(s, fixed_args, fixed_kw), TEXT)
            return TEXT
        if receiver.strings or receiver.text or receiver.data:
            strings = frozenset(c for c in receiver.consts if isinstance(c[1], str))
            out = out.join(
                fold.str_method(Val(strings, data=receiver.data, text=receiver.text), method, args, kwargs)
            )
        if receiver.data:
            if method == "get":
                out = out.join(DATA).join(args[1] if len(args) > 1 else Val.of(None))
            elif method in ("items", "keys", "values"):
                out = out.join(Val(data=True, seq=DATA))
            else:
                out = out.join(DATA)
        if receiver.seq is not None or any(isinstance(v, tuple) for v in receiver.values):
            out = out.join(NUM if method in ("index", "count") else elements(receiver).join(OBJ))
        if receiver.obj or receiver.num:
            out = out.join(TOP)
        return out
