"""What people read: denial messages, warnings and audit annotations, within bounds.

- A denial names each model, where the workload names it, the group, the failed blocking
  rules and the first findings (threat code and file), and the ModelScan to inspect. It
  is at most :data:`MAX_MESSAGE` characters: kubectl prints it whole, and Events and logs
  that copy it stay readable; what does not fit is counted, never silently dropped.
- Warnings follow the API server's guidance: at most :data:`MAX_WARNING` characters each
  (longer ones are truncated by clients) and :data:`MAX_WARNINGS` of them, printable text
  only (others are dropped by the API server).
- Everything taken from a request or an object (references, file names, findings,
  reasons) is escaped with :func:`modelsec.safe_text.printable` before it is shown: a
  model path holding escape sequences must not repaint a terminal or forge a log line.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING

from modelsec.references import Invalid, Reference, Unresolved
from modelsec.safe_text import printable

if TYPE_CHECKING:
    from modelsec_webhook.decision import Judgement
    from modelsec_webhook.view import ScanRecord

MAX_MESSAGE = 2000
MAX_WARNING = 120
MAX_WARNINGS = 10
MAX_AUDIT_VALUE = 1024
MAX_AUDIT_ENTRIES = 10
ELLIPSIS = "…"

__all__ = ["clip", "printable"]


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + ELLIPSIS


def _tail(path: str, limit: int = 60) -> str:
    return path if len(path) <= limit else ELLIPSIS + path[-(limit - 1) :]


def show(reference: Reference, short: bool = False) -> str:
    ref = reference.ref
    if not short:
        return str(ref)
    revision = ref.revision or ""
    uri = _tail(ref.uri, 48)
    return f"{uri}@{revision[:12]}" if revision else uri


def blocked_detail(record: ScanRecord) -> str:
    rules = ", ".join(record.failed) or "a rule overriding the others"
    parts = [f"{rules} failed"]
    for finding in record.findings:
        parts.append(f"{finding.threat} in {_tail(finding.file)}: {clip(finding.message, 160)}")
    more = record.findings_total - len(record.findings)
    if more > 0:
        parts.append(f"{more} more finding(s)")
    return "; ".join(parts)


def judgement_line(judgement: Judgement, reference: Reference | None = None) -> str:
    """One line of a denial (or an Event) about one reference judged by one group;
    ``reference`` says where this workload names it (a cached judgement may come from
    another workload naming the same model elsewhere)."""
    reference = reference or judgement.reference
    where = f" ({reference.origins[0]})" if reference.origins else ""
    head = f"{show(reference)}{where}"
    group = f"SecurityGroup {judgement.group}"
    see = f"; see: kubectl get modelscan {judgement.scan} -o yaml" if judgement.scan else ""
    status = judgement.status.value
    if status == "BLOCKED":
        line = f"{head} is BLOCKED by {group}: {judgement.detail}{see}"
    elif status == "PENDING":
        line = f"{head}, {group}: {judgement.detail}"
    else:
        line = f"{head} is ERROR in {group}: {judgement.detail}{see}"
    return printable(line)


def warning_line(judgement: Judgement) -> str:
    return printable(
        f"modelsec: {show(judgement.reference, True)} {judgement.status.value} "
        f"({judgement.group}, {judgement.mode.value}): {judgement.detail}"
    )


def prefixed(judgement: Judgement, warning: str) -> str:
    return printable(f"modelsec: {show(judgement.reference, True)} ({judgement.group}): {warning}")


def unpinned_line(judgement: Judgement, reference: Reference) -> str:
    where = f" ({reference.origins[0]})" if reference.origins else ""
    return printable(
        f"{show(reference)}{where} is not pinned, and SecurityGroup {judgement.group} pins "
        f"references (spec.enforcement.pin) to the revision its scan read, "
        f"{judgement.pin_to}: the mutating webhook pin.models.modelsec.io did not rewrite "
        "it (apply again; if it persists, check that its MutatingWebhookConfiguration "
        "is installed), or name that revision yourself"
    )


def invalid_line(invalid: Invalid) -> str:
    return printable(
        f"{clip(invalid.text, 200)!r} in {invalid.origin} is not a usable model reference: {invalid.problem}"
    )


def unresolved_line(unresolved: Unresolved) -> str:
    return printable(f"modelsec: cannot judge the model named by {unresolved.origin}: {unresolved.why}")


def unresolved_denial(unresolved: Unresolved, groups: tuple[str, ...], namespace: str) -> str:
    if groups:
        who = (
            f"SecurityGroup {groups[0]} covers"
            if len(groups) == 1
            else f"SecurityGroups {', '.join(groups)} cover"
        )
        why = f"{who} namespace {namespace}, so its model must be known: failing closed"
    else:
        why = (
            f"namespace {namespace} is not in the webhook's view yet, so a group may cover it: "
            "failing closed, retry shortly"
        )
    return printable(f"{unresolved.origin}: cannot judge the model it names: {unresolved.why}; {why}")


def malformed_line(problem: str) -> str:
    return printable(
        f"the object cannot be read: {problem} (the API server never sends this; failing closed)"
    )


def unknown_namespace_line(reference: Reference, namespace: str) -> str:
    return printable(
        f"{show(reference)}: namespace {namespace} is not in the webhook's view yet, "
        "so its security groups cannot be chosen; retry shortly"
    )


def denial(lines: list[str]) -> str:
    """The denial message: a header and one line per problem, bounded."""
    header = (
        f"modelsec: {len(lines)} model check(s) failed" if len(lines) > 1 else "modelsec: model check failed"
    )
    out = [header]
    used = len(header)
    for i, line in enumerate(lines):
        rest = len(lines) - i - 1
        budget = MAX_MESSAGE - used - 3 - (40 if rest else 0)
        if budget < 80:
            out.append(f"- and {len(lines) - i} more (kubectl get modelscans)")
            break
        entry = "- " + clip(line, budget)
        out.append(entry)
        used += len(entry) + 1
    return "\n".join(out)


def bounded_warnings(warnings: Iterable[str]) -> tuple[str, ...]:
    unique = list(dict.fromkeys(clip(printable(w), MAX_WARNING) for w in warnings))
    if len(unique) <= MAX_WARNINGS:
        return tuple(unique)
    kept = unique[: MAX_WARNINGS - 1]
    return (*kept, f"modelsec: and {len(unique) - len(kept)} more warning(s)")


def audit_summary(judgements: list[Judgement]) -> str:
    """A compact JSON list for the request's audit annotation."""
    entries = [
        {
            "model": str(j.reference.ref),
            "group": j.group,
            "status": j.status.value,
            "mode": j.mode.value,
            "effect": j.effect.value,
        }
        for j in judgements[:MAX_AUDIT_ENTRIES]
    ]
    text = json.dumps(entries, separators=(",", ":"))
    while len(text) > MAX_AUDIT_VALUE and len(entries) > 1:
        entries.pop()
        text = json.dumps(entries + [{"more": len(judgements) - len(entries)}], separators=(",", ":"))
    return clip(text, MAX_AUDIT_VALUE)
