"""What a scan finds: threats (the stable catalogue) and findings (one occurrence each).

Every format module declares its threats at import time with :func:`threat`; the catalogue
is what `docs/threats.md` and `modelsec threats` are generated from, so codes are stable and
documented in one place.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class Severity(enum.IntEnum):
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class Threat:
    """One kind of problem, with a stable code such as ``MS-PKL-100``.

    ``rule`` is the id of the rule that fails when this threat is found.
    """

    code: str
    rule: str
    severity: Severity
    title: str
    remediation: str
    description: str = ""

    def at(
        self,
        file: str,
        message: str,
        *,
        offset: int | None = None,
        subject: str | None = None,
        severity: Severity | None = None,
        details: dict[str, Any] | None = None,
    ) -> Finding:
        """A finding of this threat in ``file`` (a display path, nested with ``!``)."""
        return Finding(
            rule=self.rule,
            threat=self.code,
            severity=severity or self.severity,
            file=file,
            message=message,
            offset=offset,
            subject=subject,
            remediation=self.remediation,
            details=details or {},
        )


THREATS: dict[str, Threat] = {}


def threat(
    code: str,
    rule: str,
    severity: Severity,
    title: str,
    remediation: str,
    description: str = "",
) -> Threat:
    """Declare a threat in the global catalogue. Codes are unique and never reused."""
    if code in THREATS:
        raise ValueError(f"threat code {code} declared twice")
    declared = Threat(code, rule, severity, title, remediation, description)
    THREATS[code] = declared
    return declared


@dataclass(frozen=True)
class Finding:
    """One occurrence of a threat.

    ``file`` is the path as the user gave it, with ``!`` separating archive members
    (``model.zip!archive/data.pkl``). ``subject`` names the module/operator/global
    involved (``os.system``, ``PyFunc``). ``offset`` is a byte offset inside the innermost
    file when known.
    """

    rule: str
    threat: str
    severity: Severity
    file: str
    message: str
    offset: int | None = None
    subject: str | None = None
    remediation: str = ""
    details: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "rule": self.rule,
            "threat": self.threat,
            "severity": self.severity.name,
            "file": self.file,
            "message": self.message,
        }
        if self.offset is not None:
            out["offset"] = self.offset
        if self.subject is not None:
            out["subject"] = self.subject
        if self.remediation:
            out["remediation"] = self.remediation
        if self.details:
            out["details"] = self.details
        return out


@dataclass(frozen=True)
class Incomplete:
    """A part of the input that could not be inspected (encrypted member, unsupported
    codec, read error, limit reached). Content rules that found nothing else turn ERROR
    because of it: absence of evidence is not evidence of safety."""

    file: str
    reason: str
    code: str = "MS-GEN-001"

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "reason": self.reason, "code": self.code}

    def describe(self) -> str:
        """``file: reason`` for people, without naming the file twice when the reason
        already starts with it (source failures do: ``hf://org/name: model info: ...``)."""
        if self.reason == self.file or self.reason.startswith(f"{self.file}: "):
            return self.reason
        return f"{self.file}: {self.reason}"
