"""Does a function take a callable? Then it is a trampoline, not data.

Two kinds of evidence, either one enough: the function (or any function it wraps) calls
one of its parameters, or its numpydoc ``Parameters`` section types a parameter as
callable (``metric : str or callable``; scikit-learn documents every callable parameter
this way, including those it only hands on to a helper that calls them).
"""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
import types

_PARAMETER_LINE = re.compile(r"^\s*(\*{0,2}\w+)\s*:\s*(?P<type>.+)$")
_SECTION_RULE = re.compile(r"^\s*-{3,}\s*$")


def takes_callable(fn: object) -> str | None:
    """Why ``fn`` takes a callable, or None when there is no sign of it."""
    current = fn
    while isinstance(current, types.FunctionType):
        if reason := _calls_a_parameter(current):
            return reason
        current = getattr(current, "__wrapped__", None)
    return _documented_callable(inspect.getdoc(fn) or "")


def _calls_a_parameter(fn: types.FunctionType) -> str | None:
    try:
        source = textwrap.dedent(inspect.getsource(fn.__code__))
    except (OSError, TypeError):
        return None
    tree = ast.parse(source)
    node = tree.body[0] if tree.body else None
    if not isinstance(node, ast.FunctionDef):
        return None
    arguments = node.args
    params = {a.arg for a in (*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs)}
    params |= {a.arg for a in (arguments.vararg, arguments.kwarg) if a is not None}
    for sub in ast.walk(node):
        if isinstance(sub, ast.Call) and isinstance(sub.func, ast.Name) and sub.func.id in params:
            return f"calls its parameter {sub.func.id}"
    return None


def _documented_callable(doc: str) -> str | None:
    lines = doc.splitlines()
    in_parameters = False
    for index, line in enumerate(lines):
        following = lines[index + 1] if index + 1 < len(lines) else ""
        if _SECTION_RULE.match(following):  # a numpydoc section title
            in_parameters = line.strip() in ("Parameters", "Other Parameters")
            continue
        if in_parameters and (match := _PARAMETER_LINE.match(line)) and not line.startswith(" "):
            if "callable" in match.group("type").lower():
                return f"parameter {match.group(1)} is documented as callable"
    return None
