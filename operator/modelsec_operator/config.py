"""The operator's settings, validated once at start-up (pydantic at the boundary)."""

from __future__ import annotations

import enum
import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Test-only: seconds each scan sleeps in its worker thread before reading the model, so
# that tests can kill the operator while a scan is provably in flight. Never set it in
# production; the operator logs a warning when it is set.
SCAN_DELAY_ENV = "MODELSEC_SCAN_DELAY_SECONDS"


class ScanMode(str, enum.Enum):
    IN_PROCESS = "inProcess"  # engine runs in the operator's own worker threads
    JOB = "job"  # each scan attempt is a Kubernetes Job (docs/operator.md, Scan Jobs)


class OperatorConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    kubeconfig: Path | None = None
    context: str | None = None
    metrics_port: int = Field(default=9090, ge=0, le=65535)  # 0: no metrics server
    health_port: int = Field(default=8080, ge=0, le=65535)  # 0: no health endpoint
    bind_address: str = "0.0.0.0"
    max_concurrent_scans: int = Field(default=2, ge=1, le=256)
    report_cache_size: int = Field(default=64, ge=0, le=100_000)
    peering: str | None = "modelsec"
    priority: int | None = None
    local_root: Path | None = None
    resync_seconds: float = Field(default=60.0, gt=0)
    max_attempts: int = Field(default=5, ge=1)
    scan_delay_seconds: float = Field(default=0.0, ge=0)
    running_status_after: float = Field(default=2.0, ge=0)
    scan_mode: ScanMode = ScanMode.IN_PROCESS
    max_concurrent_scan_jobs: int = Field(default=10, ge=1, le=10_000)
    scan_job_namespace: str = Field(
        default="modelsec", pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63
    )
    scan_job_settings: Path | None = None
    scan_job_poll_seconds: float = Field(default=2.0, gt=0, le=300)
    queue_refresh_seconds: float = Field(default=60.0, gt=0)
    scan_job_running_status_after: float = Field(default=30.0, ge=0)
    # Where each verdict's ML-BOM goes (a ConfigMap per ModelScan); None: no BOMs.
    bom_namespace: str | None = Field(default=None, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)

    @field_validator("local_root")
    @classmethod
    def _absolute_root(cls, value: Path | None) -> Path | None:
        if value is None:
            return None
        if not value.is_absolute():
            raise ValueError(f"--local-root must be an absolute path, got {value}")
        return Path(os.path.realpath(value))

    @property
    def standalone(self) -> bool:
        return self.peering is None


def scan_delay_from_env() -> float:
    raw = os.environ.get(SCAN_DELAY_ENV, "").strip()
    if not raw:
        return 0.0
    try:
        return max(0.0, float(raw))
    except ValueError:
        raise ValueError(f"{SCAN_DELAY_ENV} must be a number of seconds, got {raw!r}") from None
