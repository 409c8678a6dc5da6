"""``ModelScan``: the audit record of one model revision judged by one security group.

The spec names what to judge and is immutable; the status holds the current verdict and,
in ``history``, the verdicts it superseded (bounded; see ``docs/operator.md``).
"""

from __future__ import annotations

import enum
import re

from pydantic import Field, field_validator

from modelsec.k8s.common import CONDITIONS_LIST, Condition, K8sModel, cel, validations
from modelsec.policy import Mode, Outcome
from modelsec.references.model import MAX_REFERENCE_LENGTH, MAX_REVISION_LENGTH, reference_problem
from modelsec.rules.base import RuleResult

# Bounds that keep a ModelScan far below etcd's 1.5 MiB object limit, whatever a model holds.
MAX_FINDINGS = 50
MAX_INCOMPLETES = 20
MAX_HISTORY = 20
MAX_MESSAGE = 1024

_MODEL_RULE = cel(
    "self.startsWith('hf://') || self.startsWith('s3://') || self.startsWith('file:///')",
    "spec.model must be hf://<org>/<name>, s3://<bucket>/<key> or file:///<absolute path>",
)
_IMMUTABLE = cel(
    "self == oldSelf",
    "spec is immutable: a ModelScan records one model revision judged by one group; "
    "create another ModelScan instead",
    reason="FieldValueForbidden",
)


# What the API server can refuse by pattern (RE2 there, Rust's regex in pydantic): C0 and
# C1 control characters, DEL, and the invisible format characters that reorder or hide
# text (zero-width, bidi overrides, line separators, BOM). The operator checks the rest
# (reference_problem) and records a terminal InvalidReference at once.
_INVISIBLE = r"\x00-\x1F\x7F-\x9F\x{200B}-\x{200F}\x{2028}-\x{202E}\x{2060}-\x{2069}\x{FEFF}"
MODEL_PATTERN = rf"^(hf|s3|file)://[^{_INVISIBLE}]+$"
REVISION_PATTERN = rf"^[^\s{_INVISIBLE}]+$"
# metadata.name of a cluster-scoped object: a DNS subdomain.
GROUP_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
_GROUP_NAME = re.compile(GROUP_NAME_PATTERN)


class ModelScanSpec(K8sModel):
    """What to judge: one model revision against one security group."""

    model_config = K8sModel.model_config | {"json_schema_extra": validations(_IMMUTABLE)}

    model: str = Field(
        min_length=6,
        max_length=MAX_REFERENCE_LENGTH,
        description="Model reference: hf://org/name, s3://bucket/key-or-prefix, or "
        "file:///path (inside the Local source's directory). No control or invisible "
        "characters.",
        json_schema_extra={"pattern": MODEL_PATTERN, **validations(_MODEL_RULE)},
    )
    revision: str | None = Field(
        default=None,
        max_length=MAX_REVISION_LENGTH,
        description="Commit sha (Hugging Face), version id (S3) or content digest; "
        "unset means the latest at scan time. No spaces, control or invisible characters.",
        json_schema_extra={"pattern": REVISION_PATTERN},
    )
    security_group: str = Field(
        alias="securityGroup",
        min_length=1,
        max_length=253,
        description="Name of the SecurityGroup whose rules judge the model.",
        json_schema_extra={"pattern": GROUP_NAME_PATTERN},
    )

    # The patterns above are for the API server; here the same checks say what is wrong
    # in words (the operator records them in the status).
    @field_validator("model")
    @classmethod
    def _usable_reference(cls, value: str) -> str:
        problem = reference_problem(value)
        if problem:
            raise ValueError(f"not a usable reference: {problem}")
        if not value.startswith(("hf://", "s3://", "file://")):
            raise ValueError("must be hf://<org>/<name>, s3://<bucket>/<key> or file:///<absolute path>")
        return value

    @field_validator("revision")
    @classmethod
    def _usable_revision(cls, value: str | None) -> str | None:
        if value is not None and reference_problem("x", value):
            raise ValueError(f"not a usable revision: {reference_problem('x', value)}")
        return value

    @field_validator("security_group")
    @classmethod
    def _object_name(cls, value: str) -> str:
        if not _GROUP_NAME.match(value):
            raise ValueError("must be the name of a SecurityGroup (lower case letters, digits, '-' and '.')")
        return value


class Phase(str, enum.Enum):
    PENDING = "Pending"  # accepted, waiting for a worker slot
    RUNNING = "Running"  # a worker is scanning or evaluating
    COMPLETED = "Completed"  # a verdict for the current group and source is recorded
    FAILED = "Failed"  # no verdict could be produced; outcome ERROR (fail closed)


class RuleStatus(K8sModel):
    name: str
    mode: Mode
    result: RuleResult
    violations: int = Field(description="Findings that made the rule fail (all, not only those kept).")
    message: str = Field(default="", max_length=MAX_MESSAGE)


class FindingStatus(K8sModel):
    rule: str
    threat: str = Field(description="Stable threat code, e.g. MS-PKL-100 (see `modelsec threats`).")
    severity: str
    file: str = Field(max_length=4096, description="File, with `!` separating archive members.")
    message: str = Field(max_length=MAX_MESSAGE)
    subject: str | None = Field(default=None, max_length=MAX_MESSAGE)
    offset: int | None = None


class IncompleteStatus(K8sModel):
    file: str = Field(max_length=4096)
    reason: str = Field(max_length=MAX_MESSAGE)
    code: str


class HistoryEntry(K8sModel):
    """A superseded verdict, kept for audit."""

    phase: Phase
    outcome: Outcome | None = None
    reason: str = Field(default="", max_length=MAX_MESSAGE)
    completed_at: str | None = Field(default=None, alias="completedAt")
    superseded_at: str = Field(alias="supersededAt")
    superseded_because: str = Field(default="", alias="supersededBecause", max_length=MAX_MESSAGE)
    group_digest: str | None = Field(default=None, alias="groupDigest")
    group_generation: int | None = Field(default=None, alias="groupGeneration")
    fingerprint: str | None = None
    scanner_version: str | None = Field(default=None, alias="scannerVersion")
    failed_rules: list[str] = Field(
        default_factory=list, alias="failedRules", description="Blocking rules that failed."
    )
    warned_rules: list[str] = Field(
        default_factory=list, alias="warnedRules", description="NonBlocking rules that failed."
    )


class ScanJobRef(K8sModel):
    """The Kubernetes Job running the current attempt (``--scan-mode job``)."""

    namespace: str = Field(max_length=63)
    name: str = Field(max_length=63)


class BomRef(K8sModel):
    """Where the ML-BOM of the current verdict is kept: a ConfigMap the ModelScan owns.

    ``sha256`` is the digest of the stored value, so that a reader (``modelsec verify
    --scan``) can tell the ConfigMap still holds what the operator wrote; ``problem`` says
    why there is no BOM (too large for a ConfigMap, cyclonedx-python-lib missing, ...)."""

    namespace: str | None = Field(default=None, max_length=63)
    name: str | None = Field(default=None, max_length=253)
    key: str | None = Field(
        default=None,
        max_length=64,
        description="bom.json (data, JSON) or bom.json.gz (binaryData, gzip of the JSON).",
    )
    sha256: str | None = Field(default=None, max_length=64, description="SHA-256 of the stored value.")
    files: int | None = Field(default=None, ge=0, description="File components in the BOM.")
    problem: str | None = Field(default=None, max_length=MAX_MESSAGE, description="Why there is no BOM.")


class ModelScanStatus(K8sModel):
    """The current verdict (when phase is Completed) and how it was reached."""

    phase: Phase | None = None
    outcome: Outcome | None = Field(
        default=None,
        description="ALLOWED, BLOCKED or ERROR. Only phase Completed with outcome ALLOWED "
        "admits a workload; anything else fails closed.",
    )
    reason: str | None = Field(default=None, max_length=MAX_MESSAGE, description="Why, in one line.")
    rules: list[RuleStatus] = Field(default_factory=list)
    findings: list[FindingStatus] = Field(
        default_factory=list,
        description=f"Findings, blocking failures first, at most {MAX_FINDINGS}.",
    )
    findings_total: int | None = Field(
        default=None, alias="findingsTotal", description="All findings, kept or not."
    )
    findings_truncated: bool | None = Field(default=None, alias="findingsTruncated")
    incompletes: list[IncompleteStatus] = Field(
        default_factory=list,
        description=f"What could not be inspected (fail closed), at most {MAX_INCOMPLETES}.",
    )
    incompletes_total: int | None = Field(default=None, alias="incompletesTotal")
    fingerprint: str | None = Field(
        default=None, description="SHA-256 over the model's files (path, digest) pairs."
    )
    revision: str | None = Field(
        default=None,
        max_length=MAX_REVISION_LENGTH,
        description="The revision the scan read, whatever spec.revision said (a branch, a tag "
        "or nothing): the Hugging Face commit SHA; for S3 the version id (one object in a "
        "versioned bucket), etag:<etag>:<size> or sha256:<digest of the listing> (a "
        "prefix). The mutating webhook pins references to it.",
    )
    bom: BomRef | None = Field(
        default=None,
        description="The CycloneDX ML-BOM of this verdict (per-file SHA-256 digests), kept in "
        "a ConfigMap; modelsec verify --scan reads it to name the files that changed.",
    )
    files_scanned: int | None = Field(default=None, alias="filesScanned")
    bytes_scanned: int | None = Field(default=None, alias="bytesScanned")
    scanner_version: str | None = Field(default=None, alias="scannerVersion")
    started_at: str | None = Field(default=None, alias="startedAt")
    completed_at: str | None = Field(default=None, alias="completedAt")
    worker: str | None = Field(default=None, description="Operator instance that ran the latest attempt.")
    job: ScanJobRef | None = Field(
        default=None,
        description="The scan Job of the latest attempt (scan mode job); deleting the ModelScan deletes it.",
    )
    queue_position: int | None = Field(
        default=None,
        alias="queuePosition",
        ge=1,
        description="While Pending for a scan slot: the place in the cluster-wide queue, "
        "fair between groups (refreshed as it halves; see the Ready condition's message).",
    )
    attempts: int | None = Field(default=None, description="Attempts for the current inputs.")
    group_digest: str | None = Field(
        default=None, alias="groupDigest", description="status.digest of the group judged against."
    )
    rescan_request: str | None = Field(
        default=None,
        alias="rescanRequest",
        max_length=256,
        description="The modelsec.io/rescan annotation value this verdict answered.",
    )
    group_generation: int | None = Field(default=None, alias="groupGeneration")
    observed_generation: int | None = Field(default=None, alias="observedGeneration")
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Ready: True when the verdict matches the current group and source.",
        json_schema_extra=CONDITIONS_LIST,
    )
    history: list[HistoryEntry] = Field(
        default_factory=list,
        description=f"Superseded verdicts, newest first, at most {MAX_HISTORY}.",
    )
    history_dropped: int | None = Field(
        default=None, alias="historyDropped", description="Older verdicts dropped from history."
    )
