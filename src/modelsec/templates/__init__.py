"""Static analysis of Jinja templates (chat templates, prompt templates in configs).

Templates are parsed into Jinja's AST and analysed there; they are never compiled or
rendered. :func:`analyze` is the entry point; :func:`report` runs it and files findings or
an incomplete in a scan context.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from modelsec.templates.bindings import solve
from modelsec.templates.checks import Checker, IssueKind, TemplateIssue
from modelsec.templates.parsing import MAX_TEMPLATE_CHARS, has_markers, parse
from modelsec.templates.threats import TEMPLATE_THREATS, TOO_COMPLEX, UNPARSEABLE, to_findings

if TYPE_CHECKING:
    from modelsec.context import ScanContext

__all__ = [
    "IssueKind",
    "MAX_TEMPLATE_CHARS",
    "TEMPLATE_THREATS",
    "TemplateAnalysis",
    "TemplateIssue",
    "analyze",
    "has_markers",
    "report",
]


@dataclass
class TemplateAnalysis:
    """The result of analysing one template. ``parsed`` False means it was not inspected:
    ``error`` says why and ``limit`` whether a size/complexity bound (not syntax) was hit."""

    parsed: bool
    issues: list[TemplateIssue] = field(default_factory=list)
    error: str | None = None
    limit: bool = False
    truncated: bool = False  # more issues than are kept


def analyze(source: str) -> TemplateAnalysis:
    """Parse ``source`` (never render it) and report how it reaches beyond its data."""
    result = parse(source)
    if result.tree is None:
        return TemplateAnalysis(False, error=result.error, limit=result.limit)
    try:
        env = solve(result.tree)
        checker = Checker(result.tree, env)
        issues = checker.run()
    except RecursionError:
        return TemplateAnalysis(False, error="template too deeply nested to analyse", limit=True)
    return TemplateAnalysis(True, issues, truncated=checker.truncated)


def report(ctx: ScanContext, source: str, where: str, *, strict: bool) -> TemplateAnalysis:
    """Analyse ``source`` and file the outcome in ``ctx``.

    ``where`` names the template inside the file (``chat_template``, a key path, a GGUF key).
    ``strict``: the text is known to be a template (its key or file says so), so if it
    cannot be parsed it is reported as not inspected. Otherwise (a config value that merely
    contains ``{{``) unparseable text is ordinary text and ignored; a size/complexity limit is
    always reported.
    """
    analysis = analyze(source)
    label = f"template {where}" if where else "template"
    if not analysis.parsed:
        if analysis.limit:
            ctx.incomplete(f"{label} not inspected: {analysis.error}", code=TOO_COMPLEX)
        elif strict:
            ctx.incomplete(
                f"{label} could not be parsed as Jinja ({analysis.error}); not inspected, failing closed",
                code=UNPARSEABLE,
            )
        return analysis
    for finding in to_findings(analysis.issues, ctx.path, where):
        ctx.report(finding)
    return analysis
