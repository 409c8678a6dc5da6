"""What the integrity tests do on the control plane: a ModelSource, a SecurityGroup bound to
it and a ModelScan of one model (named as the webhook would name it), waited on, removed
afterwards; and the real ``modelsec verify`` command line against that cluster."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from modelsec.k8s.naming import scan_name

API = "modelsec.io/v1alpha1"
VERDICT_PHASES = ("Completed", "Failed")


@dataclass(frozen=True)
class ScanSetup:
    """The three resources of one scan, by name."""

    source: str
    group: str
    name: str

    @property
    def resources(self) -> list[str]:
        return [f"modelscans/{self.name}", f"securitygroups/{self.group}", f"modelsources/{self.source}"]


def apply_scan(cluster: Any, prefix: str, source_spec: dict[str, Any], model: str) -> ScanSetup:
    """Create ``<prefix>-src`` (``source_spec``), ``<prefix>-group`` (load-time code
    execution only) and the ModelScan of ``model`` under that group."""
    setup = ScanSetup(f"{prefix}-src", f"{prefix}-group", scan_name(model, None, f"{prefix}-group"))
    cluster.apply(
        {"apiVersion": API, "kind": "ModelSource", "metadata": {"name": setup.source}, "spec": source_spec},
        {
            "apiVersion": API,
            "kind": "SecurityGroup",
            "metadata": {"name": setup.group},
            "spec": {"sourceRef": setup.source, "rules": [{"name": "LoadTimeCodeExecution"}]},
        },
        {
            "apiVersion": API,
            "kind": "ModelScan",
            "metadata": {"name": setup.name},
            "spec": {"model": model, "securityGroup": setup.group},
        },
    )
    return setup


@contextmanager
def scan_of(cluster: Any, prefix: str, source_spec: dict[str, Any], model: str) -> Iterator[ScanSetup]:
    """:func:`apply_scan`, the resources deleted on the way out whatever happened."""
    setup = apply_scan(cluster, prefix, source_spec, model)
    try:
        yield setup
    finally:
        delete(cluster, setup.resources)


def delete(cluster: Any, resources: list[str]) -> None:
    if resources:
        cluster.kubectl("delete", "--wait=false", *resources, check=False)


def local_source(path: object) -> dict[str, Any]:
    return {"type": "Local", "local": {"path": str(path)}}


def wait_verdict(
    cluster: Any, name: str, timeout: float = 120, phases: tuple[str, ...] = ("Completed",)
) -> Any:
    return cluster.wait_for(
        "modelscans",
        name,
        lambda o: o.get("status", {}).get("phase") in phases,
        timeout=timeout,
        what="a verdict" if len(phases) > 1 else "a completed scan",
    )


def verify(cluster: Any, *args: str) -> subprocess.CompletedProcess[str]:
    """``modelsec verify ARGS --kubeconfig <the cluster's>``, as a user runs it."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "modelsec",
            "verify",
            *args,
            "--kubeconfig",
            cluster.kubeconfig,
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
