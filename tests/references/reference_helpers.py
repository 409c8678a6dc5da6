"""Helpers for extractor tests: workloads built from the Kubernetes objects users write."""

from __future__ import annotations

from typing import Any

from modelsec.references import Extraction, extract, extractors
from modelsec.references.workloads import workload_from_object


def pod(
    *containers: dict[str, Any],
    annotations: dict[str, str] | None = None,
    init: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": list(containers)}
    if init:
        spec["initContainers"] = init
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "annotations": annotations or {}},
        "spec": spec,
    }


def deployment(
    *containers: dict[str, Any],
    annotations: dict[str, str] | None = None,
    template_annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d", "annotations": annotations or {}},
        "spec": {
            "template": {
                "metadata": {"annotations": template_annotations or {}},
                "spec": {"containers": list(containers)},
            }
        },
    }


def refs(kind: str, obj: dict[str, Any]) -> list[str]:
    """The references as strings, sorted (what the webhook judges)."""
    return [str(r.ref) for r in extraction(kind, obj).references]


def extraction(kind: str, obj: dict[str, Any]) -> Extraction:
    workload = workload_from_object(kind, obj)
    assert workload is not None
    return extract(workload)


def only(name: str, kind: str, obj: dict[str, Any]) -> list[tuple[str, str | None, str]]:
    """(text, revision, origin) found by one extractor alone, before parsing."""
    workload = workload_from_object(kind, obj)
    assert workload is not None
    extractor = next(e for e in extractors() if e.name == name)
    return [(f.text, f.revision, f.origin) for f in extractor.extract(workload) if hasattr(f, "text")]
