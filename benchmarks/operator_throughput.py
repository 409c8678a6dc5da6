"""How many ModelScans the operator gets through, in ``inProcess`` and ``job`` scan mode.

    .venv/bin/python benchmarks/operator_throughput.py --mode inProcess --count 1000
    .venv/bin/python benchmarks/operator_throughput.py --mode job --count 1000
    .venv/bin/python benchmarks/operator_throughput.py --mode inProcess --count 100 --large

A control plane of its own (hack/envtest.sh, instance ``bench-operator``, with
kube-controller-manager and kube-scheduler, and an API audit log), the operator as a real
subprocess authenticated as a ServiceAccount of its own (so the audit log tells its
requests from everyone else's), and in job mode the node double from
tests/operator/node_double.py running the scan Pods as local processes. All ModelScans
are created at once (so the operator holds them all pending); the figures:

- scans per minute, from the first creation to the last verdict;
- creation to verdict, p50 and p99 (client clock at creation to ``status.completedAt``,
  which has one-second resolution);
- operator CPU seconds (user + system, from /proc) and peak RSS (VmHWM), for the operator
  process only: in job mode the scans' own CPU is in the worker processes, not here;
- API requests per scan made by the operator (audit log, by user): writes (create,
  update, patch, delete) and reads (get, list; watches counted once each).

Small models: distinct clean pickles of ~100 bytes. ``--large``: 1 GiB each, hard links to
one random-content PyTorch state dict from benchmarks/make_large_models.py (distinct
references, so no report is shared or cached; the page cache keeps the bytes hot, so
this measures parsing and hashing, not the disk).

Results go to benchmarks/out/operator_throughput-<mode>-<count>[-large].json.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "operator"), str(REPO / "src"), str(REPO / "tests" / "operator")]

from modelsec.k8s import LABEL_GROUP, LABEL_SCAN_KEY  # noqa: E402
from modelsec.k8s.naming import scan_key, scan_name  # noqa: E402
from modelsec.k8s.resultpolicy import manifests as result_policy  # noqa: E402

CACHE = REPO / ".cache"
OUT = REPO / "benchmarks" / "out"
INSTANCE = "bench-operator"
NAMESPACE = "modelsec-bench"
OPERATOR_SA = "modelsec-operator"
WORKER_SA = "modelsec-scan-worker"
API = "modelsec.io/v1alpha1"
NO_PROXY = {"NO_PROXY": "127.0.0.1,localhost,::1", "no_proxy": "127.0.0.1,localhost,::1"}
AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived, ResponseStarted]
rules:
  - level: Metadata
    userGroups: ["system:serviceaccounts:modelsec-bench"]
  - level: None
"""
WRITES = {"create", "update", "patch", "delete", "deletecollection"}


def envtest(*args: str, extra: dict[str, str] | None = None) -> str:
    env = {**os.environ, "ENVTEST_NAME": INSTANCE, "ENVTEST_CONTROLLERS": "1", **(extra or {})}
    proc = subprocess.run(
        ["bash", str(REPO / "hack" / "envtest.sh"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if proc.returncode != 0:
        raise SystemExit(f"hack/envtest.sh {' '.join(args)}: {proc.stderr[-3000:]}")
    return proc.stdout


class Kubectl:
    def __init__(self, kubeconfig: str) -> None:
        self.kubeconfig = kubeconfig

    def __call__(self, *args: str, input: str | None = None) -> str:
        proc = subprocess.run(
            [str(CACHE / "bin" / "kubectl"), "--kubeconfig", self.kubeconfig, *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=600,
            env={**os.environ, **NO_PROXY},
        )
        if proc.returncode != 0:
            raise SystemExit(f"kubectl {' '.join(args[:3])}: {proc.stderr[-2000:]}")
        return proc.stdout

    def apply(self, *documents: dict[str, Any]) -> None:
        self("apply", "-f", "-", input=yaml.safe_dump_all(documents))


def control_plane(work: Path) -> Kubectl:
    audit = work / "audit"
    audit.mkdir(parents=True, exist_ok=True)
    (audit / "policy.yaml").write_text(AUDIT_POLICY)
    envtest("down")  # a fresh instance: a clean audit log and no objects from earlier runs
    for old in audit.glob("audit*.log"):
        old.unlink()
    envtest(
        "up",
        extra={
            "ENVTEST_APISERVER_ARGS": f"--audit-policy-file={audit / 'policy.yaml'} "
            f"--audit-log-path={audit / 'audit.log'} --audit-log-maxbackup=1 "
            "--audit-log-maxsize=2000"
        },
    )
    exports = dict(line.removeprefix("export ").split("=", 1) for line in envtest("env").splitlines())
    kubectl = Kubectl(exports["KUBECONFIG"].strip("'\""))
    kubectl("apply", "-f", str(REPO / "crds"))
    kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/modelscans.modelsec.io")

    def rbac(kind: str, name: str, **body: Any) -> dict[str, Any]:
        return {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": kind,
            "metadata": {"name": name, **({"namespace": NAMESPACE} if kind.startswith("Role") else {})},
            **body,
        }

    kubectl.apply(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        *(
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": n, "namespace": NAMESPACE}}
            for n in (OPERATOR_SA, WORKER_SA)
        ),
        rbac(
            "ClusterRoleBinding",
            "bench-operator",
            roleRef={"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
            subjects=[{"kind": "ServiceAccount", "name": OPERATOR_SA, "namespace": NAMESPACE}],
        ),
        rbac(
            "ClusterRole",
            "bench-worker",
            rules=[
                {
                    "apiGroups": ["modelsec.io"],
                    "verbs": ["get"],
                    "resources": ["modelscans", "securitygroups", "modelsources"],
                }
            ],
        ),
        rbac(
            "ClusterRoleBinding",
            "bench-worker",
            roleRef={"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "bench-worker"},
            subjects=[{"kind": "ServiceAccount", "name": WORKER_SA, "namespace": NAMESPACE}],
        ),
        rbac(
            "Role",
            "bench-worker",
            rules=[{"apiGroups": ["modelsec.io"], "resources": ["scanresults"], "verbs": ["create"]}],
        ),
        rbac(
            "RoleBinding",
            "bench-worker",
            roleRef={"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "bench-worker"},
            subjects=[{"kind": "ServiceAccount", "name": WORKER_SA, "namespace": NAMESPACE}],
        ),
        *result_policy(WORKER_SA),
    )
    return kubectl


def operator_kubeconfig(kubectl: Kubectl, path: Path) -> Path:
    token = kubectl("create", "token", OPERATOR_SA, "-n", NAMESPACE, "--duration=12h").strip()
    admin = yaml.safe_load(Path(kubectl.kubeconfig).read_text())
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": admin["clusters"][0]["cluster"]}],
                "users": [{"name": "op", "user": {"token": token}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "op"}}],
                "current-context": "c",
            }
        )
    )
    return path


def make_models(directory: Path, count: int, large: bool) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    if large:
        source = CACHE / "bench" / "data" / "state_dict_1g.pt"
        if not source.exists():
            subprocess.run([sys.executable, str(REPO / "benchmarks" / "make_large_models.py")], check=True)
    for i in range(count):
        path = directory / (f"model-{i:05d}.pt" if large else f"model-{i:05d}.pkl")
        if not path.exists():
            if large:
                os.link(source, path)
            else:
                path.write_bytes(pickle.dumps({"layer": i, "weights": [i, i + 1, i + 2]}, protocol=2))
        paths.append(path)
    return paths


class Sampler:
    """CPU seconds and peak RSS of one process, from /proc."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.ticks = os.sysconf("SC_CLK_TCK")

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / self.ticks

    def rss_mib(self, key: str = "VmRSS") -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
        return 0.0


def audit_counts(audit_log: Path) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    user = f"system:serviceaccount:{NAMESPACE}:{OPERATOR_SA}"
    for path in sorted(audit_log.parent.glob("audit*.log")):
        with open(path) as lines:
            for line in lines:
                event = json.loads(line)
                if event.get("user", {}).get("username") != user or event.get("stage") != "ResponseComplete":
                    continue
                resource = event.get("objectRef", {}).get("resource", "?")
                sub = event.get("objectRef", {}).get("subresource")
                key = f"{resource}/{sub}" if sub else resource
                counts.setdefault(key, {}).setdefault(event["verb"], 0)
                counts[key][event["verb"]] += 1
    return counts


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=["inProcess", "job"], default="inProcess")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--large", action="store_true", help="1 GiB models instead of small ones")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=2,
        help="--max-concurrent-scans (inProcess) or --max-concurrent-scan-jobs (job)",
    )
    parser.add_argument("--timeout", type=float, default=7200)
    parser.add_argument(
        "--live",
        action="store_true",
        help="create the ModelScans while the operator runs (default: create them "
        "all first, then start the operator: it finds them all pending, and "
        "its drain rate is not bounded by how fast one client creates objects)",
    )
    args = parser.parse_args()

    work = CACHE / "bench" / "operator"
    kubectl = control_plane(work)
    models = make_models(work / ("large" if args.large else "small"), args.count, args.large)
    root = models[0].parent
    kubeconfig = operator_kubeconfig(kubectl, work / "operator.kubeconfig")
    settings = work / "job-settings.yaml"
    settings.write_text(
        yaml.safe_dump(
            {
                "volumes": [{"name": "models", "hostPath": {"path": str(root)}}],
                "volumeMounts": [{"name": "models", "mountPath": str(root), "readOnly": True}],
                "scheduleTimeoutSeconds": 3600,
                "activeDeadlineSeconds": 7200,
            }
        )
    )
    command = [
        str(Path(sys.executable).with_name("modelsec")),
        "operator",
        "--kubeconfig",
        str(kubeconfig),
        "--standalone",
        "--metrics-port",
        "0",
        "--health-port",
        "0",
        "--local-root",
        str(root.parent),
        "--scan-mode",
        args.mode,
    ]
    if args.mode == "job":
        command += [
            "--scan-job-namespace",
            NAMESPACE,
            "--scan-job-settings",
            str(settings),
            "--max-concurrent-scan-jobs",
            str(args.concurrency),
            "--scan-job-poll-seconds",
            "1",
        ]
    else:
        command += ["--max-concurrent-scans", str(args.concurrency)]
    env = {
        **os.environ,
        **NO_PROXY,
        "PYTHONPATH": os.pathsep.join([str(REPO / "operator"), str(REPO / "src")]),
    }
    log = open(work / f"operator-{args.mode}.log", "wb")
    operator: subprocess.Popen[bytes] | None = None
    node = None
    if args.mode == "job":
        from node_double import NodeDouble

        node = NodeDouble(
            kubeconfig=Path(kubectl.kubeconfig),
            namespace=NAMESPACE,
            workdir=work / "node",
            bin_dir=Path(sys.executable).parent,
            extra_env={"PYTHONPATH": env["PYTHONPATH"]},
        ).start()

    def start_operator() -> subprocess.Popen[bytes]:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)

    try:
        kubectl.apply(
            {
                "apiVersion": API,
                "kind": "ModelSource",
                "metadata": {"name": "bench"},
                "spec": {"type": "Local", "local": {"path": str(root)}},
            },
            {
                "apiVersion": API,
                "kind": "SecurityGroup",
                "metadata": {"name": "bench"},
                "spec": {
                    "sourceRef": "bench",
                    "rules": [{"name": "LoadTimeCodeExecution"}, {"name": "SuspiciousComponents"}],
                },
            },
        )
        operator = start_operator()
        kubectl(
            "wait",
            "--for=jsonpath={.status.conditions[0].status}=True",
            "--timeout=120s",
            "securitygroup/bench",
        )
        if not args.live:
            operator.terminate()
            operator.wait(timeout=30)
        names = {scan_name(f"file://{p}", None, "bench"): p for p in models}
        # Labelled as the webhook and the CLI create them (a hand-made scan costs the
        # operator one label patch more, and kopf one more annotation write).
        documents = [
            {
                "apiVersion": API,
                "kind": "ModelScan",
                "metadata": {
                    "name": n,
                    "labels": {LABEL_GROUP: "bench", LABEL_SCAN_KEY: scan_key(f"file://{p}", None, "bench")},
                },
                "spec": {"model": f"file://{p}", "securityGroup": "bench"},
            }
            for n, p in names.items()
        ]
        created_at = datetime.now(UTC)
        started = time.monotonic()
        for start in range(0, len(documents), 200):  # kubectl create: one request per object
            kubectl("create", "-f", "-", input=yaml.safe_dump_all(documents[start : start + 200]))
        created_s = time.monotonic() - started
        if not args.live:  # all pending now: the clock starts with the operator
            operator = start_operator()
            created_at = datetime.now(UTC)
            started = time.monotonic()
        sampler = Sampler(operator.pid)
        cpu_before = 0.0  # all of the operator's CPU, start-up included
        peak_rss = 0.0
        pending_rss = 0.0
        done: dict[str, dict[str, Any]] = {}
        while len(done) < len(names) and time.monotonic() - started < args.timeout:
            if operator.poll() is not None:
                raise SystemExit(f"the operator exited with {operator.returncode}; see {log.name}")
            peak_rss = max(peak_rss, sampler.rss_mib())
            items = json.loads(kubectl("get", "modelscans", "-o", "json"))["items"]
            for item in items:
                status = item.get("status") or {}
                if status.get("phase") in ("Completed", "Failed"):
                    done[item["metadata"]["name"]] = status
            pending = len(names) - len(done)
            if pending >= 0.9 * len(names):
                pending_rss = max(pending_rss, sampler.rss_mib())
            time.sleep(2)
        elapsed = time.monotonic() - started
        cpu = sampler.cpu_seconds() - cpu_before
        hwm = sampler.rss_mib("VmHWM")
    finally:
        if operator is not None:
            operator.terminate()
            try:
                operator.wait(timeout=30)
            except subprocess.TimeoutExpired:
                operator.kill()
        if node is not None:
            node.stop()
    latencies = []
    last = created_at
    for status in done.values():
        completed = datetime.fromisoformat(status["completedAt"].replace("Z", "+00:00"))
        latencies.append((completed - created_at).total_seconds())
        last = max(last, completed)
    outcomes: dict[str, int] = {}
    for status in done.values():
        outcomes[status.get("outcome", "?")] = outcomes.get(status.get("outcome", "?"), 0) + 1
    counts = audit_counts(work / "audit" / "audit.log")
    writes = sum(n for verbs in counts.values() for verb, n in verbs.items() if verb in WRITES)
    reads = sum(n for verbs in counts.values() for verb, n in verbs.items() if verb in {"get", "list"})
    result = {
        "mode": args.mode,
        "count": args.count,
        "large": args.large,
        "concurrency": args.concurrency,
        "live": args.live,
        "completed": len(done),
        "outcomes": outcomes,
        "create_seconds": round(created_s, 1),
        "elapsed_seconds": round(elapsed, 1),
        "scans_per_minute": round(len(done) / max(1e-9, (last - created_at).total_seconds()) * 60, 1),
        "latency_p50_s": percentile(latencies, 0.5) if latencies else None,
        "latency_p99_s": percentile(latencies, 0.99) if latencies else None,
        "operator_cpu_s": round(cpu, 1),
        "operator_peak_rss_mib": round(hwm, 1),
        "operator_rss_while_pending_mib": round(pending_rss, 1),
        "sampled_peak_rss_mib": round(peak_rss, 1),
        "api_writes_per_scan": round(writes / max(1, len(done)), 2),
        "api_reads_per_scan": round(reads / max(1, len(done)), 2),
        "api_requests_by_resource": counts,
        "machine": {"cpus": os.cpu_count(), "load_avg_at_end": os.getloadavg()},
        "notes": (
            "latency: from the start of creation (--live) or of the operator (all pending) to "
            "status.completedAt, 1 s resolution; CPU from then on"
        ),
    }
    if node is not None:
        result["pods_run"] = len(node.finished)
        # The scan processes are this process's children (the node double runs them): the
        # largest peak RSS among them, to check the Jobs' memory sizing against.
        result["largest_worker_peak_rss_mib"] = round(
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1
        )
    OUT.mkdir(exist_ok=True)
    out = OUT / f"operator_throughput-{args.mode}-{args.count}{'-large' if args.large else ''}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "api_requests_by_resource"}, indent=2))
    print(f"written to {out}")
    return 0 if len(done) == len(names) else 1


if __name__ == "__main__":
    sys.exit(main())
