"""The real control plane for the webhook's cluster tests: kubectl, waiting, and the
webhook and operator as real subprocesses. Nothing is mocked."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelsec.k8s.naming import scan_name

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("MODELSEC_CACHE_DIR", REPO / ".cache"))
API = "modelsec.io/v1alpha1"
NO_PROXY_ENV = {"NO_PROXY": "127.0.0.1,localhost,::1", "no_proxy": "127.0.0.1,localhost,::1"}
PYTHONPATH = os.pathsep.join([str(REPO / "webhook"), str(REPO / "operator"), str(REPO / "src")])
BOM_NAMESPACE = "modelsec-boms"  # where the session's operator keeps each verdict's ML-BOM
VERIFIER_IMAGE = "registry.example/modelsec:test"  # verifyAtStart init containers (never pulled here)
# Namespaces labelled with this are left to a webhook a test runs itself (the first-deploy
# wait): the session's webhook answers at once, and every webhook must allow.
OWN_WEBHOOK_LABEL = "modelsec.io/test-own-webhook"


def registration(client: dict[str, Any], name: str, selects: dict[str, Any]) -> list[dict[str, Any]]:
    """The validating and mutating configurations of a test webhook, for the namespaces
    ``selects`` (a namespaceSelector matchExpression) admits besides the default exemptions."""
    from modelsec_webhook import manifest

    documents = [manifest.render(client, name=name), manifest.render_mutating(client, name=name)]
    for document in documents:
        document["webhooks"][0]["namespaceSelector"]["matchExpressions"].append(selects)
    return documents


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    def __init__(self, kubeconfig: str, audit_log: Path) -> None:
        self.kubeconfig = kubeconfig
        self.audit_log = audit_log
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

    def apply(
        self, *documents: dict[str, Any], check: bool = True, extra: tuple[str, ...] = ()
    ) -> subprocess.CompletedProcess[str]:
        return self.kubectl("apply", *extra, "-f", "-", input=yaml.safe_dump_all(documents), check=check)

    def get(self, resource: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        ns = ("-n", namespace) if namespace else ()
        proc = self.kubectl("get", resource, name, *ns, "-o", "json", check=False)
        if proc.returncode != 0:
            if "NotFound" in proc.stderr:
                return None
            pytest.fail(f"kubectl get {resource} {name}: {proc.stderr}")
        return json.loads(proc.stdout)

    def wait_for(
        self,
        resource: str,
        name: str,
        predicate: Callable[[dict[str, Any]], bool],
        *,
        namespace: str | None = None,
        timeout: float = 90,
        what: str = "condition",
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = self.get(resource, name, namespace)
            if last is not None and predicate(last):
                return last
            time.sleep(0.3)
        pytest.fail(
            f"{resource}/{name}: {what} not reached in {timeout}s; last seen:\n{yaml.safe_dump(last)}"
        )


class Process:
    """A modelsec component (``python -m <module> ...``) logging to a file."""

    def __init__(self, module: str, args: list[str], log_path: Path, health_url: str) -> None:
        self.module = module
        self.args = args
        self.log_path = log_path
        self.health_url = health_url
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> Process:
        env = {**os.environ, **NO_PROXY_ENV, "PYTHONPATH": PYTHONPATH, "PYTHONUNBUFFERED": "1"}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", self.module, *self.args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=REPO,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"{self.module} exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.health_url, timeout=2) as response:
                    if response.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.2)
        pytest.fail(f"{self.module} not ready in {timeout}s:\n{self.log()}")

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
        return self.log_path.read_text(errors="replace")[-20000:] if self.log_path.exists() else ""


def metric(port: int, name: str, **labels: str) -> float:
    selector = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    wanted = f"{name}{{{selector}}}" if labels else name
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(wanted + " "):
                return float(line.split()[-1])
    return 0.0


# {'weights': [1, 2, 3]}: a plain data pickle.
CLEAN_PICKLE = b"\x80\x02}q\x00X\x07\x00\x00\x00weightsq\x01]q\x02(K\x01K\x02K\x03es."
# Protocol 4: FRAME, 'os', 'system', STACK_GLOBAL, 'id', TUPLE1, REDUCE: runs `id` if loaded.
EVIL_PICKLE = b"\x80\x04\x95\x18\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x94\x8c\x06system\x94\x93\x94\x8c\x02id\x94\x85\x94R\x94."
RULES = [
    {"name": "LoadTimeCodeExecution", "mode": "Blocking"},
    {"name": "SuspiciousComponents", "mode": "Blocking"},
    {"name": "ApprovedFormats", "mode": "NonBlocking", "params": {"approvedFormats": ["safetensors"]}},
]


class Space:
    """One test's own namespace, ModelSource (a directory of models), SecurityGroup and
    label, so that tests sharing the cluster never see each other's groups."""

    def __init__(self, cluster: Cluster, root: Path, name: str) -> None:
        self.cluster = cluster
        self.name = name
        self.namespace = f"ns-{name}"
        self.dir = root / name
        self.dir.mkdir()
        (self.dir / "evil.pkl").write_bytes(EVIL_PICKLE)
        (self.dir / "evil-llm").mkdir()
        (self.dir / "evil-llm" / "pytorch_model.pkl").write_bytes(EVIL_PICKLE)
        shutil.copytree(REPO / "examples" / "clean", self.dir / "clean")

    def uri(self, relative: str) -> str:
        return f"file://{self.dir / relative}"

    def create(self, enforcement: dict[str, Any] | None = None, rules: list[dict[str, Any]] = RULES) -> None:
        spec: dict[str, Any] = {
            "sourceRef": f"src-{self.name}",
            "rules": rules,
            "namespaceSelector": {"matchLabels": {"modelsec-test": self.name}},
        }
        if enforcement:
            spec["enforcement"] = enforcement
        self.cluster.apply(
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": self.namespace, "labels": {"modelsec-test": self.name}},
            },
            {
                "apiVersion": API,
                "kind": "ModelSource",
                "metadata": {"name": f"src-{self.name}"},
                "spec": {"type": "Local", "local": {"path": str(self.dir)}},
            },
            {"apiVersion": API, "kind": "SecurityGroup", "metadata": {"name": self.group}, "spec": spec},
        )
        self.cluster.wait_for(
            "securitygroups", self.group, lambda g: ready_status(g) == "True", what="Ready", timeout=60
        )

    @property
    def group(self) -> str:
        return f"g-{self.name}"

    def scan_of(self, relative: str) -> str:
        return scan_name(self.uri(relative), None, self.group)

    def wait_verdict(self, relative: str) -> dict[str, Any]:
        return self.cluster.wait_for(
            "modelscans",
            self.scan_of(relative),
            lambda s: s.get("status", {}).get("phase") in ("Completed", "Failed"),
            what="a verdict",
            timeout=120,
        )

    def pod(self, name: str, models: str | None = None, **spec: Any) -> dict[str, Any]:
        annotations = {"modelsec.io/models": models} if models else {}
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": self.namespace, "annotations": annotations},
            "spec": {"containers": [{"name": "c", "image": "busybox"}], **spec},
        }

    def deployment(
        self, name: str, container: dict[str, Any], annotations: dict[str, str] | None = None
    ) -> dict[str, Any]:
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": self.namespace, "annotations": annotations or {}},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [container]}},
            },
        }

    def apply(self, *objects: dict[str, Any], dry_run: bool = False) -> subprocess.CompletedProcess[str]:
        return self.cluster.apply(*objects, check=False, extra=("--dry-run=server",) if dry_run else ())

    def apply_after_scan(self, obj: dict[str, Any], *models: str) -> subprocess.CompletedProcess[str]:
        """What a CI job does: apply; if the scan is pending, wait for it and apply again."""
        first = self.apply(obj)
        if "scan pending, retry shortly" not in first.stderr:
            return first
        for relative in models:
            self.wait_verdict(relative)
        time.sleep(0.5)  # the webhook's watch delivers the verdict
        return self.apply(obj)


def ready_status(obj: dict[str, Any]) -> str | None:
    return next(
        (c["status"] for c in obj.get("status", {}).get("conditions", []) if c["type"] == "Ready"), None
    )


class TcpProxy:
    """A TCP relay on loopback in front of the API server, for one client (a second
    webhook): :meth:`block` cuts every connection and refuses new ones, as a stopped API
    server does, while the API server itself keeps serving everyone else."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.blocked = False
        self.open: set[socket.socket] = set()
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.blocked:
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.open |= {client, upstream}
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            self._close(source, sink)

    def _close(self, *sockets: socket.socket) -> None:
        with self.lock:
            for sock in sockets:
                self.open.discard(sock)
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()

    def block(self) -> None:
        self.blocked = True
        with self.lock:
            current = list(self.open)
        self._close(*current)

    def unblock(self) -> None:
        self.blocked = False

    def close(self) -> None:
        self.block()
        self.listener.close()
