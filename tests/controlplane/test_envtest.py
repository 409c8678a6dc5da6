"""The local control plane from hack/envtest.sh: a real etcd + kube-apiserver on loopback.

Brings up its own instance (ENVTEST_NAME=pytest-cp), talks to it over real TLS with the
generated client certificate, applies a CRD and a custom resource, stores a Pod and a
Deployment, registers a validating webhook served from this process and checks that the
apiserver calls it, then tears the instance down. The first run builds the binaries
(minutes); later runs reuse .cache/bin.
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import shutil
import ssl
import subprocess
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ENVTEST = REPO / "hack" / "envtest.sh"
# MODELSEC_TEST_INSTANCE_SUFFIX keeps concurrent sessions in one checkout (several people
# running tests) from sharing, and tearing down, each other's control plane.
INSTANCE = "pytest-cp" + os.environ.get("MODELSEC_TEST_INSTANCE_SUFFIX", "")
CACHE = Path(os.environ.get("MODELSEC_CACHE_DIR", REPO / ".cache"))
STATE = CACHE / "envtest" / INSTANCE

# Generous: the first run on a fresh machine compiles kube-apiserver, kubectl and etcd.
pytestmark = [pytest.mark.cluster, pytest.mark.timeout(3600)]


def _binaries_cached() -> bool:
    out = subprocess.run(
        [str(REPO / "hack" / "install-tools.sh"), "--versions"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    versions = dict(line.split() for line in out.splitlines())
    return all(
        (CACHE / "bin" / f"{name}-{versions[name]}").is_file()
        for name in ("etcd", "kube-apiserver", "kubectl")
    )


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["ENVTEST_NAME"] = INSTANCE
    for var in ("ENVTEST_APISERVER_PORT", "ENVTEST_ETCD_PORT", "ENVTEST_ETCD_PEER_PORT"):
        env.pop(var, None)
    return env


def _envtest(*args: str, check: bool = True, timeout: float = 3000) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        ["bash", str(ENVTEST), *args],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        pytest.fail(
            f"hack/envtest.sh {' '.join(args)} exited {proc.returncode}\n"
            f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
        )
    return proc


class Cluster:
    def __init__(self, exports: dict[str, str]):
        self.kubeconfig = exports["KUBECONFIG"]
        self.url = exports["ENVTEST_APISERVER_URL"]
        self.ca_file = exports["ENVTEST_CA_FILE"]
        self.kubectl_path = str(CACHE / "bin" / "kubectl")

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [self.kubectl_path, "--kubeconfig", self.kubeconfig, *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and proc.returncode != 0:
            pytest.fail(f"kubectl {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
        return proc

    def ssl_context(self, client_cert: bool = True) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.ca_file)
        if client_cert:
            pki = STATE / "pki"
            ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
        return ctx


def _parse_exports(text: str) -> dict[str, str]:
    exports = {}
    for line in text.splitlines():
        assert line.startswith("export "), line
        key, _, value = line[len("export ") :].partition("=")
        exports[key] = value
    return exports


@pytest.fixture(scope="module")
def cluster():
    if shutil.which("go") is None and not _binaries_cached():
        pytest.skip(
            "Go is not installed and .cache/bin has no control-plane binaries: "
            "install Go >= 1.26 to build etcd/kube-apiserver/kubectl (hack/install-tools.sh)"
        )
    _envtest("down", "--purge", timeout=120)
    _envtest("up")
    try:
        env_out = _envtest("env", timeout=60).stdout
        exports = _parse_exports(env_out)
        assert "PATH" in exports and str(CACHE / "bin") in exports["PATH"]
        yield Cluster(exports)
    finally:
        pids = []
        for name in ("etcd", "kube-apiserver"):
            pidfile = STATE / f"{name}.pid"
            if pidfile.exists():
                pids.append(int(pidfile.read_text().strip()))
        _envtest("down", timeout=120)
        for pid in pids:
            assert not Path(f"/proc/{pid}").exists() or _is_zombie(pid), f"pid {pid} still running after down"
        assert _envtest("status", check=False, timeout=60).returncode != 0


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    except OSError:
        return True


def test_readyz_over_verified_tls_with_client_cert(cluster: Cluster):
    with urllib.request.urlopen(f"{cluster.url}/readyz", context=cluster.ssl_context(), timeout=10) as resp:
        assert resp.status == 200
        assert resp.read() == b"ok"
    # The same request without a client certificate is anonymous: rejected by RBAC or authn.
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(
            f"{cluster.url}/api/v1/namespaces", context=cluster.ssl_context(client_cert=False), timeout=10
        )
    assert err.value.code in (401, 403)


def test_status_up_is_idempotent_and_versions_match(cluster: Cluster):
    assert "readyz ok" in _envtest("status").stdout
    again = _envtest("up")
    assert "already up" in again.stderr
    version = json.loads(cluster.kubectl("version", "-o", "json").stdout)
    client, server = version["clientVersion"]["gitVersion"], version["serverVersion"]["gitVersion"]
    assert client == server and client.startswith("v1."), version


def test_bootstrap_namespaces_and_admin_identity(cluster: Cluster):
    names = cluster.kubectl("get", "namespaces", "-o", "jsonpath={.items[*].metadata.name}").stdout.split()
    assert {"default", "kube-system", "kube-public"} <= set(names)
    review = json.loads(cluster.kubectl("auth", "whoami", "-o", "json").stdout)
    assert "system:masters" in review["status"]["userInfo"]["groups"]
    resources = cluster.kubectl("api-resources", "-o", "name").stdout.split()
    for expected in (
        "pods",
        "deployments.apps",
        "customresourcedefinitions.apiextensions.k8s.io",
        "validatingwebhookconfigurations.admissionregistration.k8s.io",
    ):
        assert expected in resources


CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.cptest.modelsec.io
spec:
  group: cptest.modelsec.io
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size: {type: integer, minimum: 1}
"""


def test_crd_and_custom_resource(cluster: Cluster):
    cluster.kubectl("apply", "-f", "-", input=CRD)
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/widgets.cptest.modelsec.io")
    widget = "apiVersion: cptest.modelsec.io/v1\nkind: Widget\nmetadata: {name: w1, namespace: default}\nspec: {size: 3}\n"
    cluster.kubectl("apply", "-f", "-", input=widget)
    got = json.loads(cluster.kubectl("get", "widget", "w1", "-n", "default", "-o", "json").stdout)
    assert got["spec"] == {"size": 3}
    # The structural schema is enforced by the real apiserver.
    bad = cluster.kubectl(
        "apply", "-f", "-", input=widget.replace("w1", "w2").replace("size: 3", "size: 0"), check=False
    )
    assert bad.returncode != 0 and "spec.size" in bad.stderr


def test_pod_and_deployment_are_stored_and_stay_pending(cluster: Cluster):
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p1", "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "example.invalid/model-server:1"}]},
    }
    deploy = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d1", "namespace": "default"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "d1"}},
            "template": {
                "metadata": {"labels": {"app": "d1"}},
                "spec": {"containers": [{"name": "c", "image": "example.invalid/model-server:1"}]},
            },
        },
    }
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all([pod, deploy]))
    phase = cluster.kubectl("get", "pod", "p1", "-o", "jsonpath={.status.phase}").stdout
    assert phase == "Pending"  # no scheduler or kubelet
    assert cluster.kubectl("get", "deployment", "d1", "-o", "name").stdout.strip() == "deployment.apps/d1"


def test_validating_webhook_with_url_client_config_is_called(cluster: Cluster, tmp_path: Path):
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    server_cert = ca.issue_cert("127.0.0.1", "localhost")
    calls: list[dict] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server API)
            review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            calls.append(review)
            obj = review["request"]["object"]
            allowed = obj.get("metadata", {}).get("labels", {}).get("deny") != "true"
            body = json.dumps(
                {
                    "apiVersion": "admission.k8s.io/v1",
                    "kind": "AdmissionReview",
                    "response": {
                        "uid": review["request"]["uid"],
                        "allowed": allowed,
                        "status": {"code": 403, "message": "denied by the cptest webhook"},
                    },
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_cert.configure_cert(ctx)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        cluster.kubectl("create", "namespace", "cptest-webhook")
        vwc = {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": "cptest"},
            "webhooks": [
                {
                    "name": "cptest.modelsec.io",
                    "clientConfig": {
                        "url": f"https://127.0.0.1:{server.server_address[1]}/validate",
                        "caBundle": base64.b64encode(ca.cert_pem.bytes()).decode(),
                    },
                    "rules": [
                        {
                            "apiGroups": [""],
                            "apiVersions": ["v1"],
                            "operations": ["CREATE"],
                            "resources": ["configmaps"],
                        }
                    ],
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "cptest-webhook"}},
                    "failurePolicy": "Fail",
                    "sideEffects": "None",
                    "admissionReviewVersions": ["v1"],
                    "timeoutSeconds": 5,
                }
            ],
        }
        cluster.kubectl("apply", "-f", "-", input=json.dumps(vwc))
        # A labelled object is denied with the webhook's message, an unlabelled one allowed.
        # Webhook configurations take effect asynchronously: retry briefly until the first denial.
        cm = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "bad", "namespace": "cptest-webhook", "labels": {"deny": "true"}},
        }
        for _ in range(40):
            res = cluster.kubectl("apply", "-f", "-", input=json.dumps(cm), check=False)
            if res.returncode != 0:
                break
            cluster.kubectl("delete", "configmap", "bad", "-n", "cptest-webhook", "--ignore-not-found")
            threading.Event().wait(0.25)
        assert res.returncode != 0, "the webhook never denied the labelled ConfigMap"
        assert "denied by the cptest webhook" in res.stderr
        cm["metadata"] = {"name": "good", "namespace": "cptest-webhook"}
        cluster.kubectl("apply", "-f", "-", input=json.dumps(cm))
        assert any(c["request"]["name"] == "good" for c in calls)
    finally:
        cluster.kubectl(
            "delete", "validatingwebhookconfiguration", "cptest", "--ignore-not-found", check=False
        )
        server.shutdown()
        server.server_close()
