"""The shipped webhook configuration and the command line."""

from __future__ import annotations

import subprocess
import sys

import yaml
from webhook_helpers import REPO

from modelsec_webhook import manifest

PYTHONPATH = f"{REPO / 'webhook'}:{REPO / 'src'}"


def test_deployed_configuration_is_current() -> None:
    committed = (REPO / "deploy" / "webhook" / manifest.DEPLOY_FILE).read_text()
    assert committed == manifest.render_file(), "run: python -m modelsec_webhook.manifest deploy/webhook"


def test_configuration_fails_closed_and_exempts_system_namespaces() -> None:
    (webhook,) = manifest.in_cluster()["webhooks"]
    assert webhook["failurePolicy"] == "Fail" and webhook["sideEffects"] == "NoneOnDryRun"
    assert webhook["admissionReviewVersions"] == ["v1"]
    (expression,) = webhook["namespaceSelector"]["matchExpressions"]
    assert expression == {
        "key": "kubernetes.io/metadata.name",
        "operator": "NotIn",
        "values": ["kube-system", "modelsec-system"],
    }
    operations = {r: rule["operations"] for rule in webhook["rules"] for r in rule["resources"]}
    assert set(operations) == {
        "pods",
        "replicationcontrollers",
        "deployments",
        "statefulsets",
        "daemonsets",
        "replicasets",
        "jobs",
        "cronjobs",
        "inferenceservices",
        "pods/ephemeralcontainers",
    }
    # kubectl debug adds containers through the subresource: a rule for pods never sees it.
    assert operations.pop("pods/ephemeralcontainers") == ["UPDATE"]
    assert all(ops == ["CREATE", "UPDATE"] for ops in operations.values())


def test_every_routed_kind_is_one_the_review_parser_accepts() -> None:
    from modelsec_webhook.review import KINDS, SUBRESOURCES

    plural = {
        "Pod": "pods",
        "ReplicationController": "replicationcontrollers",
        "Deployment": "deployments",
        "StatefulSet": "statefulsets",
        "DaemonSet": "daemonsets",
        "ReplicaSet": "replicasets",
        "Job": "jobs",
        "CronJob": "cronjobs",
        "InferenceService": "inferenceservices",
    }
    routed = {(group, resource) for group, _v, resources, _ops in manifest.RULES for resource in resources}
    accepted = {(group, plural[kind]) for group, kind in KINDS}
    accepted |= {
        (group, f"{plural[kind]}/{sub}") for group, kind in KINDS for sub in SUBRESOURCES.get(kind, ())
    }
    assert routed == accepted


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modelsec_webhook", *args],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": PYTHONPATH, "PATH": "/usr/bin:/bin"},
        timeout=60,
    )


def test_help_teaches_the_options() -> None:
    out = run("--help").stdout
    for option in (
        "--port",
        "--metrics-port",
        "--tls-cert",
        "--tls-key",
        "--bootstrap-tls",
        "--webhook-config-name",
        "--kubeconfig",
        "--exempt-namespace",
        "--print-config",
    ):
        assert option in out
    assert "reloaded" in out or "re-read when they change" in out
    assert "scan pending, retry shortly" in out


def test_print_config_for_a_url(tmp_path) -> None:  # type: ignore[no-untyped-def]
    ca = tmp_path / "ca.crt"
    ca.write_bytes(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    proc = run(
        "--print-config",
        "--url",
        "https://127.0.0.1:8443/validate",
        "--ca-file",
        str(ca),
        "--exempt-namespace",
        "ops",
    )
    document = yaml.safe_load(proc.stdout)
    client = document["webhooks"][0]["clientConfig"]
    assert client["url"] == "https://127.0.0.1:8443/validate" and client["caBundle"]
    assert document["webhooks"][0]["namespaceSelector"]["matchExpressions"][0]["values"] == ["ops"]


def test_serving_needs_a_certificate() -> None:
    proc = run("--kubeconfig", "/nonexistent")
    assert proc.returncode == 2 and "--tls-cert and --tls-key, or --bootstrap-tls" in proc.stderr


def test_missing_kubeconfig_is_a_clear_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    proc = run("--bootstrap-tls", "--tls-dir", str(tmp_path / "tls"), "--kubeconfig", str(tmp_path / "none"))
    assert proc.returncode == 2 and "no Kubernetes credentials" in proc.stderr


def test_the_modelsec_cli_runs_it() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "modelsec", "webhook", "--help"],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": PYTHONPATH, "PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert proc.returncode == 0 and "--bootstrap-tls" in proc.stdout
