"""``spec.enforcement.verifyAtStart``: the init containers that run ``modelsec verify``.

For a Pod, each ``file://`` model judged by a group with ``verifyAtStart`` gets one init
container, added last (after every other init container, so nothing runs between the
check and the server) by the mutating webhook:

- the modelsec image (``--verifier-image``), its entrypoint given
  ``verify <path> --scan <ModelScan> --no-progress``: exit 0 lets the Pod start, anything
  else stops it (1: a file differs from the scan, 2: it could not be checked);
- the volumes that hold the model, mounted read-only at the paths the Pod mounts them
  (the mount holding the model, and any mounted inside it), so the path is the same;
- non-root, no privilege escalation, a read-only root filesystem, no capabilities;
- the Pod's ServiceAccount token, projected into this container only (containers the
  webhook adds get no token from the ServiceAccount admission plugin, which runs
  earlier): verify reads the ModelScan and its BOM with it.

The validating webhook computes the same containers and denies a Pod that lacks one, or
whose one was altered where it matters (image, arguments, mounts, the token volume, an
environment or command that would point it elsewhere, a restartPolicy that would let the
Pod start without waiting for it). Fields other admission plugins adjust (resources,
securityContext) are not compared: changing them cannot make a check pass.

A model that is not on a volume (inside the image, or mounted with ``subPathExpr``)
cannot be verified by another container: that is reported, and denied under Enforce.
Models fetched by the server at start (``hf://``, ``s3://``) are not on a volume when
init containers run: they are pinned instead (``spec.enforcement.pin``), and a warning
says so.
"""

from __future__ import annotations

import hashlib
import posixpath
from dataclasses import dataclass
from typing import Any

from modelsec.k8s.enforcement import EnforcementMode
from modelsec.references import Extraction
from modelsec.safe_text import printable
from modelsec_webhook.decision import Judgement
from modelsec_webhook.view import View

PREFIX = "modelsec-verify-"
API_VOLUME = "modelsec-verify-api"
TOKEN_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
SECURITY_CONTEXT: dict[str, Any] = {
    "runAsNonRoot": True,
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
RESOURCES: dict[str, Any] = {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}}
# What a verifier container may hold besides what the webhook writes: the API server's
# defaults. Anything else (env, envFrom, command, workingDir, restartPolicy, probes...) is
# an alteration.
DEFAULTED = frozenset({"terminationMessagePath", "terminationMessagePolicy", "resources", "securityContext"})


@dataclass(frozen=True)
class Needed:
    """One model the Pod must verify before its containers start."""

    judgement: Judgement
    path: str
    mounts: tuple[dict[str, Any], ...] = ()
    problem: str | None = None  # why it cannot be verified by an init container

    @property
    def name(self) -> str:
        digest = hashlib.sha256(f"{self.path}\0{self.judgement.scan}".encode()).hexdigest()[:10]
        return PREFIX + digest


def _clean(path: str) -> str:
    return "/" + posixpath.normpath("/" + path).lstrip("/")


def _under(path: str, root: str) -> bool:
    return root == "/" or path == root or path.startswith(root + "/")


def pod_spec(pod: dict[str, Any]) -> dict[str, Any]:
    """``pod.spec``; empty when it is missing or not an object."""
    spec = pod.get("spec")
    return spec if isinstance(spec, dict) else {}


def _pod_mounts(pod_spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The volume mounts of the Pod's own containers (not of earlier verifiers)."""
    mounts: list[dict[str, Any]] = []
    for key in ("initContainers", "containers"):
        for container in pod_spec.get(key) or []:
            if not isinstance(container, dict) or str(container.get("name", "")).startswith(PREFIX):
                continue
            mounts.extend(m for m in container.get("volumeMounts") or [] if isinstance(m, dict))
    return mounts


def _mounts_for(pod_spec: dict[str, Any], path: str) -> tuple[tuple[dict[str, Any], ...], str | None]:
    """The read-only mounts that show ``path`` to another container as the Pod sees it."""
    by_path: dict[str, dict[str, Any]] = {}
    for mount in _pod_mounts(pod_spec):
        at = mount.get("mountPath")
        if not isinstance(at, str) or not isinstance(mount.get("name"), str):
            continue
        at = _clean(at)
        if not (_under(path, at) or _under(at, path)):
            continue
        if mount.get("subPathExpr"):
            return (), (
                f"{at} is mounted with subPathExpr, which depends on the container's "
                "environment; modelsec cannot mount it the same way in the verifier"
            )
        wanted = {"name": mount["name"], "mountPath": at, "readOnly": True}
        if isinstance(mount.get("subPath"), str) and mount["subPath"]:
            wanted["subPath"] = mount["subPath"]
        seen = by_path.get(at)
        if seen is not None and seen != wanted:
            return (), f"{at} is mounted from different volumes by different containers"
        by_path[at] = wanted
    if not any(_under(path, at) for at in by_path):
        return (), (
            f"{path} is not on a volume of the Pod (a file in the image is out of another "
            "container's reach): mount the model from a volume, or turn verifyAtStart off"
        )
    return tuple(by_path[at] for at in sorted(by_path)), None


def needed(
    pod: dict[str, Any], extraction: Extraction, judgements: tuple[Judgement, ...], view: View
) -> tuple[list[Needed], list[Judgement]]:
    """(models to verify, judgements of remote models a verifying group covers: those are
    pinned, not verified)."""
    spec = pod_spec(pod)
    verify: dict[tuple[str, str | None], Needed] = {}
    remote: list[Judgement] = []
    for judgement in judgements:
        group = view.groups.get(judgement.group)
        if group is None or not group.enforcement.verify_at_start:
            continue
        ref = judgement.reference.ref
        if judgement.scan is None:
            continue  # the group cannot judge at all (invalid, not ready): denied as such
        if ref.scheme != "file":
            remote.append(judgement)
            continue
        path = _clean(ref.location)
        mounts, problem = _mounts_for(spec, path)
        entry = Needed(judgement, path, mounts, problem)
        verify.setdefault((entry.path, judgement.scan), entry)
    return sorted(verify.values(), key=lambda n: (n.path, n.judgement.scan or "")), remote


def container(need: Needed, image: str) -> dict[str, Any]:
    return {
        "name": need.name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        # The image's entrypoint is modelsec.
        "args": ["verify", need.path, "--scan", str(need.judgement.scan), "--no-progress"],
        "volumeMounts": [*need.mounts, {"name": API_VOLUME, "mountPath": TOKEN_DIR, "readOnly": True}],
        "securityContext": SECURITY_CONTEXT,
        "resources": RESOURCES,
    }


def api_volume() -> dict[str, Any]:
    """The Pod's ServiceAccount token, CA and namespace, as the ServiceAccount admission
    plugin would project them, for the verifiers only."""
    return {
        "name": API_VOLUME,
        "projected": {
            "defaultMode": 0o444,
            "sources": [
                {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {
                    "downwardAPI": {
                        "items": [
                            {
                                "path": "namespace",
                                "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
                            }
                        ]
                    }
                },
            ],
        },
    }


def with_verifiers(pod_spec: dict[str, Any], containers: list[dict[str, Any]]) -> tuple[list[Any], list[Any]]:
    """(initContainers, volumes) with the verifiers last and the token volume present;
    verifiers from an earlier pass (reinvocation, an UPDATE) are replaced."""
    init = [
        c
        for c in pod_spec.get("initContainers") or []
        if not (isinstance(c, dict) and str(c.get("name", "")).startswith(PREFIX))
    ]
    volumes = [
        v for v in pod_spec.get("volumes") or [] if not (isinstance(v, dict) and v.get("name") == API_VOLUME)
    ]
    if containers:
        volumes.append(api_volume())
    return init + containers, volumes


def _mounts_key(mounts: Any) -> Any:
    if not isinstance(mounts, list):
        return None
    return sorted(
        (str(m.get("name")), str(m.get("mountPath")), str(m.get("subPath") or ""), bool(m.get("readOnly")))
        for m in mounts
        if isinstance(m, dict)
    )


def _altered(found: dict[str, Any], wanted: dict[str, Any]) -> str | None:
    for key in ("image", "args"):
        if found.get(key) != wanted[key]:
            return f"its {key} differ from what modelsec set"
    if _mounts_key(found.get("volumeMounts")) != _mounts_key(wanted["volumeMounts"]):
        return "its volume mounts differ from what modelsec set"
    extra = sorted(set(found) - set(wanted) - DEFAULTED)
    if extra:
        return f"it has {', '.join(extra)}, which modelsec does not set"
    return None


def problems(pod: dict[str, Any], needs: list[Needed], image: str | None) -> list[tuple[Needed, str]]:
    """What keeps the Pod's verifiers from checking each model, by model."""
    spec = pod_spec(pod)
    init = [c for c in spec.get("initContainers") or [] if isinstance(c, dict)]
    position = {str(c.get("name")): i for i, c in enumerate(init)}
    last_other = max(
        (i for i, c in enumerate(init) if not str(c.get("name", "")).startswith(PREFIX)), default=-1
    )
    volume = next(
        (v for v in spec.get("volumes") or [] if isinstance(v, dict) and v.get("name") == API_VOLUME), None
    )
    found: list[tuple[Needed, str]] = []
    for need in needs:
        if need.problem is not None:
            found.append((need, need.problem))
            continue
        if image is None:
            found.append((need, "the webhook runs without --verifier-image, so it cannot add the verifier"))
            continue
        if need.name not in position:
            found.append((need, f"the Pod lacks its verifier init container {need.name}"))
            continue
        why = _altered(init[position[need.name]], container(need, image))
        if why is None and position[need.name] < last_other:
            why = "another init container runs after it (and could change the files it checked)"
        if why is None and volume != api_volume():
            why = f"the volume {API_VOLUME} it reads the ModelScan with differs from what modelsec set"
        if why is not None:
            found.append((need, f"its verifier init container {need.name} was altered: {why}"))
    return found


def lines(found: list[tuple[Needed, str]], remote: list[Judgement]) -> tuple[list[str], list[str], list[str]]:
    """(denials, warnings, audit events) by each group's enforcement mode."""
    denials: list[str] = []
    warnings: list[str] = []
    events: list[str] = []
    for need, why in found:
        j = need.judgement
        line = printable(
            f"{j.reference.ref} must be verified at start (SecurityGroup {j.group}, "
            f"verifyAtStart), but {why}; failing closed"
        )
        {EnforcementMode.ENFORCE: denials, EnforcementMode.WARN: warnings, EnforcementMode.AUDIT: events}[
            j.mode
        ].append(line)
    for j in remote:
        if j.mode != EnforcementMode.AUDIT:
            warnings.append(
                printable(
                    f"modelsec: {j.reference.ref} is fetched at start, not read from a "
                    f"volume: verifyAtStart ({j.group}) cannot check it; pin it"
                )
            )
    return denials, warnings, events
