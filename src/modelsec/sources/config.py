"""Source configuration: the keys of ``ScanOptions.config``.

The operator builds this dict from the ``ModelSource`` spec plus the data of the Kubernetes
Secret it names, so every value may arrive as a string (Secret data are strings): lists
accept comma/newline-separated strings, numbers and booleans accept their text forms.
Secret keys also accept the environment-variable spelling (``HF_TOKEN``,
``AWS_ACCESS_KEY_ID``...) so a Secret created for other tools works unchanged.

Unknown keys are rejected (a typo must not silently drop a setting). Error messages name
keys, never values: a validation error must not quote a token back.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from modelsec.sources.errors import CONFIG, SourceFailure


def _split_list(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                return json.loads(text)
            except json.JSONDecodeError:
                pass
        return [p.strip() for p in text.replace("\n", ",").split(",") if p.strip()]
    return value


class CommonConfig(BaseModel):
    """Settings shared by all remote sources."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    allow_patterns: list[str] = Field(
        default_factory=list,
        validation_alias=AliasChoices("allowPatterns", "allow_patterns"),
        description="Glob patterns (fnmatch, matched on the path inside the model); when set, "
        "only matching files are scanned.",
    )
    ignore_patterns: list[str] = Field(
        default_factory=list,
        validation_alias=AliasChoices("ignorePatterns", "ignore_patterns"),
        description="Glob patterns of files not to scan (applied after allowPatterns).",
    )
    timeout: float = Field(
        default=30.0,
        gt=0,
        description="Seconds of silence tolerated within a request (connect, or between bytes).",
    )
    request_deadline: float = Field(
        default=120.0,
        gt=0,
        validation_alias=AliasChoices("requestDeadline", "request_deadline"),
        description="Seconds for one request to be answered in full (an API answer, a "
        "listing page, a range read), however steadily the server trickles bytes.",
    )
    scan_deadline: float = Field(
        default=3600.0,
        gt=0,
        validation_alias=AliasChoices("scanDeadline", "scan_deadline"),
        description="Seconds for the whole scan of one model (listing, reads, whole-file "
        "downloads, retries and backoff); past it the scan is ERROR.",
    )
    max_response_bytes: int = Field(
        default=16 << 20,
        ge=64 << 10,
        validation_alias=AliasChoices("maxResponseBytes", "max_response_bytes"),
        description="Largest API answer accepted (model info, one listing page, an error "
        "body), counted after decompression.",
    )
    max_list_pages: int = Field(
        default=1000,
        ge=1,
        validation_alias=AliasChoices("maxListPages", "max_list_pages"),
        description="Most pages one listing may take (empty pages included).",
    )
    max_retries: int = Field(
        default=4,
        ge=0,
        le=20,
        validation_alias=AliasChoices("maxRetries", "max_retries"),
        description="Retries of a throttled (429/503 SlowDown), 5xx or timed-out request.",
    )
    retry_base_seconds: float = Field(
        default=0.5,
        ge=0,
        validation_alias=AliasChoices("retryBaseSeconds", "retry_base_seconds"),
        description="First backoff; doubles per retry.",
    )
    retry_max_seconds: float = Field(
        default=8.0,
        ge=0,
        validation_alias=AliasChoices("retryMaxSeconds", "retry_max_seconds"),
        description="Longest single wait, also the cap on a server's Retry-After.",
    )
    block_size: int = Field(
        default=16 << 10,
        ge=4 << 10,
        le=64 << 20,
        validation_alias=AliasChoices("blockSize", "block_size"),
        description="Range-read granularity in bytes (small reads coalesce into blocks).",
    )
    cache_bytes: int = Field(
        default=16 << 20,
        ge=0,
        validation_alias=AliasChoices("cacheBytes", "cache_bytes"),
        description="Block cache per open file.",
    )
    whole_file_fraction: float = Field(
        default=0.5,
        gt=0,
        le=1.0,
        validation_alias=AliasChoices("wholeFileFraction", "whole_file_fraction"),
        description="Once range reads of one file exceed this fraction of its size, the "
        "file is downloaded whole into the temporary area (fewer requests) and verified.",
    )
    max_download_bytes: int = Field(
        default=16 << 30,
        ge=0,
        validation_alias=AliasChoices("maxDownloadBytes", "max_download_bytes"),
        description="Bound of the temporary area for whole-file downloads, per scan.",
    )
    hash_small_files_bytes: int = Field(
        default=16 << 20,
        ge=0,
        validation_alias=AliasChoices("hashSmallFilesBytes", "hash_small_files_bytes"),
        description="Files up to this size with no source-supplied SHA-256 are read whole "
        "to fingerprint them (config files, tokenizers).",
    )
    temp_dir: str | None = Field(
        default=None,
        validation_alias=AliasChoices("tempDir", "temp_dir"),
        description="Where whole-file downloads go (default: the system temp dir).",
    )

    @field_validator("allow_patterns", "ignore_patterns", mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _split_list(value)

    def temp_root(self) -> str:
        return self.temp_dir or tempfile.gettempdir()


class HuggingFaceConfig(CommonConfig):
    endpoint: str | None = Field(
        default=None,
        validation_alias=AliasChoices("endpoint", "HF_ENDPOINT"),
        description="Hub URL (mirror, private hub). Default: HF_ENDPOINT, else https://huggingface.co.",
    )
    token: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("token", "HF_TOKEN", "hfToken", "HUGGING_FACE_HUB_TOKEN"),
        description="Access token (gated/private models). Default: huggingface_hub's lookup.",
    )

    def resolved_endpoint(self) -> str:
        return (self.endpoint or os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


class S3Config(CommonConfig):
    endpoint: str | None = Field(
        default=None,
        validation_alias=AliasChoices("endpoint", "endpointUrl", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"),
        description="S3-compatible endpoint (MinIO, Ceph, R2). Default: AWS (or AWS_ENDPOINT_URL).",
    )
    region: str | None = Field(
        default=None,
        validation_alias=AliasChoices("region", "AWS_REGION", "AWS_DEFAULT_REGION"),
    )
    access_key_id: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("accessKeyId", "AWS_ACCESS_KEY_ID", "access_key_id"),
    )
    secret_access_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("secretAccessKey", "AWS_SECRET_ACCESS_KEY", "secret_access_key"),
    )
    session_token: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("sessionToken", "AWS_SESSION_TOKEN", "session_token"),
    )
    profile: str | None = Field(default=None, validation_alias=AliasChoices("profile", "AWS_PROFILE"))
    addressing_style: Literal["auto", "path", "virtual"] | None = Field(
        default=None,
        validation_alias=AliasChoices("addressingStyle", "addressing_style"),
        description="Default: path-style with a custom endpoint, else auto.",
    )
    anonymous: bool = Field(default=False, description="Unsigned requests (public buckets).")

    @field_validator("addressing_style", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value


def parse_config(model: type[CommonConfig], raw: dict[str, Any] | None, where: str) -> Any:
    """Validate ``raw`` into ``model``; a :class:`SourceFailure` naming keys only."""
    cleaned = {k: v for k, v in (raw or {}).items() if v is not None and v != ""}
    try:
        return model.model_validate(cleaned)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"]) or "config"
            msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
            problems.append(f"{key}: {msg}")
        known = sorted(
            alias
            for field in model.model_fields.values()
            if isinstance(field.validation_alias, AliasChoices)
            for alias in field.validation_alias.choices[:1]  # the key a user writes
            if isinstance(alias, str)
        ) + sorted(name for name, f in model.model_fields.items() if f.validation_alias is None)
        raise SourceFailure(
            CONFIG,
            f"invalid {where} source configuration: {'; '.join(problems)} "
            f"(known keys: {', '.join(sorted(set(known)))})",
        ) from None
