"""From a Kubernetes object to a :class:`~modelsec.references.model.Workload`.

Pods and every controller kind carry a pod template at a known path; a KServe
InferenceService carries container-like components under ``spec.predictor`` (and
``transformer``/``explainer``). Each container (``containers``, ``initContainers`` and
``ephemeralContainers``, which ``kubectl debug`` adds to a running Pod) is a lazy
:class:`~modelsec.references.container.Container`.

Every field on the way is checked for its JSON type: one Kubernetes never sends there
raises :class:`~.model.Malformed` (the webhook denies), and more containers than
:data:`MAX_CONTAINERS` are reported as unjudgeable rather than partly read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelsec.references.container import ConfigMapData, Container
from modelsec.references.model import Malformed, Unresolved, Workload
from modelsec.references.pins import Path

# kind -> path to the pod template (empty: the object is a Pod).
POD_TEMPLATE_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": (),
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "ReplicationController": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}
KSERVE_KINDS = frozenset({"InferenceService"})
KSERVE_COMPONENTS = ("predictor", "transformer", "explainer")
# Pod-spec lists of containers, in the order the kubelet starts them; (key, init).
CONTAINER_LISTS = (("initContainers", True), ("containers", False), ("ephemeralContainers", False))

ANNOTATIONS_PATH: Path = ("metadata", "annotations")
# The pod-spec fields besides the container lists that extraction reads (like
# container.FIELDS, the webhook's extraction cache keys on exactly these).
POD_FIELDS = ("hostAliases",)

# Containers read per workload. Beyond this the workload is reported as unjudgeable (the
# webhook denies it wherever a group applies), never judged on a prefix of its containers.
MAX_CONTAINERS = 256


def _dig(obj: Any, path: tuple[str, ...], where: str = "") -> Any:
    for step in path:
        if obj is None:
            return None
        if not isinstance(obj, dict):
            raise Malformed(where or "object", "an object")
        where = f"{where}.{step}" if where else step
        obj = obj.get(step)
    return obj


def _annotations(obj: Any, where: str) -> Mapping[str, str]:
    annotations = _dig(obj, ("metadata", "annotations"), where)
    if annotations is None:
        return {}
    path = f"{where}.metadata.annotations" if where else "metadata.annotations"
    if not isinstance(annotations, dict):
        raise Malformed(path, "a map of strings")
    for key, value in annotations.items():
        if not isinstance(value, str):
            raise Malformed(f"{path}[{key!r}]", "a string")
    return annotations


def workload_from_object(
    kind: str, obj: Any, configmaps: Mapping[str, ConfigMapData] | None = None
) -> Workload | None:
    """The workload ``obj`` of ``kind`` describes, or None for kinds that run nothing.
    ``configmaps`` holds what the caller read of ConfigMaps in the object's namespace."""
    if kind not in POD_TEMPLATE_PATHS and kind not in KSERVE_KINDS:
        return None
    if not isinstance(obj, dict):
        raise Malformed("object", "an object")
    if kind in KSERVE_KINDS:
        return _inference_service(kind, obj, configmaps)
    path = POD_TEMPLATE_PATHS[kind]
    template = _dig(obj, path) if path else obj
    template_where = ".".join(path)
    if template is None:
        return Workload(kind, (_annotations(obj, ""),), annotation_paths=(ANNOTATIONS_PATH,))
    if not isinstance(template, dict):
        raise Malformed(template_where, "an object")
    annotations = (
        (_annotations(obj, ""),)
        if not path
        else (_annotations(obj, ""), _annotations(template, template_where))
    )
    annotation_paths = (ANNOTATIONS_PATH,) if not path else (ANNOTATIONS_PATH, (*path, *ANNOTATIONS_PATH))
    spec_where = f"{template_where}.spec" if path else "spec"
    containers, problems = pod_containers(
        template.get("spec"), spec_where, configmaps, spec_path=(*path, "spec")
    )
    return Workload(
        kind,
        annotations,
        containers,
        problems=problems,
        annotation_paths=annotation_paths,
        host_aliases=host_aliases(template.get("spec"), spec_where),
    )


def host_aliases(pod_spec: Any, where: str) -> tuple[tuple[str, str], ...]:
    """(hostname, ip) of each ``hostAliases`` entry of a pod spec (lower case)."""
    entries = pod_spec.get("hostAliases") if isinstance(pod_spec, dict) else None
    if entries is None:
        return ()
    if not isinstance(entries, list):
        raise Malformed(f"{where}.hostAliases", "a list")
    found: list[tuple[str, str]] = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise Malformed(f"{where}.hostAliases[{index}]", "an object")
        ip, names = entry.get("ip"), entry.get("hostnames") or []
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise Malformed(f"{where}.hostAliases[{index}].hostnames", "a list of strings")
        found += [(name.strip().rstrip(".").lower(), str(ip)) for name in names]
    return tuple(found)


def pod_containers(
    pod_spec: Any,
    where: str = "spec",
    configmaps: Mapping[str, ConfigMapData] | None = None,
    first_index: int = 0,
    spec_path: Path = ("spec",),
) -> tuple[tuple[Container, ...], tuple[Unresolved, ...]]:
    """The containers of a pod spec, and what could not be read of them."""
    if pod_spec is None:
        return (), ()
    if not isinstance(pod_spec, dict):
        raise Malformed(where, "an object")
    out: list[Container] = []
    problems: list[Unresolved] = []
    for key, init in CONTAINER_LISTS:
        items = pod_spec.get(key)
        if items is None:
            continue
        if not isinstance(items, list):
            raise Malformed(f"{where}.{key}", "a list of objects")
        for i, raw in enumerate(items):
            if not isinstance(raw, dict):
                raise Malformed(f"{where}.{key}[{i}]", "an object")
        if len(out) + len(items) > MAX_CONTAINERS:
            problems.append(
                Unresolved(
                    f"{where}.{key}",
                    f"too many containers to judge: the workload has more than {MAX_CONTAINERS}",
                )
            )
            items = items[: max(0, MAX_CONTAINERS - len(out))]
        for i, raw in enumerate(items):
            out.append(
                Container(
                    raw,
                    init,
                    index=first_index + len(out),
                    where=f"{where}.{key}[{i}]",
                    configmaps=configmaps,
                    path=(*spec_path, key, i),
                )
            )
    return tuple(out), tuple(problems)


def _inference_service(
    kind: str, obj: dict[str, Any], configmaps: Mapping[str, ConfigMapData] | None
) -> Workload:
    spec = obj.get("spec")
    if spec is None:
        spec = {}
    if not isinstance(spec, dict):
        raise Malformed("spec", "an object")
    containers: list[Container] = []
    problems: list[Unresolved] = []
    for component_name in KSERVE_COMPONENTS:
        component = spec.get(component_name)
        if component is None:
            continue
        where = f"spec.{component_name}"
        if not isinstance(component, dict):
            raise Malformed(where, "an object")
        found, trouble = pod_containers(
            component, where, configmaps, first_index=len(containers), spec_path=("spec", component_name)
        )
        containers.extend(found)
        problems.extend(trouble)
        # `predictor.model` and the framework keys (`predictor.sklearn`, ...) are
        # containers with extra fields (storageUri, modelFormat, runtime).
        for name, part in component.items():
            if isinstance(part, dict) and any(
                k in part for k in ("args", "command", "env", "envFrom", "image")
            ):
                if len(containers) >= MAX_CONTAINERS:
                    problems.append(
                        Unresolved(where, f"too many containers to judge: more than {MAX_CONTAINERS}")
                    )
                    break
                containers.append(
                    Container(
                        {**part, "name": f"{component_name}.{name}"},
                        index=len(containers),
                        where=f"{where}.{name}",
                        configmaps=configmaps,
                        path=("spec", component_name, name),
                    )
                )
    return Workload(
        kind,
        (_annotations(obj, ""),),
        tuple(containers),
        spec,
        tuple(problems),
        annotation_paths=(ANNOTATIONS_PATH,),
    )
