"""``ScanResult``: how a scan Job's worker hands its verdict back to the operator.

A namespaced object in the operator's namespace, created once by the worker Pod and never
changed. It is trusted only because the API server checks who creates it: the
ValidatingAdmissionPolicy from :mod:`modelsec.k8s.resultpolicy` lets a ServiceAccount
token bound to a Pod create exactly one ScanResult, named after that Pod and carrying its
UID, in the Pod's namespace; RBAC gives ``create`` (and nothing else) on ScanResults only
to the scan-worker ServiceAccount. The operator then accepts a result only from the Pod
of the Job it created for that scan. See ``docs/operator.md`` (The verdict channel).

The verdict part is the ModelScan status the operator would have written itself, bounded
the same way (at most :data:`MAX_FINDINGS` findings and :data:`MAX_INCOMPLETES`
incompletes, with totals), so a result always fits in one object.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from modelsec.k8s.common import K8sModel, cel, validations
from modelsec.k8s.scan import (
    MAX_FINDINGS,
    MAX_INCOMPLETES,
    MAX_MESSAGE,
    FindingStatus,
    IncompleteStatus,
    RuleStatus,
)
from modelsec.policy import Outcome
from modelsec.references.model import MAX_REVISION_LENGTH

_IMMUTABLE = cel(
    "self == oldSelf",
    "a ScanResult is written once by its worker and never changed",
    reason="FieldValueForbidden",
)
_ONE_OF = cel(
    "has(self.verdict) != has(self.failure)",
    "a ScanResult holds either a verdict or a failure",
)
REASON_PATTERN = r"^[A-Z][A-Za-z0-9]{0,63}$"


class WorkerVerdict(K8sModel):
    """The verdict fields of a ModelScan status, as the worker computed them."""

    outcome: Outcome
    reason: str = Field(default="", max_length=MAX_MESSAGE)
    rules: list[RuleStatus] = Field(default_factory=list, max_length=256)
    findings: list[FindingStatus] = Field(default_factory=list, max_length=MAX_FINDINGS)
    findings_total: int = Field(default=0, ge=0, alias="findingsTotal")
    findings_truncated: bool = Field(default=False, alias="findingsTruncated")
    incompletes: list[IncompleteStatus] = Field(default_factory=list, max_length=MAX_INCOMPLETES)
    incompletes_total: int = Field(default=0, ge=0, alias="incompletesTotal")
    fingerprint: str | None = Field(default=None, max_length=128)
    revision: str | None = Field(
        default=None,
        max_length=MAX_REVISION_LENGTH,
        description="The revision the scan read (ModelScan status.revision).",
    )
    files_scanned: int = Field(default=0, ge=0, alias="filesScanned")
    bytes_scanned: int = Field(default=0, ge=0, alias="bytesScanned")
    scanner_version: str = Field(alias="scannerVersion", max_length=64)
    started_at: str | None = Field(default=None, alias="startedAt", max_length=32)
    completed_at: str = Field(alias="completedAt", max_length=32)
    group_digest: str = Field(
        alias="groupDigest",
        max_length=128,
        description="status.digest of the group the worker judged against; the operator "
        "discards a verdict for another version of the group and judges again.",
    )


class WorkerFailure(K8sModel):
    """No verdict: why, and whether another attempt may help."""

    reason: str = Field(max_length=64, pattern=REASON_PATTERN, description="CamelCase, e.g. ModelNotFound.")
    message: str = Field(max_length=MAX_MESSAGE)
    retry: bool = Field(description="True: transient (retried with backoff); False: permanent.")


class ScanResultSpec(K8sModel):
    model_config = K8sModel.model_config | {"json_schema_extra": validations(_IMMUTABLE, _ONE_OF)}

    model_scan: str = Field(alias="modelScan", max_length=253, description="The ModelScan judged.")
    job: str = Field(max_length=63, description="The scan Job whose Pod wrote this result.")
    pod_uid: str = Field(
        alias="podUID",
        max_length=64,
        description="UID of the writing Pod; admission checks it against the Pod bound to "
        "the writer's ServiceAccount token.",
    )
    verdict: WorkerVerdict | None = None
    failure: WorkerFailure | None = None

    @model_validator(mode="after")
    def _one_of(self) -> ScanResultSpec:
        if (self.verdict is None) == (self.failure is None):
            raise ValueError("a ScanResult holds either a verdict or a failure")
        return self


class ScanResultStatus(K8sModel):
    """Unused: a ScanResult is complete when created."""
