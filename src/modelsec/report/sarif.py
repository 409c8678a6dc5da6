"""SARIF 2.1.0 output that GitHub code scanning accepts.

One SARIF rule per threat code (stable ids), one result per finding. Findings of blocking
rules are ``error``, of non-blocking rules ``warning``; files that could not be inspected
are reported as ``MS-GEN-*`` results so that a silent gap never looks like a clean scan.
"""

from __future__ import annotations

import json
import os
from typing import Any

from modelsec import __version__
from modelsec.findings import THREATS, Finding, Severity
from modelsec.policy import Mode
from modelsec.report import RunResult

SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
INFO_URI = "https://github.com/modelsec/modelsec"

# GitHub maps security-severity to critical (>=9), high (>=7), medium (>=4), low.
SECURITY_SEVERITY = {
    Severity.CRITICAL: "9.5",
    Severity.HIGH: "8.0",
    Severity.MEDIUM: "5.5",
    Severity.LOW: "3.0",
}


def _artifact_uri(path: str) -> str:
    """A repository-relative URI for the outer file (archive members go in the message)."""
    outer = path.split("!", 1)[0]
    if os.path.isabs(outer):
        try:
            outer = os.path.relpath(outer)
        except ValueError:
            pass
    return outer.replace(os.sep, "/")


def _rule_descriptor(code: str, fallback: Finding | None = None) -> dict[str, Any]:
    threat = THREATS.get(code)
    if threat is None:
        title = fallback.message if fallback else code
        return {"id": code, "name": code, "shortDescription": {"text": title}}
    return {
        "id": threat.code,
        "name": threat.title.title().replace(" ", "").replace("-", "")[:100] or threat.code,
        "shortDescription": {"text": threat.title},
        "fullDescription": {"text": threat.description or threat.title},
        "help": {"text": threat.remediation, "markdown": threat.remediation},
        "properties": {
            "tags": ["security", "ai-model", threat.rule],
            "security-severity": SECURITY_SEVERITY[threat.severity],
            "modelsecRule": threat.rule,
        },
    }


def _result(finding: Finding, level: str) -> dict[str, Any]:
    where = finding.file if "!" not in finding.file else finding.file
    text = f"{finding.message} [{finding.rule}] in {where}"
    if finding.offset is not None:
        text += f" at byte {finding.offset}"
    if finding.remediation:
        text += f". Fix: {finding.remediation}"
    region: dict[str, Any] = {"startLine": 1}
    if finding.offset is not None and "!" not in finding.file:
        region = {"byteOffset": finding.offset, "byteLength": 1}
    return {
        "ruleId": finding.threat,
        "level": level,
        "message": {"text": text},
        "locations": [
            {
                "physicalLocation": {
                    "artifactLocation": {"uri": _artifact_uri(finding.file)},
                    "region": region,
                },
                "logicalLocations": [{"fullyQualifiedName": finding.file, "kind": "member"}],
            }
        ],
        "partialFingerprints": {
            "modelsecFinding/v1": f"{finding.threat}:{finding.file}:{finding.subject or ''}"
        },
        "properties": {
            "severity": finding.severity.name,
            "subject": finding.subject,
            "modelsecRule": finding.rule,
        },
    }


def render(run: RunResult) -> str:
    rules: dict[str, dict[str, Any]] = {}
    results: list[dict[str, Any]] = []
    for model in run.models:
        for evaluation in model.verdict.rules:
            if evaluation.mode == Mode.DISABLED:
                continue
            level = "error" if evaluation.mode == Mode.BLOCKING else "warning"
            for finding in evaluation.violations:
                rules.setdefault(finding.threat, _rule_descriptor(finding.threat, finding))
                results.append(_result(finding, level))
        for gap in model.scanned.report.all_incompletes():
            rules.setdefault(
                gap.code,
                {"id": gap.code, "name": "NotInspected",
                 "shortDescription": {"text": "Part of the model could not be inspected"}},
            )
            results.append({
                "ruleId": gap.code,
                "level": "error",
                "message": {"text": f"not inspected: {gap.reason} (failing closed) in {gap.file}"},
                "locations": [{"physicalLocation": {
                    "artifactLocation": {"uri": _artifact_uri(gap.file)},
                    "region": {"startLine": 1}}}],
            })
    document = {
        "$schema": SCHEMA_URI,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "modelsec",
                        "version": __version__,
                        "semanticVersion": __version__,
                        "informationUri": INFO_URI,
                        "rules": list(rules.values()),
                    }
                },
                "results": results,
                "properties": {
                    "securityGroup": run.group.name,
                    "outcomes": {m.scanned.report.target: m.verdict.outcome.value for m in run.models},
                },
            }
        ],
    }
    return json.dumps(document, indent=2) + "\n"
