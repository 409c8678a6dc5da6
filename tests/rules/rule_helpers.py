"""What the per-rule tests share: reports and metadata to judge, and a rule or a one-rule
group run on them exactly as the policy runs it (the rule from the registry, its
parameters parsed by the rule's own model)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from modelsec import rules
from modelsec.context import FormatCategory, FormatRecord
from modelsec.engine import Engine, FileResult, ScanReport
from modelsec.findings import Finding, Incomplete
from modelsec.metadata import ModelMetadata, SourceType
from modelsec.policy import SecurityGroup, Verdict, evaluate, parse_group
from modelsec.rules.base import EvaluationInput, RuleOutcome, RuleResult

SAFETENSORS = (("m.safetensors", "safetensors", FormatCategory.MODEL),)


def report_with(
    findings: Iterable[Finding] = (),
    incompletes: Iterable[Incomplete] = (),
    formats: Iterable[tuple[str, str, FormatCategory]] = SAFETENSORS,
    locations: Iterable[str] = ("file:///models/team/m.safetensors",),
) -> ScanReport:
    """A report of one file per ``formats`` entry; the first one holds the findings and
    incompletes."""
    files = [
        FileResult(path=p, size=1, sha256="0" * 64, format=f, formats=[FormatRecord(p, f, c)])
        for p, f, c in formats
    ]
    if files:
        files[0].findings = list(findings)
        files[0].incompletes = list(incompletes)
    return ScanReport(target="m", files=files, locations=list(locations))


def scan_files(root: Path, files: dict[str, bytes]) -> ScanReport:
    """The engine's report on a model directory holding ``files`` (bytes written as given)."""
    root.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return Engine().scan_path(root)


def verdict(group: SecurityGroup, report: ScanReport, source: SourceType = SourceType.LOCAL) -> Verdict:
    return evaluate(group, EvaluationInput(report, source))


def meta(**changes: Any) -> ModelMetadata:
    """Metadata of a Hub model by a verified organisation under apache-2.0, with changes."""
    fields: dict[str, Any] = dict(
        uri="hf://acme/model",
        model_id="acme/model",
        author="acme",
        license="apache-2.0",
        revision="a" * 40,
        verified_organization=True,
        extra={"authorType": "organization"},
    )
    fields.update(changes)
    return ModelMetadata(**fields)


def judge(
    rule_id: str,
    report: ScanReport,
    params: dict[str, Any] | None = None,
    source: SourceType = SourceType.LOCAL,
    metadata: ModelMetadata | None = None,
) -> RuleOutcome:
    """One registered rule's outcome, its parameters parsed by the rule."""
    rule = rules.get(rule_id)
    assert rule is not None, rule_id
    return rule.evaluate(EvaluationInput(report, source, metadata), rule.parse_params(params))


def run(
    group_rules: list[dict[str, Any]],
    metadata: ModelMetadata | None,
    report: ScanReport | None = None,
    source: SourceType = SourceType.HUGGING_FACE,
) -> Verdict:
    """The verdict of a group of ``group_rules`` (SecurityGroup spec entries)."""
    group = parse_group({"rules": group_rules}, "test", "test")
    return evaluate(group, EvaluationInput(report or ScanReport(target="hf://acme/model"), source, metadata))


def result(rule: str, metadata: ModelMetadata | None, **params: Any) -> tuple[RuleResult, str]:
    """A metadata rule's result and message in a one-rule group on a Hub model."""
    verdict = run([{"name": rule, "params": params}], metadata)
    return verdict.rules[0].result, verdict.rules[0].message
