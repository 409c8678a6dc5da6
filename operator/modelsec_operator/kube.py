"""Talking to the API server: one configuration for both kopf and our own calls.

kopf watches and runs handlers over its own aiohttp client; status writes, pokes and
Secret reads go through the official (synchronous) client in a worker thread, each call
short. Both are configured from the same kubeconfig or in-cluster credentials.

An object that is not there is :class:`NotFound`, whoever asks (the handlers, scan-Job
bookkeeping, the scan worker): callers never look at HTTP status codes. kopf is imported
only where its terms are needed, so the scan worker can use this module without it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from kubernetes.client import ApiClient, Configuration, CoreV1Api, CustomObjectsApi
from kubernetes.client.exceptions import ApiException

from modelsec.k8s import GROUP, VERSION
from modelsec.k8s.config import KubeConfigError

if TYPE_CHECKING:
    import kopf

MERGE_PATCH = "application/merge-patch+json"


class NotFound(LookupError):
    """The object asked for does not exist (HTTP 404): never created, or deleted meanwhile."""

    def __init__(self, what: str) -> None:
        super().__init__(f"{what} not found")
        self.what = what


@contextlib.contextmanager
def not_found(what: str) -> Iterator[None]:
    """Raise :class:`NotFound` for ``what`` where the client says 404; anything else as is."""
    try:
        yield
    except ApiException as exc:
        if exc.status == 404:
            raise NotFound(what) from None
        raise


def connection_info(configuration: Configuration) -> kopf.ConnectionInfo:
    """The same endpoint and credentials, in kopf's terms."""
    import kopf

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

    @property
    def api_client(self) -> ApiClient:
        return self._api

    def close(self) -> None:
        self._api.close()

    async def get(self, plural: str, name: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""

        def call() -> dict[str, Any] | None:
            try:
                with not_found(f"{plural}/{name}"):
                    found: dict[str, Any] = self._custom.get_cluster_custom_object(
                        GROUP, VERSION, plural, name
                    )
                    return found
            except NotFound:
                return None

        return await asyncio.to_thread(call)

    async def patch_status(self, plural: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
        """JSON merge patch of ``status`` (None values delete keys; lists are replaced).
        Raises :class:`NotFound` when the object was deleted."""

        def call() -> dict[str, Any]:
            with not_found(f"{plural}/{name}"):
                patched: dict[str, Any] = self._custom.patch_cluster_custom_object_status(
                    GROUP,
                    VERSION,
                    plural,
                    name,
                    {"status": status},
                    _content_type=MERGE_PATCH,
                )
                return patched

        return await asyncio.to_thread(call)

    async def patch_metadata(
        self,
        plural: str,
        name: str,
        *,
        labels: dict[str, str | None] | None = None,
        annotations: dict[str, str | None] | None = None,
    ) -> dict[str, Any] | None:
        metadata: dict[str, Any] = {}
        if labels:
            metadata["labels"] = labels
        if annotations:
            metadata["annotations"] = annotations

        def call() -> dict[str, Any] | None:
            try:
                with not_found(f"{plural}/{name}"):
                    patched: dict[str, Any] = self._custom.patch_cluster_custom_object(
                        GROUP, VERSION, plural, name, {"metadata": metadata}, _content_type=MERGE_PATCH
                    )
                    return patched
            except NotFound:  # deleted meanwhile: nothing to poke
                return None

        return await asyncio.to_thread(call)

    async def ensure_peering(self, name: str) -> None:
        """kopf pauses a peering operator until it sees its ClusterKopfPeering object, and
        does not create it: without this, a fresh cluster would wait forever."""

        def call() -> None:
            body = {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": name}}
            try:
                with not_found("the ClusterKopfPeering resource"):
                    self._custom.create_cluster_custom_object("kopf.dev", "v1", "clusterkopfpeerings", body)
            except NotFound:
                raise KubeConfigError(
                    "peering needs the ClusterKopfPeering CRD: `kubectl apply -f crds/` "
                    "(or `modelsec crds | kubectl apply -f -`), or run with --standalone"
                ) from None
            except ApiException as exc:
                if exc.status != 409:  # 409: it exists already, which is all we want
                    raise

        await asyncio.to_thread(call)

    async def read_secret(self, namespace: str, name: str) -> dict[str, bytes] | None:
        """Decoded data of a Secret, or None when it does not exist."""

        def call() -> dict[str, bytes] | None:
            try:
                with not_found(f"Secret {namespace}/{name}"):
                    secret = self._core.read_namespaced_secret(name, namespace)
            except NotFound:
                return None
            return {k: base64.b64decode(v) for k, v in (secret.data or {}).items()}

        return await asyncio.to_thread(call)
