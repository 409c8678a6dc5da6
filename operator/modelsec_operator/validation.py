"""Is a ModelSource usable, can a SecurityGroup judge models? Pure functions over specs.

Both the group handler (to set conditions) and the scan handler (to decide what to do)
call these on the specs from kopf's indices, so a scan never trusts a group status that
may lag behind its spec. Reasons are CamelCase and stable; messages say what to fix.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from modelsec.k8s.group import SecurityGroupResourceSpec
from modelsec.k8s.source import ModelSourceSpec
from modelsec.metadata import SourceType
from modelsec.policy import Mode, SecurityGroup
from modelsec.sources import SOURCE_MODULES

_SCHEMES = {SourceType.LOCAL: "file", SourceType.HUGGING_FACE: "hf", SourceType.S3: "s3"}


def digest(*parts: Any) -> str:
    """SHA-256 over canonical JSON: equal specs give equal digests, whatever key order."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def explain(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'spec'}: {e['msg'].removeprefix('Value error, ')}"
        for e in exc.errors()
    )


@dataclass(frozen=True)
class SourceView:
    """A ModelSource as validated: whether it is usable and why, its spec's digest, its spec."""

    name: str
    ready: bool
    reason: str
    message: str
    digest: str
    spec: ModelSourceSpec | None = None


@dataclass(frozen=True)
class GroupView:
    """A SecurityGroup as validated: whether it can judge and why, its digest, spec and source."""

    name: str
    ready: bool
    reason: str
    message: str
    digest: str
    generation: int | None = None
    spec: SecurityGroupResourceSpec | None = None
    source: SourceView | None = None
    counts: dict[str, int] = field(default_factory=dict)

    def group(self) -> SecurityGroup:
        assert self.spec is not None
        return SecurityGroup(self.name, self.spec.policy_spec(), origin=f"SecurityGroup/{self.name}")


def validate_source(name: str, raw: dict[str, Any] | None, local_root: Path | None) -> SourceView:
    raw = raw or {}
    spec_digest = digest(raw)
    try:
        spec = ModelSourceSpec.model_validate(raw)
    except ValidationError as exc:
        return SourceView(name, False, "InvalidSpec", explain(exc), spec_digest)
    if spec.type == SourceType.LOCAL:
        assert spec.local is not None
        path = Path(os.path.realpath(spec.local.path))
        if local_root is not None and not path.is_relative_to(local_root):
            return SourceView(
                name,
                False,
                "OutsideLocalRoot",
                f"spec.local.path {spec.local.path} is outside the operator's --local-root "
                f"{local_root}; mount the models under it",
                spec_digest,
                spec,
            )
        if not path.is_dir():
            return SourceView(
                name,
                False,
                "PathNotFound",
                f"spec.local.path {spec.local.path} is not a directory on the operator "
                "(is the volume mounted?)",
                spec_digest,
                spec,
            )
        return SourceView(name, True, "Ready", f"local directory {path}", spec_digest, spec)
    scheme = _SCHEMES[spec.type]
    if scheme not in SOURCE_MODULES:
        return SourceView(
            name,
            False,
            "SourceUnavailable",
            f"this operator build has no {spec.type.value} source ({scheme}://); "
            "install modelsec with the 'remote' extra",
            spec_digest,
            spec,
        )
    return SourceView(name, True, "Ready", f"{spec.type.value} source", spec_digest, spec)


def validate_group(
    name: str,
    raw: dict[str, Any] | None,
    generation: int | None,
    source: SourceView | None,
) -> GroupView:
    """``source`` is the view of ``spec.sourceRef`` (None when no such ModelSource)."""
    raw = raw or {}
    # Enforcement (Enforce/Warn/Audit, pending and error actions) is the webhook's business,
    # scanJob only says where scan Jobs run: neither changes any verdict, so both are left
    # out and editing them re-scans nothing.
    judged = {key: value for key, value in raw.items() if key not in ("enforcement", "scanJob")}
    group_digest = digest(judged, source.digest if source else None, source.ready if source else None)
    try:
        spec = SecurityGroupResourceSpec.model_validate(raw)
    except ValidationError as exc:
        reason = _group_reason(exc)
        return GroupView(name, False, reason, explain(exc), group_digest, generation)
    counts = {
        "rules": len(spec.rules),
        "blocking": sum(1 for r in spec.rules if r.mode == Mode.BLOCKING),
    }

    def view(ready: bool, reason: str, message: str) -> GroupView:
        return GroupView(name, ready, reason, message, group_digest, generation, spec, source, counts)

    if source is None:
        return view(
            False,
            "SourceNotFound",
            f"ModelSource {spec.source_ref!r} does not exist; create it or fix spec.sourceRef",
        )
    if not source.ready:
        return view(
            False, "SourceNotReady", f"ModelSource {spec.source_ref!r} is not ready: {source.message}"
        )
    assert source.spec is not None
    if spec.source_type is not None and spec.source_type != source.spec.type:
        return view(
            False,
            "SourceTypeMismatch",
            f"spec.sourceType is {spec.source_type.value} but ModelSource {spec.source_ref!r} "
            f"is {source.spec.type.value}; remove spec.sourceType or fix it",
        )
    empty = spec.emptiness()  # no rule enabled: refused unless spec.allowEmpty says so
    if empty is not None and not spec.allow_empty:
        return view(False, "NoRules", f"spec.rules: {empty}")
    blocking = counts["blocking"]
    return view(
        True,
        "Ready",
        f"{len(spec.rules)} rule(s), {blocking} blocking, on {source.spec.type.value} source "
        f"{spec.source_ref!r}" + (f"; warning: {empty}" if empty else ""),
    )


def _group_reason(exc: ValidationError) -> str:
    text = str(exc)
    if "unknown rule" in text:
        return "UnknownRule"
    if "invalid params" in text:
        return "InvalidParams"
    return "InvalidSpec"
