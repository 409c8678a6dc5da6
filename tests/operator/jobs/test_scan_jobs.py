"""Scan mode ``job`` end to end: verdicts, retries, faults, restarts, fairness, sharing.

Each scan is a real Job made into a real Pod by kube-controller-manager, bound by
kube-scheduler to the node double, which runs ``modelsec scan-worker`` with the Pod's
TokenRequest token; the verdict comes back as a ScanResult the admission policy checked.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from conftest import NAMESPACE  # type: ignore[import-not-found]
from modelsec.k8s.naming import scan_name

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(900)]

API = "modelsec.io/v1alpha1"
# Protocol 2: GLOBAL 'os system', 'id', TUPLE1, REDUCE: runs `id` if loaded.
EVIL_PICKLE = b"\x80\x02cos\nsystem\nq\x00X\x02\x00\x00\x00idq\x01\x85q\x02Rq\x03."
# {'weights': [1, 2, 3]}: a plain data pickle.
CLEAN_PICKLE = b"\x80\x02}q\x00X\x07\x00\x00\x00weightsq\x01]q\x02(K\x01K\x02K\x03es."
RULES = [{"name": "LoadTimeCodeExecution", "mode": "Blocking"}, {"name": "SuspiciousComponents", "mode": "Blocking"}]


def recorded(obj: dict[str, Any]) -> bool:
    return obj.get("status", {}).get("phase") in ("Completed", "Failed")


def ready_reason(obj: dict[str, Any]) -> str | None:
    return next((c["reason"] for c in obj.get("status", {}).get("conditions", []) if c["type"] == "Ready"), None)


class Space:
    """A models directory, a Local source and a group of this test's own."""

    def __init__(self, cluster: Any, root: Path, nodeid: str) -> None:
        readable = re.sub(r"[^a-z0-9]+", "-", nodeid.rsplit("::", 1)[-1].lower().removeprefix("test_"))[:24].strip("-")
        self.prefix = f"{readable}-{hashlib.sha256(nodeid.encode()).hexdigest()[:6]}"
        self.cluster = cluster
        self.dir = root / self.prefix
        self.dir.mkdir(exist_ok=True)
        self.group = f"{self.prefix}-g"
        cluster.apply(
            {"apiVersion": API, "kind": "ModelSource", "metadata": {"name": f"{self.prefix}-src"},
             "spec": {"type": "Local", "local": {"path": str(self.dir)}}},
            self.group_doc(self.group),
        )
        self._ready = False

    def group_doc(self, name: str) -> dict[str, Any]:
        return {"apiVersion": API, "kind": "SecurityGroup", "metadata": {"name": name},
                "spec": {"sourceRef": f"{self.prefix}-src", "rules": RULES}}

    def model(self, name: str, content: bytes | None = None) -> str:
        if content is not None:
            (self.dir / name).write_bytes(content)
        return f"file://{self.dir / name}"

    def scan(self, model: str, group: str | None = None, name: str | None = None) -> str:
        """Create a ModelScan (once an operator runs: the group must be Ready first)."""
        if not self._ready:
            self.cluster.wait_for("securitygroups", self.group, lambda o: ready_reason(o) == "Ready",
                                  what="group Ready")
            self._ready = True
        group = group or self.group
        name = name or scan_name(model, None, group)
        self.cluster.apply({"apiVersion": API, "kind": "ModelScan", "metadata": {"name": name},
                            "spec": {"model": model, "securityGroup": group}})
        return name

    def wait(self, name: str, timeout: float = 120) -> dict[str, Any]:
        return self.cluster.wait_for("modelscans", name, recorded, timeout=timeout, what="a verdict")

    def jobs(self) -> list[dict[str, Any]]:
        items = json.loads(self.cluster.kubectl("get", "jobs", "-n", NAMESPACE, "-o", "json").stdout)["items"]
        return [j for j in items if j["metadata"]["annotations"].get("modelsec.io/scan", "").startswith(
            tuple(scan_name(self.model(p.name), None, self.group)[:10] for p in self.dir.iterdir()) or ("\0",))]

    def job_of(self, scan: str) -> dict[str, Any] | None:
        status = self.cluster.get("modelscans", scan)["status"]
        return self.cluster.get("jobs", status["job"]["name"]) if status.get("job") else None


@pytest.fixture
def space(jobs_cluster: Any, jobs_models: Path, request: pytest.FixtureRequest) -> Any:
    made = Space(jobs_cluster, jobs_models, request.node.nodeid)
    yield made
    scans = json.loads(jobs_cluster.kubectl("get", "modelscans", "-o", "json").stdout)["items"]
    mine = [f"modelscans/{s['metadata']['name']}" for s in scans if s["spec"]["securityGroup"].startswith(made.prefix)]
    jobs_cluster.kubectl("delete", "--wait=false", "--ignore-not-found", *mine,
                         f"securitygroups/{made.group}", f"modelsources/{made.prefix}-src", check=False)


def test_blocked_and_clean_verdicts_come_back_from_scan_jobs(space: Any, job_operator: Callable[..., Any],
                                                             node: Any) -> None:
    job_operator().start()
    evil = space.scan(space.model("evil.pkl", EVIL_PICKLE))
    clean = space.scan(space.model("clean.pkl", CLEAN_PICKLE))
    blocked = space.wait(evil)["status"]
    assert (blocked["phase"], blocked["outcome"]) == ("Completed", "BLOCKED"), blocked
    assert any(f["rule"] == "LoadTimeCodeExecution" and f["file"].endswith("evil.pkl") for f in blocked["findings"])
    assert blocked["job"]["namespace"] == NAMESPACE and blocked["worker"].startswith(f"{NAMESPACE}/{blocked['job']['name']}-")
    allowed = space.wait(clean)["status"]
    assert (allowed["phase"], allowed["outcome"]) == ("Completed", "ALLOWED"), allowed
    assert allowed.get("queuePosition") is None and allowed["fingerprint"]

    # The Job: owned by its ModelScan, a strict Pod, no automounted token, and the
    # ScanResult named after the Pod that wrote it.
    job = space.cluster.get("jobs", f"{blocked['job']['name']}", ) if False else json.loads(space.cluster.kubectl(
        "get", "job", "-n", NAMESPACE, blocked["job"]["name"], "-o", "json").stdout)
    owner = job["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"]) == ("ModelScan", evil)
    pod_spec = job["spec"]["template"]["spec"]
    assert pod_spec["automountServiceAccountToken"] is False and pod_spec["securityContext"]["runAsNonRoot"] is True
    container = pod_spec["containers"][0]
    assert container["args"][:2] == ["scan-worker", evil]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["resources"]["limits"]["memory"] and container["resources"]["requests"]["ephemeral-storage"]
    pod = blocked["worker"].split("/", 1)[1]
    result = json.loads(space.cluster.kubectl("get", "scanresults", "-n", NAMESPACE, pod, "-o", "json").stdout)
    assert result["spec"]["modelScan"] == evil and result["spec"]["verdict"]["outcome"] == "BLOCKED"
    # The printer columns show the state of each scan.
    table = space.cluster.kubectl("get", "modelscans", evil, clean).stdout
    assert "Blocked" in table and "Allowed" in table
