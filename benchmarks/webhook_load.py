"""Load on the admission webhook: one webhook process, one core, AdmissionReviews over TLS.

    .venv/bin/python benchmarks/webhook_load.py                    # 1,500 reviews/s for 30 s
    .venv/bin/python benchmarks/webhook_load.py --rate 2500 --duration 60
    .venv/bin/python benchmarks/webhook_load.py --max               # closed loop: top speed

What runs (nothing is simulated):
- a real kube-apiserver + etcd (hack/envtest.sh, instance ``bench-webhook``) holding the
  modelsec CRDs, two ModelSources (Hugging Face, S3), two SecurityGroups and one
  ModelScan per model of the pool with a verdict (one in ten BLOCKED); the operator is
  not needed, so verdicts and group statuses are written directly;
- ``python -m modelsec_webhook`` with a bootstrapped certificate, pinned to one CPU
  (``--webhook-cpu``), keeping its view by list+watch like in production;
- this process, pinned to another CPU, sending pre-built AdmissionReviews over
  ``--connections`` keep-alive TLS connections (the API server also keeps a pool). The
  mix: ``--no-model-share`` of pods carry no model reference (ordinary application
  pods); the others name 1 to 5 models through the annotation, vLLM arguments, TGI
  environment, llama.cpp flags and a KServe storage initializer, drawn from the pool.

Open loop (default): requests are *scheduled* at ``--rate`` per second whether or not
earlier ones finished, and latency is measured from the scheduled time, so a server that
falls behind shows up as latency (no coordinated omission, as wrk2 measures). The client
uses blocking TLS sockets in one thread per connection, which costs far less CPU per
request than the server it measures. Server-side time comes from the webhook's
``Server-Timing`` header (body read to response built). CPU seconds of the webhook
process are read from /proc, so "reviews per CPU-second" is reported too: on a machine
shared with other work it is the figure that does not depend on the neighbours.

``--big-args N`` then sends N distinct pods whose vLLM container carries 1 MiB of
arguments each (what a hostile or careless client can send, server dry-run suffices) and
reports the webhook's resident memory before and after: the caches must stay within
their byte budgets, whatever the requests weigh.

Results: printed, and written as JSON to benchmarks/out/webhook_load.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO / "webhook")]

from modelsec.k8s.naming import scan_name  # noqa: E402

INSTANCE = "bench-webhook"
NAMESPACE = "bench"
CACHE = Path(os.environ.get("MODELSEC_CACHE_DIR", REPO / ".cache"))
OUT = REPO / "benchmarks" / "out"
API = "modelsec.io/v1alpha1"
NO_PROXY = {"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}


def log(message: str) -> None:
    print(f"[webhook-load] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- the cluster ------------------------------------------------------------------------


def envtest(*args: str) -> str:
    env = {**os.environ, "ENVTEST_NAME": INSTANCE}
    proc = subprocess.run(
        ["bash", str(REPO / "hack" / "envtest.sh"), *args], env=env, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise SystemExit(f"hack/envtest.sh {' '.join(args)} failed:\n{proc.stderr}")
    return proc.stdout


def kubeconfig() -> str:
    for line in envtest("env").splitlines():
        if line.startswith("export KUBECONFIG="):
            return line.split("=", 1)[1].strip("'\"")
    raise SystemExit("no KUBECONFIG from hack/envtest.sh env")


def kubectl(config: str, *args: str, stdin: str | None = None) -> None:
    subprocess.run(
        [str(CACHE / "bin" / "kubectl"), "--kubeconfig", config, *args],
        input=stdin,
        text=True,
        check=True,
        capture_output=True,
        env={**os.environ, **NO_PROXY},
    )


def hf_models(n: int) -> list[tuple[str, str]]:
    return [(f"hf://bench-org/model-{i:04d}", f"{random.Random(i).getrandbits(160):040x}") for i in range(n)]


def populate(config: str, models: list[tuple[str, str]]) -> None:
    """Sources, groups and one verdict per model, written straight to the API server."""
    from kubernetes import client
    from kubernetes import config as kconfig

    kubectl(config, "apply", "-f", str(REPO / "crds"))
    kubectl(
        config,
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/modelscans.modelsec.io",
        "crd/securitygroups.modelsec.io",
        "crd/modelsources.modelsec.io",
    )
    kubectl(
        config,
        "apply",
        "-f",
        "-",
        stdin=json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": NAMESPACE, "labels": {"team": "bench"}},
            }
        ),
    )
    api = client.CustomObjectsApi(kconfig.new_client_from_config(config))

    def upsert(plural: str, body: dict[str, Any], status: dict[str, Any] | None) -> None:
        name = body["metadata"]["name"]
        try:
            api.create_cluster_custom_object("modelsec.io", "v1alpha1", plural, body)
        except client.ApiException as exc:
            if exc.status != 409:
                raise
        if status is not None:
            api.patch_cluster_custom_object_status(
                "modelsec.io", "v1alpha1", plural, name, {"status": status}
            )

    ready = {
        "type": "Ready",
        "status": "True",
        "reason": "Ready",
        "message": "bench",
        "lastTransitionTime": "2026-01-01T00:00:00Z",
    }
    upsert(
        "modelsources",
        {
            "apiVersion": API,
            "kind": "ModelSource",
            "metadata": {"name": "hub"},
            "spec": {"type": "HuggingFace"},
        },
        None,
    )
    upsert(
        "modelsources",
        {
            "apiVersion": API,
            "kind": "ModelSource",
            "metadata": {"name": "store"},
            "spec": {"type": "S3", "s3": {"bucket": "models"}},
        },
        None,
    )
    for group, source, rules in (
        (
            "bench-hub",
            "hub",
            [
                {"name": "LoadTimeCodeExecution"},
                {"name": "RevisionPinned", "mode": "NonBlocking"},
                {"name": "ApprovedFormats", "mode": "NonBlocking"},
            ],
        ),
        ("bench-store", "store", [{"name": "LoadTimeCodeExecution"}]),
    ):
        upsert(
            "securitygroups",
            {
                "apiVersion": API,
                "kind": "SecurityGroup",
                "metadata": {"name": group},
                "spec": {
                    "sourceRef": source,
                    "namespaceSelector": {"matchLabels": {"team": "bench"}},
                    "rules": rules,
                },
            },
            {"observedGeneration": 1, "digest": f"digest-{group}", "conditions": [ready]},
        )

    def verdict(i: int, model: str, revision: str, group: str) -> None:
        blocked = i % 10 == 0
        upsert(
            "modelscans",
            {
                "apiVersion": API,
                "kind": "ModelScan",
                "metadata": {"name": scan_name(model, revision, group)},
                "spec": {"model": model, "revision": revision, "securityGroup": group},
            },
            {
                "phase": "Completed",
                "outcome": "BLOCKED" if blocked else "ALLOWED",
                "groupDigest": f"digest-{group}",
                "reason": "bench",
                "findingsTotal": 1 if blocked else 0,
                "rules": [
                    {
                        "name": "LoadTimeCodeExecution",
                        "mode": "Blocking",
                        "result": "FAILED" if blocked else "PASSED",
                        "violations": int(blocked),
                        "message": "bench",
                    },
                    {
                        "name": "ApprovedFormats",
                        "mode": "NonBlocking",
                        "result": "FAILED",
                        "violations": 1,
                        "message": "pickle is not an approved format",
                    },
                ],
                "findings": [
                    {
                        "rule": "LoadTimeCodeExecution",
                        "threat": "MS-PKL-100",
                        "severity": "CRITICAL",
                        "file": "pytorch_model.bin!archive/data.pkl",
                        "message": "os.system called at load time",
                    }
                ]
                if blocked
                else [],
            },
        )

    from concurrent.futures import ThreadPoolExecutor

    jobs = [(i, m, r, "bench-hub") for i, (m, r) in enumerate(models)]
    jobs += [(i, f"s3://models/repo-{i:03d}", None, "bench-store") for i in range(50)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda job: verdict(*job), jobs))


# --- the workload mix ---------------------------------------------------------------------


def app_container(i: int) -> dict[str, Any]:
    return {
        "name": f"app-{i}",
        "image": f"registry.example.com/team/service-{i}:1.{i}.0",
        "args": ["--port", "8080", "--log-level", "info"],
        "env": [{"name": f"SETTING_{k}", "value": f"value-{k}"} for k in range(6)],
        "ports": [{"containerPort": 8080, "name": "http"}],
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
        "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}},
    }


def model_pod(rng: random.Random, models: list[tuple[str, str]]) -> dict[str, Any]:
    """A pod naming 1-5 models, through as many conventions as it has models."""
    chosen = rng.sample(models, rng.randint(1, 5))
    annotations: dict[str, str] = {}
    containers = [app_container(0)]
    init: list[dict[str, Any]] = []
    for n, (model, revision) in enumerate(chosen):
        repo = model.removeprefix("hf://")
        if n == 0:
            annotations["modelsec.io/models"] = f"{model}@{revision}"
        elif n == 1:
            containers.append(
                {
                    "name": "vllm",
                    "image": "vllm/vllm-openai:v0.8.5",
                    "args": [repo, "--revision", revision, "--max-model-len", "8192"],
                }
            )
        elif n == 2:
            containers.append(
                {
                    "name": "tgi",
                    "image": "ghcr.io/huggingface/text-generation-inference:3.0",
                    "env": [{"name": "MODEL_ID", "value": repo}, {"name": "REVISION", "value": revision}],
                }
            )
        elif n == 3:
            containers.append(
                {
                    "name": "llama",
                    "image": "ghcr.io/ggml-org/llama.cpp:server",
                    "command": ["sh", "-c", f"exec /app/llama-server -hf {repo}:Q4_K_M --port 8081"],
                }
            )
        else:
            init.append(
                {
                    "name": "storage-initializer",
                    "image": "kserve/storage-initializer:v0.14.0",
                    "args": [f"{model}:{revision}", "/mnt/models"],
                }
            )
    spec: dict[str, Any] = {"containers": containers, "volumes": [{"name": "data", "emptyDir": {}}]}
    if init:
        spec["initContainers"] = init
    return {"annotations": annotations, "spec": spec}


def big_args_pod(i: int, models: list[tuple[str, str]]) -> dict[str, Any]:
    """A pod naming one model, with 1 MiB of arguments unique to it."""
    model, revision = models[i % len(models)]
    template = f"{i:08d}" + "x" * (1 << 20)
    return {
        "annotations": {},
        "spec": {
            "containers": [
                {
                    "name": "vllm",
                    "image": "vllm/vllm-openai:v0.8.5",
                    "args": [
                        model.removeprefix("hf://"),
                        "--revision",
                        revision,
                        "--chat-template",
                        template,
                    ],
                }
            ]
        },
    }


def rss_mib(pid: int) -> dict[str, float]:
    """Resident memory now and at its peak (VmRSS, VmHWM), MiB."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
    )
    return {key: round(int(fields[key].split()[0]) / 1024, 1) for key in ("VmRSS", "VmHWM")}


def memory_probe(port: int, ca: Path, pid: int, count: int, models: list[tuple[str, str]]) -> dict[str, Any]:
    before = rss_mib(pid)
    connection = Connection(port, ssl.create_default_context(cafile=str(ca)))
    started = time.perf_counter()
    denied = 0
    for i in range(count):
        _server, allowed = connection.send(http_request(review(10**6 + i, big_args_pod(i, models))))
        denied += not allowed
    elapsed = time.perf_counter() - started
    connection.close()
    after = rss_mib(pid)
    return {
        "pods": count,
        "argument_bytes_each": 1 << 20,
        "denied": denied,
        "seconds": round(elapsed, 1),
        "rss_before_mib": before["VmRSS"],
        "rss_after_mib": after["VmRSS"],
        "rss_growth_mib": round(after["VmRSS"] - before["VmRSS"], 1),
        "peak_rss_mib": after["VmHWM"],
    }


def plain_pod() -> dict[str, Any]:
    return {
        "annotations": {"prometheus.io/scrape": "true"},
        "spec": {
            "containers": [app_container(0), app_container(1)],
            "volumes": [{"name": "data", "emptyDir": {}}],
        },
    }


def review(i: int, pod: dict[str, Any]) -> bytes:
    obj = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"pod-{i}",
            "namespace": NAMESPACE,
            "uid": f"00000000-0000-0000-0000-{i:012d}",
            "labels": {"app": f"app-{i % 50}"},
            "annotations": pod["annotations"],
        },
        "spec": pod["spec"],
    }
    document = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": f"req-{i}",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "namespace": NAMESPACE,
            "name": f"pod-{i}",
            "operation": "CREATE",
            "userInfo": {
                "username": "system:serviceaccount:kube-system:replicaset-controller",
                "groups": ["system:serviceaccounts", "system:authenticated"],
            },
            "object": obj,
            "oldObject": None,
            "dryRun": False,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        },
    }
    return json.dumps(document).encode()


# --- the client -------------------------------------------------------------------------------


@dataclass
class Sample:
    models: bool
    latency: float  # seconds, from the scheduled send time
    server: float  # seconds, Server-Timing
    allowed: bool


@dataclass
class Run:
    samples: list[Sample] = field(default_factory=list)
    errors: int = 0
    elapsed: float = 0.0
    client_cpu: float = 0.0


class Connection:
    """One keep-alive TLS connection with blocking I/O: the C ssl module does the work, so
    the load generator costs far less per request than the server it measures."""

    def __init__(self, port: int, context: ssl.SSLContext) -> None:
        self.port = port
        self.context = context
        self.open()

    def open(self) -> None:
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=30)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = self.context.wrap_socket(raw, server_hostname="127.0.0.1")
        self.buffer = b""

    def _read_until(self, marker: bytes) -> bytes:
        while marker not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed the connection")
            self.buffer += chunk
        head, _, self.buffer = self.buffer.partition(marker)
        return head

    def _read_exactly(self, n: int) -> bytes:
        while len(self.buffer) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed the connection")
            self.buffer += chunk
        body, self.buffer = self.buffer[:n], self.buffer[n:]
        return body

    def send(self, request: bytes) -> tuple[float, bool]:
        self.sock.sendall(request)
        head = self._read_until(b"\r\n\r\n")
        length, server = 0, 0.0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"server-timing":
                server = float(value.split(b"dur=", 1)[1]) / 1000
        body = self._read_exactly(length)
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(head.split(b"\r\n", 1)[0].decode())
        return server, b'"allowed":true' in body

    def close(self) -> None:
        self.sock.close()


def http_request(body: bytes) -> bytes:
    return (
        b"POST /validate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )


def load(
    port: int,
    ca: Path,
    bodies: list[tuple[bool, bytes]],
    *,
    rate: float | None,
    duration: float,
    warmup: float,
    connections: int,
) -> Run:
    """Open loop (``rate``): request i is due at start + i/rate; each connection takes the
    next due request when it is free, so a slow server makes requests wait, and that wait
    is part of their latency (as wrk2 measures). Closed loop (``rate`` None): each
    connection sends its next request as soon as the previous answer arrives."""
    import threading

    context = ssl.create_default_context(cafile=str(ca))
    pool = [Connection(port, context) for _ in range(connections)]
    requests = [(models, http_request(b)) for models, b in bodies]
    run = Run()
    lock = threading.Lock()
    counter = iter(range(10**12))
    start = time.perf_counter() + 0.1
    measure_from, end = start + warmup, start + warmup + duration
    interval = 1.0 / rate if rate else 0.0

    def worker(connection: Connection) -> None:
        samples: list[Sample] = []
        errors = 0
        while True:
            with lock:
                i = next(counter)
            due = start + i * interval if rate else time.perf_counter()
            if due >= end:
                break
            wait = due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            models, request = requests[i % len(requests)]
            try:
                server, allowed = connection.send(request)
            except (OSError, RuntimeError, ValueError):
                errors += 1
                connection.close()
                connection.open()
                continue
            if due >= measure_from:
                samples.append(Sample(models, time.perf_counter() - due, server, allowed))
        with lock:
            run.samples.extend(samples)
            run.errors += errors

    cpu_before = time.process_time()
    threads = [threading.Thread(target=worker, args=(c,)) for c in pool]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    run.client_cpu = (time.process_time() - cpu_before) * duration / (duration + warmup)
    run.elapsed = duration
    for c in pool:
        c.close()
    return run


# --- reporting --------------------------------------------------------------------------------


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return {
        "p50_ms": round(at(0.50), 3),
        "p99_ms": round(at(0.99), 3),
        "p99.9_ms": round(at(0.999), 3),
        "max_ms": round(ordered[-1] * 1000, 3),
        "n": len(ordered),
    }


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def report(run: Run, cpu: float, args: argparse.Namespace) -> dict[str, Any]:
    with_models = [s for s in run.samples if s.models]
    without = [s for s in run.samples if not s.models]
    result = {
        "mode": "open loop" if args.rate else "closed loop (max)",
        "offered_rate": args.rate,
        "achieved_rate": round(len(run.samples) / run.elapsed, 1),
        "duration_s": run.elapsed,
        "connections": args.connections,
        "reviews": len(run.samples),
        "denied": sum(1 for s in run.samples if not s.allowed),
        "errors": run.errors,
        "webhook_cpu_per_s": round(cpu / run.elapsed, 3),
        "webhook_cpu_us_per_review": round(cpu / max(1, len(run.samples)) * 1e6, 1),
        "client_cpu_per_s": round(run.client_cpu / run.elapsed, 3),
        "client_latency": {
            "all": percentiles([s.latency for s in run.samples]),
            "with_models": percentiles([s.latency for s in with_models]),
            "without_models": percentiles([s.latency for s in without]),
        },
        "server_side": {
            "with_models": percentiles([s.server for s in with_models]),
            "without_models": percentiles([s.server for s in without]),
        },
        "load_average": os.getloadavg(),
        "cpus": os.cpu_count(),
    }
    return result


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=1500, help="offered reviews/s (default: %(default)s)")
    parser.add_argument("--max", action="store_true", help="closed loop: as fast as the webhook answers")
    parser.add_argument("--duration", type=float, default=30, help="measured seconds (default: %(default)s)")
    parser.add_argument(
        "--warmup", type=float, default=5, help="unmeasured seconds first (default: %(default)s)"
    )
    parser.add_argument(
        "--connections", type=int, default=16, help="keep-alive TLS connections (default: %(default)s)"
    )
    parser.add_argument("--models", type=int, default=200, help="models in the pool (default: %(default)s)")
    parser.add_argument(
        "--pods", type=int, default=2000, help="distinct pods cycled through (default: %(default)s)"
    )
    parser.add_argument(
        "--no-model-share",
        type=float,
        default=0.5,
        help="share of pods without model references (default: %(default)s)",
    )
    parser.add_argument("--webhook-cpu", type=int, default=0, help="CPU the webhook is pinned to")
    parser.add_argument("--client-cpu", type=int, default=1, help="CPU this load generator is pinned to")
    parser.add_argument("--keep", action="store_true", help="leave the control plane running")
    parser.add_argument(
        "--big-args",
        type=int,
        default=0,
        metavar="N",
        help="then send N pods with 1 MiB of arguments each and report the webhook's memory",
    )
    args = parser.parse_args()
    if args.max:
        args.rate = None

    rng = random.Random(7)
    models = hf_models(args.models)
    log("control plane (hack/envtest.sh up; the first run on a machine builds it)")
    envtest("up")
    config = kubeconfig()
    log(f"populating {len(models) + 50} ModelScans, 2 groups, 2 sources")
    populate(config, models)

    port, metrics_port = free_port(), free_port()
    tls_dir = CACHE / "bench" / "webhook-tls"
    log_path = CACHE / "bench" / "webhook.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        **NO_PROXY,
        "PYTHONPATH": os.pathsep.join([str(REPO / "webhook"), str(REPO / "src")]),
    }
    with open(log_path, "wb") as out:
        webhook = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "modelsec_webhook",
                "--kubeconfig",
                config,
                "--bootstrap-tls",
                "--tls-dir",
                str(tls_dir),
                "--port",
                str(port),
                "--metrics-port",
                str(metrics_port),
                "--bind-address",
                "127.0.0.1",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        cpus = os.sched_getaffinity(0)
        if args.webhook_cpu in cpus:
            os.sched_setaffinity(webhook.pid, {args.webhook_cpu})
        if args.client_cpu in cpus and args.client_cpu != args.webhook_cpu:
            os.sched_setaffinity(0, {args.client_cpu})
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/readyz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if webhook.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"webhook not ready; log {log_path}:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.2)

        bodies = []
        for i in range(args.pods):
            with_models = rng.random() >= args.no_model_share
            bodies.append((with_models, review(i, model_pod(rng, models) if with_models else plain_pod())))
        sizes = sorted(len(b) for _, b in bodies)
        log(
            f"{args.pods} distinct pods ({sum(1 for m, _ in bodies if m)} with models), review bodies "
            f"{sizes[0]}-{sizes[-1]} bytes; webhook on CPU {args.webhook_cpu}, client on CPU {args.client_cpu}"
        )
        what = f"{args.rate:.0f} reviews/s offered" if args.rate else "closed loop"
        log(
            f"load: {what}, {args.connections} connections, {args.warmup:.0f}s warm-up + {args.duration:.0f}s"
        )
        cpu_before = cpu_seconds(webhook.pid)
        run = load(
            port,
            tls_dir / "ca.crt",
            bodies,
            rate=args.rate,
            duration=args.duration,
            warmup=args.warmup,
            connections=args.connections,
        )
        cpu = cpu_seconds(webhook.pid) - cpu_before
        # The warm-up's CPU is in `cpu` too; scale to the measured share of the run.
        cpu *= args.duration / (args.duration + args.warmup)
        result = report(run, cpu, args)
        if args.big_args:
            log(f"memory: {args.big_args} pods with 1 MiB of arguments each")
            result["memory"] = memory_probe(port, tls_dir / "ca.crt", webhook.pid, args.big_args, models)
    finally:
        webhook.send_signal(signal.SIGTERM)
        try:
            webhook.wait(timeout=20)
        except subprocess.TimeoutExpired:
            webhook.kill()
        if not args.keep:
            envtest("down")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "webhook_load.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
