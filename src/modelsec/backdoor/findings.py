"""The ``MS-BD-`` threats (rule ModelArchitectureBackdoor) and their findings.

Declared here, not in one format module, because every graph format (ONNX, TensorFlow)
reports them through the same analysis; codes are stable.
"""

from __future__ import annotations

from modelsec.backdoor.analysis import BackdoorPath, BackdoorReport
from modelsec.findings import Finding, Severity, Threat, threat

RULE = "ModelArchitectureBackdoor"
_REMEDIATION = (
    "Do not deploy this model. Rebuild it from a trusted training pipeline, or remove the "
    "comparison and the switch it controls and re-validate the model's behaviour."
)

BD_SELECT = threat(
    "MS-BD-001",
    RULE,
    Severity.HIGH,
    "Trigger comparison selects a constant output (Where/Select)",
    _REMEDIATION,
    "The graph compares its input (or a reduction of it) with an embedded constant and, "
    "when they match, selects an embedded constant instead of the computed value; the "
    "selected value reaches a graph output.",
)
BD_CONTROL_FLOW = threat(
    "MS-BD-002",
    RULE,
    Severity.HIGH,
    "Trigger comparison chooses a constant branch (If/Loop)",
    _REMEDIATION,
    "A control-flow op conditioned on a comparison of the input with an embedded constant "
    "produces an embedded constant on one branch and the computed value on the other.",
)
BD_BLEND = threat(
    "MS-BD-003",
    RULE,
    Severity.HIGH,
    "Trigger comparison gates the output arithmetically",
    _REMEDIATION,
    "A 0/1 cast of a trigger comparison multiplies the computed value (zeroing it when "
    "the trigger fires), possibly blended with an embedded constant: c*K + (1-c)*f(x).",
)
BD_OFFSET = threat(
    "MS-BD-004",
    RULE,
    Severity.MEDIUM,
    "Trigger comparison adds or scales a constant on the output",
    _REMEDIATION,
    "A trigger-controlled constant is added to (or multiplies) a computed value that "
    "reaches a graph output: the output is steered when the trigger fires.",
)

_BY_KIND: dict[str, Threat] = {
    "where": BD_SELECT,
    "if": BD_CONTROL_FLOW,
    "loop": BD_CONTROL_FLOW,
    "gate": BD_BLEND,
    "blend": BD_BLEND,
    "offset": BD_OFFSET,
}


def _elide(items: list[str], keep: int = 6) -> list[str]:
    if len(items) <= 2 * keep + 1:
        return items
    return items[:keep] + [f"... {len(items) - 2 * keep} more ..."] + items[-keep:]


def _cut(text: str, limit: int = 200) -> str:
    """Graph names are attacker-chosen: escape what is not printable (terminal escapes,
    lone surrogates from invalid UTF-8) and bound the length."""
    out = "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text[: limit * 2])
    return out if len(out) <= limit else out[: limit - 3] + "..."


def finding_for(path: BackdoorPath, file: str) -> Finding:
    found = _BY_KIND.get(path.kind, BD_SELECT)
    effect = "replaces it with" if path.strength == "switch" else "shifts it by"
    trigger_path = _elide(path.trigger_path)
    message = (
        f"{_cut(path.trigger_node, 120)} compares "
        f"{_cut(trigger_path[0], 120) if trigger_path else 'the input'}"
        f"{' (reduced)' if path.trigger_reduced else ''} with constant "
        f"{_cut(path.trigger_constant, 120)}; {_cut(path.switch_node, 120)} in "
        f"{_cut(path.where, 200)} {effect} {_cut(path.fill, 120)} when it fires, and this "
        f"reaches output '{_cut(path.output, 120)}'"
    )
    return found.at(
        file,
        message,
        offset=path.offset,
        subject=_cut(path.switch_node),
        details={
            "trigger": {
                "node": _cut(path.trigger_node),
                "op": path.trigger_op,
                "constant": _cut(path.trigger_constant),
                "reduced": path.trigger_reduced,
                "path": [_cut(p, 120) for p in trigger_path],
            },
            "switch": {
                "node": _cut(path.switch_node),
                "kind": path.kind,
                "graph": _cut(path.where, 400),
                "fill": _cut(path.fill),
            },
            "effect": path.strength,
            "output": _cut(path.output),
            "path": [_cut(p, 120) for p in _elide(path.path)],
        },
    )


def findings_for(report: BackdoorReport, file: str) -> list[Finding]:
    return [finding_for(p, file) for p in report.paths]
