"""A node double for the scan-Job tests. TEST HARNESS ONLY: never part of modelsec.

The local control plane (hack/envtest.sh with ENVTEST_CONTROLLERS=1) has a real API
server, Job controller, garbage collector and scheduler, but no kubelet: Pods stay Pending.
This class plays the kubelet's part for one Node, through the same APIs a kubelet uses,
and nothing else:

- registers a ``Node`` (Ready, with allocatable resources) and renews its Lease in
  ``kube-node-lease``, so the real kube-scheduler binds Pods to it and the node lifecycle
  controller keeps it Ready;
- for each Pod bound to it (``spec.nodeName``), builds the container's environment as the
  kubelet would (``value``, downward-API ``fieldRef``, ``secretKeyRef`` read from the real
  Secret) and its volumes (a projected ServiceAccount token requested with the
  **TokenRequest API**, bound to the Pod; ``kube-root-ca.crt``; downward API;
  ``emptyDir``; ``hostPath``; ``secret``; ``configMap``);
- runs the container's command and args as a **local process** in a private mount
  namespace (``unshare --mount``) where those volumes are bind-mounted at their
  ``mountPath`` (so the worker's in-cluster configuration finds its token at the standard
  path), with ``KUBERNETES_SERVICE_HOST``/``PORT`` pointing at the API server;
- reports the Pod's phase and container state through ``pods/status``; kills the process
  when the Pod is deleted (Job deadline, garbage collection, eviction) and then removes
  the Pod as a kubelet does.

What it does not do: no image (the command comes from this checkout's virtualenv), no
container isolation (no cgroups, seccomp, user or network namespace; the process runs
as the test's user and ``readOnlyRootFilesystem`` is not enforced), no resource
enforcement, no probes, no restarts (scan Pods use ``restartPolicy: Never``). Everything
around it (Jobs, Pods, RBAC, Secrets, tokens, admission) is the real thing.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from kubernetes.client import ApiClient, CoordinationV1Api, CoreV1Api
from kubernetes.client.exceptions import ApiException

from modelsec.k8s.config import load_configuration


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _micro_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class RunningPod:
    name: str
    uid: str
    process: subprocess.Popen[bytes]
    workdir: Path
    started: str
    log: Path
    killed: bool = False
    exit_code: int | None = None


@dataclass
class NodeDouble:
    kubeconfig: Path
    namespace: str
    workdir: Path
    bin_dir: Path  # where the container's command is found (this checkout's venv)
    name: str = "node-double-0"
    extra_env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        configuration = load_configuration(self.kubeconfig)
        self.api_client = ApiClient(configuration)
        self.core = CoreV1Api(self.api_client)
        self.coordination = CoordinationV1Api(self.api_client)
        server = urlsplit(configuration.host)
        self.api_host, self.api_port = server.hostname or "127.0.0.1", str(server.port or 443)
        self.pods: dict[str, RunningPod] = {}
        self.finished: dict[str, RunningPod] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.errors: list[str] = []

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> NodeDouble:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._register()
        self._thread = threading.Thread(target=self._loop, name=f"node-double-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=15)
        for pod in list(self.pods.values()):
            self._kill(pod, signal.SIGKILL)
        try:
            self.core.delete_node(self.name)
        except ApiException:
            pass

    def kill(self, pod_name: str, sig: int = signal.SIGKILL) -> None:
        """What an OOM kill or a crash does to the container: the process dies now."""
        with self._lock:
            pod = self.pods[pod_name]
        self._kill(pod, sig)

    def running(self) -> list[str]:
        with self._lock:
            return [name for name, pod in self.pods.items() if pod.process.poll() is None]

    # -- the Node ---------------------------------------------------------------------

    def _register(self) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.name,
                "labels": {
                    "kubernetes.io/hostname": self.name,
                    "kubernetes.io/os": "linux",
                    "modelsec.io/node-double": "true",
                },
            },
        }
        try:
            self.core.create_node(body)
        except ApiException as exc:
            if exc.status != 409:
                raise
        self._heartbeat(full=True)

    def _heartbeat(self, full: bool = False) -> None:
        now = _now()
        conditions = [
            {
                "type": "Ready",
                "status": "True",
                "reason": "KubeletReady",
                "message": "node double is ready",
                "lastHeartbeatTime": now,
                "lastTransitionTime": now,
            },
            *(
                {
                    "type": t,
                    "status": "False",
                    "reason": f"KubeletHasNo{t}",
                    "lastHeartbeatTime": now,
                    "lastTransitionTime": now,
                }
                for t in ("MemoryPressure", "DiskPressure", "PIDPressure")
            ),
        ]
        capacity = {"cpu": "16", "memory": "64Gi", "pods": "250", "ephemeral-storage": "500Gi"}
        status: dict[str, Any] = {"conditions": conditions}
        if full:
            status.update(
                capacity=capacity,
                allocatable=capacity,
                addresses=[
                    {"type": "InternalIP", "address": "127.0.0.1"},
                    {"type": "Hostname", "address": self.name},
                ],
                nodeInfo={
                    "kubeletVersion": "node-double",
                    "operatingSystem": "linux",
                    "architecture": "amd64",
                    "containerRuntimeVersion": "node-double://0",
                    "kernelVersion": "",
                    "osImage": "",
                    "kubeProxyVersion": "",
                    "machineID": "",
                    "systemUUID": "",
                    "bootID": "",
                },
            )
        self.core.patch_node_status(self.name, {"status": status})
        lease = {
            "metadata": {"name": self.name, "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": self.name, "leaseDurationSeconds": 40, "renewTime": _micro_now()},
        }
        try:
            self.coordination.replace_namespaced_lease(self.name, "kube-node-lease", self._lease(lease))
        except ApiException as exc:
            if exc.status != 404:
                raise
            self.coordination.create_namespaced_lease("kube-node-lease", lease)

    def _lease(self, lease: dict[str, Any]) -> dict[str, Any]:
        current = self.coordination.read_namespaced_lease(self.name, "kube-node-lease")
        lease["metadata"]["resourceVersion"] = current.metadata.resource_version
        return lease

    # -- the loop ---------------------------------------------------------------------

    def _loop(self) -> None:
        last_beat = time.monotonic()
        while not self._stop.is_set():
            try:
                if time.monotonic() - last_beat > 5:
                    self._heartbeat()
                    last_beat = time.monotonic()
                self._sync()
            except Exception as exc:  # noqa: BLE001 - a harness: record and keep going
                self.errors.append(f"{type(exc).__name__}: {exc}")
            self._stop.wait(0.25)

    def _sync(self) -> None:
        pods = self.core.list_namespaced_pod(
            self.namespace, field_selector=f"spec.nodeName={self.name}", _preload_content=False
        )
        items = json.loads(pods.data)["items"]
        seen = set()
        for pod in items:
            name = pod["metadata"]["name"]
            seen.add(name)
            running = self.pods.get(name)
            if pod["metadata"].get("deletionTimestamp"):
                if running is not None:
                    self._kill(running, signal.SIGTERM)
                    self._reap(running, pod)
                self._finalise(pod)
                continue
            if running is None and name not in self.finished:
                if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                    continue
                try:
                    self._launch(pod)
                except _NotReady as exc:
                    self._report_waiting(pod, str(exc))
                continue
            if running is not None and running.process.poll() is not None:
                self._reap(running, pod)
        for name in [n for n in self.pods if n not in seen]:  # deleted outright
            self._kill(self.pods[name], signal.SIGKILL)
            self._reap(self.pods[name], None)

    # -- one Pod ----------------------------------------------------------------------

    def _launch(self, pod: dict[str, Any]) -> None:
        meta, spec = pod["metadata"], pod["spec"]
        container = spec["containers"][0]
        workdir = Path(tempfile.mkdtemp(prefix=f"{meta['name']}-", dir=self.workdir))
        volumes = {v["name"]: self._volume(pod, v, workdir) for v in spec.get("volumes") or []}
        env = self._env(pod, container)
        mounts = [(volumes[m["name"]], m["mountPath"]) for m in container.get("volumeMounts") or []]
        command = [*container.get("command", []), *container.get("args", [])]
        command[0] = shutil.which(command[0], path=env["PATH"]) or command[0]
        script = self._mount_script(mounts, workdir) + "exec " + shlex.join(command) + "\n"
        log = workdir / "container.log"
        with open(log, "wb") as out:
            process = subprocess.Popen(
                ["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", script],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        started = _now()
        with self._lock:
            self.pods[meta["name"]] = RunningPod(meta["name"], meta["uid"], process, workdir, started, log)
        self._status(pod, "Running", {"running": {"startedAt": started}}, ready=True, started=started)

    def _mount_script(self, mounts: list[tuple[Path, str]], workdir: Path) -> str:
        """Stage every volume under a private tmpfs first (a later mount over /tmp would
        hide sources that live under /tmp), then mount each at its path, then bind back
        the host paths the process runs from (this checkout, its venv, the interpreter)
        where a volume now covers them: a checkout cloned under /tmp must stay visible
        after the Pod's emptyDir is mounted on /tmp."""
        lines = ["set -e", "mount -t tmpfs -o mode=0755 node-double /run", "mkdir -p /run/.stage"]
        ordered = sorted(mounts, key=lambda m: m[1].rstrip("/").count("/"))  # parents first
        hidden = sorted(
            {p for p in _host_paths(self.bin_dir) if any(_covers(target, p) for _, target in mounts)}
        )
        staged = [*(source for source, _ in ordered), *hidden]
        for index, source in enumerate(staged):
            lines += [
                f"mkdir -p /run/.stage/{index}",
                f"mount --bind {shlex.quote(str(source))} /run/.stage/{index}",
            ]
        targets = [*(target for _, target in ordered), *(str(p) for p in hidden)]
        for index, target in enumerate(targets):
            lines += [
                f"mkdir -p {shlex.quote(target)}",
                f"mount --bind /run/.stage/{index} {shlex.quote(target)}",
            ]
        return "\n".join(lines) + "\n"

    def _volume(self, pod: dict[str, Any], volume: dict[str, Any], workdir: Path) -> Path:
        path = workdir / "volumes" / volume["name"]
        path.mkdir(parents=True)
        if "emptyDir" in volume:
            return path
        if "hostPath" in volume:
            return Path(volume["hostPath"]["path"])
        if "secret" in volume:
            self._write_items(
                path, self._secret(volume["secret"]["secretName"]), volume["secret"].get("items")
            )
            return path
        if "configMap" in volume:
            self._write_items(
                path, self._config_map(volume["configMap"]["name"]), volume["configMap"].get("items")
            )
            return path
        if "projected" in volume:
            for source in volume["projected"]["sources"]:
                if "serviceAccountToken" in source:
                    token = self._token(pod, source["serviceAccountToken"])
                    (path / source["serviceAccountToken"]["path"]).write_text(token)
                elif "configMap" in source:
                    self._write_items(
                        path, self._config_map(source["configMap"]["name"]), source["configMap"].get("items")
                    )
                elif "secret" in source:
                    self._write_items(
                        path, self._secret(source["secret"]["name"]), source["secret"].get("items")
                    )
                elif "downwardAPI" in source:
                    for item in source["downwardAPI"]["items"]:
                        (path / item["path"]).write_text(self._field(pod, item["fieldRef"]["fieldPath"]))
            return path
        raise _NotReady(f"volume {volume['name']}: kind not supported by the node double")

    @staticmethod
    def _write_items(path: Path, data: dict[str, bytes], items: list[dict[str, str]] | None) -> None:
        for key, target in ((i["key"], i["path"]) for i in items) if items else ((k, k) for k in data):
            if key not in data:
                raise _NotReady(f"key {key} not found")
            (path / target).write_bytes(data[key])

    def _token(self, pod: dict[str, Any], source: dict[str, Any]) -> str:
        """A real ServiceAccount token from the TokenRequest API, bound to this Pod."""
        spec: dict[str, Any] = {
            "expirationSeconds": int(source.get("expirationSeconds", 3600)),
            "boundObjectRef": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": pod["metadata"]["name"],
                "uid": pod["metadata"]["uid"],
            },
        }
        if source.get("audience"):
            spec["audiences"] = [source["audience"]]
        account = pod["spec"].get("serviceAccountName") or "default"
        response = self.core.create_namespaced_service_account_token(
            account,
            self.namespace,
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec},
        )
        return str(response.status.token)

    def _secret(self, name: str) -> dict[str, bytes]:
        try:
            secret = self.core.read_namespaced_secret(name, self.namespace)
        except ApiException as exc:
            raise _NotReady(f"secret {name!r} not found") from exc
        return {k: base64.b64decode(v) for k, v in (secret.data or {}).items()}

    def _config_map(self, name: str) -> dict[str, bytes]:
        try:
            data = self.core.read_namespaced_config_map(name, self.namespace).data or {}
        except ApiException as exc:
            raise _NotReady(f"configmap {name!r} not found") from exc
        return {k: v.encode() for k, v in data.items()}

    @staticmethod
    def _field(pod: dict[str, Any], path: str) -> str:
        meta, spec = pod["metadata"], pod["spec"]
        values = {
            "metadata.name": meta["name"],
            "metadata.namespace": meta["namespace"],
            "metadata.uid": meta["uid"],
            "spec.nodeName": spec.get("nodeName", ""),
            "spec.serviceAccountName": spec.get("serviceAccountName", ""),
            "status.hostIP": "127.0.0.1",
            "status.podIP": "127.0.0.1",
        }
        if path.startswith("metadata.labels['"):
            return str((meta.get("labels") or {}).get(path[len("metadata.labels['") : -2], ""))
        return values[path]

    def _env(self, pod: dict[str, Any], container: dict[str, Any]) -> dict[str, str]:
        env = {
            "PATH": f"{self.bin_dir}:/usr/local/bin:/usr/bin:/bin",
            "HOSTNAME": pod["metadata"]["name"],
            "KUBERNETES_SERVICE_HOST": self.api_host,
            "KUBERNETES_SERVICE_PORT": self.api_port,
            "NO_PROXY": "127.0.0.1,localhost,::1",
            "no_proxy": "127.0.0.1,localhost,::1",
            **self.extra_env,
        }
        for var in container.get("env") or []:
            if "value" in var:
                env[var["name"]] = var["value"]
            elif "fieldRef" in var.get("valueFrom", {}):
                env[var["name"]] = self._field(pod, var["valueFrom"]["fieldRef"]["fieldPath"])
            elif "secretKeyRef" in var.get("valueFrom", {}):
                ref = var["valueFrom"]["secretKeyRef"]
                try:
                    data = self._secret(ref["name"])
                except _NotReady:
                    if ref.get("optional"):
                        continue
                    raise
                if ref["key"] in data:
                    env[var["name"]] = data[ref["key"]].decode()
                elif not ref.get("optional"):
                    raise _NotReady(f"secret {ref['name']!r} has no key {ref['key']!r}")
        return env

    def _kill(self, pod: RunningPod, sig: int) -> None:
        if pod.process.poll() is None:
            pod.killed = True
            try:
                os.killpg(pod.process.pid, sig)
            except ProcessLookupError:
                pass
            try:
                pod.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(pod.process.pid, signal.SIGKILL)
                pod.process.wait(timeout=10)

    def _reap(self, running: RunningPod, pod: dict[str, Any] | None) -> None:
        code = running.process.wait()
        running.exit_code = code if code >= 0 else 128 - code
        with self._lock:
            self.pods.pop(running.name, None)
            self.finished[running.name] = running
        if pod is None or pod["metadata"].get("deletionTimestamp"):
            return
        phase = "Succeeded" if running.exit_code == 0 else "Failed"
        reason = "Completed" if phase == "Succeeded" else ("Killed" if running.killed else "Error")
        self._status(
            pod,
            phase,
            {
                "terminated": {
                    "exitCode": running.exit_code,
                    "reason": reason,
                    "startedAt": running.started,
                    "finishedAt": _now(),
                }
            },
            ready=False,
            started=running.started,
        )

    def _finalise(self, pod: dict[str, Any]) -> None:
        """The kubelet's last word on a deleted Pod: remove it (grace period over)."""
        try:
            self.core.delete_namespaced_pod(pod["metadata"]["name"], self.namespace, grace_period_seconds=0)
        except ApiException as exc:
            if exc.status != 404:
                raise

    def _report_waiting(self, pod: dict[str, Any], why: str) -> None:
        self._status(
            pod,
            "Pending",
            {"waiting": {"reason": "CreateContainerConfigError", "message": why}},
            ready=False,
            started=None,
        )

    def _status(
        self, pod: dict[str, Any], phase: str, state: dict[str, Any], *, ready: bool, started: str | None
    ) -> None:
        now = _now()
        container = pod["spec"]["containers"][0]
        flag = "True" if ready else "False"
        status = {
            "phase": phase,
            "hostIP": "127.0.0.1",
            "podIP": "127.0.0.1",
            "startTime": started or now,
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
                {"type": "Initialized", "status": "True", "lastTransitionTime": now},
                {"type": "ContainersReady", "status": flag, "lastTransitionTime": now},
                {"type": "Ready", "status": flag, "lastTransitionTime": now},
            ],
            "containerStatuses": [
                {
                    "name": container["name"],
                    "image": container["image"],
                    "imageID": "node-double://none",
                    "ready": ready,
                    "started": ready,
                    "restartCount": 0,
                    "state": state,
                }
            ],
        }
        try:
            self.core.patch_namespaced_pod_status(pod["metadata"]["name"], self.namespace, {"status": status})
        except ApiException as exc:
            if exc.status != 404:
                raise


class _NotReady(Exception):
    """The Pod cannot start yet (a Secret or ConfigMap missing): it stays Pending."""


def _host_paths(bin_dir: Path) -> set[Path]:
    """Where the container's process comes from on this host: the checkout (an editable
    install's sources), the venv holding the command, and the interpreter's prefixes."""
    checkout = Path(__file__).resolve().parents[2]
    return {checkout, bin_dir.resolve().parent, Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve()}


def _covers(mount_target: str, path: Path) -> bool:
    return path.is_relative_to(Path(mount_target))
