"""The template threat catalogue (``MS-TPL-``), and turning issues into findings.

Declared here once, for every format that carries templates (tokenizer configs, standalone
``.jinja`` files, YAML/JSON configs, GGUF metadata).
"""

from __future__ import annotations

from modelsec.findings import Finding, Severity, Threat, threat
from modelsec.templates.checks import IssueKind, TemplateIssue

RULE = "LoadTimeCodeExecution"
_FIX = (
    "Do not use this template. Replace it with the model family's published chat template; "
    "a chat template formats messages and never needs Python internals, globals or imports."
)

TEMPLATE_THREATS: dict[IssueKind, Threat] = {
    IssueKind.INTERNALS: threat(
        "MS-TPL-001",
        RULE,
        Severity.CRITICAL,
        "Template reaches Python internals",
        _FIX,
        "A dunder, private or frame/code attribute (``__class__``, ``__globals__``, ``_module``, "
        "``mro``) looked up with ``.``, ``[...]``, the ``attr`` filter or a ``str.format`` field: "
        "the first step of every Jinja sandbox escape (CVE-2024-34359).",
    ),
    IssueKind.ASSEMBLED_NAME: threat(
        "MS-TPL-002",
        RULE,
        Severity.CRITICAL,
        "Obfuscated lookup resolves to Python internals",
        _FIX,
        "An attribute or key built at render time (``~``/``+`` joins, ``format``, ``join``, "
        "``replace``, ``[::-1]``, character picking, ``\\x5f`` escapes) that the static "
        "evaluator folds to an internal name.",
    ),
    IssueKind.COMPUTED_NAME: threat(
        "MS-TPL-003",
        RULE,
        Severity.HIGH,
        "Attribute name computed at render time",
        _FIX,
        "A lookup whose name cannot be resolved statically (a loop-built string, a string "
        "picked from an object's repr, a format string built at render time). It could name "
        "Python internals, so it is reported: the scanner fails closed.",
    ),
    IssueKind.GADGET: threat(
        "MS-TPL-004",
        RULE,
        Severity.HIGH,
        "Jinja global used as an escape gadget",
        _FIX,
        "``cycler``, ``joiner``, ``namespace``, ``lipsum``, ``range``, ``dict`` or ``self`` used "
        "as an object instead of called: their function objects lead to Python globals.",
    ),
    IssueKind.WEB_GLOBAL: threat(
        "MS-TPL-005",
        RULE,
        Severity.HIGH,
        "Web-framework globals in a template",
        _FIX,
        "``config``, ``request``, ``session``, ``url_for``: server-side template injection "
        "payloads that read application secrets or environment variables.",
    ),
    IssueKind.CODE_EXECUTION: threat(
        "MS-TPL-006",
        RULE,
        Severity.CRITICAL,
        "Template names code execution, modules or files",
        _FIX,
        "``eval``, ``exec``, ``__import__``, ``os``, ``subprocess``, ``popen``, ``system``, "
        "``environ``, ``open``, ``__builtins__``...: the payload end of an escape.",
    ),
    IssueKind.TEMPLATE_LOADING: threat(
        "MS-TPL-007",
        RULE,
        Severity.HIGH,
        "Template loads other templates",
        _FIX,
        "``{% import %}``, ``{% from %}``, ``{% include %}`` or ``{% extends %}``: reads files "
        "through the renderer's loader.",
    ),
    IssueKind.INTERNALS_STRING: threat(
        "MS-TPL-008",
        RULE,
        Severity.HIGH,
        "String constant names Python internals",
        _FIX,
        "A literal such as ``'__class__'`` or ``'__import__(\"os\")'`` (also as a keyword name "
        "or dict key): payload material, whatever route it takes to a lookup.",
    ),
}

# Incomplete codes: a template that could not be inspected (never ALLOWED silently).
UNPARSEABLE = "MS-TPL-090"
TOO_COMPLEX = "MS-TPL-091"


def to_findings(issues: list[TemplateIssue], file: str, where: str) -> list[Finding]:
    """Findings for ``issues`` found in the template at ``where`` (a key path, or '')."""
    prefix = f"{where}: " if where else ""
    out = []
    for issue in issues:
        line = f" (template line {issue.line})" if issue.line else ""
        out.append(
            TEMPLATE_THREATS[issue.kind].at(
                file,
                f"{prefix}{issue.message}{line}",
                subject=issue.subject,
                severity=issue.severity,
                details={"template": where} if where else None,
            )
        )
    return out
