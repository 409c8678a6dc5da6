"""Scan mode job without a cluster: the Job manifest, sizing, and how the tracker reads
what became of a Job (including results that do not come from the Job's own Pod)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from modelsec.k8s.source import ModelSourceSpec
from modelsec_operator.jobs.manifest import JobRequest, build_job
from modelsec_operator.jobs.settings import GIB, JobSettings, Sizing
from modelsec_operator.jobs.tracker import JobTracker, _owned_by, _Waiting
from modelsec_operator.scanning import ScanRefused


def _request(source: dict[str, Any], size: int | None = None) -> JobRequest:
    return JobRequest(
        scan_name="m-0123",
        scan_uid="uid-1",
        key="ab" * 32,
        attempt=2,
        group_digest="g",
        source=ModelSourceSpec.model_validate(source),
        model_bytes=size,
        local_root=Path("/models"),
    )


def test_the_job_is_strict_owned_and_carries_no_secret_value() -> None:
    s3 = {
        "type": "S3",
        "s3": {"bucket": "models", "credentialsSecretRef": {"name": "keys", "namespace": "ms"}},
    }
    job = build_job(_request(s3), JobSettings(), "ms")
    assert job["metadata"]["name"] == "modelsec-scan-abababababababab-2"
    assert job["metadata"]["ownerReferences"][0] == {
        "apiVersion": "modelsec.io/v1alpha1",
        "kind": "ModelScan",
        "name": "m-0123",
        "uid": "uid-1",
        "controller": True,
        "blockOwnerDeletion": False,
    }
    pod = job["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False and pod["restartPolicy"] == "Never"
    container = pod["containers"][0]
    assert container["args"] == ["scan-worker", "m-0123", "--local-root", "/models"]
    secret_vars = {
        e["name"]: e["valueFrom"]["secretKeyRef"]
        for e in container["env"]
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert set(secret_vars) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"}
    assert all(ref["name"] == "keys" for ref in secret_vars.values())
    assert not any("value" in e and "AWS" in e["name"] for e in container["env"])
    token = pod["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"]
    assert token["path"] == "token"


def test_a_secret_in_another_namespace_is_refused_never_copied() -> None:
    hf = {"type": "HuggingFace", "huggingFace": {"tokenSecretRef": {"name": "t", "namespace": "team-a"}}}
    with pytest.raises(ScanRefused) as refused:
        build_job(_request(hf), JobSettings(), "modelsec")
    assert refused.value.reason == "SecretNotMountable" and "never copies" in refused.value.message


def test_resources_follow_the_model_size_within_bounds() -> None:
    sizing = Sizing()
    small = sizing.resources(10)["limits"]
    large = sizing.resources(10 * GIB)["limits"]
    huge = sizing.resources(10_000 * GIB)["limits"]
    assert small["memory"] == "288Mi" and large["memory"] == "576Mi" and huge["memory"] == "4096Mi"
    assert large["ephemeral-storage"] == f"{256 + 10 * 1024}Mi" and huge["ephemeral-storage"] == "65536Mi"


def _job(conditions: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": "j", "uid": "job-uid"}, "status": {"conditions": conditions or []}}


def _pod(name: str = "j-abcde", phase: str = "Running", **status: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "uid": f"{name}-uid",
            "ownerReferences": [{"kind": "Job", "uid": "job-uid"}],
        },
        "status": {"phase": phase, "conditions": [{"type": "PodScheduled", "status": "True"}], **status},
    }


def _judge(
    job: dict[str, Any] | None,
    pods: list[dict[str, Any]],
    results: dict[str, Any],
    waiting: _Waiting | None = None,
    now: float = 0.0,
    timeout: float = 60,
) -> Any:
    tracker = JobTracker(api=None, poll_seconds=1, schedule_timeout=timeout)  # type: ignore[arg-type]
    return tracker._judge("j", job, pods, results, waiting or _Waiting(future=None), now)  # type: ignore[arg-type]


VERDICT = {
    "outcome": "BLOCKED",
    "scannerVersion": "1",
    "completedAt": "2026-01-01T00:00:00Z",
    "groupDigest": "g",
}


def test_a_result_counts_only_from_the_jobs_own_pod() -> None:
    pod = _pod()
    good = {"spec": {"modelScan": "m", "job": "j", "podUID": "j-abcde-uid", "verdict": VERDICT}}
    assert _judge(_job(), [pod], {"j-abcde": good}).result.verdict.outcome.value == "BLOCKED"
    # A result under the Pod's name but another UID or Job (written by anyone else) is ignored.
    for spec in ({"podUID": "other", "job": "j"}, {"podUID": "j-abcde-uid", "job": "other"}):
        forged = {"spec": {"modelScan": "m", "verdict": VERDICT, **spec}}
        assert _judge(_job(), [pod], {"j-abcde": forged}) is None
    # A Pod not owned by the Job is not one of its Pods (poll() keeps only those).
    stranger = _pod()
    stranger["metadata"]["ownerReferences"] = [{"kind": "Job", "uid": "another-job"}]
    assert _owned_by(pod, _job()) and not _owned_by(stranger, _job())


@pytest.mark.parametrize(
    "job, pods, reason",
    [
        (None, [], "JobDeleted"),
        (
            _job([{"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}]),
            [_pod(phase="Failed")],
            "JobDeadlineExceeded",
        ),
        (
            _job([{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]),
            [_pod(phase="Failed")],
            "JobFailed",
        ),
        (_job(), [_pod(phase="Failed", reason="Evicted", message="node low on memory")], "PodEvicted"),
    ],
)
def test_faults_become_retry_reasons(job: Any, pods: list[dict[str, Any]], reason: str) -> None:
    end = _judge(job, pods, {})
    assert end is not None and end.result is None and end.reason == reason


def test_completed_without_result_and_unscheduled_pods_time_out() -> None:
    waiting = _Waiting(future=None)  # type: ignore[arg-type]
    complete = _job([{"type": "Complete", "status": "True"}])
    assert _judge(complete, [_pod(phase="Succeeded")], {}, waiting) is None  # the result may still come
    assert _judge(complete, [_pod(phase="Succeeded")], {}, waiting).reason == "NoResult"
    pending = _pod(phase="Pending")
    pending["status"]["conditions"] = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]
    waiting = _Waiting(future=None)  # type: ignore[arg-type]
    assert _judge(_job(), [pending], {}, waiting, now=0, timeout=30) is None
    assert _judge(_job(), [pending], {}, waiting, now=31, timeout=30).reason == "Unschedulable"


async def test_a_queued_scan_keeps_its_ticket_across_queue_refreshes() -> None:
    """The queue-position refresh times out the wait every few seconds; that must not take
    the scan out of the queue (it then ran without a slot, and a later release failed)."""
    import asyncio

    from modelsec_operator.jobs.runner import JobScanner

    class Run:
        name, body, retry, status, generation = "s", {}, 0, {}, 1
        claims: list[int | None] = []

        async def claim(
            self, because: str, *, queue_position: int | None = None, queued: str | None = None
        ) -> None:
            self.claims.append(queue_position)

    scanner = JobScanner(
        api=None,
        settings=JobSettings(),
        limit=1,
        tracker=None,  # type: ignore[arg-type]
        local_root=None,
        queue_refresh_seconds=0.05,
    )
    holder = scanner.slots.enqueue("g", "holder")
    await scanner.slots.wait(holder)
    ticket = scanner.slots.enqueue("g", "s")
    waiting = asyncio.create_task(scanner._queue(Run(), ticket, "new scan"))  # type: ignore[arg-type]
    await asyncio.sleep(0.3)  # several refresh periods
    assert not waiting.done() and scanner.slots.waiting == 1
    scanner.slots.release("g")
    await asyncio.wait_for(waiting, 2)
    assert scanner.slots.running == 1 and Run.claims == [1]


async def test_a_snapshot_taken_before_a_job_was_created_does_not_call_it_deleted() -> None:
    import asyncio

    class Api:
        def __init__(self) -> None:
            self.gate = asyncio.Event()

        async def snapshot(self, names: list[str]) -> Any:
            await self.gate.wait()
            return [], [], []  # listed before the Job existed

    api = Api()
    tracker = JobTracker(api, poll_seconds=10, schedule_timeout=60)  # type: ignore[arg-type]
    tracker._task = asyncio.create_task(asyncio.sleep(3600))  # no polling loop: only the poll below
    listing = asyncio.create_task(tracker.poll())
    await asyncio.sleep(0)
    waiter = asyncio.create_task(tracker.wait("j"))
    await asyncio.sleep(0)
    api.gate.set()
    await listing
    await asyncio.sleep(0.01)
    assert not waiter.done(), "an older snapshot must not judge a Job created after it"
    waiter.cancel()
    tracker.close()


def test_a_groups_placement_replaces_the_operator_wide_one() -> None:
    from dataclasses import replace

    from modelsec.k8s.group import ScanJobPlacement

    settings = JobSettings.model_validate(
        {
            "nodeSelector": {"pool": "scan"},
            "priorityClassName": "low",
            "tolerations": [{"key": "scan", "operator": "Exists"}],
        }
    )
    local = {"type": "Local", "local": {"path": "/models"}}
    plain = build_job(_request(local), settings, "ms")["spec"]["template"]["spec"]
    assert plain["nodeSelector"] == {"pool": "scan"} and plain["priorityClassName"] == "low"
    urgent = replace(
        _request(local),
        placement=ScanJobPlacement.model_validate(
            {"nodeSelector": {"pool": "gpu-free"}, "priorityClassName": "high"}
        ),
    )
    pod = build_job(urgent, settings, "ms")["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"pool": "gpu-free"} and pod["priorityClassName"] == "high"
    assert pod["tolerations"] == [{"key": "scan", "operator": "Exists"}]  # not set by the group: kept


def test_placement_is_not_part_of_what_a_verdict_depends_on() -> None:
    from modelsec_operator.validation import validate_group, validate_source

    source = validate_source("s", {"type": "Local", "local": {"path": "/"}}, None)
    spec = {"sourceRef": "s", "rules": [{"name": "LoadTimeCodeExecution"}]}
    moved = {**spec, "scanJob": {"nodeSelector": {"pool": "other"}}}
    assert validate_group("g", spec, 1, source).digest == validate_group("g", moved, 2, source).digest
    assert validate_group("g", moved, 2, source).spec.policy_spec().scan_job is None  # type: ignore[union-attr]
