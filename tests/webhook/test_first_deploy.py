"""The first-deploy wait (modelsec_webhook.firstdeploy): when a request may wait, for how
long, how many at once, and that it is answered again when the view changes. The wait
through a real API server and operator is in tests/webhook/test_admission_side_cluster.py."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import pytest
from webhook_helpers import group, review, scan, source, view

from modelsec.k8s.naming import scan_name
from modelsec_webhook.admission import Admission
from modelsec_webhook.firstdeploy import Estimates, FirstDeploy, WaitSettings, request_timeout
from modelsec_webhook.view import sinks

MODEL = "hf://acme/new"


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("10s", 10.0),
        ("1m30s", 90.0),
        ("500ms", 0.5),
        ("1h0m0s", 3600.0),
        (None, None),
        ("", None),
        ("soon", None),
        ("10", None),
    ],
)
def test_the_api_servers_timeout_is_read_from_the_url(text: str | None, seconds: float | None) -> None:
    assert request_timeout(text) == seconds


def finished(model: str, started: str, completed: str) -> dict[str, Any]:
    record = scan(model, None, "g", completed_at=completed)
    record["status"]["startedAt"] = started
    return record


def at(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(1_800_000_000 + seconds))


def test_estimates_come_from_the_groups_recent_scans() -> None:
    quick = [finished(f"hf://acme/m{i}", at(i * 100), at(i * 100 + 4)) for i in range(9)]
    slow = finished("hf://acme/big", at(2000), at(2030))
    built = view(source("hub"), group("g", "hub"), *quick, slow)
    estimates = Estimates(built)
    assert estimates.typical("g") == 30.0  # the 90th percentile of ten: the slow one
    assert estimates.typical("other") is None
    fewer = view(source("hub"), group("g", "hub"), *quick[:2])
    assert Estimates(fewer).typical("g") is None  # too few to go by: no estimate


@dataclass
class Pending:
    """What FirstDeploy needs of an answer."""

    waiting: tuple[Any, ...]
    allowed: bool = False


def admission_for(*objects: dict[str, Any]) -> Admission:
    return Admission(view(source("hub"), group("g", "hub"), *objects))


def pending_answer(admission: Admission) -> Any:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "annotations": {"modelsec.io/models": MODEL}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }
    return admission.review(review(pod))


def test_a_pending_denial_says_what_it_waits_for_and_a_verdict_ends_the_wait() -> None:
    admission = admission_for()
    first = pending_answer(admission)
    assert not first.allowed and [j.scan for j in first.waiting] == [scan_name(MODEL, None, "g")]
    waiter = FirstDeploy(admission.view, WaitSettings(margin_seconds=0.5))

    async def scenario() -> Any:
        async def verdict_later() -> None:
            await asyncio.sleep(0.2)
            sinks(admission.view)["modelscans"].upsert(
                scan(MODEL, None, "g", outcome="BLOCKED", failed=["LoadTimeCodeExecution"])
            )

        task = asyncio.ensure_future(verdict_later())
        answer = await waiter.wait(
            first, lambda: pending_answer(admission), timeout=10.0, started=time.monotonic()
        )
        await task
        return answer

    began = time.monotonic()
    answer = asyncio.run(scenario())
    assert time.monotonic() - began < 5
    assert not answer.allowed and not answer.waiting and b"BLOCKED" in answer.body
    assert waiter.waiting == 0


def test_the_wait_ends_at_the_budget_less_the_margin() -> None:
    admission = admission_for()
    first = pending_answer(admission)
    waiter = FirstDeploy(admission.view, WaitSettings(margin_seconds=0.7))
    began = time.monotonic()
    answer = asyncio.run(waiter.wait(first, lambda: pending_answer(admission), timeout=1.0, started=began))
    spent = time.monotonic() - began
    assert answer.waiting and 0.2 <= spent < 0.9


def test_no_wait_without_a_budget_past_the_cap_or_when_the_scan_is_too_slow() -> None:
    admission = admission_for()
    first = pending_answer(admission)
    waiter = FirstDeploy(admission.view, WaitSettings(max_waiting=0))
    began = time.monotonic()
    assert (
        asyncio.run(waiter.wait(first, lambda: pytest.fail("no wait"), timeout=10.0, started=began)) is first
    )
    waiter = FirstDeploy(admission.view)
    assert (
        asyncio.run(waiter.wait(first, lambda: pytest.fail("no wait"), timeout=None, started=began)) is first
    )
    # This group's scans take 60 s: a 10 s budget cannot cover one.
    slow = [finished(f"hf://acme/m{i}", at(i * 100), at(i * 100 + 60)) for i in range(3)]
    admission = admission_for(*slow)
    first = pending_answer(admission)
    waiter = FirstDeploy(admission.view)
    assert (
        asyncio.run(
            waiter.wait(first, lambda: pytest.fail("no wait"), timeout=10.0, started=time.monotonic())
        )
        is first
    )
    disabled = FirstDeploy(admission.view, WaitSettings(enabled=False))
    assert (
        asyncio.run(
            disabled.wait(first, lambda: pytest.fail("no wait"), timeout=10.0, started=time.monotonic())
        )
        is first
    )


def test_a_scan_running_far_longer_than_usual_is_not_waited_for() -> None:
    quick = [finished(f"hf://acme/m{i}", at(i * 100), at(i * 100 + 2)) for i in range(3)]
    running = scan(MODEL, None, "g", phase="Running", outcome=None)
    running["status"]["startedAt"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60))
    admission = admission_for(*quick, running)
    first = pending_answer(admission)
    assert first.waiting
    waiter = FirstDeploy(admission.view)
    assert (
        asyncio.run(
            waiter.wait(first, lambda: pytest.fail("no wait"), timeout=10.0, started=time.monotonic())
        )
        is first
    )
    queued = scan(MODEL, None, "g", phase="Pending", outcome=None)
    queued["status"]["queuePosition"] = 40  # forty scans of ~2 s ahead of it
    admission = admission_for(*quick, queued)
    first = pending_answer(admission)
    assert (
        asyncio.run(
            FirstDeploy(admission.view).wait(
                first, lambda: pytest.fail("no wait"), timeout=10.0, started=time.monotonic()
            )
        )
        is first
    )


def test_an_already_scanned_model_never_waits() -> None:
    admission = admission_for(scan(MODEL, None, "g"))
    answer = pending_answer(admission)
    assert answer.allowed and answer.waiting == ()


def test_a_dry_run_does_not_wait_for_a_scan_it_does_not_create() -> None:
    admission = admission_for()
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "annotations": {"modelsec.io/models": MODEL}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }
    dry = admission.review(review(pod, dry_run=True))
    assert not dry.allowed and dry.waiting == () and b"no ModelScan was created" in dry.body
    queued = admission_for(scan(MODEL, None, "g", phase="Pending", outcome=None))
    assert queued.review(review(pod, dry_run=True)).waiting  # it exists: its verdict may come
