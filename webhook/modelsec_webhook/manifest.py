"""The ValidatingWebhookConfiguration that routes workloads to the webhook.

One source for ``deploy/webhook/validating-webhook-configuration.yaml`` (in-cluster,
Service-based), for ``modelsec webhook --print-config`` (any URL, e.g. the local dev
webhook) and for the tests. What it encodes:

- **what**: CREATE and UPDATE of Pods and ReplicationControllers, Deployments,
  StatefulSets, DaemonSets, ReplicaSets, Jobs, CronJobs and KServe InferenceServices
  (a rule for a resource the cluster does not serve simply never matches);
- **where**: every namespace except the exempt ones, selected by the
  ``kubernetes.io/metadata.name`` label the API server sets on every namespace, so that
  the API server never even calls the webhook for kube-system or modelsec's own
  namespace (the webhook checks the same list again);
- **failing closed**: ``failurePolicy: Fail`` with a short timeout; the exemption keeps
  the control plane's own namespaces working while the webhook is down;
- ``sideEffects: NoneOnDryRun``: ModelScans and Events are only created for real requests.
"""

from __future__ import annotations

from typing import Any

WEBHOOK_NAME = "models.modelsec.io"
DEFAULT_CONFIG_NAME = "modelsec-webhook"
DEFAULT_EXEMPT = ("kube-system", "modelsec-system")
PATH = "/validate"

RULES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("", "v1", ("pods", "replicationcontrollers")),
    ("apps", "v1", ("deployments", "statefulsets", "daemonsets", "replicasets")),
    ("batch", "v1", ("jobs", "cronjobs")),
    ("serving.kserve.io", "v1beta1", ("inferenceservices",)),
)


def client_config(*, url: str | None = None, service: tuple[str, str] | None = None,
                  port: int = 443, ca_bundle: str | None = None) -> dict[str, Any]:
    """``url`` for a webhook outside the cluster (or loopback, as in tests); ``service``
    (namespace, name) for one behind a Service."""
    if (url is None) == (service is None):
        raise ValueError("give exactly one of url or service")
    config: dict[str, Any]
    if url is not None:
        config = {"url": url}
    else:
        assert service is not None
        config = {"service": {"namespace": service[0], "name": service[1], "path": PATH, "port": port}}
    if ca_bundle:
        config["caBundle"] = ca_bundle
    return config


def render(client: dict[str, Any], *, name: str = DEFAULT_CONFIG_NAME,
           exempt: tuple[str, ...] = DEFAULT_EXEMPT, timeout_seconds: int = 5,
           failure_policy: str = "Fail") -> dict[str, Any]:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/name": "modelsec-webhook"}},
        "webhooks": [
            {
                "name": WEBHOOK_NAME,
                "clientConfig": client,
                "rules": [
                    {
                        "apiGroups": [group],
                        "apiVersions": [version],
                        "resources": list(resources),
                        "operations": ["CREATE", "UPDATE"],
                        "scope": "Namespaced",
                    }
                    for group, version, resources in RULES
                ],
                "namespaceSelector": {
                    "matchExpressions": [
                        {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": list(exempt)}
                    ]
                },
                "failurePolicy": failure_policy,
                "matchPolicy": "Equivalent",
                "sideEffects": "NoneOnDryRun",
                "timeoutSeconds": timeout_seconds,
                "admissionReviewVersions": ["v1"],
            }
        ],
    }


def in_cluster() -> dict[str, Any]:
    """What ``deploy/webhook/validating-webhook-configuration.yaml`` holds: the Service
    ``modelsec-system/modelsec-webhook``; the caBundle is filled in by cert-manager's CA
    injector or by the webhook itself with ``--bootstrap-tls``."""
    return render(client_config(service=("modelsec-system", "modelsec-webhook")))
