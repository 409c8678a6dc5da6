"""What a decision asks to happen besides the answer: ModelScans to create, Events to post.

Both are fire-and-forget tasks, so the admission response never waits for the API
server: the request that finds a model unscanned is denied ("scan pending, retry
shortly") at once, and the ModelScan appears moments later. Both are bounded (a burst of
requests cannot pile up tasks) and de-duplicated (a burst for one model creates one
ModelScan, one Event per object and message). Neither runs for dry-run requests: the
webhook declares ``sideEffects: NoneOnDryRun``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from collections.abc import Callable, Coroutine
from typing import Any

from modelsec.k8s import API_VERSION, LABEL_GROUP, LABEL_SCAN_KEY
from modelsec.k8s.common import timestamp
from modelsec.k8s.naming import scan_key
from modelsec.safe_text import printable
from modelsec_webhook import messages, metrics
from modelsec_webhook.decision import ScanRequest
from modelsec_webhook.kubeapi import ApiError, KubeAPI
from modelsec_webhook.view import View

log = logging.getLogger("modelsec.webhook.effects")

MODELSCANS_PATH = "/apis/modelsec.io/v1alpha1/modelscans"
ANNOTATION_REQUESTED_BY = "modelsec.io/requested-by"
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$")


class _Background:
    """Bounded fire-and-forget tasks, remembering recent keys to drop repeats."""

    def __init__(
        self, name: str, limit: int, remember_seconds: float, counter: Callable[[str], None]
    ) -> None:
        self.name = name
        self.limit = limit
        self.remember_seconds = remember_seconds
        self.count = counter
        self.tasks: set[asyncio.Task[None]] = set()
        self.recent: dict[Any, float] = {}

    def start(self, key: Any, work: Callable[[], Coroutine[Any, Any, None]]) -> bool:
        now = time.monotonic()
        seen = self.recent.get(key)
        if seen is not None and now - seen < self.remember_seconds:
            return False
        if len(self.tasks) >= self.limit:
            self.count("dropped")
            return False
        if len(self.recent) > 4 * self.limit:
            self.recent = {k: t for k, t in self.recent.items() if now - t < self.remember_seconds}
        self.recent[key] = now
        task = asyncio.get_running_loop().create_task(work(), name=f"{self.name}:{key}")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return True

    async def drain(self, timeout: float) -> None:
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=timeout)
        for task in list(self.tasks):
            task.cancel()


class ScanRequester:
    """Creates the ModelScan of a (reference, group) the view has no scan for."""

    def __init__(self, api: KubeAPI, view: View, limit: int = 256) -> None:
        self.api = api
        self.view = view
        self.background = _Background(
            "modelscan",
            limit,
            remember_seconds=30.0,
            counter=lambda r: metrics.SCANS_REQUESTED.labels(r).inc(),
        )

    def request(self, wanted: ScanRequest, requested_by: str) -> None:
        if self.view.has_scan(wanted.name):
            return
        self.background.start(wanted.name, lambda: self._create(wanted, requested_by))

    @staticmethod
    def body(wanted: ScanRequest, requested_by: str) -> dict[str, Any]:
        ref = wanted.reference.ref
        labels = {LABEL_SCAN_KEY: scan_key(ref.uri, ref.revision, wanted.group)}
        if _LABEL_VALUE.match(wanted.group):
            labels[LABEL_GROUP] = wanted.group
        spec: dict[str, Any] = {"model": ref.uri, "securityGroup": wanted.group}
        if ref.revision:
            spec["revision"] = ref.revision
        return {
            "apiVersion": API_VERSION,
            "kind": "ModelScan",
            "metadata": {
                "name": wanted.name,
                "labels": labels,
                "annotations": {ANNOTATION_REQUESTED_BY: messages.clip(printable(requested_by), 512)},
            },
            "spec": spec,
        }

    async def _create(self, wanted: ScanRequest, requested_by: str) -> None:
        try:
            await self.api.request("POST", MODELSCANS_PATH, body=self.body(wanted, requested_by))
        except ApiError as exc:
            if exc.status == 409:
                metrics.SCANS_REQUESTED.labels("exists").inc()
                return
            metrics.SCANS_REQUESTED.labels("failed").inc()
            self.background.recent.pop(wanted.name, None)  # let the next request try again
            log.warning(f"could not create ModelScan {wanted.name}: {printable(str(exc)[:300])}")
            return
        except Exception as exc:  # noqa: BLE001 - a background task must log, not vanish
            metrics.SCANS_REQUESTED.labels("failed").inc()
            self.background.recent.pop(wanted.name, None)
            log.warning(
                f"could not create ModelScan {wanted.name}: {type(exc).__name__}: {printable(str(exc)[:300])}"
            )
            return
        metrics.SCANS_REQUESTED.labels("created").inc()
        log.info(
            printable(
                f"created ModelScan {wanted.name} for {wanted.reference.ref} "
                f"(group {wanted.group}; {requested_by})"
            )
        )


class EventRecorder:
    """Posts Kubernetes Events about admitted workloads (Audit mode, pinned references)."""

    REASON = "ModelCheckAudit"
    AUDIT_PREFIX = "admitted in Audit mode, would be denied: "

    def __init__(self, api: KubeAPI, limit: int = 128) -> None:
        self.api = api
        self.instance = os.environ.get("HOSTNAME") or os.uname().nodename
        self.background = _Background(
            "event", limit, remember_seconds=300.0, counter=lambda r: metrics.EVENTS.labels(r).inc()
        )

    def record(
        self, involved: dict[str, str], message: str, reason: str = REASON, type_: str = "Warning"
    ) -> None:
        key = (involved.get("namespace"), involved.get("kind"), involved.get("name"), message)
        self.background.start(key, lambda: self._post(involved, message, reason, type_))

    def body(
        self, involved: dict[str, str], message: str, reason: str = REASON, type_: str = "Warning"
    ) -> dict[str, Any]:
        now = timestamp()
        text = self.AUDIT_PREFIX + message if reason == self.REASON else message
        return {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "generateName": f"{involved.get('name') or 'workload'}.",
                "namespace": involved["namespace"],
            },
            "involvedObject": involved,
            "reason": reason,
            "message": messages.clip(text, 1024),
            "type": type_,
            "source": {"component": "modelsec-webhook"},
            "reportingComponent": "modelsec.io/webhook",
            "reportingInstance": self.instance[:128],
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }

    async def _post(
        self, involved: dict[str, str], message: str, reason: str = REASON, type_: str = "Warning"
    ) -> None:
        path = f"/api/v1/namespaces/{involved['namespace']}/events"
        try:
            await self.api.request("POST", path, body=self.body(involved, message, reason, type_))
        except Exception as exc:  # noqa: BLE001
            metrics.EVENTS.labels("failed").inc()
            log.warning(
                printable(
                    f"could not post Event about {involved.get('kind')} "
                    f"{involved.get('namespace')}/{involved.get('name')}: {str(exc)[:300]}"
                )
            )
            return
        metrics.EVENTS.labels("posted").inc()
