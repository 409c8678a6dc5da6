"""Finding the cluster: one place for the operator, the webhook and ``modelsec verify
--scan`` to load credentials.

The kubernetes client (``modelsec[cluster]``) is imported when credentials are loaded, not
with this module: :mod:`modelsec.k8s` is part of the core package and imports with the
base install (``tests/core/test_layering.py``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kubernetes.client import Configuration

IN_CLUSTER_ENV = "KUBERNETES_SERVICE_HOST"


class KubeConfigError(RuntimeError):
    """No usable credentials (or no Kubernetes client); the message says where we looked."""


def load_configuration(kubeconfig: Path | None = None, context: str | None = None) -> Configuration:
    """--kubeconfig wins; then in-cluster credentials; then $KUBECONFIG or ~/.kube/config."""
    try:
        import kubernetes
        from kubernetes.client import Configuration
    except ImportError as exc:
        raise KubeConfigError(
            f"the Kubernetes client is not installed ({exc}): install modelsec[cluster]"
        ) from None
    configuration = Configuration()
    try:
        if kubeconfig is None and os.environ.get(IN_CLUSTER_ENV):
            kubernetes.config.load_incluster_config(client_configuration=configuration)
        else:
            kubernetes.config.load_kube_config(
                config_file=str(kubeconfig) if kubeconfig else None,
                context=context,
                client_configuration=configuration,
            )
    except (kubernetes.config.ConfigException, OSError) as exc:
        where = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
        raise KubeConfigError(
            f"no Kubernetes credentials: not in a cluster and cannot use {where}: {exc}"
        ) from None
    return configuration
