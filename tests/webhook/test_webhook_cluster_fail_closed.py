"""Admission bypasses of issue 10, end to end on the local control plane: each was
admitted before (the test fails on the old webhook), and now is denied.

A real kube-apiserver + etcd (hack/envtest.sh), the webhook and the operator as real
subprocesses; ``kubectl`` is what is judged. The outage test puts a TCP relay between a
second webhook and the API server and cuts it, as a stopped API server would.
"""

from __future__ import annotations

import base64
import json
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cluster_helpers import CLEAN_PICKLE, EVIL_PICKLE, Cluster, Process, Space, TcpProxy, free_port, metric

from modelsec.k8s.naming import scan_name

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(900)]


def vllm_pod(space: Space, name: str, **container: Any) -> dict[str, Any]:
    obj = space.pod(name)
    obj["spec"]["containers"] = [{"name": "vllm", "image": "python:3.11", **container}]
    return obj


def denied(result: Any, *expected: str) -> None:
    assert result.returncode != 0, f"admitted:\n{result.stdout}{result.stderr}"
    assert 'admission webhook "models.modelsec.io" denied the request' in result.stderr, result.stderr
    for text in expected:
        assert text in result.stderr, result.stderr


# --- item 1: caps -------------------------------------------------------------------------------


def test_a_model_in_the_65th_container_is_judged(space: Space) -> None:
    space.create()
    obj = space.pod("many")
    obj["spec"]["containers"] = [{"name": f"c{i}", "image": "busybox"} for i in range(64)]
    obj["spec"]["containers"].append(
        {"name": "late", "image": "python:3.11", "command": ["vllm", "serve", str(space.dir / "evil.pkl")]}
    )
    result = space.apply_after_scan(obj, "evil.pkl")
    denied(result, f"{space.uri('evil.pkl')} (container late: vllm serve <model>) is BLOCKED")


def test_a_model_named_after_64_kib_of_shell_script_is_denied(space: Space) -> None:
    space.create()
    script = "echo " + "x" * (64 * 1024) + f"\nexec vllm serve {space.dir}/evil.pkl"
    result = space.apply(vllm_pod(space, "long-script", command=["sh", "-c", script]), dry_run=True)
    denied(result, "its shell script is", "cannot judge the rest", f"SecurityGroup {space.group} covers")


# --- item 2: ephemeral containers -----------------------------------------------------------------


def test_kubectl_debug_cannot_start_a_container_loading_a_blocked_model(space: Space) -> None:
    space.create()
    assert space.apply(space.pod("target")).returncode == 0
    space.apply(space.pod("warmup", space.uri("evil.pkl")))  # ask for the scan
    space.wait_verdict("evil.pkl")
    time.sleep(0.5)
    result = space.cluster.kubectl(
        "debug",
        "-n",
        space.namespace,
        "pod/target",
        "--image=python:3.11",
        "-c",
        "debugger",
        "--",
        "vllm",
        "serve",
        str(space.dir / "evil.pkl"),
        check=False,
    )
    denied(result, f"{space.uri('evil.pkl')} (container debugger: vllm serve <model>) is BLOCKED")
    target = space.cluster.get("pods", "target", space.namespace)
    assert target is not None and not target["spec"].get("ephemeralContainers")
    # A debugger without a model is still welcome.
    plain = space.cluster.kubectl(
        "debug",
        "-n",
        space.namespace,
        "pod/target",
        "--image=busybox",
        "-c",
        "shell",
        "--",
        "sleep",
        "1",
        check=False,
    )
    assert plain.returncode == 0, plain.stderr


# --- item 5: ambiguous references -----------------------------------------------------------------


def test_an_ambiguous_annotation_entry_is_denied(space: Space) -> None:
    space.create()
    denied(space.apply(space.pod("relative", "models/x.pkl"), dry_run=True), "'models/x.pkl'", "ambiguous")


def test_malformed_model_arguments_are_denied_where_a_group_applies(space: Space) -> None:
    space.create()
    for name, args in (("hub", ["hf://org"]), ("host", ["--model", f"file://host{space.dir}/evil.pkl"])):
        result = space.apply(vllm_pod(space, name, command=["vllm", "serve", *args]), dry_run=True)
        denied(result, "looks like a model reference but is not one")


def test_equivalent_spellings_of_a_path_are_one_modelscan(space: Space) -> None:
    space.create()
    spellings = [
        f"file://{space.dir}//evil.pkl",
        f"file://{space.dir}/./evil.pkl",
        f"file://{space.dir}/clean/../evil.pkl",
    ]
    for i, spelling in enumerate(spellings):
        space.apply(space.pod(f"spelling-{i}", spelling))
    assert {scan_name(s, None, space.group) for s in spellings} == {space.scan_of("evil.pkl")}
    space.wait_verdict("evil.pkl")
    time.sleep(2)
    scans = json.loads(space.cluster.kubectl("get", "modelscans", "-o", "json").stdout)["items"]
    assert [s["metadata"]["name"] for s in scans if s["spec"]["securityGroup"] == space.group] == [
        space.scan_of("evil.pkl")
    ]
    denied(space.apply(space.pod("spelling-again", spellings[2])), "is BLOCKED")


# --- item 6: values from ConfigMaps and Secrets -----------------------------------------------


def test_a_model_named_by_a_configmap_is_read_and_judged(space: Space) -> None:
    space.create()
    space.cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "models", "namespace": space.namespace},
            "data": {"id": str(space.dir / "evil.pkl")},
        }
    )
    env = [{"name": "MODEL", "valueFrom": {"configMapKeyRef": {"name": "models", "key": "id"}}}]
    obj = vllm_pod(space, "from-configmap", command=["vllm", "serve", "$(MODEL)"], env=env)
    result = space.apply_after_scan(obj, "evil.pkl")
    denied(result, f"{space.uri('evil.pkl')} (container vllm: vllm serve <model>) is BLOCKED")


def test_a_model_named_by_a_secret_is_denied_as_unresolvable(space: Space) -> None:
    space.create()
    env = [{"name": "MODEL", "valueFrom": {"secretKeyRef": {"name": "models", "key": "id"}}}]
    obj = vllm_pod(space, "from-secret", command=["sh", "-c", "exec vllm serve $MODEL"], env=env)
    denied(
        space.apply(obj, dry_run=True),
        "Secret models",
        "modelsec does not read Secrets",
        f"SecurityGroup {space.group} covers namespace {space.namespace}",
    )


# --- items 4 and 8: reviews called directly -------------------------------------------------------


def post(webhook: Any, body: bytes) -> tuple[int, str]:
    context = ssl.create_default_context(cadata=webhook.ca_pem.decode())
    request = urllib.request.Request(
        f"https://127.0.0.1:{webhook.port}/validate", data=body, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_reviews_it_cannot_understand_are_denied_and_hostile_ones_answered_cleanly(webhook: Any) -> None:
    base = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "direct",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "namespace": "default",
            "operation": "CREATE",
            "object": {"metadata": {"annotations": {"modelsec.io/models": ["hf://org/m"]}}},
        },
    }
    misspelt = json.loads(json.dumps(base))
    misspelt["request"]["operation"] = "CRAETE"
    for document, reason in ((base, "is not a string"), (misspelt, "request.operation 'CRAETE'")):
        status, text = post(webhook, json.dumps(document).encode())
        answer = json.loads(text)["response"]
        assert status == 200 and answer["allowed"] is False and reason in answer["status"]["message"]
    before = webhook.log().count("Traceback")
    for body in (b"[" * 100_000, json.dumps(base).replace('"direct"', '"\\ud800"').encode()):
        status, _ = post(webhook, body)
        assert status in (200, 400)
    time.sleep(0.5)
    assert webhook.log().count("Traceback") == before
    assert (
        metric(
            webhook.metrics_port,
            "modelsec_webhook_reviews_total",
            decision="invalid-request",
            reason="invalid-request",
        )
        >= 1
    )


# --- item 3: API server outage ----------------------------------------------------------------------


@pytest.fixture
def outage_webhook(
    cluster: Cluster, space: Space, webhook: Any, tmp_path: Path
) -> Iterator[tuple[Process, TcpProxy]]:
    """A second webhook that reaches the API server through a relay the test can cut, the
    only webhook called for this test's namespace (the shared one is told to skip it)."""
    from modelsec_webhook import manifest

    kubeconfig = Path(cluster.kubeconfig).read_text()
    server = next(
        line.split("server:", 1)[1].strip() for line in kubeconfig.splitlines() if "server:" in line
    )
    proxy = TcpProxy(int(server.rsplit(":", 1)[1]))
    relayed = tmp_path / "kubeconfig"
    relayed.write_text(kubeconfig.replace(server, f"https://127.0.0.1:{proxy.port}"))
    leaf = webhook.ca.issue_cert("127.0.0.1")
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    port, metrics_port = free_port(), free_port()
    second = Process(
        "modelsec_webhook",
        [
            "--kubeconfig",
            str(relayed),
            "--tls-cert",
            str(cert),
            "--tls-key",
            str(key),
            "--port",
            str(port),
            "--metrics-port",
            str(metrics_port),
            "--bind-address",
            "127.0.0.1",
            "--max-staleness",
            "3",
        ],
        tmp_path / "outage-webhook.log",
        f"http://127.0.0.1:{metrics_port}/readyz",
    )
    second.start()
    second.metrics_port = metrics_port  # type: ignore[attr-defined]
    shared = cluster.get("validatingwebhookconfigurations", "modelsec-webhook-pytest")
    assert shared is not None
    skip = {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": [space.namespace]}
    patch = {
        "webhooks": [
            {
                **shared["webhooks"][0],
                "namespaceSelector": {
                    "matchExpressions": [
                        *shared["webhooks"][0]["namespaceSelector"]["matchExpressions"],
                        skip,
                    ]
                },
            }
        ]
    }
    name = f"outage-{space.name}"[:63]
    config = manifest.render(
        manifest.client_config(
            url=f"https://127.0.0.1:{port}/validate", ca_bundle=base64.b64encode(webhook.ca_pem).decode()
        ),
        name=name,
    )
    config["webhooks"][0]["namespaceSelector"] = {"matchLabels": {"modelsec-test": space.name}}
    try:
        cluster.kubectl(
            "patch",
            "validatingwebhookconfiguration",
            "modelsec-webhook-pytest",
            "--type",
            "merge",
            "-p",
            json.dumps(patch),
        )
        cluster.apply(config)
        yield second, proxy
    finally:
        cluster.kubectl("delete", "validatingwebhookconfiguration", name, "--ignore-not-found")
        cluster.kubectl(
            "patch",
            "validatingwebhookconfiguration",
            "modelsec-webhook-pytest",
            "--type",
            "merge",
            "-p",
            json.dumps({"webhooks": [shared["webhooks"][0]]}),
        )
        proxy.close()
        second.stop()


def ready_status(metrics_port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/readyz", timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_after_an_api_server_outage_nothing_is_admitted_on_a_stale_view(
    space: Space, outage_webhook: tuple[Process, TcpProxy]
) -> None:
    second, proxy = outage_webhook
    (space.dir / "model.pkl").write_bytes(CLEAN_PICKLE)
    space.create()
    pod = space.pod("served", space.uri("model.pkl"))
    deadline = time.monotonic() + 60
    while True:  # the configurations reach the API server asynchronously
        result = space.apply_after_scan(pod, "model.pkl")
        if result.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert result.returncode == 0, result.stderr  # ALLOWED: the second webhook's view says so
    space.cluster.kubectl("delete", "pod", "served", "-n", space.namespace, "--wait=false")

    proxy.block()  # the API server is gone, as far as this webhook can tell
    deadline = time.monotonic() + 30
    while ready_status(second.metrics_port) == 200:  # type: ignore[attr-defined]
        assert time.monotonic() < deadline, "still ready with a view older than --max-staleness"
        time.sleep(0.3)

    # Meanwhile the model changes and the operator writes BLOCKED.
    (space.dir / "model.pkl").write_bytes(EVIL_PICKLE)
    space.cluster.kubectl(
        "annotate",
        "modelscan",
        space.scan_of("model.pkl"),
        "--overwrite",
        f"modelsec.io/rescan={time.time()}",
    )
    space.cluster.wait_for(
        "modelscans",
        space.scan_of("model.pkl"),
        lambda s: s.get("status", {}).get("outcome") == "BLOCKED",
        what="BLOCKED",
        timeout=120,
    )

    stale = space.apply(pod, dry_run=True)
    assert stale.returncode != 0, "admitted on a stale view"
    assert "old, more than the 3s it decides on" in stale.stderr and "failing closed" in stale.stderr, (
        stale.stderr
    )

    proxy.unblock()  # back: the webhook must follow at once, never admit in between
    deadline = time.monotonic() + 60
    while True:
        result = space.apply(pod, dry_run=True)
        assert result.returncode != 0, f"admitted after the outage:\n{result.stderr}"
        if "is BLOCKED" in result.stderr:
            break
        assert time.monotonic() < deadline, result.stderr
        time.sleep(0.2)
    assert ready_status(second.metrics_port) == 200  # type: ignore[attr-defined]
    assert "listing every resource afresh" in second.log()
    assert "resource version expired" not in second.log()  # a fresh list, not a 410 recovery


def test_the_shared_webhook_is_called_again_after_the_outage_test(space: Space, webhook: Any) -> None:
    # The outage test patched the shared configuration for its namespace only: the patch is gone.
    space.create()
    denied(space.apply(space.pod("after", space.uri("evil.pkl")), dry_run=True))


def test_shipped_rbac_reads_configmaps_only_where_bound_and_never_secrets(
    cluster: Cluster, space: Space
) -> None:
    space.create()
    cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "modelsec-system"}})
    cluster.kubectl(
        "apply", "-f", str(Path(__file__).resolve().parents[2] / "deploy" / "webhook" / "rbac.yaml")
    )
    who = "--as=system:serviceaccount:modelsec-system:modelsec-webhook"

    def can(*what: str) -> bool:
        return cluster.kubectl("auth", "can-i", who, *what, check=False).stdout.strip() == "yes"

    assert can("watch", "modelscans.modelsec.io") and can("create", "modelscans.modelsec.io")
    assert not can("get", "configmaps", "-n", space.namespace)
    cluster.kubectl(
        "create",
        "rolebinding",
        "modelsec-webhook-configmaps",
        "-n",
        space.namespace,
        "--clusterrole=modelsec-webhook-configmap-reader",
        "--serviceaccount=modelsec-system:modelsec-webhook",
    )
    assert can("get", "configmaps", "-n", space.namespace)
    assert not can("list", "configmaps", "-n", space.namespace)
    assert not can("get", "configmaps", "-n", "default")
    assert not can("get", "secrets", "-n", space.namespace)
