"""Operator tests. Unit tests need nothing; ``cluster`` tests run against the real control
plane from hack/envtest.sh (its own instance, ``pytest-operator``), started once per
session, reused when already up, and stopped at the end (MODELSEC_KEEP_ENVTEST=1 keeps it
for the next run). The operator always runs as a real subprocess."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ENVTEST = REPO / "hack" / "envtest.sh"
# MODELSEC_TEST_INSTANCE_SUFFIX keeps concurrent sessions in one checkout (several people
# running tests) from sharing, and tearing down, each other's control plane.
INSTANCE = "pytest-operator" + os.environ.get("MODELSEC_TEST_INSTANCE_SUFFIX", "")
CACHE = Path(os.environ.get("MODELSEC_CACHE_DIR", REPO / ".cache"))

NO_PROXY_ENV = {"NO_PROXY": "127.0.0.1,localhost,::1", "no_proxy": "127.0.0.1,localhost,::1"}


def _envtest(*args: str, check: bool = True, timeout: float = 3600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ENVTEST_NAME": INSTANCE}
    for var in ("ENVTEST_APISERVER_PORT", "ENVTEST_ETCD_PORT", "ENVTEST_ETCD_PEER_PORT"):
        env.pop(var, None)
    proc = subprocess.run(
        ["bash", str(ENVTEST), *args], env=env, capture_output=True, text=True, timeout=timeout
    )
    if check and proc.returncode != 0:
        pytest.fail(
            f"hack/envtest.sh {' '.join(args)} exited {proc.returncode}\n"
            f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
        )
    return proc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    """kubectl against the test instance, plus waiting helpers."""

    def __init__(self, exports: dict[str, str]) -> None:
        self.kubeconfig = exports["KUBECONFIG"]
        self.kubectl_path = str(CACHE / "bin" / "kubectl")

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [self.kubectl_path, "--kubeconfig", self.kubeconfig, *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, **NO_PROXY_ENV},
        )
        if check and proc.returncode != 0:
            pytest.fail(f"kubectl {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
        return proc

    def apply(self, *documents: dict[str, Any], check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(documents), check=check)

    def get(self, plural: str, name: str) -> dict[str, Any] | None:
        proc = self.kubectl("get", plural, name, "-o", "json", check=False)
        if proc.returncode != 0:
            if "NotFound" in proc.stderr:
                return None
            pytest.fail(f"kubectl get {plural} {name}: {proc.stderr}")
        return json.loads(proc.stdout)

    def wait_for(
        self,
        plural: str,
        name: str,
        predicate: Callable[[dict[str, Any]], bool],
        timeout: float = 60,
        what: str = "condition",
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        last: dict[str, Any] | None = None
        while time.monotonic() < deadline:
            last = self.get(plural, name)
            if last is not None and predicate(last):
                return last
            time.sleep(0.3)
        pytest.fail(f"{plural}/{name}: {what} not reached in {timeout}s; last seen:\n{yaml.safe_dump(last)}")

    def wait_events(self, name: str, reasons: set[str], timeout: float = 30) -> set[str]:
        """Event reasons about ``name`` once all of ``reasons`` are there (kopf posts Events
        asynchronously, shortly after the status they describe)."""
        deadline = time.monotonic() + timeout
        seen: set[str] = set()
        while time.monotonic() < deadline:
            seen = {e["reason"] for e in self.events(name)}
            if reasons <= seen:
                return seen
            time.sleep(0.3)
        pytest.fail(
            f"events {sorted(reasons - seen)} about {name} not posted in {timeout}s (saw {sorted(seen)})"
        )

    def events(self, name: str) -> list[dict[str, Any]]:
        out = self.kubectl(
            "get", "events", "-A", "--field-selector", f"involvedObject.name={name}", "-o", "json"
        )
        return json.loads(out.stdout)["items"]


def _binaries_cached() -> bool:
    return all((CACHE / "bin" / name).exists() for name in ("etcd", "kube-apiserver", "kubectl"))


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    if shutil.which("go") is None and not _binaries_cached():
        pytest.skip("no Go toolchain and no cached control-plane binaries (hack/install-tools.sh)")
    started = time.monotonic()
    if _envtest("status", check=False, timeout=60).returncode != 0:
        _envtest("up")
    exports = {}
    for line in _envtest("env", timeout=60).stdout.splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        exports[key] = value
    instance = Cluster(exports)
    instance.kubectl("apply", "-f", str(REPO / "crds"))
    instance.kubectl(
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/modelsources.modelsec.io",
        "crd/securitygroups.modelsec.io",
        "crd/modelscans.modelsec.io",
        "crd/clusterkopfpeerings.kopf.dev",
    )
    sys.stderr.write(f"\n[operator tests] control plane ready in {time.monotonic() - started:.1f}s\n")
    try:
        yield instance
    finally:
        if os.environ.get("MODELSEC_KEEP_ENVTEST") != "1":
            _envtest("down", check=False, timeout=300)


@pytest.fixture(scope="session")
def models_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The operator's --local-root; each test's Local source is a directory inside it."""
    return tmp_path_factory.mktemp("models")


class OperatorProcess:
    """``modelsec operator`` against the test cluster, logging to a file."""

    def __init__(
        self,
        cluster: Cluster,
        local_root: Path,
        log_dir: Path,
        *extra: str,
        env: dict[str, str] | None = None,
    ) -> None:
        self.cluster = cluster
        self.local_root = local_root
        self.log_dir = log_dir
        self.extra = extra
        self.env = env or {}
        self.metrics_port = free_port()
        self.health_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"operator-{self.starts}.log"

    def start(self, env: dict[str, str] | None = None) -> OperatorProcess:
        self.starts += 1
        environment = {
            **os.environ,
            **NO_PROXY_ENV,
            **self.env,
            **(env or {}),
            "PYTHONPATH": os.pathsep.join([str(REPO / "operator"), str(REPO / "src")]),
            "PYTHONUNBUFFERED": "1",
        }
        # `modelsec operator`, the command users run (the console script of this venv).
        command = [
            str(Path(sys.executable).with_name("modelsec")),
            "operator",
            "--kubeconfig",
            self.cluster.kubeconfig,
            "--local-root",
            str(self.local_root),
            "--metrics-port",
            str(self.metrics_port),
            "--health-port",
            str(self.health_port),
            "--bind-address",
            "127.0.0.1",
            *self.extra,
        ]
        if "--peering" not in self.extra:
            command.append("--standalone")
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=environment, cwd=REPO
            )
        self.wait_healthy()
        return self

    def wait_healthy(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                pytest.fail(f"operator exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/healthz", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.3)
        pytest.fail(f"operator not healthy in {timeout}s:\n{self.log()}")

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as r:
            return r.read().decode()

    def metric(self, name: str, **labels: str) -> float:
        selector = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        wanted = f"{name}{{{selector}}}" if labels else name
        for line in self.metrics().splitlines():
            if line.startswith(wanted + " "):
                return float(line.split()[-1])
        return 0.0

    def wait_metric(self, name: str, at_least: float, timeout: float = 10, **labels: str) -> float:
        """A metric once it reaches ``at_least`` (counters move right after the status
        write the test saw, in another process)."""
        deadline = time.monotonic() + timeout
        value = self.metric(name, **labels)
        while value < at_least and time.monotonic() < deadline:
            time.sleep(0.2)
            value = self.metric(name, **labels)
        assert value >= at_least, f"{name}{labels} = {value}, expected >= {at_least}"
        return value

    def kill(self) -> None:
        """SIGKILL: no cleanup, no goodbye; what a node loss or OOM kill does."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def log(self) -> str:
        return "\n".join(
            f"--- operator-{i}.log ---\n"
            + (self.log_dir / f"operator-{i}.log").read_text(errors="replace")[-20000:]
            for i in range(1, self.starts + 1)
            if (self.log_dir / f"operator-{i}.log").exists()
        )


@pytest.fixture
def operator_factory(
    cluster: Cluster, models_root: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., OperatorProcess]]:
    made: list[OperatorProcess] = []

    def make(*extra: str, env: dict[str, str] | None = None) -> OperatorProcess:
        log_dir = tmp_path / f"op{len(made)}"
        log_dir.mkdir()
        process = OperatorProcess(cluster, models_root, log_dir, *extra, env=env)
        made.append(process)
        return process

    yield make
    for process in made:
        process.stop()
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        for process in made:
            sys.stderr.write(process.log())


@pytest.fixture
def operator(operator_factory: Callable[..., OperatorProcess]) -> OperatorProcess:
    return operator_factory().start()


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
