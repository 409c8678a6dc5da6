"""Shared pieces of the chart tests: helm, the release's names, ServiceAccount kubeconfigs,
the chart's container arguments. Fixtures are in conftest.py."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]

from cluster_helpers import CACHE, NO_PROXY_ENV, Cluster, Process  # noqa: E402

CHART = REPO / "charts" / "modelsec"
INSTANCE = "pytest-chart"
RELEASE = "modelsec"
NAMESPACE = "modelsec-system"
CREDENTIALS_NAMESPACE = "modelsec-credentials"
HELM = CACHE / "bin" / "helm"

# Metadata of what the tests read back: every request of the chart's ServiceAccounts (was
# any refused?), admission of workloads (with the webhook's audit annotations), Secret
# reads, and every deletion (the order helm uninstall deletes in).
AUDIT_POLICY = f"""\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    users: ["system:serviceaccount:{NAMESPACE}:{RELEASE}-operator", "system:serviceaccount:{NAMESPACE}:{RELEASE}-webhook"]
  - level: Metadata
    verbs: [delete, deletecollection]
  - level: Metadata
    resources:
      - {{group: "", resources: [pods, secrets]}}
      - {{group: apps, resources: [deployments, replicasets]}}
  - level: None
"""

# The values the install tests use: Secrets in one namespace for the HF and S3 sources,
# ConfigMaps readable everywhere (the tests make new namespaces), and no first-deploy wait:
# tests/webhook's scenarios, run again here, expect "scan pending" at once (the wait has
# its own tests there). Everything else default.
INSTALL_VALUES: dict[str, Any] = {
    "operator": {"secretAccess": [{"namespace": CREDENTIALS_NAMESPACE, "names": ["hub-token", "s3-keys"]}]},
    "webhook": {"configMapReads": {"clusterWide": True}, "firstDeploy": {"enabled": False}},
}


def install_tools(*names: str) -> None:
    proc = subprocess.run(
        ["bash", str(REPO / "hack" / "install-tools.sh"), *names],
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if proc.returncode != 0:
        pytest.fail(f"hack/install-tools.sh {' '.join(names)} failed:\n{proc.stderr[-4000:]}")


class Helm:
    """helm with its own config and cache directories (nothing from the user's ~)."""

    def __init__(self, binary: Path, home: Path, kubeconfig: str | None = None) -> None:
        self.binary = binary
        self.env = {
            **os.environ,
            **NO_PROXY_ENV,
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_DATA_HOME": str(home / "data"),
        }
        if kubeconfig:
            self.env["KUBECONFIG"] = kubeconfig

    def run(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(self.binary), *args], capture_output=True, text=True, env=self.env, timeout=timeout
        )
        if check and proc.returncode != 0:
            pytest.fail(f"helm {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
        return proc

    def template(
        self, *args: str, release: str = RELEASE, namespace: str = NAMESPACE, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return self.run("template", release, str(CHART), "--namespace", namespace, *args, check=check)

    def render(self, *args: str, release: str = RELEASE, namespace: str = NAMESPACE) -> list[dict[str, Any]]:
        return [
            d
            for d in yaml.safe_load_all(self.template(*args, release=release, namespace=namespace).stdout)
            if d
        ]


class Release:
    def __init__(self, helm: Helm, cluster: Cluster, values_file: Path) -> None:
        self.helm = helm
        self.cluster = cluster
        self.values_file = values_file


class Webhook(Process):
    port: int
    metrics_port: int
    ca_pem: bytes
    tls: dict[str, Path]  # the files it serves (tls.crt, tls.key), as a mounted Secret would be


def host_address() -> str:
    """A non-loopback IPv4 address of this machine: the API server refuses loopback
    addresses in EndpointSlices, and this is where it will call the local webhook."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("198.51.100.1", 9))  # TEST-NET-2; a UDP connect sends nothing
            address = str(probe.getsockname()[0])
        except OSError as exc:
            pytest.fail(f"no route to pick a non-loopback IPv4 address for the webhook endpoint: {exc}")
    if address.startswith("127."):
        pytest.fail("only a loopback address is available; the API server refuses it in EndpointSlices")
    return address


def kubeconfig_for(cluster: Cluster, service_account: str, path: Path) -> Path:
    """A kubeconfig holding a TokenRequest token of ``service_account`` (release namespace)."""
    token = cluster.kubectl(
        "create", "token", service_account, "-n", NAMESPACE, "--duration=6h"
    ).stdout.strip()
    admin = yaml.safe_load(Path(cluster.kubeconfig).read_text())
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "envtest", "cluster": admin["clusters"][0]["cluster"]}],
                "users": [{"name": service_account, "user": {"token": token}}],
                "contexts": [
                    {
                        "name": service_account,
                        "context": {"cluster": "envtest", "user": service_account, "namespace": NAMESPACE},
                    }
                ],
                "current-context": service_account,
            }
        )
    )
    path.chmod(0o600)
    return path


def container_args(cluster: Cluster, deployment: str) -> list[str]:
    """The arguments the chart gives the container (the image's entrypoint is `modelsec`)."""
    body = cluster.get("deployments", deployment, NAMESPACE)
    assert body is not None, f"the chart made no Deployment {deployment}"
    return list(body["spec"]["template"]["spec"]["containers"][0]["args"])


def override(args: list[str], **flags: str) -> list[str]:
    """Replace ``--flag=value`` arguments (underscores in names become dashes); add missing ones."""
    wanted = {f"--{k.replace('_', '-')}": v for k, v in flags.items()}
    out = [a for a in args if a.split("=", 1)[0] not in wanted]
    return out + [f"{k}={v}" for k, v in wanted.items()]


def tls_files(cluster: Cluster, directory: Path) -> dict[str, Path]:
    """The chart's webhook certificate, written out for the local webhook."""
    secret = cluster.get("secrets", f"{RELEASE}-webhook-tls", NAMESPACE)
    assert secret is not None, "the chart made no webhook TLS Secret"
    files = {}
    for key in ("tls.crt", "tls.key", "ca.crt"):
        files[key] = directory / key
        files[key].write_bytes(base64.b64decode(secret["data"][key]))
    files["tls.key"].chmod(0o600)
    return files


def kinds(documents: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [d for d in documents if d.get("kind") == kind and (name is None or d["metadata"]["name"] == name)]
