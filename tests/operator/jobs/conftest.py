"""Scan-Job tests: their own control plane with kube-controller-manager and kube-scheduler
(instance ``pytest-jobs``, ENVTEST_CONTROLLERS=1), the node double from
tests/operator/node_double.py running the scan Pods, and the operator as a real
subprocess in ``--scan-mode job``. Everything but the kubelet is real: the Job
controller makes the Pods, the scheduler binds them, the garbage collector follows owner
references, the API server enforces RBAC and the ScanResult admission policy."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]

from node_double import NodeDouble  # noqa: E402

from modelsec.k8s.resultpolicy import manifests as result_policy  # noqa: E402


def _operator_tests_conftest() -> ModuleType:
    """tests/operator/conftest.py under its own name, for its Cluster and OperatorProcess."""
    spec = importlib.util.spec_from_file_location("operator_tests_conftest", HERE.parent / "conftest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BASE = _operator_tests_conftest()
Cluster, OperatorProcess = BASE.Cluster, BASE.OperatorProcess
INSTANCE = "pytest-jobs" + os.environ.get("MODELSEC_TEST_INSTANCE_SUFFIX", "")
NAMESPACE = "modelsec-jobs"
WORKER_SA = "modelsec-scan-worker"
# The API server's audit log records the requests of this namespace's ServiceAccounts only
# (an operator under test that runs as one has its API writes counted; nothing else is
# logged, so the log stays small).
COUNTED_NAMESPACE = "modelsec-counted"
AUDIT_DIR = Path(os.environ.get("MODELSEC_CACHE_DIR") or REPO / ".cache") / "envtest-audit" / INSTANCE
AUDIT_POLICY = f"""\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived, ResponseStarted]
rules:
  - level: Metadata
    userGroups: ["system:serviceaccounts:{COUNTED_NAMESPACE}"]
  - level: None
"""


def _envtest(
    *args: str, check: bool = True, extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ENVTEST_NAME": INSTANCE, "ENVTEST_CONTROLLERS": "1", **(extra or {})}
    for var in ("ENVTEST_APISERVER_PORT", "ENVTEST_ETCD_PORT", "ENVTEST_ETCD_PEER_PORT"):
        env.pop(var, None)
    proc = subprocess.run(
        ["bash", str(REPO / "hack" / "envtest.sh"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if check and proc.returncode != 0:
        pytest.fail(f"hack/envtest.sh {' '.join(args)} exited {proc.returncode}\n{proc.stderr[-4000:]}")
    return proc


def worker_rbac() -> list[dict[str, Any]]:
    """What the chart grants the scan-worker ServiceAccount in job mode: read the three
    modelsec kinds, create ScanResults in its namespace. Nothing else."""
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": WORKER_SA, "namespace": NAMESPACE},
            "automountServiceAccountToken": False,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "jobs-test-worker"},
            "rules": [
                {
                    "apiGroups": ["modelsec.io"],
                    "resources": ["modelscans", "securitygroups", "modelsources"],
                    "verbs": ["get"],
                }
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "jobs-test-worker"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "jobs-test-worker",
            },
            "subjects": [{"kind": "ServiceAccount", "name": WORKER_SA, "namespace": NAMESPACE}],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "jobs-test-worker", "namespace": NAMESPACE},
            "rules": [{"apiGroups": ["modelsec.io"], "resources": ["scanresults"], "verbs": ["create"]}],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "jobs-test-worker", "namespace": NAMESPACE},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "jobs-test-worker"},
            "subjects": [{"kind": "ServiceAccount", "name": WORKER_SA, "namespace": NAMESPACE}],
        },
    ]


@pytest.fixture(scope="session")
def jobs_cluster() -> Iterator[Any]:
    if _envtest("status", check=False).returncode != 0:
        AUDIT_DIR.mkdir(parents=True, exist_ok=True)
        (AUDIT_DIR / "policy.yaml").write_text(AUDIT_POLICY)
        for old in AUDIT_DIR.glob("audit*.log"):
            old.unlink()
        audit = (
            f"--audit-policy-file={AUDIT_DIR / 'policy.yaml'} --audit-log-path={AUDIT_DIR / 'audit.log'} "
            "--audit-log-maxbackup=1 --audit-log-maxsize=100"
        )
        _envtest("up", extra={"ENVTEST_APISERVER_ARGS": audit})
    exports = {}
    for line in _envtest("env").stdout.splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        exports[key] = value
    cluster = Cluster(exports)
    cluster.kubectl("apply", "-f", str(REPO / "crds"))
    cluster.kubectl(
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/modelscans.modelsec.io",
        "crd/scanresults.modelsec.io",
    )
    cluster.apply(*worker_rbac(), *result_policy(WORKER_SA))
    try:
        yield cluster
    finally:
        if os.environ.get("MODELSEC_KEEP_ENVTEST") != "1":
            _envtest("down", check=False)


@pytest.fixture(scope="session")
def jobs_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("job-models")


def _private_mounts_work() -> str | None:
    """Why the node double cannot run here (it bind-mounts volumes in a private mount
    namespace: root and util-linux's unshare), or None."""
    try:
        probe = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", "mount -t tmpfs probe /mnt"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except OSError as exc:
        return f"the node double needs util-linux's unshare: {exc}"
    if probe.returncode != 0:
        return f"the node double needs private mount namespaces (root, unshare): {probe.stderr.strip()}"
    return None


@pytest.fixture(scope="session")
def node(jobs_cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeDouble]:
    if (why := _private_mounts_work()) is not None:
        pytest.skip(why)
    double = NodeDouble(
        kubeconfig=Path(jobs_cluster.kubeconfig),
        namespace=NAMESPACE,
        workdir=tmp_path_factory.mktemp("node-double"),
        bin_dir=Path(sys.executable).parent,
        # The image has modelsec installed; this checkout's operator package is a path.
        extra_env={"PYTHONPATH": os.pathsep.join([str(REPO / "operator"), str(REPO / "src")])},
    ).start()
    yield double
    double.stop()


class AsAccount:
    """The cluster as seen through another kubeconfig (an operator running as a
    ServiceAccount of its own, whose requests the audit log then tells apart)."""

    def __init__(self, cluster: Any, kubeconfig: Path) -> None:
        self._cluster = cluster
        self.kubeconfig = str(kubeconfig)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cluster, name)


@pytest.fixture
def job_operator(
    jobs_cluster: Any, jobs_models: Path, node: NodeDouble, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Any]]:
    """``make(settings=..., *extra)``: an operator in scan mode job with these Job settings
    (the models directory mounted at the same path, as the chart does)."""
    made: list[Any] = []

    def make(
        *extra: str,
        settings: dict[str, Any] | None = None,
        limit: int = 4,
        env: dict[str, str] | None = None,
        kubeconfig: Path | None = None,
    ) -> Any:
        merged = {
            "scheduleTimeoutSeconds": 60,
            "ttlSecondsAfterFinished": 600,
            "volumes": [{"name": "models", "hostPath": {"path": str(jobs_models), "type": "Directory"}}],
            "volumeMounts": [{"name": "models", "mountPath": str(jobs_models), "readOnly": True}],
            **(settings or {}),
        }
        path = tmp_path / f"settings-{len(made)}.yaml"
        path.write_text(yaml.safe_dump(merged))
        log_dir = tmp_path / f"op{len(made)}"
        log_dir.mkdir()
        process = OperatorProcess(
            jobs_cluster if kubeconfig is None else AsAccount(jobs_cluster, kubeconfig),
            jobs_models,
            log_dir,
            "--scan-mode",
            "job",
            "--scan-job-namespace",
            NAMESPACE,
            "--scan-job-settings",
            str(path),
            "--max-concurrent-scan-jobs",
            str(limit),
            "--scan-job-poll-seconds",
            "0.5",
            "--max-attempts",
            "3",
            *extra,
            env=env,
        )
        made.append(process)
        return process

    yield make
    for process in made:
        process.stop()
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        for process in made:
            sys.stderr.write(process.log())
        sys.stderr.write("\n".join(node.errors[-20:]))
