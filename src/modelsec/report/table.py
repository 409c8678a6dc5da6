"""The human-readable report: verdict per rule, then findings with file and threat.

Everything that comes from the scanned model or the user (paths, member names, subjects,
reasons, group names) passes through :func:`printable`: a file name holding escape
sequences must not be able to clear the screen and print a green "ALLOWED".
"""

from __future__ import annotations

import os
from typing import TextIO

from modelsec import __version__
from modelsec.findings import Severity
from modelsec.policy import Mode, Outcome
from modelsec.report import ModelResult, RunResult
from modelsec.rules.base import RuleResult
from modelsec.safe_text import printable


class Style:
    """ANSI styling, on only for terminals (and off with NO_COLOR)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.enabled else text

    @classmethod
    def for_stream(cls, stream: TextIO) -> Style:
        return cls(stream.isatty() and "NO_COLOR" not in os.environ)


OUTCOME_COLOURS = {Outcome.ALLOWED: "1;32", Outcome.BLOCKED: "1;31", Outcome.ERROR: "1;33"}
RESULT_COLOURS = {
    RuleResult.PASSED: "32",
    RuleResult.FAILED: "31",
    RuleResult.ERROR: "33",
    RuleResult.SKIPPED: "2",
}
SEVERITY_COLOURS = {Severity.CRITICAL: "1;31", Severity.HIGH: "31", Severity.MEDIUM: "33", Severity.LOW: "2"}


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _model_lines(result: ModelResult, style: Style, max_findings: int) -> list[str]:
    report, verdict = result.scanned.report, result.verdict
    outcome = style(verdict.outcome.value, OUTCOME_COLOURS[verdict.outcome])
    lines = [
        f"{style('MODEL', '1')}  {printable(report.target)}",
        f"  outcome  {outcome}  {printable(verdict.reason)}",
        f"  files    {len(report.files)} ({human_size(report.bytes_scanned)}) in "
        f"{report.seconds:.2f}s  fingerprint {report.fingerprint[:16]}",
        "",
    ]
    width = max([len(r.name) for r in verdict.rules] + [4])
    lines.append(f"  {'RULE'.ljust(width)}  {'MODE'.ljust(11)}  {'RESULT'.ljust(7)}  DETAIL")
    for r in verdict.rules:
        result_text = style(r.result.value.ljust(7), RESULT_COLOURS[r.result])
        lines.append(
            f"  {r.name.ljust(width)}  {r.mode.value.ljust(11)}  {result_text}  {printable(r.message)}"
        )

    shown = [(r.mode, f) for r in verdict.rules if r.mode != Mode.DISABLED for f in r.violations]
    if shown:
        lines += ["", f"  {style('FINDINGS', '1')}"]
        shown.sort(key=lambda pair: (-pair[1].severity, pair[1].file))
        for mode, f in shown[:max_findings]:
            where = printable(f.file) + (f" @{f.offset}" if f.offset is not None else "")
            tag = "" if mode == Mode.BLOCKING else " (warning)"
            sev = style(f.severity.name.ljust(8), SEVERITY_COLOURS[f.severity])
            lines.append(f"  {sev}  {f.threat}  {where}{tag}")
            subject = f"{printable(f.subject)}: " if f.subject else ""
            lines.append(f"            {subject}{printable(f.message)}")
            if f.remediation:
                lines.append(f"            {style('fix:', '2')} {printable(f.remediation)}")
        if len(shown) > max_findings:
            lines.append(f"  ... {len(shown) - max_findings} more (use --format json for all)")

    gaps = report.all_incompletes()
    if gaps:
        lines += ["", f"  {style('NOT INSPECTED', '1;33')} (content rules fail closed)"]
        for gap in gaps[:max_findings]:
            lines.append(f"  {gap.code}  {printable(gap.describe())}")
        if len(gaps) > max_findings:
            lines.append(f"  ... {len(gaps) - max_findings} more")
    return lines


def render(run: RunResult, style: Style, max_findings: int = 20) -> str:
    group = f"{printable(run.group.name)} ({printable(run.group.origin)})"
    header = f"modelsec {__version__} · security group {group}"
    blocks = [style(header, "2")]
    for model in run.models:
        blocks.append("\n".join(_model_lines(model, style, max_findings)))
    return "\n\n".join(blocks) + "\n"
