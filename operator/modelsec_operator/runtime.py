"""What every handler shares, kept in kopf's ``memo``: settings, API access, the scan pool."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from typing import Any

from modelsec.k8s import GROUP, MODELSOURCES, SECURITYGROUPS
from modelsec_operator.bom_export import BomPublisher
from modelsec_operator.config import OperatorConfig
from modelsec_operator.diffbase import ScanDiffBase
from modelsec_operator.jobs.runner import JobScanner
from modelsec_operator.kube import Kube
from modelsec_operator.pool import ScanPool
from modelsec_operator.validation import GroupView, SourceView, validate_group, validate_source

KOPF_PREFIX = f"kopf.{GROUP}"  # kopf's annotations on our objects (progress, last-handled)


def own_identity() -> str:
    """Who runs a scan, as recorded in status.worker: the pod (or host) and process."""
    host = os.environ.get("POD_NAME") or socket.gethostname()
    return f"{host}@{os.getpid()}"


@dataclass
class Runtime:
    """What every handler shares: settings, API access, the scan pool, the Job scanner, BOMs."""

    config: OperatorConfig
    kube: Kube
    pool: ScanPool
    identity: str
    jobs: JobScanner | None = None  # scan mode job; None: scans run in ``pool``
    boms: BomPublisher | None = None  # each verdict's ML-BOM in a ConfigMap (--bom-namespace)
    # kopf's last-handled state (lifecycle.configure installs it): ModelScans' in memory.
    diffbase: ScanDiffBase = field(
        default_factory=lambda: ScanDiffBase(prefix=KOPF_PREFIX, key="last-handled-configuration")
    )

    async def source_view(self, name: str) -> SourceView | None:
        body = await self.kube.get(MODELSOURCES[2], name)
        if body is None:
            return None
        return validate_source(name, body.get("spec"), self.config.local_root)

    async def group_view(self, name: str, body: dict[str, Any] | None = None) -> GroupView | None:
        """The group as it is now (read from the API server, not a cache that may lag)."""
        if body is None:
            body = await self.kube.get(SECURITYGROUPS[2], name)
            if body is None:
                return None
        spec = dict(body.get("spec") or {})
        source = await self.source_view(str(spec.get("sourceRef") or "local"))
        return validate_group(name, spec, (body.get("metadata") or {}).get("generation"), source)
