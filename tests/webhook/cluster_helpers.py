"""The real control plane for the webhook's cluster tests: kubectl, waiting, and the
webhook and operator as real subprocesses. Nothing is mocked."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("MODELSEC_CACHE_DIR", REPO / ".cache"))
NO_PROXY_ENV = {"NO_PROXY": "127.0.0.1,localhost,::1", "no_proxy": "127.0.0.1,localhost,::1"}
PYTHONPATH = os.pathsep.join([str(REPO / "webhook"), str(REPO / "operator"), str(REPO / "src")])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    def __init__(self, kubeconfig: str, audit_log: Path) -> None:
        self.kubeconfig = kubeconfig
        self.audit_log = audit_log
        self.kubectl_path = str(CACHE / "bin" / "kubectl")

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([self.kubectl_path, "--kubeconfig", self.kubeconfig, *args], input=input,
                              capture_output=True, text=True, timeout=120, env={**os.environ, **NO_PROXY_ENV})
        if check and proc.returncode != 0:
            pytest.fail(f"kubectl {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
        return proc

    def apply(self, *documents: dict[str, Any], check: bool = True, extra: tuple[str, ...] = ()
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

    def wait_for(self, resource: str, name: str, predicate: Callable[[dict[str, Any]], bool], *,
                 namespace: str | None = None, timeout: float = 90, what: str = "condition") -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = self.get(resource, name, namespace)
            if last is not None and predicate(last):
                return last
            time.sleep(0.3)
        pytest.fail(f"{resource}/{name}: {what} not reached in {timeout}s; last seen:\n{yaml.safe_dump(last)}")


class Process:
    """A modelsec component (``python -m <module> ...``) logging to a file."""

    def __init__(self, module: str, args: list[str], log_path: Path, health_url: str) -> None:
        self.module = module
        self.args = args
        self.log_path = log_path
        self.health_url = health_url
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> "Process":
        env = {**os.environ, **NO_PROXY_ENV, "PYTHONPATH": PYTHONPATH, "PYTHONUNBUFFERED": "1"}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", self.module, *self.args], stdout=log,
                                         stderr=subprocess.STDOUT, env=env, cwd=REPO)
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
