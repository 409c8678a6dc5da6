"""The ValidatingWebhookConfiguration that routes workloads to the webhook.

One source for ``deploy/webhook/validating-webhook-configuration.yaml`` (in-cluster,
Service-based), for ``modelsec webhook --print-config`` (any URL, e.g. the local dev
webhook) and for the tests. What it encodes:

- **what**: CREATE and UPDATE of Pods and ReplicationControllers, Deployments,
  StatefulSets, DaemonSets, ReplicaSets, Jobs, CronJobs and KServe InferenceServices
  (a rule for a resource the cluster does not serve simply never matches), and UPDATE of
  the ``pods/ephemeralcontainers`` subresource: ``kubectl debug`` adds containers to a
  running Pod through it, and a rule for ``pods`` alone never sees those requests;
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
MUTATING_WEBHOOK_NAME = "pin.models.modelsec.io"
DEFAULT_CONFIG_NAME = "modelsec-webhook"
DEFAULT_EXEMPT = ("kube-system", "modelsec-system")
PATH = "/validate"
MUTATING_PATH = "/mutate"
# Long enough for a first deploy to wait for a small model's scan (the webhook waits at
# most this less a margin); the API server allows 30.
DEFAULT_TIMEOUT_SECONDS = 15

# (apiGroup, apiVersion, resources, operations): the one source of these rules, for the
# deploy/ manifest, --print-config and the tests. The Helm chart (not written yet) must
# render its webhook rules from here too (`python -m modelsec_webhook.manifest`), never
# keep a copy: a copy is how pods/ephemeralcontainers went missing.
RULES: tuple[tuple[str, str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("", "v1", ("pods", "replicationcontrollers"), ("CREATE", "UPDATE")),
    ("", "v1", ("pods/ephemeralcontainers",), ("UPDATE",)),
    ("apps", "v1", ("deployments", "statefulsets", "daemonsets", "replicasets"), ("CREATE", "UPDATE")),
    ("batch", "v1", ("jobs", "cronjobs"), ("CREATE", "UPDATE")),
    ("serving.kserve.io", "v1beta1", ("inferenceservices",), ("CREATE", "UPDATE")),
)


def client_config(
    *,
    url: str | None = None,
    service: tuple[str, str] | None = None,
    port: int = 443,
    ca_bundle: str | None = None,
    path: str = PATH,
) -> dict[str, Any]:
    """``url`` for a webhook outside the cluster (or loopback, as in tests); ``service``
    (namespace, name) for one behind a Service."""
    if (url is None) == (service is None):
        raise ValueError("give exactly one of url or service")
    config: dict[str, Any]
    if url is not None:
        config = {"url": url}
    else:
        assert service is not None
        config = {"service": {"namespace": service[0], "name": service[1], "path": path, "port": port}}
    if ca_bundle:
        config["caBundle"] = ca_bundle
    return config


def mutating_client(validating: dict[str, Any]) -> dict[str, Any]:
    """The client configuration of ``/mutate`` on the server of ``validating``."""
    client = {k: (dict(v) if isinstance(v, dict) else v) for k, v in validating.items()}
    if "url" in client:
        base = str(client["url"])
        client["url"] = (base[: -len(PATH)] if base.endswith(PATH) else base.rstrip("/")) + MUTATING_PATH
    else:
        client["service"]["path"] = MUTATING_PATH
    return client


def render_mutating(
    client: dict[str, Any],
    *,
    name: str = DEFAULT_CONFIG_NAME,
    exempt: tuple[str, ...] = DEFAULT_EXEMPT,
    timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS,
) -> dict[str, Any]:
    """The MutatingWebhookConfiguration of ``/mutate`` (pinning, verifiers): the kinds the
    validating webhook judges, minus the ephemeral-container subresource (nothing to pin
    or verify there: a debug container starts at once); ``reinvocationPolicy: IfNeeded``
    so that the verifiers stay last when another webhook adds init containers after it.
    It fails closed like the validating one."""
    document = render(mutating_client(client), name=name, exempt=exempt, timeout_seconds=timeout_seconds)
    document["kind"] = "MutatingWebhookConfiguration"
    webhook = document["webhooks"][0]
    webhook["name"] = MUTATING_WEBHOOK_NAME
    webhook["rules"] = [r for r in webhook["rules"] if "pods/ephemeralcontainers" not in r["resources"]]
    webhook["reinvocationPolicy"] = "IfNeeded"
    return document


def render(
    client: dict[str, Any],
    *,
    name: str = DEFAULT_CONFIG_NAME,
    exempt: tuple[str, ...] = DEFAULT_EXEMPT,
    timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS,
    failure_policy: str = "Fail",
) -> dict[str, Any]:
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
                        "operations": list(operations),
                        "scope": "Namespaced",
                    }
                    for group, version, resources, operations in RULES
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


def in_cluster_mutating() -> dict[str, Any]:
    """What ``deploy/webhook/mutating-webhook-configuration.yaml`` holds."""
    return render_mutating(client_config(service=("modelsec-system", "modelsec-webhook")))


HEADER = (
    "# Generated by `python -m modelsec_webhook.manifest deploy/webhook` from\n"
    "# webhook/modelsec_webhook/manifest.py; a test checks it is current. The caBundle is\n"
    "# filled in by cert-manager's CA injector, or by the webhook with --bootstrap-tls.\n"
)
DEPLOY_FILE = "validating-webhook-configuration.yaml"
MUTATING_DEPLOY_FILE = "mutating-webhook-configuration.yaml"


def render_file() -> str:
    import yaml

    rendered: str = yaml.safe_dump(in_cluster(), sort_keys=False)
    return HEADER + rendered


def render_mutating_file() -> str:
    import yaml

    rendered: str = yaml.safe_dump(in_cluster_mutating(), sort_keys=False)
    return HEADER + rendered


def main(argv: list[str] | None = None) -> int:
    import sys
    from pathlib import Path

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m modelsec_webhook.manifest <directory>", file=sys.stderr)
        return 2
    for name, text in ((DEPLOY_FILE, render_file()), (MUTATING_DEPLOY_FILE, render_mutating_file())):
        path = Path(args[0]) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
