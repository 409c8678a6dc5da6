"""``SecurityGroup``: rules bound to a source.

The spec *is* :class:`modelsec.policy.SecurityGroupSpec` (so ``modelsec scan --group`` and
the cluster judge alike), extended with settings that only mean something in a cluster.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import Field, WithJsonSchema, field_validator

from modelsec.group_spec import SecurityGroupSpec
from modelsec.k8s.common import CONDITIONS_LIST, LABEL_SELECTOR_SCHEMA, Condition, K8sModel
from modelsec.k8s.enforcement import Enforcement
from modelsec.policy import GroupSpec

_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
DURATION_PATTERN = r"^([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?$"
MIN_RESCAN = timedelta(minutes=1)


def parse_duration(text: str) -> timedelta:
    """``1d12h``, ``90m``, ``45s``: the Go-like durations users write in manifests."""
    match = _DURATION.match(text.strip())
    if not match or not any(match.groups()):
        raise ValueError(f"{text!r} is not a duration like 30m, 12h or 1d12h")
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


class ScanJobPlacement(K8sModel):
    """Where this group's scan Jobs run (operator ``--scan-mode job``); each field, when
    set, replaces the operator-wide setting (Helm ``operator.scanJobs``)."""

    node_selector: dict[str, str] | None = Field(
        default=None, alias="nodeSelector", description="Node selector of the scan Pods."
    )
    tolerations: list[dict[str, Any]] | None = Field(
        default=None, max_length=64, description="Tolerations of the scan Pods."
    )
    affinity: dict[str, Any] | None = Field(default=None, description="Affinity of the scan Pods.")
    priority_class_name: str | None = Field(
        default=None, alias="priorityClassName", max_length=253, description="PriorityClass of the scan Pods."
    )


class SecurityGroupResourceSpec(SecurityGroupSpec):
    """The spec of a SecurityGroup resource: the CLI's group plus cluster-only settings."""

    namespace_selector: Annotated[dict[str, Any] | None, WithJsonSchema(LABEL_SELECTOR_SCHEMA)] = Field(
        default=None,
        alias="namespaceSelector",
        description="Namespaces where the webhook enforces this group (a label selector); "
        "empty selects none.",
    )
    # Declared (and ignored) by the policy spec too; here it gets its shape and meaning.
    rescan_interval: str | None = Field(
        default=None,
        alias="rescanInterval",
        max_length=32,
        pattern=DURATION_PATTERN,
        description="Scan every model of this group again after this long (30m, 12h, 7d), "
        "to catch new detections and changed mutable content. At least 1m. Unset: never.",
    )

    # Declared (and ignored) by the policy spec too; read only by the admission webhook.
    enforcement: Enforcement | None = Field(  # type: ignore[assignment]  # narrows GroupSpec's dict
        default=None,
        description="How the admission webhook applies verdicts: mode Enforce (default), Warn "
        "or Audit; pendingAction and errorAction. See docs/webhook.md.",
    )

    # Declared (and ignored) by the policy spec too; read only by the operator in job mode.
    scan_job: ScanJobPlacement | None = Field(  # type: ignore[assignment]  # narrows GroupSpec's dict
        default=None,
        alias="scanJob",
        description="Where this group's scan Jobs run (scan mode job): nodeSelector, tolerations, "
        "affinity, priorityClassName. Does not change any verdict.",
    )

    @field_validator("rescan_interval")
    @classmethod
    def _sane_interval(cls, value: str | None) -> str | None:
        if value is not None and parse_duration(value) < MIN_RESCAN:
            raise ValueError("rescanInterval must be at least 1m")
        return value

    @property
    def rescan_every(self) -> timedelta | None:
        return parse_duration(self.rescan_interval) if self.rescan_interval else None

    def policy_spec(self) -> GroupSpec:
        """The run-time policy spec (what ``modelsec scan --group`` would load)."""
        return SecurityGroupSpec.model_validate(
            self.model_dump(
                by_alias=True, exclude={"rescan_interval", "enforcement", "scan_job"}, exclude_none=True
            )
        ).runtime()


class SecurityGroupStatus(K8sModel):
    """What the operator concluded about the group."""

    observed_generation: int | None = Field(default=None, alias="observedGeneration")
    source_type: str | None = Field(
        default=None, alias="sourceType", description="Type of the referenced ModelSource."
    )
    rules: int | None = Field(default=None, description="Rules listed (for `kubectl get`).")
    blocking: int | None = Field(default=None, description="Rules in Blocking mode.")
    digest: str | None = Field(
        default=None,
        description="SHA-256 over this group's spec and its source's spec: a ModelScan whose "
        "status.groupDigest differs is re-evaluated.",
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Ready: whether the group can judge models, and if not why "
        "(SourceNotFound, UnknownRule, InvalidParams, ...).",
        json_schema_extra=CONDITIONS_LIST,
    )
