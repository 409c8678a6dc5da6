"""Webhook tests. Unit tests need nothing. ``cluster`` tests run against a real
kube-apiserver + etcd from hack/envtest.sh (instance ``pytest-webhook``, with API audit
logging on so that audit annotations can be checked), started once per session and
stopped at the end (MODELSEC_KEEP_ENVTEST=1 keeps it). The webhook is registered with a
URL clientConfig ``https://127.0.0.1:<port>/validate`` and a test CA (trustme) as its
caBundle, as controller-runtime's envtest does; the webhook and the operator run as real
subprocesses."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import trustme

REPO = Path(__file__).resolve().parents[2]

from cluster_helpers import (  # noqa: E402
    BOM_NAMESPACE,
    CACHE,
    OWN_WEBHOOK_LABEL,
    VERIFIER_IMAGE,
    Cluster,
    Process,
    Space,
    free_port,
    registration,
)

# MODELSEC_TEST_INSTANCE_SUFFIX keeps concurrent sessions in one checkout (several people
# running tests) from sharing, and tearing down, each other's control plane.
INSTANCE = "pytest-webhook" + os.environ.get("MODELSEC_TEST_INSTANCE_SUFFIX", "")
CONFIG_NAME = "modelsec-webhook-pytest"
AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    resources:
      - {group: "", resources: [pods]}
      - {group: apps, resources: [deployments]}
  - level: None
"""


def _envtest(
    *args: str, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "ENVTEST_NAME": INSTANCE, **(env or {})}
    for var in ("ENVTEST_APISERVER_PORT", "ENVTEST_ETCD_PORT", "ENVTEST_ETCD_PEER_PORT"):
        environment.pop(var, None)
    proc = subprocess.run(
        ["bash", str(REPO / "hack" / "envtest.sh"), *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if check and proc.returncode != 0:
        pytest.fail(f"hack/envtest.sh {' '.join(args)} exited {proc.returncode}\n{proc.stderr}")
    return proc


def _binaries_cached() -> bool:
    return all((CACHE / "bin" / name).exists() for name in ("etcd", "kube-apiserver", "kubectl"))


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    if shutil.which("go") is None and not _binaries_cached():
        pytest.skip("no Go toolchain and no cached control-plane binaries (hack/install-tools.sh)")
    started = time.monotonic()
    audit = CACHE / "webhook-tests" / INSTANCE / "audit"
    audit.mkdir(parents=True, exist_ok=True)
    policy, audit_log = audit / "policy.yaml", audit / "audit.log"
    policy.write_text(AUDIT_POLICY)
    up = _envtest("status", check=False).returncode == 0
    if up and not audit_log.exists():
        _envtest("down")  # up, but not with our audit settings: start it our way
        up = False
    if not up:
        audit_log.unlink(missing_ok=True)  # a fresh log per fresh instance
    _envtest(
        "up",
        env={
            "ENVTEST_APISERVER_ARGS": f"--audit-policy-file={policy} "
            f"--audit-log-path={audit_log} --audit-log-maxbackup=1"
        },
    )
    exports = dict(line.removeprefix("export ").split("=", 1) for line in _envtest("env").stdout.splitlines())
    instance = Cluster(exports["KUBECONFIG"].strip("'\""), audit_log)
    instance.kubectl("apply", "-f", str(REPO / "crds"))
    crds = ("crd/modelsources.modelsec.io", "crd/securitygroups.modelsec.io", "crd/modelscans.modelsec.io")
    for attempt in range(10):  # right after apply a CRD may have no status yet: kubectl wait errors
        waited = instance.kubectl(
            "wait", "--for=condition=Established", "--timeout=60s", *crds, check=attempt == 9
        )
        if waited.returncode == 0:
            break
        time.sleep(0.5)
    sys.stderr.write(f"\n[webhook tests] control plane ready in {time.monotonic() - started:.1f}s\n")
    try:
        yield instance
    finally:
        if os.environ.get("MODELSEC_KEEP_ENVTEST") != "1":
            _envtest("down", check=False)


@pytest.fixture(scope="session")
def models_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def operator(
    cluster: Cluster, models_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Process]:
    health = free_port()
    cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": BOM_NAMESPACE}})
    process = Process(
        "modelsec_operator",
        [
            "--kubeconfig",
            cluster.kubeconfig,
            "--standalone",
            "--local-root",
            str(models_root),
            "--metrics-port",
            str(free_port()),
            "--health-port",
            str(health),
            "--bind-address",
            "127.0.0.1",
            "--bom-namespace",
            BOM_NAMESPACE,
        ],
        tmp_path_factory.mktemp("operator") / "operator.log",
        f"http://127.0.0.1:{health}/healthz",
    ).start()
    yield process
    process.stop()


class Webhook(Process):
    port: int
    metrics_port: int
    ca: trustme.CA
    ca_pem: bytes
    cert_file: Path
    key_file: Path


@pytest.fixture(scope="session")
def webhook(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Webhook]:
    """``modelsec webhook`` with certificates from a test CA, registered with the API server."""
    import trustme

    directory = tmp_path_factory.mktemp("webhook")
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file = directory / "tls.crt", directory / "tls.key"
    leaf.cert_chain_pems[0].write_to_path(str(cert_file))
    leaf.private_key_pem.write_to_path(str(key_file))
    port, metrics_port = free_port(), free_port()
    process = Webhook(
        "modelsec_webhook",
        [
            "--kubeconfig",
            cluster.kubeconfig,
            "--tls-cert",
            str(cert_file),
            "--tls-key",
            str(key_file),
            "--tls-reload-seconds",
            "0.5",
            "--port",
            str(port),
            "--metrics-port",
            str(metrics_port),
            "--bind-address",
            "127.0.0.1",
            "--verifier-image",
            VERIFIER_IMAGE,
            # Answer "scan pending" at once, as these tests expect; the wait has its own webhook
            # (test_admission_side_cluster.py).
            "--no-first-deploy-wait",
        ],
        directory / "webhook.log",
        f"http://127.0.0.1:{metrics_port}/readyz",
    )
    process.port, process.metrics_port = port, metrics_port
    process.ca, process.ca_pem = ca, ca.cert_pem.bytes()
    process.cert_file, process.key_file = cert_file, key_file
    process.start()

    from modelsec_webhook import manifest

    client = manifest.client_config(
        url=f"https://127.0.0.1:{port}/validate", ca_bundle=base64.b64encode(process.ca_pem).decode()
    )
    cluster.apply(*registration(client, CONFIG_NAME, {"key": OWN_WEBHOOK_LABEL, "operator": "DoesNotExist"}))
    # The API server picks configurations up asynchronously: wait until it calls us.
    probe = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "probe", "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }
    from cluster_helpers import metric

    deadline = time.monotonic() + 60
    while metric(metrics_port, "modelsec_webhook_reviews_total", decision="allowed", reason="no-models") == 0:
        if time.monotonic() > deadline:
            pytest.fail(f"the API server never called the webhook:\n{process.log()}")
        cluster.apply(probe, extra=("--dry-run=server",))
        time.sleep(0.3)
    yield process
    cluster.kubectl(
        "delete",
        "validatingwebhookconfiguration,mutatingwebhookconfiguration",
        CONFIG_NAME,
        "--ignore-not-found",
    )
    process.stop()


RUN = os.urandom(3).hex()  # envtest has no namespace controller: deleted namespaces linger


@pytest.fixture
def space(
    cluster: Cluster, models_root: Path, operator: Process, webhook: Process, request: pytest.FixtureRequest
) -> Iterator[Space]:
    readable = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower().removeprefix("test_"))[:22].strip("-")
    name = f"{readable}-{hashlib.sha256((RUN + request.node.nodeid).encode()).hexdigest()[:6]}"
    made = Space(cluster, models_root, name)
    yield made
    cluster.kubectl("delete", "namespace", made.namespace, "--wait=false", "--ignore-not-found")
    scans = json.loads(cluster.kubectl("get", "modelscans", "-o", "json").stdout)["items"]
    mine = [f"modelscans/{s['metadata']['name']}" for s in scans if s["spec"]["securityGroup"] == made.group]
    cluster.kubectl(
        "delete",
        "--wait=false",
        "--ignore-not-found",
        f"securitygroups/{made.group}",
        f"modelsources/src-{made.name}",
        *mine,
    )


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed and "cluster" in item.keywords:
        for name in ("webhook", "operator"):
            process = item.funcargs.get(name) if hasattr(item, "funcargs") else None
            if isinstance(process, Process):
                report.sections.append((f"{name} log", process.log()))
