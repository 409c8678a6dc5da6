"""What every scan Job gets: ``--scan-job-settings FILE`` (YAML), validated at start-up.

The Helm chart renders this file from its ``scanJobs`` values; every field has a default
that works with the chart, so an empty file is valid.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

import modelsec

GIB = 1024**3
MIB = 1024**2


class Sizing(BaseModel):
    """Requests and limits from the model's size where it is known (Local files are
    stat'ed; remote sizes are known only once read, so remote scans get the base).

    The engine streams files and spools decompressed archive members past 8 MiB to disk,
    so memory grows slowly with the model; ephemeral storage covers the spool."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    cpu_request: str = Field(default="250m", alias="cpuRequest")
    cpu_limit: str | None = Field(default="1", alias="cpuLimit")
    memory_base_mib: int = Field(default=256, ge=64, alias="memoryBaseMiB")
    memory_per_gib_mib: int = Field(default=32, ge=0, alias="memoryPerGiBMiB")
    memory_max_mib: int = Field(default=4096, ge=64, alias="memoryMaxMiB")
    storage_base_mib: int = Field(default=256, ge=0, alias="storageBaseMiB")
    storage_per_gib_mib: int = Field(default=1024, ge=0, alias="storagePerGiBMiB")
    storage_max_mib: int = Field(default=64 * 1024, ge=0, alias="storageMaxMiB")

    def resources(self, model_bytes: int | None) -> dict[str, Any]:
        gib = math.ceil((model_bytes or 0) / GIB)
        memory = min(self.memory_max_mib, self.memory_base_mib + gib * self.memory_per_gib_mib)
        storage = min(self.storage_max_mib, self.storage_base_mib + gib * self.storage_per_gib_mib)
        requests = {"cpu": self.cpu_request, "memory": f"{memory}Mi", "ephemeral-storage": f"{storage}Mi"}
        limits: dict[str, str] = {"memory": f"{memory}Mi", "ephemeral-storage": f"{storage}Mi"}
        if self.cpu_limit:
            limits["cpu"] = self.cpu_limit
        return {"requests": requests, "limits": limits}


class JobSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    image: str = Field(default=f"modelsec:{modelsec.__version__}", min_length=1)
    image_pull_policy: str = Field(
        default="IfNotPresent", alias="imagePullPolicy", pattern="^(Always|IfNotPresent|Never)$"
    )
    command: list[str] = Field(default_factory=lambda: ["modelsec"], min_length=1)
    service_account_name: str = Field(default="modelsec-scan-worker", alias="serviceAccountName")
    active_deadline_seconds: int = Field(default=3600, ge=10, alias="activeDeadlineSeconds")
    backoff_limit: int = Field(
        default=0,
        ge=0,
        le=10,
        alias="backoffLimit",
        description="Pod retries inside one Job; the operator retries with a new Job anyway.",
    )
    ttl_seconds_after_finished: int = Field(default=600, ge=0, alias="ttlSecondsAfterFinished")
    schedule_timeout_seconds: float = Field(
        default=300,
        gt=0,
        alias="scheduleTimeoutSeconds",
        description="A Pod not scheduled (or its image not pulled) after this long: the Job is "
        "deleted and the scan retried.",
    )
    token_expiration_seconds: int = Field(default=3600, ge=600, alias="tokenExpirationSeconds")
    sizing: Sizing = Field(default_factory=Sizing)
    node_selector: dict[str, str] = Field(default_factory=dict, alias="nodeSelector")
    tolerations: list[dict[str, Any]] = Field(default_factory=list)
    affinity: dict[str, Any] | None = None
    priority_class_name: str | None = Field(default=None, alias="priorityClassName")
    # The models volume for Local sources (mounted read-only at the same path as in the
    # operator), and any other volume the site needs.
    volumes: list[dict[str, Any]] = Field(default_factory=list)
    volume_mounts: list[dict[str, Any]] = Field(default_factory=list, alias="volumeMounts")
    env: list[dict[str, Any]] = Field(default_factory=list)
    labels: dict[str, str] = Field(default_factory=dict)
    run_as_user: int = Field(default=65532, ge=1, alias="runAsUser")


class SettingsError(ValueError):
    pass


def load_settings(path: Path | None) -> JobSettings:
    if path is None:
        return JobSettings()
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise SettingsError(f"--scan-job-settings {path}: {exc}") from None
    if not isinstance(raw, dict):
        raise SettingsError(f"--scan-job-settings {path}: expected a mapping, got {type(raw).__name__}")
    try:
        return JobSettings.model_validate(raw)
    except ValidationError as exc:
        raise SettingsError(f"--scan-job-settings {path}: {exc}") from None
