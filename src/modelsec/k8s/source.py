"""``ModelSource``: where models live and how the operator reaches them."""

from __future__ import annotations

import fnmatch
from typing import Annotated

from pydantic import Field, model_validator

from modelsec.k8s.common import (
    CONDITIONS_LIST,
    Condition,
    K8sModel,
    SecretKeyRef,
    SecretRef,
    cel,
    validations,
)
from modelsec.metadata import SourceType


class HuggingFaceSource(K8sModel):
    """Settings of a Hugging Face Hub (or a mirror speaking its protocol)."""

    endpoint: str = Field(
        default="https://huggingface.co",
        max_length=2048,
        pattern=r"^https?://",
        description="Base URL of the Hub or mirror.",
    )
    token_secret_ref: SecretKeyRef | None = Field(
        default=None,
        alias="tokenSecretRef",
        description="Secret key holding an access token, for gated or private models.",
    )
    models: list[Annotated[str, Field(max_length=256, pattern=r"^[^/\s]+/[^/\s]+$")]] = Field(
        default_factory=lambda: ["*/*"],
        max_length=256,
        description="org/name glob patterns of the models this source serves (meta-llama/*, "
        "acme/*-instruct). A group bound to this source governs, and the operator scans, "
        "only references that match one.",
    )

    def serves(self, model_id: str) -> bool:
        # The Hub resolves repository ids case-insensitively (Acme/Model is acme/model), so
        # the patterns match without case: otherwise a respelled id would escape them.
        model_id = model_id.lower()
        return any(fnmatch.fnmatchcase(model_id, pattern.lower()) for pattern in self.models)


class S3Source(K8sModel):
    """Settings of an S3-compatible object store."""

    endpoint: str | None = Field(
        default=None,
        max_length=2048,
        pattern=r"^https?://",
        description="Endpoint URL for S3-compatible stores (MinIO, Ceph); empty for AWS.",
    )
    region: str = Field(default="us-east-1", max_length=64, description="Region of the bucket.")
    bucket: str = Field(min_length=3, max_length=63, description="Bucket that holds the models.")
    prefix: str = Field(
        default="",
        max_length=1024,
        description="Key prefix models must live under (s3:// references outside it are refused).",
    )
    credentials_secret_ref: SecretRef | None = Field(
        default=None,
        alias="credentialsSecretRef",
        description="Secret with keys AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
        "(and optionally AWS_SESSION_TOKEN); without it the operator's ambient credentials.",
    )


class LocalSource(K8sModel):
    """A directory on the operator's filesystem (a volume mounted into its pod)."""

    path: str = Field(
        min_length=1,
        max_length=4096,
        pattern=r"^/",
        description="Absolute directory; file:/// model references must resolve inside it.",
    )


class SourceLimits(K8sModel):
    """Bounds on every scan's conversation with a remote source (docs/sources.md, "Bounds"
    and "Deadlines"). Unset keys keep the defaults; the operator passes them to each scan."""

    request_deadline: float | None = Field(
        default=None,
        alias="requestDeadline",
        ge=1,
        le=3600,
        description="Seconds for one request (an API answer, a listing page, a range read) to "
        "be answered in full, however steadily the server trickles bytes. Default 120.",
    )
    scan_deadline: float | None = Field(
        default=None,
        alias="scanDeadline",
        ge=1,
        le=7 * 86400,
        description="Seconds for the whole scan of one model (listing, reads, downloads, "
        "retries); past it the scan is ERROR. Default 3600.",
    )
    max_response_bytes: int | None = Field(
        default=None,
        alias="maxResponseBytes",
        ge=64 << 10,
        le=1 << 30,
        description="Largest API answer accepted (model info, one listing page), counted "
        "after decompression. Default 16 MiB; a Hub model with over ~40,000 files needs more.",
    )
    max_list_pages: int | None = Field(
        default=None,
        alias="maxListPages",
        ge=1,
        le=1_000_000,
        description="Most pages one listing may take. Default 1000.",
    )

    def config(self) -> dict[str, float | int]:
        """The keys of :class:`modelsec.sources.config.CommonConfig` these set."""
        return {k: v for k, v in self.model_dump(by_alias=True).items() if v is not None}


_TYPE_RULES = (
    cel(
        "self.type == 'HuggingFace' || !has(self.huggingFace)",
        "spec.huggingFace is only allowed when spec.type is HuggingFace",
        reason="FieldValueForbidden",
    ),
    cel(
        "self.type != 'S3' || has(self.s3)",
        "spec.type S3 needs spec.s3 with at least a bucket",
        reason="FieldValueRequired",
    ),
    cel(
        "self.type == 'S3' || !has(self.s3)",
        "spec.s3 is only allowed when spec.type is S3",
        reason="FieldValueForbidden",
    ),
    cel(
        "self.type != 'Local' || has(self.local)",
        "spec.type Local needs spec.local.path (a directory mounted into the operator)",
        reason="FieldValueRequired",
    ),
    cel(
        "self.type == 'Local' || !has(self.local)",
        "spec.local is only allowed when spec.type is Local",
        reason="FieldValueForbidden",
    ),
    cel(
        "self.type != 'Local' || !has(self.limits)",
        "spec.limits bounds remote sources (HuggingFace, S3); a Local source reads files directly",
        reason="FieldValueForbidden",
    ),
)


class ModelSourceSpec(K8sModel):
    """Where models live. Exactly the sub-structure matching `type` may be set."""

    model_config = K8sModel.model_config | {"json_schema_extra": validations(*_TYPE_RULES)}

    type: SourceType = Field(description="HuggingFace, S3 or Local.")
    hugging_face: HuggingFaceSource | None = Field(default=None, alias="huggingFace")
    s3: S3Source | None = None
    local: LocalSource | None = None
    limits: SourceLimits | None = Field(
        default=None,
        description="Deadlines and size bounds for every scan through this source (HuggingFace and S3 only).",
    )

    @model_validator(mode="after")
    def _matching_settings(self) -> ModelSourceSpec:
        # The same rules as the CEL above, for clusters or tools that skip the schema.
        present = {
            SourceType.HUGGING_FACE: self.hugging_face is not None,
            SourceType.S3: self.s3 is not None,
            SourceType.LOCAL: self.local is not None,
        }
        extra = [t.value for t, there in present.items() if there and t != self.type]
        if extra:
            raise ValueError(f"settings for {', '.join(extra)} given but type is {self.type.value}")
        if self.type == SourceType.S3 and self.s3 is None:
            raise ValueError("type S3 needs spec.s3 with at least a bucket")
        if self.type == SourceType.LOCAL and self.local is None:
            raise ValueError("type Local needs spec.local.path")
        if self.type == SourceType.LOCAL and self.limits is not None:
            raise ValueError(
                "spec.limits bounds remote sources (HuggingFace, S3); a Local source reads files directly"
            )
        return self

    @property
    def settings(self) -> HuggingFaceSource | S3Source | LocalSource:
        if self.type == SourceType.LOCAL:
            assert self.local is not None
            return self.local
        if self.type == SourceType.S3:
            assert self.s3 is not None
            return self.s3
        return self.hugging_face or HuggingFaceSource()


class ModelSourceStatus(K8sModel):
    """What the operator observed about the source."""

    observed_generation: int | None = Field(default=None, alias="observedGeneration")
    digest: str | None = Field(
        default=None, description="SHA-256 of the spec; scans record the digest they used."
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Ready: whether scans can use this source, and why not.",
        json_schema_extra=CONDITIONS_LIST,
    )
