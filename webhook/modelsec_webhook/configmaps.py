"""ConfigMap values that name models: read on demand, where groups apply, briefly kept.

``vllm serve $(MODEL)`` with ``MODEL`` from a ConfigMap names a model the request does
not carry. When a SecurityGroup covers the workload's namespace, the webhook reads the
ConfigMaps the extraction names (one GET each, in parallel, with a short timeout) and
extracts again with their values. Nothing is read for namespaces no group covers.

- A ConfigMap is kept :data:`TTL` seconds (a burst of Pods of one Deployment reads it
  once); the kubelet reads it again when each container starts, so a value changed
  later is not what was judged: see docs/webhook.md (immutable ConfigMaps close that).
- 404: the ConfigMap does not exist (the container cannot start, or the value is
  optional). 403, a timeout, any other error: the values stay unknown and the
  workload is judged as unresolvable (denied wherever an Enforce group applies), with a
  message saying why.
- **Secrets are never read**: see docs/webhook.md for why.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import time
from collections.abc import Mapping

import aiohttp

from modelsec.references import ConfigMapData, Unreadable
from modelsec.safe_text import printable
from modelsec_webhook import metrics
from modelsec_webhook.caches import BoundedCache
from modelsec_webhook.kubeapi import ApiError, KubeAPI

log = logging.getLogger("modelsec.webhook.configmaps")

TTL = 5.0
ERROR_TTL = 1.0
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


class ConfigMapReader:
    """Reads ConfigMaps for the admission path; :meth:`cached` never waits."""

    def __init__(self, api: KubeAPI | None, timeout: float = 2.0, max_bytes: int = 16 << 20) -> None:
        self.api = api
        self.timeout = timeout
        self.cache: BoundedCache[tuple[str, str], tuple[float, ConfigMapData]] = BoundedCache(max_bytes)
        self.inflight: dict[tuple[str, str], asyncio.Task[None]] = {}

    def cached(self, namespace: str, names: frozenset[str]) -> dict[str, ConfigMapData]:
        """What is known and fresh of ``names``; the others are absent."""
        now = time.monotonic()
        out: dict[str, ConfigMapData] = {}
        for name in names:
            found = self.cache.get((namespace, name))
            if found is not None and found[0] > now:
                out[name] = found[1]
        return out

    def store(self, namespace: str, name: str, data: ConfigMapData, ttl: float = TTL) -> None:
        self.cache.put((namespace, name), (time.monotonic() + ttl, data))

    async def fetch(self, namespace: str, names: frozenset[str]) -> None:
        """Read ``names`` (those not fresh already), all at once, within the timeout."""
        missing = names - self.cached(namespace, names).keys()
        tasks = []
        for name in missing:
            key = (namespace, name)
            task = self.inflight.get(key)
            if task is None:
                task = self.inflight[key] = asyncio.ensure_future(self._read(namespace, name))
                task.add_done_callback(functools.partial(self._forget, key))
            tasks.append(task)
        if tasks:
            await asyncio.wait(tasks, timeout=self.timeout + 0.5)

    def _forget(self, key: tuple[str, str], _done: asyncio.Task[None]) -> None:
        self.inflight.pop(key, None)

    async def _read(self, namespace: str, name: str) -> None:
        if self.api is None:
            self.store(namespace, name, Unreadable("the webhook has no API access"), ERROR_TTL)
            return
        if not _NAME.match(name) or not _NAME.match(namespace):
            self.store(namespace, name, Unreadable("not a valid ConfigMap name"), TTL)
            return
        try:
            body = await self.api.request(
                "GET", f"/api/v1/namespaces/{namespace}/configmaps/{name}", timeout=self.timeout
            )
        except ApiError as exc:
            metrics.CONFIGMAP_READS.labels({404: "missing", 403: "forbidden"}.get(exc.status, "failed")).inc()
            if exc.status == 404:
                self.store(namespace, name, None)
            elif exc.status == 403:
                self.store(
                    namespace,
                    name,
                    Unreadable(
                        f"the webhook may not read ConfigMaps in namespace {namespace}; grant it the "
                        "modelsec-webhook-configmap-reader role there (docs/webhook.md)"
                    ),
                    TTL,
                )
            else:
                self.store(namespace, name, Unreadable(f"{exc.status} {exc.reason}"), ERROR_TTL)
            return
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
            metrics.CONFIGMAP_READS.labels("failed").inc()
            log.warning(f"reading ConfigMap {namespace}/{name}: {printable(type(exc).__name__)}")
            self.store(namespace, name, Unreadable("the API server did not answer in time"), ERROR_TTL)
            return
        metrics.CONFIGMAP_READS.labels("read").inc()
        self.store(namespace, name, _data(body))


def _data(body: Mapping[str, object]) -> ConfigMapData:
    data = body.get("data")
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)}
