"""SARIF 2.1.0 output that GitHub code scanning accepts.

One SARIF rule per threat code (stable ids), one result per finding. Findings of blocking
rules are ``error``, of non-blocking rules ``warning``; files that could not be inspected
are reported as ``MS-GEN-*`` results so that a silent gap never looks like a clean scan.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any
from urllib.parse import quote

from modelsec import __version__
from modelsec.findings import THREATS, Finding, Incomplete, Severity
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


_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
FINGERPRINT_KEY = "modelsecFinding/v1"


def _utf8(text: str) -> bytes:
    """The bytes of a name: a file name that is not UTF-8 comes back from the OS with lone
    surrogates (os.fsdecode), which surrogateescape turns back into its raw bytes."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


def artifact_uri(path: str) -> str:
    """``path`` as the RFC 3986 URI reference SARIF requires: relative to the working
    directory where it can be (code scanning resolves it against the repository), every
    byte but unreserved characters and ``/`` percent-encoded (spaces, ``#``, ``%``, ``:``,
    non-ASCII, raw bytes of names that are not UTF-8). ``hf://`` and ``s3://`` stay URIs."""
    scheme = _SCHEME.match(path)
    if scheme:
        return scheme.group() + quote(_utf8(path[scheme.end() :]), safe="/@")
    if os.path.isabs(path):
        try:
            path = os.path.relpath(path)
        except ValueError:  # another drive (Windows): keep it absolute
            pass
    return quote(_utf8(path.replace(os.sep, "/")), safe="/")


def _outer_file(path: str, files: frozenset[str]) -> str:
    """The scanned file that ``path`` is in: itself, or the longest scanned file that
    ``path`` continues with ``!member`` (a file name may itself contain ``!``)."""
    if path in files:
        return path
    cut = path.rfind("!")
    while cut > 0:
        if path[:cut] in files:
            return path[:cut]
        cut = path.rfind("!", 0, cut)
    return path  # a directory, a link, a remote reference: the path itself


def _location(path: str, files: frozenset[str], offset: int | None = None) -> dict[str, Any]:
    outer = _outer_file(path, files)
    region: dict[str, Any] = {"startLine": 1}
    if offset is not None and outer == path:  # offsets inside members have no outer region
        region = {"byteOffset": offset, "byteLength": 1}
    return {
        "physicalLocation": {"artifactLocation": {"uri": artifact_uri(outer)}, "region": region},
        "logicalLocations": [{"fullyQualifiedName": path, "kind": "member"}],
    }


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


def _result(finding: Finding, level: str, files: frozenset[str]) -> dict[str, Any]:
    text = f"{finding.message} [{finding.rule}] in {finding.file}"
    if finding.offset is not None:
        text += f" at byte {finding.offset}"
    if finding.remediation:
        text += f". Fix: {finding.remediation}"
    return {
        "ruleId": finding.threat,
        "level": level,
        "message": {"text": text},
        "locations": [_location(finding.file, files, finding.offset)],
        "partialFingerprints": {FINGERPRINT_KEY: f"{finding.threat}:{finding.file}:{finding.subject or ''}"},
        "properties": {
            "severity": finding.severity.name,
            "subject": finding.subject,
            "modelsecRule": finding.rule,
        },
    }


def _gap_result(gap: Incomplete, files: frozenset[str]) -> dict[str, Any]:
    """A part that could not be inspected: an error result, so a gap never looks clean."""
    return {
        "ruleId": gap.code,
        "level": "error",
        "message": {"text": f"not inspected: {gap.describe()} (failing closed)"},
        "locations": [_location(gap.file, files)],
        # the reason may carry sizes or counts that change between runs; the place does not
        "partialFingerprints": {FINGERPRINT_KEY: f"{gap.code}:{gap.file}"},
    }


def render(run: RunResult) -> str:
    rules: dict[str, dict[str, Any]] = {}
    results: list[dict[str, Any]] = []
    for model in run.models:
        files = frozenset(f.path for f in model.scanned.report.files)
        for evaluation in model.verdict.rules:
            if evaluation.mode == Mode.DISABLED:
                continue
            level = "error" if evaluation.mode == Mode.BLOCKING else "warning"
            for finding in evaluation.violations:
                rules.setdefault(finding.threat, _rule_descriptor(finding.threat, finding))
                results.append(_result(finding, level, files))
        for gap in model.scanned.report.all_incompletes():
            rules.setdefault(
                gap.code,
                {
                    "id": gap.code,
                    "name": "NotInspected",
                    "shortDescription": {"text": "Part of the model could not be inspected"},
                },
            )
            results.append(_gap_result(gap, files))
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
