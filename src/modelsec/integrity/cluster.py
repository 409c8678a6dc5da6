"""Read a ModelScan, and the ML-BOM the operator keeps beside it, through the Kubernetes
API, for ``modelsec verify --scan``.

The kubernetes client is imported here, when asked for, so that ``modelsec verify
--report`` (and every other command) works in the base install. Credentials come from
``--kubeconfig``, in-cluster service-account credentials (the init container case) or
$KUBECONFIG, as for the operator and the webhook (:mod:`modelsec.k8s.config`); reading
needs ``get`` on ``modelscans.modelsec.io``, and ``get`` on ConfigMaps in the namespace
of the BOMs (``status.bom``) to name the files that changed.

The BOM is used only if the ConfigMap still holds exactly what the operator wrote: its
value's SHA-256 must be the one ``status.bom`` records (the status subresource is the
operator's to write; a ConfigMap is easier to change).
"""

from __future__ import annotations

import gzip
import hashlib
import re
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from modelsec.safe_text import printable

REQUEST_TIMEOUT = 30.0  # seconds; an init container must not hang on an unreachable API
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
# Where the operator keeps a verdict's BOM in its ConfigMap (status.bom.key).
JSON_KEY = "bom.json"  # data: compact JSON
GZIP_KEY = "bom.json.gz"  # binaryData: gzip of the JSON, when the JSON does not fit
MAX_BOM_BYTES = 256 << 20  # decompressed, as for verify --bom

T = TypeVar("T")


class ClusterError(RuntimeError):
    """The ModelScan (or its BOM) could not be read; the message says why and what to fix."""


@contextmanager
def _api(kubeconfig: Path | None, context: str | None) -> Iterator[tuple[Any, Any]]:
    """(kubernetes module, ApiClient), or ClusterError saying why there is none."""
    try:
        import kubernetes

        from modelsec.k8s.config import KubeConfigError, load_configuration
    except ImportError as exc:
        raise ClusterError(
            f"reading a ModelScan needs the Kubernetes client ({exc}); install "
            "modelsec[cluster], or verify against a JSON report with --report"
        ) from None
    try:
        configuration = load_configuration(kubeconfig, context)
    except KubeConfigError as exc:
        raise ClusterError(str(exc)) from None
    with kubernetes.client.ApiClient(configuration) as api:
        yield kubernetes, api


def _call(api: Any, what: str, needs: str, missing: str, call: Callable[[], T]) -> T:
    from kubernetes.client.exceptions import ApiException

    try:
        return call()
    except ApiException as exc:
        if exc.status == 404:
            raise ClusterError(missing) from None
        if exc.status in (401, 403):
            raise ClusterError(
                f"the API server refused to show {what} ({exc.status} {exc.reason}): "
                f"the credentials need {needs}"
            ) from None
        raise ClusterError(f"reading {what} failed: {exc.status} {exc.reason}") from None
    except Exception as exc:  # urllib3 / ssl / socket errors: the API server was not reached
        raise ClusterError(
            f"cannot reach the Kubernetes API server at {api.configuration.host}: "
            f"{type(exc).__name__}: {printable(str(exc))[:300]}"
        ) from None


def read_modelscan(name: str, kubeconfig: Path | None = None, context: str | None = None) -> dict[str, Any]:
    if not _NAME.match(name) or len(name) > 253:
        raise ClusterError(
            f"{printable(name)!r} is not a ModelScan name (a DNS subdomain: "
            "lowercase letters, digits, '-' and '.')"
        )
    from modelsec.k8s import MODELSCANS

    group, version, plural = MODELSCANS
    with _api(kubeconfig, context) as (kubernetes, api):
        found: dict[str, Any] = _call(
            api,
            f"ModelScan {name}",
            "get on modelscans.modelsec.io",
            f"no ModelScan named {name} (kubectl get modelscans)",
            lambda: kubernetes.client.CustomObjectsApi(api).get_cluster_custom_object(
                group, version, plural, name, _request_timeout=REQUEST_TIMEOUT
            ),
        )
        return found


def read_bom(scan: dict[str, Any], kubeconfig: Path | None = None, context: str | None = None) -> str:
    """The JSON text of the BOM ``scan``'s status points to, checked against the SHA-256 the
    operator recorded; ClusterError saying why there is none to use."""
    name = str((scan.get("metadata") or {}).get("name"))
    bom = (scan.get("status") or {}).get("bom")
    if not isinstance(bom, dict):
        raise ClusterError(
            f"ModelScan {name} records no BOM (an operator started without "
            "--bom-namespace, or older than the BOM export)"
        )
    if bom.get("problem"):
        raise ClusterError(f"ModelScan {name} has no BOM: {printable(str(bom['problem']))}")
    namespace, cm_name, key, want = bom.get("namespace"), bom.get("name"), bom.get("key"), bom.get("sha256")
    if not all(isinstance(v, str) and v for v in (namespace, cm_name, key, want)) or key not in (
        JSON_KEY,
        GZIP_KEY,
    ):
        raise ClusterError(f"ModelScan {name}: status.bom is incomplete ({printable(str(bom))[:200]})")
    where = f"ConfigMap {namespace}/{cm_name}"
    with _api(kubeconfig, context) as (kubernetes, api):
        found = _call(
            api,
            where,
            f"get on configmaps in namespace {namespace}",
            f"{where} is gone (status.bom names it)",
            lambda: kubernetes.client.CoreV1Api(api).read_namespaced_config_map(
                cm_name, namespace, _request_timeout=REQUEST_TIMEOUT
            ),
        )
    stored = _stored(found.data, found.binary_data, key)
    if stored is None:
        raise ClusterError(f"{where} has no {key}")
    got = hashlib.sha256(stored).hexdigest()
    if got != want:
        raise ClusterError(
            f"{where} does not hold the BOM the operator wrote (SHA-256 {got}, "
            f"status.bom records {want}); not used"
        )
    if key == GZIP_KEY:
        stored = _gunzip(stored, where)
    try:
        return stored.decode("utf-8")
    except UnicodeDecodeError:
        raise ClusterError(f"{where}: {key} is not UTF-8") from None


def _stored(data: dict[str, str] | None, binary: dict[str, str] | None, key: str) -> bytes | None:
    import base64

    if key == JSON_KEY:
        text = (data or {}).get(JSON_KEY)
        return text.encode() if isinstance(text, str) else None
    encoded = (binary or {}).get(GZIP_KEY)
    return base64.b64decode(encoded) if isinstance(encoded, str) else None


def _gunzip(packed: bytes, where: str) -> bytes:
    """Decompressed, bounded: a BOM is not worth more than MAX_BOM_BYTES of memory."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(packed, MAX_BOM_BYTES + 1)
    except (zlib.error, gzip.BadGzipFile) as exc:
        raise ClusterError(f"{where}: {GZIP_KEY} is not gzip: {exc}") from None
    if len(out) > MAX_BOM_BYTES or inflater.unconsumed_tail:
        raise ClusterError(f"{where}: the BOM is larger than {MAX_BOM_BYTES} bytes")
    return out
