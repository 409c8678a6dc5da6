"""Issue 13's admission side end to end on the local control plane: the real API server
calls the webhook's /mutate and /validate (URL configurations, TLS from a test CA), the
operator scans for real (Hub models from the test Hub server, S3 from moto, Local files),
and what is checked is what the API server stores.

- pinning (spec.enforcement.pin) for every extractor that can pin, and the places that
  cannot say why; the pinned reference is still judged (a malicious model stays denied);
- verifyAtStart: the init container is injected, its command run as the Pod's own
  ServiceAccount (a token from the TokenRequest API, the shipped verifier RBAC) passes,
  then names a tampered file; a Pod without it (no mutating configuration) or with it
  altered (an UPDATE of its image) is denied;
- the first deploy: one apply of a new small model is admitted, one of a malicious model
  denied with the verdict, and a pinning group's new model is pinned in the same apply,
  by a webhook of its own that waits (the session's webhook answers at once).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cluster_helpers import (
    API,
    BOM_NAMESPACE,
    CLEAN_PICKLE,
    EVIL_PICKLE,
    OWN_WEBHOOK_LABEL,
    REPO,
    RULES,
    VERIFIER_IMAGE,
    Cluster,
    Process,
    Space,
    free_port,
    metric,
    registration,
)

from modelsec.k8s.naming import scan_name

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(3600)]

from hf_server import HubServer  # noqa: E402

PIN_WEBHOOK = "pin.models.modelsec.io"
RUN = os.urandom(3).hex()


@pytest.fixture(scope="module")
def hub() -> Iterator[HubServer]:
    server = HubServer().start()
    try:
        yield server
    finally:
        server.stop()


def unique(request: pytest.FixtureRequest, prefix: str) -> str:
    return f"{prefix}-{hashlib.sha256((RUN + request.node.nodeid).encode()).hexdigest()[:6]}"


class HubSpace:
    """A namespace governed by a group over a Hugging Face source (the test Hub)."""

    def __init__(self, cluster: Cluster, hub: HubServer, name: str) -> None:
        self.cluster, self.hub, self.name = cluster, hub, name
        self.namespace, self.group, self.source = f"ns-{name}", f"g-{name}", f"src-{name}"
        self.org = name.replace("-", "")

    def create(self, enforcement: dict[str, Any], labels: dict[str, str] | None = None) -> None:
        self.cluster.apply(
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {
                    "name": self.namespace,
                    "labels": {"modelsec-test": self.name, **(labels or {})},
                },
            },
            {
                "apiVersion": API,
                "kind": "ModelSource",
                "metadata": {"name": self.source},
                "spec": {
                    "type": "HuggingFace",
                    "huggingFace": {"endpoint": self.hub.url, "models": [f"{self.org}/*"]},
                },
            },
            {
                "apiVersion": API,
                "kind": "SecurityGroup",
                "metadata": {"name": self.group},
                "spec": {
                    "sourceRef": self.source,
                    "rules": RULES,
                    "enforcement": enforcement,
                    "namespaceSelector": {"matchLabels": {"modelsec-test": self.name}},
                },
            },
        )
        self.cluster.wait_for(
            "securitygroups",
            self.group,
            lambda g: any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in g.get("status", {}).get("conditions", [])
            ),
            what="Ready",
            timeout=60,
        )

    def repo(self, name: str, files: dict[str, bytes]) -> tuple[str, str]:
        """(org/name, its main commit)."""
        repo_id = f"{self.org}/{name}"
        return repo_id, self.hub.add_repo(repo_id, files).refs["main"]

    def scanned(self, repo_id: str, revision: str | None = None) -> dict[str, Any]:
        """The ModelScan of hf://repo (at ``revision``: a branch), created and judged."""
        name = scan_name(f"hf://{repo_id}", revision, self.group)
        spec = {"model": f"hf://{repo_id}", "securityGroup": self.group}
        if revision:
            spec["revision"] = revision
        self.cluster.apply({"apiVersion": API, "kind": "ModelScan", "metadata": {"name": name}, "spec": spec})
        return self.cluster.wait_for(
            "modelscans",
            name,
            lambda s: s.get("status", {}).get("phase") == "Completed",
            what="a verdict",
            timeout=120,
        )

    def cleanup(self) -> None:
        self.cluster.kubectl("delete", "namespace", self.namespace, "--wait=false", "--ignore-not-found")
        scans = json.loads(self.cluster.kubectl("get", "modelscans", "-o", "json").stdout)["items"]
        mine = [
            f"modelscans/{s['metadata']['name']}" for s in scans if s["spec"]["securityGroup"] == self.group
        ]
        self.cluster.kubectl(
            "delete",
            "--wait=false",
            "--ignore-not-found",
            f"securitygroups/{self.group}",
            f"modelsources/{self.source}",
            *mine,
        )


@pytest.fixture
def hub_space(
    cluster: Cluster, operator: Process, webhook: Process, hub: HubServer, request: pytest.FixtureRequest
) -> Iterator[HubSpace]:
    made = HubSpace(cluster, hub, unique(request, "pin"))
    yield made
    made.cleanup()


TINY = {
    "config.json": b'{"model_type": "llama"}',
    "tokenizer.json": b'{"version": "1.0"}',
    "model.pkl": CLEAN_PICKLE,
}


def events(cluster: Cluster, namespace: str, reason: str) -> list[dict[str, Any]]:
    items = json.loads(cluster.kubectl("get", "events", "-n", namespace, "-o", "json").stdout)["items"]
    return [e for e in items if e.get("reason") == reason]


def wait_events(cluster: Cluster, namespace: str, reason: str, timeout: float = 30) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = events(cluster, namespace, reason)
        if found:
            return found
        time.sleep(0.3)
    pytest.fail(f"no {reason} Event in {namespace} within {timeout}s")


# --- pinning -----------------------------------------------------------------------------------


def test_pinning_rewrites_every_place_that_takes_a_revision(cluster: Cluster, hub_space: HubSpace) -> None:
    hub_space.create({"mode": "Enforce", "pin": True})
    repo, commit = hub_space.repo("chat", TINY)
    scan = hub_space.scanned(repo)
    assert scan["status"]["revision"] == commit and scan["status"]["outcome"] == "ALLOWED"
    # A Hub URL names a branch (resolve/main): its own ModelScan, which read the same commit.
    assert hub_space.scanned(repo, "main")["status"]["revision"] == commit
    url = f"https://huggingface.co/{repo}/resolve/main/model.gguf"
    containers = [
        {"name": "vllm", "image": "vllm/vllm-openai:v0.8.5", "args": [repo, "--served-model-name", "chat"]},
        {
            "name": "tgi",
            "image": "ghcr.io/huggingface/text-generation-inference:3.0",
            "env": [{"name": "MODEL_ID", "value": repo}, {"name": "PORT", "value": "80"}],
        },
        {
            "name": "llama",
            "image": "ghcr.io/ggml-org/llama.cpp:server",
            "args": ["--model-url", url, "--port", "8081"],
        },
        {
            "name": "script",
            "image": "vllm/vllm-openai:v0.8.5",
            "command": ["sh", "-c", f"exec vllm serve {repo}"],
        },
    ]
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "chat",
            "namespace": hub_space.namespace,
            "annotations": {"modelsec.io/models": f"hf://{repo}"},
        },
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "chat"}},
            "template": {"metadata": {"labels": {"app": "chat"}}, "spec": {"containers": containers}},
        },
    }
    applied = cluster.apply(deployment, check=False)
    # The shell script takes no revision and names the model unpinned: the group pins, so
    # what could not be pinned is only warned about, and the rest is pinned.
    assert applied.returncode == 0, applied.stderr
    assert "container script: vllm serve <model>: not pinned: it is inside a shell script" in applied.stderr
    stored = cluster.get("deployments", "chat", hub_space.namespace)
    assert stored is not None
    annotations = stored["metadata"]["annotations"]
    assert annotations["modelsec.io/models"] == f"hf://{repo}@{commit}"
    pod = {c["name"]: c for c in stored["spec"]["template"]["spec"]["containers"]}
    assert pod["vllm"]["args"] == [repo, "--served-model-name", "chat", f"--revision={commit}"]
    assert {"name": "REVISION", "value": commit} in pod["tgi"]["env"]
    assert pod["llama"]["args"][1] == f"https://huggingface.co/{repo}/resolve/{commit}/model.gguf"
    assert pod["script"]["command"] == containers[3]["command"] and "args" not in pod["script"]
    records = json.loads(annotations["modelsec.io/pinned"])
    assert {r["at"] for r in records} == {
        "annotation modelsec.io/models",
        "container vllm: vllm serve <model>",
        "container tgi: env MODEL_ID",
        "container llama: llama.cpp --model-url",
    }
    assert all(
        r["revision"] == commit and r["group"] == hub_space.group and r["model"] == f"hf://{repo}"
        for r in records
    )
    event = wait_events(cluster, hub_space.namespace, "ModelPinned")[0]
    assert event["involvedObject"]["kind"] == "Deployment" and event["involvedObject"]["name"] == "chat"
    assert commit in event["message"] and "4 reference(s)" in event["message"]

    # The stack moves on; a redeploy of the same manifest is pinned to what was scanned.
    hub_space.hub.push(repo, {"model.pkl": EVIL_PICKLE})
    again = cluster.apply(deployment, check=False)
    assert again.returncode == 0, again.stderr
    redeployed = cluster.get("deployments", "chat", hub_space.namespace)
    assert redeployed["spec"]["template"]["spec"]["containers"][0]["args"][-1] == f"--revision={commit}"


def test_kserve_inference_services_are_pinned(cluster: Cluster, hub_space: HubSpace) -> None:
    hub_space.create({"mode": "Enforce", "pin": True})
    repo, commit = hub_space.repo("served", TINY)
    hub_space.scanned(repo)
    cluster.apply(
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
    cluster.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s", "crd/inferenceservices.serving.kserve.io"
    )
    isvc = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "served", "namespace": hub_space.namespace},
        "spec": {
            "predictor": {
                "model": {
                    "modelFormat": {"name": "huggingface"},
                    "storageUri": f"hf://{repo}",
                    "args": [f"--model_id={repo}"],
                }
            }
        },
    }
    deadline = time.monotonic() + 60
    while True:  # the API server's webhook rules see the new resource after discovery refreshes
        assert cluster.apply(isvc, check=False).returncode == 0
        stored = cluster.get("inferenceservices", "served", hub_space.namespace)
        if (
            "modelsec.io/pinned" in (stored["metadata"].get("annotations") or {})
            or time.monotonic() > deadline
        ):
            break
        cluster.kubectl("delete", "inferenceservice", "served", "-n", hub_space.namespace)
        time.sleep(1)
    model = stored["spec"]["predictor"]["model"]
    assert model["storageUri"] == f"hf://{repo}:{commit}"
    assert model["args"] == [f"--model_id={repo}", f"--model_revision={commit}"]


def test_a_pinned_model_is_still_judged(cluster: Cluster, hub_space: HubSpace) -> None:
    hub_space.create({"mode": "Enforce", "pin": True})
    repo, commit = hub_space.repo("evil", {"config.json": b"{}", "pytorch_model.bin": EVIL_PICKLE})
    assert hub_space.scanned(repo)["status"]["outcome"] == "BLOCKED"
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "evil", "namespace": hub_space.namespace},
        "spec": {"containers": [{"name": "vllm", "image": "vllm/vllm-openai:v0.8.5", "args": [repo]}]},
    }
    denied = cluster.apply(pod, check=False)
    assert denied.returncode != 0
    assert f"hf://{repo}@{commit}" in denied.stderr and "is BLOCKED" in denied.stderr, denied.stderr
    assert "LoadTimeCodeExecution" in denied.stderr


def test_s3_object_versions_are_pinned_where_modelsec_reads_them(
    cluster: Cluster, operator: Process, webhook: Process, request: pytest.FixtureRequest
) -> None:
    """A versioned bucket: the annotation is pinned to the scanned version id; Triton's
    repository (a prefix) and vLLM's s3:// model take none, and say so."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    name = unique(request, "s3pin")
    bucket = name
    try:
        import boto3

        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )
        s3.create_bucket(Bucket=bucket)
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        version = s3.put_object(Bucket=bucket, Key="models/w.pkl", Body=CLEAN_PICKLE)["VersionId"]
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": f"{name}-creds", "namespace": "default"},
            "stringData": {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"},
        }
        namespace, group, source = f"ns-{name}", f"g-{name}", f"src-{name}"
        cluster.apply(
            secret,
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": namespace, "labels": {"modelsec-test": name}},
            },
            {
                "apiVersion": API,
                "kind": "ModelSource",
                "metadata": {"name": source},
                "spec": {
                    "type": "S3",
                    "s3": {
                        "endpoint": endpoint,
                        "bucket": bucket,
                        "credentialsSecretRef": {"name": f"{name}-creds", "namespace": "default"},
                    },
                },
            },
            {
                "apiVersion": API,
                "kind": "SecurityGroup",
                "metadata": {"name": group},
                "spec": {
                    "sourceRef": source,
                    "rules": RULES,
                    "enforcement": {"mode": "Enforce", "pin": True},
                    "namespaceSelector": {"matchLabels": {"modelsec-test": name}},
                },
            },
        )
        uri = f"s3://{bucket}/models/w.pkl"
        scan = scan_name(uri, None, group)
        cluster.apply(
            {
                "apiVersion": API,
                "kind": "ModelScan",
                "metadata": {"name": scan},
                "spec": {"model": uri, "securityGroup": group},
            }
        )
        done = cluster.wait_for(
            "modelscans",
            scan,
            lambda s: s.get("status", {}).get("phase") in ("Completed", "Failed"),
            what="a verdict",
            timeout=120,
        )
        assert done["status"]["outcome"] == "ALLOWED" and done["status"]["revision"] == version, done[
            "status"
        ]
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "s3", "namespace": namespace, "annotations": {"modelsec.io/models": uri}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        }
        result = cluster.apply(pod, check=False)
        assert result.returncode == 0, result.stderr
        stored = cluster.get("pods", "s3", namespace)
        assert stored["metadata"]["annotations"]["modelsec.io/models"] == f"{uri}@{version}"
        triton = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "triton", "namespace": namespace},
            "spec": {
                "containers": [
                    {
                        "name": "t",
                        "image": "nvcr.io/nvidia/tritonserver:24.05-py3",
                        "command": ["tritonserver", f"--model-repository={uri}"],
                    }
                ]
            },
        }
        result = cluster.apply(triton, check=False)
        assert result.returncode == 0, result.stderr
        assert "tritonserver --model-repository: not pinned: Triton reads a model repository" in result.stderr
        assert (
            cluster.get("pods", "triton", namespace)["spec"]["containers"][0]["command"]
            == triton["spec"]["containers"][0]["command"]
        )
        cluster.kubectl(
            "delete",
            "--wait=false",
            "--ignore-not-found",
            f"namespace/{namespace}",
            f"securitygroups/{group}",
            f"modelsources/{source}",
            f"modelscans/{scan}",
        )
    finally:
        server.stop()


# --- verifyAtStart -------------------------------------------------------------------------------


def sa_kubeconfig(cluster: Cluster, namespace: str, account: str, path: Path) -> Path:
    """A kubeconfig holding a token of ``account`` from the TokenRequest API."""
    token = cluster.kubectl("create", "token", account, "-n", namespace, "--duration", "10m").stdout.strip()
    admin = yaml.safe_load(Path(cluster.kubeconfig).read_text())
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": admin["clusters"],
                "users": [{"name": account, "user": {"token": token}}],
                "contexts": [
                    {"name": account, "context": {"cluster": admin["clusters"][0]["name"], "user": account}}
                ],
                "current-context": account,
            }
        )
    )
    return path


def run_verifier(container: dict[str, Any], kubeconfig: Path) -> subprocess.CompletedProcess[str]:
    """The verifier container's command, as its entrypoint (modelsec) runs it, with the
    Pod's ServiceAccount credentials: the model path is the same (a hostPath mounted at
    the path it has on this machine)."""
    assert "command" not in container
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_SERVICE")}
    env.update(
        {"KUBECONFIG": str(kubeconfig), "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
    )
    return subprocess.run(
        [str(Path(sys.executable).with_name("modelsec")), *container["args"]],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_verify_at_start_injected_run_as_the_pod_and_enforced(
    cluster: Cluster, space: Space, webhook: Process, tmp_path: Path
) -> None:
    space.create(enforcement={"mode": "Enforce", "verifyAtStart": True})
    cluster.kubectl("apply", "-f", str(REPO / "deploy" / "webhook" / "verifier-rbac.yaml"))
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "model-server", "namespace": space.namespace},
        }
    )
    uri = space.uri("clean")
    name = space.scan_of("clean")
    cluster.apply(
        {
            "apiVersion": API,
            "kind": "ModelScan",
            "metadata": {"name": name},
            "spec": {"model": uri, "securityGroup": space.group},
        }
    )
    scan = space.wait_verdict("clean")
    assert scan["status"]["outcome"] == "ALLOWED" and scan["status"]["bom"]["namespace"] == BOM_NAMESPACE
    model = space.dir / "clean"

    def serving(pod_name: str) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": pod_name, "namespace": space.namespace},
            "spec": {
                "serviceAccountName": "model-server",
                "automountServiceAccountToken": False,
                "containers": [
                    {
                        "name": "vllm",
                        "image": "vllm/vllm-openai:v0.8.5",
                        "args": [str(model)],
                        "volumeMounts": [{"name": "models", "mountPath": str(space.dir), "readOnly": True}],
                    }
                ],
                "volumes": [{"name": "models", "hostPath": {"path": str(space.dir), "type": "Directory"}}],
            },
        }

    applied = cluster.apply(serving("server"), check=False)
    assert applied.returncode == 0, applied.stderr
    stored = cluster.get("pods", "server", space.namespace)
    init = stored["spec"]["initContainers"]
    assert len(init) == 1 and init[0]["name"].startswith("modelsec-verify-")
    verifier = init[0]
    assert verifier["image"] == VERIFIER_IMAGE
    assert verifier["args"] == ["verify", str(model), "--scan", name, "--no-progress"]
    assert {"name": "models", "mountPath": str(space.dir), "readOnly": True} in verifier["volumeMounts"]
    assert verifier["securityContext"]["runAsNonRoot"] is True
    assert verifier["securityContext"]["readOnlyRootFilesystem"] is True
    assert any(v["name"] == "modelsec-verify-api" and "projected" in v for v in stored["spec"]["volumes"])

    kubeconfig = sa_kubeconfig(cluster, space.namespace, "model-server", tmp_path / "sa.kubeconfig")
    passed = run_verifier(verifier, kubeconfig)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert f"BOM in ConfigMap {BOM_NAMESPACE}/{name}" in passed.stdout

    # The volume changes after the scan: the server would never start.
    changed = next(p for p in sorted(model.rglob("*")) if p.is_file())
    changed.write_bytes(changed.read_bytes() + b"\n")
    failed = run_verifier(verifier, kubeconfig)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert any(
        line.split()[:2] == ["CHANGED", str(changed.relative_to(model))]
        for line in failed.stdout.splitlines()
    ), failed.stdout

    # An UPDATE that swaps the verifier's image (the one field of an init container a Pod
    # may change) is denied: the mutating webhook leaves Pod UPDATEs alone (their
    # containers are immutable), the validating one judges them.
    patched = cluster.kubectl(
        "patch",
        "pod",
        "server",
        "-n",
        space.namespace,
        "--type",
        "json",
        "-p",
        json.dumps([{"op": "replace", "path": "/spec/initContainers/0/image", "value": "busybox"}]),
        check=False,
    )
    assert patched.returncode != 0 and "image differ" in patched.stderr, patched.stderr

    # Without the mutating webhook, nothing adds the verifier: the Pod is denied.
    from conftest import CONFIG_NAME

    saved = cluster.get("mutatingwebhookconfigurations", CONFIG_NAME)
    assert saved is not None
    cluster.kubectl("delete", "mutatingwebhookconfiguration", CONFIG_NAME)
    try:
        deadline = time.monotonic() + 30
        while True:  # the API server drops the configuration asynchronously
            stripped = cluster.apply(serving(f"bare-{int(time.monotonic() * 10) % 10000}"), check=False)
            if stripped.returncode != 0 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert stripped.returncode != 0
        assert "must be verified at start" in stripped.stderr and "lacks its verifier" in stripped.stderr, (
            stripped.stderr
        )
    finally:
        for key in ("resourceVersion", "uid", "creationTimestamp", "generation", "managedFields"):
            saved["metadata"].pop(key, None)
        cluster.apply(saved)


# --- the first deploy ------------------------------------------------------------------------------


@pytest.fixture
def waiting_webhook(
    cluster: Cluster, webhook: Any, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[Process, str, int]]:
    """A webhook that waits for first verdicts, serving only namespaces labelled for it."""
    from modelsec_webhook import manifest

    label = unique(request, "own")
    config = f"modelsec-webhook-{label}"
    port, metrics_port = free_port(), free_port()
    process = Process(
        "modelsec_webhook",
        [
            "--kubeconfig",
            cluster.kubeconfig,
            "--tls-cert",
            str(webhook.cert_file),
            "--tls-key",
            str(webhook.key_file),
            "--port",
            str(port),
            "--metrics-port",
            str(metrics_port),
            "--bind-address",
            "127.0.0.1",
            "--verifier-image",
            VERIFIER_IMAGE,
        ],
        tmp_path / "waiting-webhook.log",
        f"http://127.0.0.1:{metrics_port}/readyz",
    ).start()
    client = manifest.client_config(
        url=f"https://127.0.0.1:{port}/validate", ca_bundle=base64.b64encode(webhook.ca_pem).decode()
    )
    cluster.apply(
        *registration(client, config, {"key": OWN_WEBHOOK_LABEL, "operator": "In", "values": [label]})
    )
    yield process, label, metrics_port
    cluster.kubectl(
        "delete", "validatingwebhookconfiguration,mutatingwebhookconfiguration", config, "--ignore-not-found"
    )
    process.stop()


def wait_called(cluster: Cluster, namespace: str, metrics_port: int) -> None:
    """Until the API server calls the webhook on ``metrics_port`` for ``namespace`` (it
    picks up configurations, and the webhook namespace labels, asynchronously)."""
    probe = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "probe", "namespace": namespace},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }
    deadline = time.monotonic() + 60
    while metric(metrics_port, "modelsec_webhook_reviews_total", decision="allowed", reason="no-models") == 0:
        assert time.monotonic() < deadline, "the API server never called the test's own webhook"
        cluster.apply(probe, extra=("--dry-run=server",))
        time.sleep(0.3)


def first_apply(cluster: Cluster, obj: dict[str, Any]) -> tuple[subprocess.CompletedProcess[str], float]:
    began = time.monotonic()
    result = cluster.apply(obj, check=False)
    return result, time.monotonic() - began


def test_first_deploy_is_answered_with_the_verdict_in_one_apply(
    cluster: Cluster, space: Space, waiting_webhook: tuple[Process, str, int]
) -> None:
    process, label, metrics_port = waiting_webhook
    space.create()
    cluster.kubectl("label", "namespace", space.namespace, f"{OWN_WEBHOOK_LABEL}={label}")
    wait_called(cluster, space.namespace, metrics_port)
    clean, took = first_apply(cluster, space.pod("clean", space.uri("clean")))
    assert clean.returncode == 0, clean.stderr + process.log()
    assert cluster.get("pods", "clean", space.namespace) is not None
    assert cluster.get("modelscans", space.scan_of("clean"))["status"]["outcome"] == "ALLOWED"
    evil, took_evil = first_apply(cluster, space.pod("evil", space.uri("evil.pkl")))
    assert evil.returncode != 0
    assert "is BLOCKED" in evil.stderr and "scan pending" not in evil.stderr, evil.stderr
    assert "LoadTimeCodeExecution" in evil.stderr
    assert took < 15 and took_evil < 15  # within the configuration's timeoutSeconds
    assert metric(metrics_port, "modelsec_webhook_first_deploy_waits_total", result="admitted") >= 1
    assert metric(metrics_port, "modelsec_webhook_first_deploy_waits_total", result="denied") >= 1
    assert metric(metrics_port, "modelsec_webhook_first_deploy_waiting") == 0


def test_first_deploy_of_a_pinned_model_is_pinned_in_the_same_apply(
    cluster: Cluster, hub_space: HubSpace, waiting_webhook: tuple[Process, str, int]
) -> None:
    process, label, metrics_port = waiting_webhook
    hub_space.create({"mode": "Enforce", "pin": True}, labels={OWN_WEBHOOK_LABEL: label})
    repo, commit = hub_space.repo("fresh", TINY)
    wait_called(cluster, hub_space.namespace, metrics_port)
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "fresh", "namespace": hub_space.namespace},
        "spec": {"containers": [{"name": "vllm", "image": "vllm/vllm-openai:v0.8.5", "args": [repo]}]},
    }
    result, took = first_apply(cluster, pod)
    assert result.returncode == 0, result.stderr + process.log()
    stored = cluster.get("pods", "fresh", hub_space.namespace)
    assert stored["spec"]["containers"][0]["args"] == [repo, f"--revision={commit}"]
    assert took < 15
