"""Objects as the API server serves them, and a view built from them through the same
sinks the informers feed. For unit tests of the decision logic; the cluster tests use a
real API server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from modelsec.k8s.naming import scan_name
from modelsec_webhook.view import View, sinks

REPO = Path(__file__).resolve().parents[2]

API = "modelsec.io/v1alpha1"
SHA = "0123456789abcdef0123456789abcdef01234567"
READY = {
    "type": "Ready",
    "status": "True",
    "reason": "Ready",
    "message": "",
    "lastTransitionTime": "2026-01-01T00:00:00Z",
}


def source(name: str, type_: str = "HuggingFace", **settings: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"type": type_}
    if type_ == "Local":
        spec["local"] = settings
    elif type_ == "S3":
        spec["s3"] = settings
    elif settings:
        spec["huggingFace"] = settings
    return {"apiVersion": API, "kind": "ModelSource", "metadata": {"name": name}, "spec": spec}


def group(
    name: str,
    source_ref: str,
    rules: list[dict[str, Any]] | None = None,
    *,
    selector: dict[str, Any] | None = None,
    enforcement: dict[str, Any] | None = None,
    state: str = "ready",
    digest: str = "d1",
    generation: int = 1,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "sourceRef": source_ref,
        "rules": rules or [{"name": "LoadTimeCodeExecution", "mode": "Blocking"}],
    }
    spec["namespaceSelector"] = {"matchLabels": {"team": "a"}} if selector is None else selector
    if enforcement is not None:
        spec["enforcement"] = enforcement
    status: dict[str, Any] = {}
    if state == "ready":
        status = {"observedGeneration": generation, "digest": digest, "conditions": [READY]}
    elif state == "not-ready":
        status = {
            "observedGeneration": generation,
            "digest": digest,
            "conditions": [
                {**READY, "status": "False", "reason": "SourceNotFound", "message": "no such source"}
            ],
        }
    elif state == "stale":
        status = {"observedGeneration": generation - 1, "digest": digest, "conditions": [READY]}
    return {
        "apiVersion": API,
        "kind": "SecurityGroup",
        "metadata": {"name": name, "generation": generation},
        "spec": spec,
        "status": status,
    }


def scan(
    model: str,
    revision: str | None,
    group_name: str,
    outcome: str | None = "ALLOWED",
    *,
    phase: str = "Completed",
    digest: str = "d1",
    name: str | None = None,
    failed: list[str] = (),
    warned: list[str] = (),
    findings: int = 1,
    completed_at: str = "2026-01-01T00:00:00Z",
    reason: str = "",
) -> dict[str, Any]:
    rules = [
        {
            "name": r,
            "mode": "Blocking",
            "result": "FAILED",
            "violations": 1,
            "message": f"{r} found something",
        }
        for r in failed
    ]
    rules += [
        {
            "name": r,
            "mode": "NonBlocking",
            "result": "FAILED",
            "violations": 1,
            "message": f"{r}: not approved",
        }
        for r in warned
    ]
    spec: dict[str, Any] = {"model": model, "securityGroup": group_name}
    if revision:
        spec["revision"] = revision
    status: dict[str, Any] = {
        "phase": phase,
        "groupDigest": digest,
        "rules": rules,
        "completedAt": completed_at,
        "reason": reason,
    }
    if outcome:
        status["outcome"] = outcome
    if failed:
        status["findings"] = [
            {
                "rule": failed[0],
                "threat": "MS-PKL-100",
                "severity": "CRITICAL",
                "file": f"/models/evil-{i}.pkl",
                "message": "os.system called at load time",
            }
            for i in range(findings)
        ]
        status["findingsTotal"] = findings
    return {
        "apiVersion": API,
        "kind": "ModelScan",
        "metadata": {"name": name or scan_name(model, revision, group_name)},
        "spec": spec,
        "status": status,
    }


def namespace(name: str, **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name, **labels}},
    }


def view(*objects: dict[str, Any]) -> View:
    built = View()
    by_kind: dict[str, list[dict[str, Any]]] = {
        "ModelScan": [],
        "SecurityGroup": [],
        "ModelSource": [],
        "Namespace": [namespace("team-a", team="a"), namespace("team-b", team="b")],
    }
    for obj in objects:
        by_kind[obj["kind"]].append(obj)
    targets = sinks(built)
    for kind, plural in (
        ("ModelSource", "modelsources"),
        ("SecurityGroup", "securitygroups"),
        ("ModelScan", "modelscans"),
        ("Namespace", "namespaces"),
    ):
        targets[plural].replace(by_kind[kind])
    return built


def review(
    obj: dict[str, Any],
    *,
    kind: str | None = None,
    namespace: str = "team-a",
    operation: str = "CREATE",
    old: dict[str, Any] | None = None,
    dry_run: bool = False,
    uid: str = "uid-1",
) -> bytes:
    kind = kind or obj["kind"]
    return json.dumps(
        {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": uid,
                "kind": {"group": "", "version": "v1", "kind": kind},
                "namespace": namespace,
                "operation": operation,
                "name": _name(obj),
                "userInfo": {"username": "alice"},
                "object": obj,
                "oldObject": old,
                "dryRun": dry_run,
            },
        }
    ).encode()


def _name(obj: dict[str, Any]) -> Any:
    metadata = obj.get("metadata")
    return metadata.get("name") if isinstance(metadata, dict) else None


def pod(models: str | None = None, *containers: dict[str, Any], name: str = "p") -> dict[str, Any]:
    annotations = {"modelsec.io/models": models} if models else {}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"containers": list(containers) or [{"name": "c", "image": "busybox"}]},
    }
