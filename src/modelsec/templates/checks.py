"""The checks: walk the AST once, with every expression's abstract value at hand, and
report each way the template reaches beyond the data it formats.

Name positions are where a string becomes an attribute lookup: ``x.name``, ``x[key]``
(Jinja falls back from item to attribute lookup for string keys), the ``attr`` filter, the
``attribute=`` of ``map``/``selectattr``/``sort``/..., and ``str.format`` fields
(``'{0.__class__}'.format(x)``). A name there must be provably harmless: a constant that is
not internal, a number, or the caller's own data (for item lookups on data). Anything else
is reported; a name that cannot be resolved statically is reported as such (fail closed).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from jinja2 import nodes

from modelsec.findings import Severity
from modelsec.templates.evaluator import Environment, Evaluator
from modelsec.templates.fold import STRING_FILTERS, format_fields
from modelsec.templates.names import (
    DANGEROUS_FREE_NAMES,
    DANGEROUS_WHEN_CALLED,
    DUNDER,
    JINJA_GADGETS,
    WEB_GLOBALS,
    NameRisk,
    attribute_risk,
    escape_dunder_in,
)
from modelsec.templates.values import MAX_SEQ_DEPTH, TOP, Val, elements

MAX_ISSUES = 100


class IssueKind(enum.Enum):
    """One class of template attack; the value is the stable threat code."""

    INTERNALS = "MS-TPL-001"  # __class__, _module, mro, ... looked up
    ASSEMBLED_NAME = "MS-TPL-002"  # a built string that resolves to internals
    COMPUTED_NAME = "MS-TPL-003"  # a name position we cannot resolve
    GADGET = "MS-TPL-004"  # cycler/lipsum/namespace/self used as an object
    WEB_GLOBAL = "MS-TPL-005"  # config / request / session
    CODE_EXECUTION = "MS-TPL-006"  # eval, os, popen, environ, __builtins__ ...
    TEMPLATE_LOADING = "MS-TPL-007"  # import / include / extends / from
    INTERNALS_STRING = "MS-TPL-008"  # a string constant that names internals


@dataclass(frozen=True)
class TemplateIssue:
    """One way the template reaches beyond its data: the attack class, severity, message and line."""

    kind: IssueKind
    severity: Severity
    message: str
    subject: str | None = None
    line: int | None = None


_RISK_SEVERITY = {
    NameRisk.DUNDER: Severity.CRITICAL,
    NameRisk.PRIVATE: Severity.HIGH,
    NameRisk.UNSAFE: Severity.HIGH,
    NameRisk.CODE: Severity.CRITICAL,
}

# Filter -> (positional index, keyword) of its attribute-name argument.
ATTRIBUTE_ARGS: dict[str, tuple[int | None, str | None]] = {
    "attr": (0, "name"),  # do_attr(obj, name): attr(name=...) is the same lookup
    "selectattr": (0, None),
    "rejectattr": (0, None),
    "groupby": (0, "attribute"),
    "sort": (2, "attribute"),
    "unique": (1, "attribute"),
    "min": (1, "attribute"),
    "max": (1, "attribute"),
    "sum": (0, "attribute"),
    "join": (1, "attribute"),
    "map": (None, "attribute"),
}
# Filters whose result holds the looked-up attribute values themselves (the others only
# compare, sort or print them): a bound str.format obtained through one can be called later.
RETURNS_ATTRIBUTE = frozenset({"attr", "map", "groupby"})
FORMAT_METHODS = frozenset({"format", "format_map"})


class Checker:
    def __init__(self, tree: nodes.Template, env: Environment) -> None:
        self.tree = tree
        self.env = env
        self.ev = Evaluator(env, memo=True)
        self.issues: list[TemplateIssue] = []
        self._seen: set[tuple[str, str | None, int | None]] = set()
        self.truncated = False

    def add(
        self, kind: IssueKind, severity: Severity, message: str, node: nodes.Node, subject: str | None = None
    ) -> None:
        line = getattr(node, "lineno", None)
        key = (kind.value, subject or message, line)
        if key in self._seen:
            return
        self._seen.add(key)
        if len(self.issues) >= MAX_ISSUES:
            self.truncated = True
            return
        self.issues.append(TemplateIssue(kind, severity, message, subject, line))

    def run(self) -> list[TemplateIssue]:
        stack: list[tuple[nodes.Node, nodes.Node | None]] = [(self.tree, None)]
        while stack:
            node, parent = stack.pop()
            self.visit(node, parent)
            stack.extend((child, node) for child in node.iter_child_nodes())
        # A literal reported at its lookup need not be reported again as a string constant.
        looked_up = {(i.subject, i.line) for i in self.issues if i.kind is not IssueKind.INTERNALS_STRING}
        self.issues = [
            i
            for i in self.issues
            if i.kind is not IssueKind.INTERNALS_STRING or (i.subject, i.line) not in looked_up
        ]
        self.issues.sort(key=lambda i: (i.line or 0, i.kind.value))
        return self.issues

    # --- dispatch -------------------------------------------------------------------------
    def visit(self, node: nodes.Node, parent: nodes.Node | None) -> None:
        if isinstance(node, nodes.Name) and node.ctx == "load":
            self.name(node, parent)
        elif isinstance(node, nodes.Getattr):
            self.getattr(node, parent)
        elif isinstance(node, nodes.Getitem) and not isinstance(node.arg, nodes.Slice):
            self.getitem(node, parent)
        elif isinstance(node, nodes.Filter):
            self.filter(node)
        elif isinstance(node, nodes.Keyword):
            # keyword and namespace-attribute names are the template's own variables: only
            # internal names matter there (``namespace(sys='')`` is just a name)
            self.name_literal(node.key, node, "keyword argument", IssueKind.INTERNALS_STRING, code=False)
        elif isinstance(node, nodes.NSRef):
            self.name_literal(node.attr, node, "namespace attribute", IssueKind.INTERNALS, code=False)
        elif isinstance(node, nodes.Const) and isinstance(node.value, str):
            self.const(node)
        elif isinstance(node, (nodes.Import, nodes.FromImport, nodes.Include, nodes.Extends)):
            what = type(node).__name__.lower()
            self.add(
                IssueKind.TEMPLATE_LOADING,
                Severity.HIGH,
                f"template {what}s another template: a chat template must be self-contained; "
                "loading others reads from the renderer's loader (files)",
                node,
                what,
            )

    # --- names ----------------------------------------------------------------------------
    def name(self, node: nodes.Name, parent: nodes.Node | None) -> None:
        name = node.name
        free = self.env.is_free(name)
        called = isinstance(parent, nodes.Call) and parent.node is node
        if name in JINJA_GADGETS and not called:
            self.add(
                IssueKind.GADGET,
                Severity.HIGH,
                f"Jinja global '{name}' used as an object rather than called: its function "
                "object is a handle to Python globals (sandbox-escape gadget)",
                node,
                name,
            )
        if name == "self" and free and not self._block_call(node, parent):
            self.add(
                IssueKind.GADGET,
                Severity.HIGH,
                "'self' (the template reference) used: it exposes the render context",
                node,
                name,
            )
        if not free:
            return
        if name.startswith("_") or name in DANGEROUS_FREE_NAMES:
            self.add(
                IssueKind.CODE_EXECUTION,
                Severity.CRITICAL,
                f"free variable '{name}' names a Python builtin or module that runs code, "
                "imports or reads files",
                node,
                name,
            )
        elif name in WEB_GLOBALS:
            self.add(
                IssueKind.WEB_GLOBAL,
                Severity.HIGH,
                f"'{name}' is a web-framework global (server-side template injection "
                "payload); chat templates are never rendered with it",
                node,
                name,
            )

    def _block_call(self, node: nodes.Name, parent: nodes.Node | None) -> bool:
        # {{ self.blockname() }} is how templates with blocks render them; our parent links
        # are one level deep, so accept only a Getattr naming a defined block.
        return isinstance(parent, nodes.Getattr) and parent.attr in self.env.blocks

    def getattr(self, node: nodes.Getattr, parent: nodes.Node | None) -> None:
        # ``ns.sys`` on a namespace that defines ``sys`` reads the template's own value
        own = isinstance(node.node, nodes.Name) and f"{node.node.name}.{node.attr}" in self.env.values
        self.name_literal(node.attr, node, "attribute", IssueKind.INTERNALS, code=not own)
        if node.attr in FORMAT_METHODS:
            self.bound_format(self.ev.eval(node.node), node, node.attr, _consumed(node, parent))
        if node.attr in DANGEROUS_WHEN_CALLED and isinstance(parent, nodes.Call) and parent.node is node:
            self.add(
                IssueKind.CODE_EXECUTION,
                Severity.CRITICAL,
                f"calls a method named '{node.attr}' (process, file or command execution)",
                node,
                node.attr,
            )

    def name_literal(
        self, name: str, node: nodes.Node, what: str, kind: IssueKind, code: bool = True
    ) -> None:
        risk = attribute_risk(name)
        if risk is NameRisk.SAFE or (risk is NameRisk.CODE and not code):
            return
        if risk is NameRisk.CODE:
            kind = IssueKind.CODE_EXECUTION
        self.add(kind, _RISK_SEVERITY[risk], f"{what} '{name}' reaches {_describe(risk)}", node, name)

    # --- name positions -------------------------------------------------------------------
    def judge(self, key: Val, expr: nodes.Node, node: nodes.Node, what: str, allow_data: bool) -> None:
        literal = isinstance(expr, nodes.Const)
        for name in key.strings:
            for part in name.split(".") if what.startswith("attribute argument") else (name,):
                risk = attribute_risk(part)
                if risk is NameRisk.SAFE:
                    continue
                if literal:
                    kind = IssueKind.CODE_EXECUTION if risk is NameRisk.CODE else IssueKind.INTERNALS
                    self.add(
                        kind, _RISK_SEVERITY[risk], f"{what} '{part}' reaches {_describe(risk)}", node, part
                    )
                else:
                    self.add(
                        IssueKind.ASSEMBLED_NAME,
                        Severity.CRITICAL,
                        f"{what} is assembled at render time and resolves to '{part}', which "
                        f"reaches {_describe(risk)} (obfuscated lookup)",
                        node,
                        part,
                    )
        if key.computed:
            self.add(
                IssueKind.COMPUTED_NAME,
                Severity.HIGH,
                f"{what} is computed at render time and cannot be resolved statically; it "
                "could name Python internals (failing closed)",
                node,
                _source_hint(expr),
            )
        elif not (key.consts or key.num or key.data):
            # Neither a constant, a number nor data: the evaluator lost track of what the key
            # is (an empty or container-shaped value). Only a proven-harmless name passes.
            self.add(
                IssueKind.COMPUTED_NAME,
                Severity.HIGH,
                f"{what} cannot be resolved statically (its value is not followed); it could "
                "name Python internals (failing closed)",
                node,
                _source_hint(expr),
            )
        elif key.data and not allow_data:
            self.add(
                IssueKind.COMPUTED_NAME,
                Severity.HIGH,
                f"{what} comes from data supplied at render time (a chat message, or a "
                "variable the caller may pass); whoever writes that data picks the "
                "attribute, Python internals included (failing closed)",
                node,
                _source_hint(expr),
            )

    def getitem(self, node: nodes.Getitem, parent: nodes.Node | None) -> None:
        target = self.ev.eval(node.node)
        key = self.ev.eval(node.arg)
        # Item lookups on the caller's data with the caller's data as key are ordinary
        # (``type_map[param.type]``); on a Python object a non-constant key is getattr.
        self.judge(key, node.arg, node, "item key", allow_data=not target.obj)
        for method in FORMAT_METHODS.intersection(key.strings):
            # s['format'] falls back to getattr: the bound method, as s.format
            self.bound_format(target, node, method, _consumed(node, parent))

    def filter(self, node: nodes.Filter) -> None:
        if node.name not in ATTRIBUTE_ARGS:
            return
        candidates = self._name_args(node.name, node.args, node.kwargs)
        if node.dyn_args is not None or node.dyn_kwargs is not None:
            self.add(
                IssueKind.COMPUTED_NAME,
                Severity.HIGH,
                f"'{node.name}' filter takes its attribute name from *args/**kwargs; it cannot "
                "be resolved statically (failing closed)",
                node,
                node.name,
            )
        value = TOP if node.node is None else self.ev.eval(node.node)
        for expr, via in candidates:
            key = self.ev.eval(expr)
            self.judge(key, expr, node, f"attribute argument of '{via}'", allow_data=False)
            if via not in RETURNS_ATTRIBUTE:
                continue
            for name in key.strings:
                parts = name.split(".")
                for i, method in enumerate(parts):
                    if method in FORMAT_METHODS:
                        # the receiver is the input, an element of it or (mapped, dotted) deeper
                        receiver = _contents(value) if i == 0 else TOP
                        self.bound_format(receiver, node, method, consumed=False)

    def _name_args(
        self, name: str, args: list[nodes.Expr], kwargs: Sequence[nodes.Node]
    ) -> list[tuple[nodes.Expr, str]]:
        """The arguments of filter ``name`` that are attribute names, with the filter that
        looks them up."""
        pos, kw = ATTRIBUTE_ARGS.get(name, (None, None))
        out = [(args[pos], name)] if pos is not None and len(args) > pos else []
        keywords = [k for k in kwargs if isinstance(k, nodes.Keyword)]  # jinja's parser builds Keyword
        out.extend((k.value, name) for k in keywords if k.key == kw)
        if name == "map" and args:
            # map(F, *rest, **kw) calls filter F on each item with rest and kw, so they are
            # F's own arguments, judged as such (map('map', 'attr', n) nests it again).
            inner = self.ev.eval(args[0])
            if not inner.exact:  # a computed filter name: any argument could be a name
                out.extend((a, name) for a in args[1:])
                out.extend((k.value, name) for k in keywords)
            for filter_name in inner.strings:
                out.extend(self._name_args(filter_name, args[1:], kwargs))
        return out

    def bound_format(self, receiver: Val, node: nodes.Node, method: str, consumed: bool) -> None:
        """A ``format``/``format_map`` looked up on ``receiver``, however (``.format``,
        ``['format']``, ``attr('format')``, ``map('attr', 'format')``...). Judged where it is
        obtained, called there or not: a bound method stored in a variable or passed on can
        be called anywhere, and its fields look up attributes of the arguments."""
        for fmt in receiver.strings:
            for field_name, accessors in format_fields(fmt) or []:
                for is_attr, key in accessors:
                    if is_attr and isinstance(key, str) and attribute_risk(key) is not NameRisk.SAFE:
                        risk = attribute_risk(key)
                        self.add(
                            IssueKind.INTERNALS,
                            _RISK_SEVERITY[risk],
                            f"str.format field '{{{field_name}}}' looks up '{key}', which "
                            f"reaches {_describe(risk)}",
                            node,
                            key,
                        )
        # A value consumed on the spot (``{% if param.format %}``: a JSON-schema key) is
        # never called. Anywhere else a format string that is not constant is computed or
        # the caller's data (or the model files': bos_token) and picks any attribute.
        if not consumed and (receiver.computed or receiver.data):
            self.add(
                IssueKind.COMPUTED_NAME,
                Severity.HIGH,
                f"str.{method} with a format string computed at render time: its "
                "fields can look up any attribute (failing closed)",
                node,
                method,
            )

    def const(self, node: nodes.Const) -> None:
        value: str = node.value
        found = escape_dunder_in(value)
        if found is None and DUNDER.match(value.strip()):
            found = value.strip()
        if found is not None:
            self.add(
                IssueKind.INTERNALS_STRING,
                Severity.HIGH,
                f"string constant contains '{found}', a Python internal used in sandbox escapes",
                node,
                found,
            )


def _consumed(node: nodes.Node, parent: nodes.Node | None) -> bool:
    """``node``'s value is used up where it stands (printed, tested, compared, turned into a
    string), so it cannot be called later. A direct call is not consuming: it is the call."""
    if isinstance(parent, (nodes.Output, nodes.Concat, nodes.Compare, nodes.Operand, nodes.Not)):
        return True
    if isinstance(parent, (nodes.If, nodes.CondExpr)):
        return parent.test is node
    if isinstance(parent, nodes.Test):
        return parent.node is node
    if isinstance(parent, nodes.Filter):
        return parent.node is node and parent.name in STRING_FILTERS
    return False


def _contents(value: Val) -> Val:
    """``value`` and everything nested in it (the receivers a mapped lookup may reach)."""
    out = level = value
    for _ in range(MAX_SEQ_DEPTH + 1):  # deeper values are collapsed into one level
        level = elements(level)
        out = out.join(level)
    return out


def _describe(risk: NameRisk) -> str:
    return {
        NameRisk.DUNDER: "Python object internals (dunder attribute)",
        NameRisk.PRIVATE: "a private attribute the Jinja sandbox refuses",
        NameRisk.UNSAFE: "interpreter internals (frames, code, globals)",
        NameRisk.CODE: "modules or functions that run code or read the environment",
    }[risk]


def _source_hint(expr: nodes.Node) -> str:
    text = repr(expr)
    return text if len(text) <= 120 else text[:117] + "..."
