"""Check every node's operator against the official ONNX operator sets.

A node runs official code only if its ``(domain, op_type)`` exists in an official domain at
the opset version the model (or, inside a function, the function) imports for that domain,
or if it calls a function the model itself defines (whose body is checked in turn). Every
other operator needs a custom kernel that a runtime must load from somewhere: a custom-op
library, onnxruntime-extensions' Python operators, a vendor build.

Occurrences are aggregated per operator so a graph with thousands of custom nodes gives one
finding per operator, with a count and the first node names.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from modelsec.onnx.model import Graph, Node, OnnxModel, OpsetImport
from modelsec.onnx.opsets import OpsetTable, canonical_domain, table

# Operators that run Python code given in the model or registered by name at runtime
# (onnxruntime-extensions PyOp/PythonOp, the historical "Python" op, TF's PyFunc names).
PYTHON_OPS = frozenset({"python", "pyop", "pythonop", "pyfunc", "pyfuncstateless", "eagerpyfunc"})

PYTHON_OP = "python-op"
CUSTOM_DOMAIN = "custom-domain"
UNKNOWN_OP = "unknown-op"
NOT_IMPORTED = "domain-not-imported"
CONFLICTING_IMPORTS = "conflicting-imports"


@dataclass
class OperatorIssue:
    """One problem of one operator (or of a domain's imports), with a count and the first nodes."""

    kind: str
    domain: str
    op_type: str
    message: str
    offset: int
    count: int = 1
    examples: list[str] = field(default_factory=list)  # "node 'x' in graph > ..."


@dataclass
class OperatorReport:
    """What :func:`check_operators` found: the issues, domains newer than the table, nodes checked."""

    issues: list[OperatorIssue] = field(default_factory=list)
    # domains imported at versions newer than the table knows: ops were checked against
    # the newest known version, which may wrongly flag ops added since
    newer_than_table: dict[str, int] = field(default_factory=dict)
    nodes_checked: int = 0


def _import_map(imports: list[OpsetImport]) -> dict[str, set[int]]:
    out: dict[str, set[int]] = {}
    for imp in imports:
        out.setdefault(canonical_domain(imp.domain), set()).add(imp.version)
    return out


Context = tuple[list[Node], str, dict[str, set[int]]]  # nodes, where, opset imports in force


def _contexts(model: OnnxModel) -> Iterator[Context]:
    """(nodes, where, opset imports in force) for every graph and function body."""
    model_imports = _import_map(model.opset_imports)

    def walk(nodes: list[Node], where: str, imports: dict[str, set[int]]) -> Iterator[Context]:
        stack = [(nodes, where)]
        while stack:
            ns, w = stack.pop()
            yield ns, w, imports
            for node in ns:
                for attr in node.attributes:
                    stack.extend((g.nodes, g.where) for g in attr.graphs)

    roots: list[Graph] = []
    if model.graph is not None:
        roots.append(model.graph)
    roots.extend(model.training_graphs)
    for g in roots:
        yield from walk(g.nodes, g.where, model_imports)
    for fn in model.functions:
        imports = dict(model_imports)
        imports.update(_import_map(fn.opset_imports))  # the function's own imports win
        yield from walk(fn.nodes, fn.where, imports)
        for attr in fn.attribute_defaults:
            for g in attr.graphs:
                yield from walk(g.nodes, g.where, imports)


def check_operators(model: OnnxModel, opsets: OpsetTable | None = None) -> OperatorReport:
    opsets = opsets or table()
    report = OperatorReport()
    functions = {(canonical_domain(f.domain), f.name, f.overload) for f in model.functions}
    found: dict[tuple[str, str, str], OperatorIssue] = {}

    def add(kind: str, node: Node, where: str, message: str) -> None:
        key = (kind, canonical_domain(node.domain), node.op_type)
        issue = found.get(key)
        example = f"node {node.label!r} in {where}"
        if issue is None:
            found[key] = OperatorIssue(kind, node.domain, node.op_type, message, node.offset, 1, [example])
        else:
            issue.count += 1
            if len(issue.examples) < 5:
                issue.examples.append(example)

    for domain, versions in _import_map(model.opset_imports).items():
        if len(versions) > 1:
            report.issues.append(
                OperatorIssue(
                    CONFLICTING_IMPORTS,
                    domain,
                    "",
                    f"opset_import lists domain {domain!r} at several versions "
                    f"{sorted(versions)}; runtimes disagree on which applies",
                    0,
                )
            )

    for nodes, where, imports in _contexts(model):
        for node in nodes:
            report.nodes_checked += 1
            domain = canonical_domain(node.domain)
            shown = f"{node.domain + '::' if node.domain else ''}{node.op_type}"
            if node.op_type.lower() in PYTHON_OPS:
                add(PYTHON_OP, node, where, f"operator {shown} runs Python code at inference time")
                continue
            if (domain, node.op_type, node.overload) in functions:
                continue  # a model-local function: its body is checked as its own context
            if not opsets.is_official_domain(domain):
                add(
                    CUSTOM_DOMAIN,
                    node,
                    where,
                    f"operator {shown} is from custom domain {node.domain!r} and is not a "
                    "function defined in the model: it needs a custom kernel",
                )
                continue
            imported = imports.get(domain)
            if not imported:
                add(
                    NOT_IMPORTED,
                    node,
                    where,
                    f"operator {shown} uses domain {domain!r}, which the model does not "
                    "import (no opset_import entry)",
                )
                continue
            newest = opsets.max_version(domain)
            for version in sorted(imported):
                if version > newest:
                    report.newer_than_table[domain] = max(report.newer_than_table.get(domain, 0), version)
                if not opsets.exists(domain, node.op_type, min(version, newest)):
                    known = opsets.versions(domain, node.op_type)
                    hint = (
                        f" (schemas of {domain} since versions {list(known)}; negative = "
                        "removed from that version)"
                        if known
                        else f" (not an operator of {domain})"
                    )
                    add(
                        UNKNOWN_OP,
                        node,
                        where,
                        f"operator {shown} does not exist in {domain} opset {version}{hint}",
                    )
                    break
    report.issues.extend(found.values())
    return report
