"""Chart tests. Rendering tests need only helm (hack/install-tools.sh helm). ``cluster`` tests
run against their own control plane from hack/envtest.sh (instance ``pytest-chart``) with
kube-controller-manager and kube-scheduler (ENVTEST_CONTROLLERS=1), API audit logging, and
``--enable-aggregator-routing`` so that the API server reaches a webhook Service through its
EndpointSlices: the chart is ``helm install``ed, and its webhook Service gets an EndpointSlice
pointing at the webhook running here as a local process, authenticated as the chart's
ServiceAccount (a TokenRequest token), serving the chart's own certificate. Nothing is
mocked: the Deployments exist (their Pods stay Pending, there are no nodes), and the
processes run with exactly the arguments the chart gives the containers.

The fixtures ``cluster``, ``models_root``, ``operator`` and ``webhook`` have the names and
shapes tests/webhook's end-to-end scenarios expect, and its ``space`` fixture is reused
as is: test_chart_install.py runs those scenarios again, as the chart's ServiceAccounts.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import yaml
from chart_helpers import (
    AUDIT_POLICY,
    CACHE,
    CHART,
    CREDENTIALS_NAMESPACE,
    HELM,
    INSTALL_VALUES,
    INSTANCE,
    NAMESPACE,
    RELEASE,
    REPO,
    Helm,
    Release,
    Webhook,
    container_args,
    host_address,
    install_tools,
    kubeconfig_for,
    override,
    tls_files,
)
from cluster_helpers import Cluster, Process, free_port, metric


def _webhook_tests_conftest() -> ModuleType:
    """tests/webhook/conftest.py, loaded under its own name: its ``space`` fixture (a
    namespace, a Local source of test models and a SecurityGroup) serves these tests too."""
    spec = importlib.util.spec_from_file_location(
        "webhook_tests_conftest", REPO / "tests" / "webhook" / "conftest.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


WEBHOOK_TESTS = _webhook_tests_conftest()
space = WEBHOOK_TESTS.space


@pytest.fixture(scope="session")
def helm_binary() -> Path:
    if shutil.which("go") is None and not HELM.exists():
        pytest.skip("no Go toolchain and no cached helm (hack/install-tools.sh helm)")
    install_tools("helm")
    return HELM


@pytest.fixture(scope="session")
def helm(helm_binary: Path, tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm(helm_binary, tmp_path_factory.mktemp("helm-home"))


# --- the control plane --------------------------------------------------------------------


def _envtest(
    instance: str, *args: str, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """tests/webhook's hack/envtest.sh runner, for ``instance``."""
    return WEBHOOK_TESTS._envtest(*args, env={"ENVTEST_NAME": instance, **(env or {})}, check=check)


SLOTS = 4  # control planes the chart tests may run at once (a shared checkout runs several suites)


@contextlib.contextmanager
def _free_slot(timeout: float = 600) -> Iterator[str]:
    """An instance no other test session drives (two sessions would install and uninstall
    the same release under each other): pytest-chart, else pytest-chart-1, -2, -3; held by
    a lock for the whole session."""
    folder = CACHE / "chart-tests"
    folder.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout
    while True:
        for slot in range(SLOTS):
            lock = open(folder / f"session-{slot}.lock", "w")
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lock.close()
                continue
            try:
                yield INSTANCE if slot == 0 else f"{INSTANCE}-{slot}"
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
                lock.close()
            return
        if time.monotonic() > deadline:
            pytest.fail(f"{SLOTS} other test sessions held every chart-test control plane for {timeout:.0f}s")
        time.sleep(2)


@pytest.fixture(scope="session")
def cluster(helm_binary: Path) -> Iterator[Cluster]:
    if shutil.which("go") is None and not all(
        (CACHE / "bin" / n).exists()
        for n in ("etcd", "kube-apiserver", "kubectl", "kube-controller-manager", "kube-scheduler")
    ):
        pytest.skip("no Go toolchain and no cached control-plane binaries (hack/install-tools.sh)")
    with _free_slot() as instance:
        yield from _control_plane(instance)


def _control_plane(name: str) -> Iterator[Cluster]:
    started = time.monotonic()
    audit = CACHE / "chart-tests" / "audit" / name
    audit.mkdir(parents=True, exist_ok=True)
    policy, audit_log = audit / "policy.yaml", audit / "audit.log"
    policy.write_text(AUDIT_POLICY)
    up = _envtest(name, "status", check=False).returncode == 0
    if up and not audit_log.exists():
        _envtest(name, "down")  # up, but not with our audit settings: start it our way
        up = False
    if not up:
        audit_log.unlink(missing_ok=True)
    _envtest(
        name,
        "up",
        env={
            "ENVTEST_CONTROLLERS": "1",
            "ENVTEST_APISERVER_ARGS": f"--enable-aggregator-routing=true --audit-policy-file={policy} "
            f"--audit-log-path={audit_log} --audit-log-maxbackup=1",
        },
    )
    exports = dict(
        line.removeprefix("export ").split("=", 1) for line in _envtest(name, "env").stdout.splitlines()
    )
    instance = Cluster(exports["KUBECONFIG"].strip("'\""), audit_log)
    sys.stderr.write(
        f"\n[chart tests] {name}: control plane with controllers ready in {time.monotonic() - started:.1f}s\n"
    )
    try:
        yield instance
    finally:
        if os.environ.get("MODELSEC_KEEP_ENVTEST") != "1":
            _envtest(name, "down", check=False)


@pytest.fixture(scope="session")
def cluster_helm(helm_binary: Path, cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm(helm_binary, tmp_path_factory.mktemp("helm-home-cluster"), cluster.kubeconfig)


# --- the release and its ServiceAccounts ---------------------------------------------------


@pytest.fixture(scope="session")
def release(cluster_helm: Helm, cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Release:
    """``helm install`` with INSTALL_VALUES, once per session (test_chart_install.py
    uninstalls it last)."""
    values = tmp_path_factory.mktemp("release") / "values.yaml"
    values.write_text(yaml.safe_dump(INSTALL_VALUES))
    cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": CREDENTIALS_NAMESPACE}})
    if cluster_helm.run("status", RELEASE, "-n", NAMESPACE, check=False).returncode == 0:
        cluster_helm.run("uninstall", RELEASE, "-n", NAMESPACE, "--timeout", "120s")  # a kept instance
    cluster_helm.run(
        "install",
        RELEASE,
        str(CHART),
        "-n",
        NAMESPACE,
        "--create-namespace",
        "-f",
        str(values),
        "--timeout",
        "300s",
    )
    return Release(cluster_helm, cluster, values)


@pytest.fixture(scope="session")
def models_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def operator(
    release: Release, cluster: Cluster, models_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Process]:
    """The chart's operator container, as a local process with the operator's token."""
    directory = tmp_path_factory.mktemp("operator")
    kubeconfig = kubeconfig_for(cluster, f"{RELEASE}-operator", directory / "kubeconfig")
    health = free_port()
    args = override(
        container_args(cluster, f"{RELEASE}-operator"),
        kubeconfig=str(kubeconfig),
        local_root=str(models_root),
        metrics_port=str(free_port()),
        health_port=str(health),
        bind_address="127.0.0.1",
    )
    process = Process("modelsec", args, directory / "operator.log", f"http://127.0.0.1:{health}/healthz")
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="session")
def webhook(
    release: Release, cluster: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Webhook]:
    """The chart's webhook container as a local process with the webhook's token and the
    chart's certificate, reached by the API server through the chart's Service."""
    directory = tmp_path_factory.mktemp("webhook")
    kubeconfig = kubeconfig_for(cluster, f"{RELEASE}-webhook", directory / "kubeconfig")
    tls = tls_files(cluster, directory)
    port, metrics_port = free_port(), free_port()
    args = override(
        container_args(cluster, f"{RELEASE}-webhook"),
        kubeconfig=str(kubeconfig),
        tls_cert=str(tls["tls.crt"]),
        tls_key=str(tls["tls.key"]),
        port=str(port),
        metrics_port=str(metrics_port),
        bind_address="0.0.0.0",
    )
    process = Webhook("modelsec", args, directory / "webhook.log", f"http://127.0.0.1:{metrics_port}/readyz")
    process.port, process.metrics_port = port, metrics_port
    process.ca_pem = tls["ca.crt"].read_bytes()
    process.tls = tls
    process.start()
    slice_name = f"{RELEASE}-webhook-local"
    cluster.apply(
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": slice_name,
                "namespace": NAMESPACE,
                "labels": {
                    "kubernetes.io/service-name": f"{RELEASE}-webhook",
                    "endpointslice.kubernetes.io/managed-by": "modelsec-chart-tests",
                },
            },
            "addressType": "IPv4",
            "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
            "endpoints": [{"addresses": [host_address()], "conditions": {"ready": True}}],
        }
    )
    # The API server follows EndpointSlices through an informer: wait until it calls us.
    probe = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "probe", "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }
    deadline = time.monotonic() + 60
    while metric(metrics_port, "modelsec_webhook_reviews_total", decision="allowed", reason="no-models") == 0:
        if time.monotonic() > deadline:
            pytest.fail(
                f"the API server never called the webhook through the chart's Service:\n{process.log()}"
            )
        cluster.apply(probe, check=False, extra=("--dry-run=server",))
        time.sleep(0.5)
    yield process
    process.stop()
    cluster.kubectl("delete", "endpointslice", slice_name, "-n", NAMESPACE, "--ignore-not-found", check=False)


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        for name in ("webhook", "operator"):
            process = item.funcargs.get(name) if hasattr(item, "funcargs") else None
            if isinstance(process, Process):
                report.sections.append((f"{name} log", process.log()))
