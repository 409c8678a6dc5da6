"""Read a ModelScan through the Kubernetes API, for ``modelsec verify --scan``.

The kubernetes client is imported here, when asked for, so that ``modelsec verify
--report`` (and every other command) works in the base install. Credentials come from
``--kubeconfig``, in-cluster service-account credentials (the init container case) or
$KUBECONFIG, as for the operator and the webhook (:mod:`modelsec.k8s.config`); reading
needs only ``get`` on ``modelscans.modelsec.io``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from modelsec.safe_text import printable

REQUEST_TIMEOUT = 30.0  # seconds; an init container must not hang on an unreachable API
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


class ClusterError(RuntimeError):
    """The ModelScan could not be read; the message says why and what to fix."""


def read_modelscan(name: str, kubeconfig: Path | None = None, context: str | None = None) -> dict[str, Any]:
    if not _NAME.match(name) or len(name) > 253:
        raise ClusterError(f"{printable(name)!r} is not a ModelScan name (a DNS subdomain: "
                           "lowercase letters, digits, '-' and '.')")
    try:
        import kubernetes
        from kubernetes.client.exceptions import ApiException

        from modelsec.k8s import MODELSCANS
        from modelsec.k8s.config import KubeConfigError, load_configuration
    except ImportError as exc:
        raise ClusterError(f"reading a ModelScan needs the Kubernetes client ({exc}); install "
                           "modelsec[cluster], or verify against a JSON report with --report") from None
    try:
        configuration = load_configuration(kubeconfig, context)
    except KubeConfigError as exc:
        raise ClusterError(str(exc)) from None
    group, version, plural = MODELSCANS
    try:
        with kubernetes.client.ApiClient(configuration) as api:
            found: dict[str, Any] = kubernetes.client.CustomObjectsApi(api).get_cluster_custom_object(
                group, version, plural, name, _request_timeout=REQUEST_TIMEOUT
            )
            return found
    except ApiException as exc:
        if exc.status == 404:
            raise ClusterError(f"no ModelScan named {name} (kubectl get modelscans)") from None
        if exc.status in (401, 403):
            raise ClusterError(f"the API server refused to show ModelScan {name} ({exc.status} "
                               f"{exc.reason}): the credentials need get on "
                               "modelscans.modelsec.io") from None
        raise ClusterError(f"reading ModelScan {name} failed: {exc.status} {exc.reason}") from None
    except Exception as exc:  # urllib3 / ssl / socket errors: the API server was not reached
        raise ClusterError(f"cannot reach the Kubernetes API server at {configuration.host}: "
                           f"{type(exc).__name__}: {printable(str(exc))[:300]}") from None
