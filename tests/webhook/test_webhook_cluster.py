"""The webhook end to end: a real kube-apiserver + etcd (hack/envtest.sh), the webhook
registered with a URL clientConfig and a test CA, and the operator scanning for real.
``kubectl apply`` is what is judged; nothing is mocked.

Models are files the tests write into the operator's Local source: a pickle that would
call ``os.system`` if loaded (built from opcodes, never loaded) and a clean safetensors +
npy pair copied from examples/clean.
"""

from __future__ import annotations

import base64
import json
import re
import ssl
import time
from pathlib import Path
from typing import Any

import pytest
from cluster_helpers import Cluster, Process, Space, free_port, metric
from cryptography import x509

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(900)]


# --- the main path: unscanned -> pending + ModelScan -> BLOCKED ---------------------------------


def test_unscanned_model_is_rejected_its_scan_appears_then_blocked_with_the_rule(space: Space) -> None:
    space.create()
    pod = space.pod("evil", space.uri("evil.pkl"))
    first = space.apply(pod)
    assert first.returncode != 0
    assert 'admission webhook "models.modelsec.io" denied the request' in first.stderr
    assert "scan pending, retry shortly" in first.stderr and space.scan_of("evil.pkl") in first.stderr
    created = space.cluster.wait_for(
        "modelscans",
        space.scan_of("evil.pkl"),
        lambda s: True,
        what="the ModelScan the webhook creates",
        timeout=30,
    )
    assert created["spec"] == {"model": space.uri("evil.pkl"), "securityGroup": space.group}
    assert created["metadata"]["annotations"]["modelsec.io/requested-by"].startswith(
        f"Pod {space.namespace}/evil (CREATE by "
    )

    verdict = space.wait_verdict("evil.pkl")
    assert verdict["status"]["outcome"] == "BLOCKED"
    time.sleep(0.5)
    second = space.apply(pod)
    assert second.returncode != 0
    for expected in (
        f"{space.uri('evil.pkl')} (annotation modelsec.io/models) is BLOCKED",
        f"SecurityGroup {space.group}",
        "LoadTimeCodeExecution",
        "evil.pkl",
        "MS-PKL-",
        f"kubectl get modelscan {space.scan_of('evil.pkl')}",
    ):
        assert expected in second.stderr, second.stderr
    assert space.cluster.get("pods", "evil", space.namespace) is None


def test_deployments_with_blocked_models_are_rejected(space: Space) -> None:
    space.create()
    annotated = space.deployment(
        "annotated", {"name": "app", "image": "busybox"}, {"modelsec.io/models": space.uri("evil.pkl")}
    )
    vllm = space.deployment(
        "vllm",
        {
            "name": "vllm",
            "image": "vllm/vllm-openai:v0.8.5",
            "args": [str(space.dir / "evil-llm"), "--served-model-name", "llm"],
        },
    )
    shell = space.deployment(
        "shell",
        {
            "name": "vllm",
            "image": "python:3.11",
            "command": ["sh", "-c"],
            "args": [f"pip install vllm && exec vllm serve {space.dir}/evil-llm"],
        },
    )
    for obj, model, origin in (
        (annotated, "evil.pkl", "annotation modelsec.io/models"),
        (vllm, "evil-llm", "container vllm: vllm serve <model>"),
        (shell, "evil-llm", "container vllm: vllm serve <model>"),
    ):
        result = space.apply_after_scan(obj, model)
        assert result.returncode != 0, result.stdout
        assert f"{space.uri(model)} ({origin}) is BLOCKED" in result.stderr, result.stderr
        assert "LoadTimeCodeExecution" in result.stderr
        assert space.cluster.get("deployments", obj["metadata"]["name"], space.namespace) is None


def test_model_that_cannot_be_judged_is_denied_and_error_action_allow_admits(space: Space) -> None:
    space.create()
    (space.dir / "escape.bin").symlink_to("/etc/hostname")  # resolves outside the source
    result = space.apply_after_scan(space.pod("escape", space.uri("escape.bin")), "escape.bin")
    assert result.returncode != 0
    assert (
        f"{space.uri('escape.bin')} (annotation modelsec.io/models) is ERROR in SecurityGroup"
        in result.stderr
    )
    assert "failing closed" in result.stderr and "outside the Local source" in result.stderr, result.stderr

    group = space.cluster.get("securitygroups", space.group)
    assert group is not None
    space.cluster.kubectl(
        "patch",
        "securitygroup",
        space.group,
        "--type",
        "merge",
        "-p",
        json.dumps({"spec": {"enforcement": {"errorAction": "Allow"}}}),
    )
    # The group changed: its verdicts are re-evaluated first (pending), then ERROR is allowed.
    deadline = time.monotonic() + 120
    while True:
        again = space.apply(space.pod("escape", space.uri("escape.bin")), dry_run=True)
        if again.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert again.returncode == 0, again.stderr
    assert re.search(r"Warning: modelsec: \S+escape\.bin ERROR \(g-\S+, Enforce\)", again.stderr), (
        again.stderr
    )


def test_clean_model_is_admitted_with_warnings(space: Space) -> None:
    space.create()
    deployment = space.deployment(
        "clean", {"name": "tgi", "image": "busybox"}, {"modelsec.io/models": space.uri("clean")}
    )
    result = space.apply_after_scan(deployment, "clean")
    assert result.returncode == 0, result.stderr
    assert "deployment.apps/clean created" in result.stdout
    # embeddings.npy is not an approved format: a NonBlocking failure, shown as a warning.
    assert re.search(r"Warning: modelsec: \S+/clean \(g-\S+\): ApprovedFormats", result.stderr), result.stderr


def test_update_that_does_not_touch_models_is_allowed_cheaply(space: Space, webhook: Process) -> None:
    space.create()
    deployment = space.deployment(
        "clean", {"name": "app", "image": "busybox"}, {"modelsec.io/models": space.uri("clean")}
    )
    assert space.apply_after_scan(deployment, "clean").returncode == 0
    before = metric(
        webhook.metrics_port, "modelsec_webhook_reviews_total", decision="allowed", reason="unchanged"
    )
    scaled = space.cluster.kubectl(
        "scale", "deployment", "clean", "-n", space.namespace, "--replicas=3", check=False
    )
    assert scaled.returncode == 0, scaled.stderr
    labelled = space.cluster.kubectl(
        "label", "deployment", "clean", "-n", space.namespace, "tier=web", check=False
    )
    assert labelled.returncode == 0, labelled.stderr
    after = metric(
        webhook.metrics_port, "modelsec_webhook_reviews_total", decision="allowed", reason="unchanged"
    )
    assert after >= before + 1  # the label change reached the webhook and was waved through


def test_warn_mode_admits_blocked_models_with_a_warning(space: Space) -> None:
    space.create(enforcement={"mode": "Warn"})
    result = space.apply_after_scan(space.pod("evil", space.uri("evil.pkl")), "evil.pkl")
    # Warn mode never denies, so even the first (pending) apply is admitted with a warning.
    assert result.returncode == 0, result.stderr
    assert re.search(r"Warning: modelsec: \S+evil\.pkl (PENDING|BLOCKED) \(g-\S+, Warn\)", result.stderr)
    space.wait_verdict("evil.pkl")
    time.sleep(0.5)
    again = space.apply(space.pod("evil-2", space.uri("evil.pkl")))
    assert again.returncode == 0 and "BLOCKED (g-" in again.stderr and ", Warn)" in again.stderr


def test_audit_mode_admits_silently_and_records_an_event_and_audit_annotation(space: Space) -> None:
    space.create(enforcement={"mode": "Audit"})
    space.apply(space.pod("warmup", space.uri("evil.pkl")))
    space.wait_verdict("evil.pkl")
    time.sleep(0.5)
    result = space.apply(space.pod("audited", space.uri("evil.pkl")))
    assert result.returncode == 0 and "modelsec" not in result.stderr, result.stderr

    def event_found() -> list[dict[str, Any]]:
        out = space.cluster.kubectl(
            "get",
            "events",
            "-n",
            space.namespace,
            "--field-selector",
            "involvedObject.name=audited,reason=ModelCheckAudit",
            "-o",
            "json",
        )
        return json.loads(out.stdout)["items"]

    deadline = time.monotonic() + 30
    while not (events := event_found()) and time.monotonic() < deadline:
        time.sleep(0.3)
    assert events, "no ModelCheckAudit Event"
    assert "would be denied" in events[0]["message"] and "BLOCKED" in events[0]["message"]
    assert events[0]["involvedObject"]["kind"] == "Pod" and events[0]["involvedObject"]["uid"]

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for line in space.cluster.audit_log.read_text().splitlines():
            event = json.loads(line)
            ref = event.get("objectRef", {})
            if (ref.get("namespace"), ref.get("name"), event.get("verb")) == (
                space.namespace,
                "audited",
                "create",
            ):
                annotations = event.get("annotations", {})
                judgements = json.loads(annotations["models.modelsec.io/judgements"])
                assert judgements[0]["status"] == "BLOCKED" and judgements[0]["effect"] == "audit"
                assert "BLOCKED" in annotations["models.modelsec.io/audit-would-deny"]
                return
        time.sleep(0.5)
    pytest.fail("no audit event with the webhook's annotations for the admitted pod")


def test_exempt_namespace_is_never_sent_to_the_webhook(space: Space, webhook: Process) -> None:
    space.create()
    # Make kube-system look like a governed namespace: only the exemption keeps it out.
    space.cluster.kubectl("label", "namespace", "kube-system", f"modelsec-test={space.name}", "--overwrite")
    try:
        before = metric(
            webhook.metrics_port, "modelsec_webhook_reviews_total", decision="allowed", reason="exempt"
        )
        total_before = _reviews(webhook)
        pod = space.pod("exempt", space.uri("evil.pkl"))
        pod["metadata"]["namespace"] = "kube-system"
        result = space.apply(pod)
        assert result.returncode == 0, result.stderr
        assert _reviews(webhook) == total_before  # the API server did not even call it
        assert (
            metric(
                webhook.metrics_port, "modelsec_webhook_reviews_total", decision="allowed", reason="exempt"
            )
            == before
        )
        assert space.cluster.get("modelscans", space.scan_of("evil.pkl")) is None
    finally:
        space.cluster.kubectl(
            "delete", "pod", "exempt", "-n", "kube-system", "--wait=false", "--ignore-not-found"
        )
        space.cluster.kubectl("label", "namespace", "kube-system", "modelsec-test-")


def _reviews(webhook: Process) -> float:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{webhook.metrics_port}/metrics", timeout=5) as r:
        return sum(
            float(line.split()[-1])
            for line in r.read().decode().splitlines()
            if line.startswith("modelsec_webhook_reviews_total{")
        )


def test_dry_run_is_judged_without_creating_a_modelscan(space: Space) -> None:
    space.create()
    result = space.apply(space.pod("dry", space.uri("evil.pkl")), dry_run=True)
    assert result.returncode != 0 and "dry run: no ModelScan was created" in result.stderr
    time.sleep(2)
    assert space.cluster.get("modelscans", space.scan_of("evil.pkl")) is None


def test_inference_service_storage_uri_when_the_crd_exists(space: Space) -> None:
    space.create()
    space.cluster.apply(
        {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "inferenceservices.serving.kserve.io"},
            "spec": {
                "group": "serving.kserve.io",
                "scope": "Namespaced",
                "names": {
                    "kind": "InferenceService",
                    "plural": "inferenceservices",
                    "singular": "inferenceservice",
                },
                "versions": [
                    {
                        "name": "v1beta1",
                        "served": True,
                        "storage": True,
                        "schema": {
                            "openAPIV3Schema": {
                                "type": "object",
                                "x-kubernetes-preserve-unknown-fields": True,
                            }
                        },
                    }
                ],
            },
        }
    )
    space.cluster.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s", "crd/inferenceservices.serving.kserve.io"
    )
    isvc = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "evil", "namespace": space.namespace},
        "spec": {
            "predictor": {"model": {"modelFormat": {"name": "pytorch"}, "storageUri": space.uri("evil-llm")}}
        },
    }
    deadline = time.monotonic() + 30
    while True:  # the API server's webhook rules see the new resource after discovery refreshes
        result = space.apply_after_scan(isvc, "evil-llm")
        if result.returncode != 0 or time.monotonic() > deadline:
            break
        space.cluster.kubectl(
            "delete", "inferenceservice", "evil", "-n", space.namespace, "--ignore-not-found"
        )
        time.sleep(1)
    assert result.returncode != 0, result.stdout
    assert "(InferenceService spec.predictor.model.storageUri) is BLOCKED" in result.stderr, result.stderr


# --- TLS ------------------------------------------------------------------------------------


def test_rotated_certificate_is_served_without_a_restart(space: Space, webhook: Any) -> None:
    space.create()
    loads = metric(webhook.metrics_port, "modelsec_webhook_tls_reloads_total", result="loaded")
    # cert-manager renews: a new leaf from the same CA, written over the mounted files.
    leaf = webhook.ca.issue_cert("127.0.0.1", "localhost", "rotated.example")
    webhook.key_file.write_bytes(leaf.private_key_pem.bytes())
    webhook.cert_file.write_bytes(leaf.cert_chain_pems[0].bytes())
    deadline = time.monotonic() + 15
    while metric(webhook.metrics_port, "modelsec_webhook_tls_reloads_total", result="loaded") <= loads:
        assert time.monotonic() < deadline, webhook.log()
        time.sleep(0.2)
    peer = ssl.get_server_certificate(("127.0.0.1", webhook.port))
    assert (
        x509.load_pem_x509_certificate(peer.encode())
        .extensions.get_extension_for_class(x509.SubjectAlternativeName)
        .value.get_values_for_type(x509.DNSName)[-1]
        == "rotated.example"
    )
    # ...and the API server, which only trusts the CA, keeps calling it.
    result = space.apply(space.pod("after-rotation", space.uri("evil.pkl")), dry_run=True)
    assert 'admission webhook "models.modelsec.io" denied' in result.stderr, result.stderr


def test_bootstrap_tls_writes_its_ca_into_the_configuration(
    space: Space, cluster: Cluster, tmp_path: Path
) -> None:
    from modelsec_webhook import manifest

    space.create()
    name = f"bootstrap-{space.name}"[:63]
    port, metrics_port = free_port(), free_port()
    config = manifest.render(manifest.client_config(url=f"https://127.0.0.1:{port}/validate"), name=name)
    # Only this test's namespace is sent to the second webhook.
    config["webhooks"][0]["namespaceSelector"] = {"matchLabels": {"modelsec-test": space.name}}
    config["webhooks"][0]["name"] = "bootstrap.models.modelsec.io"
    cluster.apply(config)
    second = Process(
        "modelsec_webhook",
        [
            "--kubeconfig",
            cluster.kubeconfig,
            "--bootstrap-tls",
            "--tls-dir",
            str(tmp_path / "tls"),
            "--webhook-config-name",
            name,
            "--port",
            str(port),
            "--metrics-port",
            str(metrics_port),
            "--bind-address",
            "127.0.0.1",
        ],
        tmp_path / "bootstrap.log",
        f"http://127.0.0.1:{metrics_port}/readyz",
    )
    try:
        second.start()
        ca = (tmp_path / "tls" / "ca.crt").read_bytes()
        patched = cluster.wait_for(
            "validatingwebhookconfigurations",
            name,
            lambda c: c["webhooks"][0]["clientConfig"].get("caBundle") == base64.b64encode(ca).decode(),
            what="caBundle patched",
            timeout=30,
        )
        assert patched
        deadline = time.monotonic() + 30
        while True:
            result = space.apply(space.pod("via-bootstrap", space.uri("evil.pkl")), dry_run=True)
            if 'admission webhook "bootstrap.models.modelsec.io" denied' in result.stderr:
                break
            assert time.monotonic() < deadline, result.stderr + second.log()
            time.sleep(0.5)
    finally:
        cluster.kubectl("delete", "validatingwebhookconfiguration", name, "--ignore-not-found")
        second.stop()


def test_metrics_and_probes(webhook: Process, space: Space) -> None:
    import urllib.request

    space.create()
    space.apply(space.pod("metrics", space.uri("clean")))
    with urllib.request.urlopen(f"http://127.0.0.1:{webhook.metrics_port}/metrics", timeout=5) as r:
        text = r.read().decode()
    for name in (
        "modelsec_webhook_reviews_total",
        "modelsec_webhook_review_duration_seconds_bucket",
        "modelsec_webhook_judgements_total",
        "modelsec_webhook_view_objects",
        "modelsec_webhook_watch_events_total",
        "modelsec_webhook_ready 1.0",
    ):
        assert name in text
    context = ssl.create_default_context(cadata=webhook.ca_pem.decode())
    with urllib.request.urlopen(f"https://127.0.0.1:{webhook.port}/readyz", context=context, timeout=5) as r:
        assert r.status == 200
