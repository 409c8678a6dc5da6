"""The JSON result document (schema ``modelsec.io/scan-result/v1``, see docs/json-output.md).

Keys are camelCase and only ever added to within a schema version; consumers may rely on
every key documented there.
"""

from __future__ import annotations

import json
from typing import Any

from modelsec import __version__
from modelsec.findings import Finding
from modelsec.policy import Outcome, Verdict
from modelsec.report import ModelResult, RunResult

SCHEMA = "modelsec.io/scan-result/v1"


def overall_outcome(models: list[ModelResult]) -> Outcome:
    """BLOCKED if any model is blocked, else ERROR if any errored, else ALLOWED."""
    outcomes = {m.verdict.outcome for m in models}
    for worst in (Outcome.BLOCKED, Outcome.ERROR):
        if worst in outcomes:
            return worst
    return Outcome.ALLOWED


def every_finding(verdict: Verdict, engine_findings: list[Finding]) -> list[Finding]:
    """The engine's findings, then those that rules computed themselves (formats,
    locations, metadata: ``MS-POL-*``), each once: everything the table can show."""
    findings = list(engine_findings)
    seen = set(findings)
    for evaluation in verdict.rules:
        for violation in evaluation.violations:
            if violation not in seen:
                seen.add(violation)
                findings.append(violation)
    return findings


def model_to_dict(result: ModelResult, max_findings: int | None = None) -> dict[str, Any]:
    scanned, verdict = result.scanned, result.verdict
    report = scanned.report
    findings = every_finding(verdict, report.all_findings())
    dropped = sum(f.dropped_findings for f in report.files)
    shown = findings if max_findings is None else findings[:max_findings]
    meta = scanned.metadata
    return {
        "target": report.target,
        "uri": scanned.ref.uri,
        "revision": meta.revision or report.revision,
        "sourceType": scanned.source_type.value,
        "outcome": verdict.outcome.value,
        "reason": verdict.reason,
        "fingerprint": report.fingerprint,
        "filesScanned": len(report.files),
        "bytesScanned": report.bytes_scanned,
        "bytesTransferred": report.bytes_transferred,
        "durationSeconds": round(report.seconds, 3),
        "metadata": {
            "modelId": meta.model_id,
            "author": meta.author,
            "license": meta.license,
            "verifiedOrganization": meta.verified_organization,
        },
        "rules": [r.to_dict() for r in verdict.rules],
        # NonBlocking rules that failed or could not be evaluated: what the table marks
        # "(warning)"; they do not change the outcome
        "warnings": [
            {"rule": w.name, "result": w.result.value, "message": w.message} for w in verdict.warnings
        ],
        "findings": [f.to_dict() for f in shown],
        "findingsTotal": len(findings) + dropped,
        "incomplete": [i.to_dict() for i in report.all_incompletes()],
        "files": [
            {
                "path": f.path,
                "size": f.size,
                "sha256": f.sha256,
                "digest": f.digest,
                "format": f.format,
                "members": [
                    {"path": r.path, "format": r.format, "category": r.category.value} for r in f.formats[1:]
                ],
            }
            for f in report.files
        ],
    }


def run_to_dict(run: RunResult, max_findings: int | None = None) -> dict[str, Any]:
    return {
        "schemaVersion": SCHEMA,
        "scanner": {"name": "modelsec", "version": __version__},
        "group": {"name": run.group.name, "origin": run.group.origin},
        "outcome": overall_outcome(run.models).value,
        "models": [model_to_dict(m, max_findings) for m in run.models],
    }


def render(run: RunResult, max_findings: int | None = None) -> str:
    return json.dumps(run_to_dict(run, max_findings), indent=2, sort_keys=False) + "\n"
