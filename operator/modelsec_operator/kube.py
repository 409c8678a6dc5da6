"""Talking to the API server: one configuration for both kopf and our own calls.

kopf watches and runs handlers over its own aiohttp client; status writes, pokes and
Secret reads go through the official (synchronous) client in a worker thread, each call
short. Both are configured from the same kubeconfig or in-cluster credentials.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import kopf
from kubernetes.client import ApiClient, Configuration, CoreV1Api, CustomObjectsApi
from kubernetes.client.exceptions import ApiException

from modelsec.k8s import GROUP, VERSION
from modelsec.k8s.config import KubeConfigError

MERGE_PATCH = "application/merge-patch+json"


def connection_info(configuration: Configuration) -> kopf.ConnectionInfo:
    """The same endpoint and credentials, in kopf's terms."""
    # Token auth (ServiceAccount tokens, in cluster or in a kubeconfig) arrives as
    # api_key["BearerToken"] = "Bearer <token>" since kubernetes 36, "authorization" before;
    # client certs, as hack/envtest.sh issues, arrive as cert_file/key_file instead.
    scheme = token = None
    keys = configuration.api_key or {}
    auth = keys.get("BearerToken") or keys.get("authorization")
    if auth:
        scheme, _, token = auth.partition(" ")
        if not token:
            scheme, token = "Bearer", scheme
    return kopf.ConnectionInfo(
        server=configuration.host,
        ca_path=configuration.ssl_ca_cert or None,
        insecure=not configuration.verify_ssl,
        username=configuration.username or None,
        password=configuration.password or None,
        scheme=scheme,
        token=token,
        certificate_path=configuration.cert_file or None,
        private_key_path=configuration.key_file or None,
        default_namespace="default",  # where Events about cluster-scoped objects go
    )


def transient(exc: BaseException) -> bool:
    """Worth retrying: the server was busy, restarting or we raced another writer."""
    if isinstance(exc, ApiException):
        return exc.status in (0, 408, 409, 429) or exc.status >= 500
    return isinstance(exc, (OSError, TimeoutError))


class Kube:
    """The few calls the handlers make outside kopf, each off the event loop."""

    def __init__(self, configuration: Configuration) -> None:
        self._api = ApiClient(configuration)
        self._custom = CustomObjectsApi(self._api)
        self._core = CoreV1Api(self._api)

    def close(self) -> None:
        self._api.close()

    async def get(self, plural: str, name: str) -> dict[str, Any] | None:
        def call() -> dict[str, Any] | None:
            try:
                return self._custom.get_cluster_custom_object(GROUP, VERSION, plural, name)
            except ApiException as exc:
                if exc.status == 404:
                    return None
                raise

        return await asyncio.to_thread(call)

    async def patch_status(self, plural: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
        """JSON merge patch of ``status`` (None values delete keys; lists are replaced)."""
        return await asyncio.to_thread(
            self._custom.patch_cluster_custom_object_status,
            GROUP, VERSION, plural, name, {"status": status}, _content_type=MERGE_PATCH,
        )

    async def patch_metadata(
        self, plural: str, name: str, *, labels: dict[str, str | None] | None = None,
        annotations: dict[str, str | None] | None = None,
    ) -> dict[str, Any] | None:
        metadata: dict[str, Any] = {}
        if labels:
            metadata["labels"] = labels
        if annotations:
            metadata["annotations"] = annotations

        def call() -> dict[str, Any] | None:
            try:
                return self._custom.patch_cluster_custom_object(
                    GROUP, VERSION, plural, name, {"metadata": metadata}, _content_type=MERGE_PATCH
                )
            except ApiException as exc:
                if exc.status == 404:  # deleted meanwhile: nothing to poke
                    return None
                raise

        return await asyncio.to_thread(call)

    async def ensure_peering(self, name: str) -> None:
        """kopf pauses a peering operator until it sees its ClusterKopfPeering object, and
        does not create it: without this, a fresh cluster would wait forever."""

        def call() -> None:
            body = {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": name}}
            try:
                self._custom.create_cluster_custom_object("kopf.dev", "v1", "clusterkopfpeerings", body)
            except ApiException as exc:
                if exc.status == 409:
                    return
                if exc.status == 404:
                    raise KubeConfigError(
                        "peering needs the ClusterKopfPeering CRD: `kubectl apply -f crds/` "
                        "(or `modelsec crds | kubectl apply -f -`), or run with --standalone"
                    ) from None
                raise

        await asyncio.to_thread(call)

    async def read_secret(self, namespace: str, name: str) -> dict[str, bytes] | None:
        """Decoded data of a Secret, or None when it does not exist."""

        def call() -> dict[str, bytes] | None:
            try:
                secret = self._core.read_namespaced_secret(name, namespace)
            except ApiException as exc:
                if exc.status == 404:
                    return None
                raise
            return {k: base64.b64decode(v) for k, v in (secret.data or {}).items()}

        return await asyncio.to_thread(call)
