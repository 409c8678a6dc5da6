"""The namespaced calls of scan mode ``job``, each off the event loop.

Responses are read as plain JSON (``_preload_content=False``): the typed models of the
official client cost far more CPU than the few fields we look at.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from kubernetes.client import AdmissionregistrationV1Api, ApiClient, BatchV1Api, CoreV1Api, CustomObjectsApi
from kubernetes.client.exceptions import ApiException

from modelsec.k8s import GROUP, VERSION
from modelsec_operator.jobs.manifest import (
    COMPONENT,
    JOB_NAME_LABEL,
    LABEL_COMPONENT,
    LABEL_JOB_NAME,
    LABEL_MANAGED,
    MANAGED_BY,
)
from modelsec_operator.kube import NotFound, not_found

RESULTS = "scanresults"
SELECTOR = f"{LABEL_MANAGED}={MANAGED_BY},{LABEL_COMPONENT}={COMPONENT}"


def _json(response: Any) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(response.data)  # the API server answers objects
    return document


class JobsApi:
    def __init__(self, api: ApiClient, namespace: str) -> None:
        self.namespace = namespace
        self._batch = BatchV1Api(api)
        self._core = CoreV1Api(api)
        self._custom = CustomObjectsApi(api)
        self._admission = AdmissionregistrationV1Api(api)

    async def create_job(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """The created Job, or None when one of that name exists already (409)."""

        def call() -> dict[str, Any] | None:
            try:
                return _json(self._batch.create_namespaced_job(self.namespace, body, _preload_content=False))
            except ApiException as exc:
                if exc.status == 409:
                    return None
                raise

        return await asyncio.to_thread(call)

    async def get_job(self, name: str) -> dict[str, Any] | None:
        def call() -> dict[str, Any] | None:
            try:
                with not_found(f"Job {self.namespace}/{name}"):
                    return _json(
                        self._batch.read_namespaced_job(name, self.namespace, _preload_content=False)
                    )
            except NotFound:
                return None

        return await asyncio.to_thread(call)

    async def delete_job(self, name: str) -> None:
        def call() -> None:
            with contextlib.suppress(NotFound), not_found(f"Job {self.namespace}/{name}"):
                self._batch.delete_namespaced_job(
                    name, self.namespace, propagation_policy="Background", _preload_content=False
                )

        await asyncio.to_thread(call)

    async def snapshot(
        self, job_names: list[str]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
        """The Jobs named, their Pods and their ScanResults: three LISTs whose label
        selectors name exactly the Jobs waited for, so finished Jobs kept until their TTL
        (hundreds, in a burst) are not read again at every poll."""
        names = ",".join(sorted(set(job_names)))
        by_job = f"{JOB_NAME_LABEL} in ({names})"

        def call() -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
            jobs = _json(
                self._batch.list_namespaced_job(
                    self.namespace,
                    label_selector=f"{SELECTOR},{LABEL_JOB_NAME} in ({names})",
                    _preload_content=False,
                )
            )["items"]
            pods = _json(
                self._core.list_namespaced_pod(
                    self.namespace, label_selector=f"{SELECTOR},{by_job}", _preload_content=False
                )
            )["items"]
            results = _json(
                self._custom.list_namespaced_custom_object(
                    GROUP, VERSION, self.namespace, RESULTS, label_selector=by_job, _preload_content=False
                )
            )["items"]
            return jobs, pods, results

        if not job_names:
            return [], [], []
        return await asyncio.to_thread(call)

    async def admission_policy(self, name: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """The ValidatingAdmissionPolicy ``name`` and its binding of the same name."""

        def call() -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
            found: list[dict[str, Any] | None] = []
            for read in (
                self._admission.read_validating_admission_policy,
                self._admission.read_validating_admission_policy_binding,
            ):
                try:
                    with not_found(f"{read.__name__} {name}"):
                        found.append(_json(read(name, _preload_content=False)))
                except NotFound:
                    found.append(None)
            return found[0], found[1]

        return await asyncio.to_thread(call)
