"""From a Kubernetes object to a :class:`~modelsec.references.model.Workload`.

Pods and every controller kind carry a pod template at a known path; a KServe
InferenceService carries container-like components under ``spec.predictor`` (and
``transformer``/``explainer``). Each container is a lazy
:class:`~modelsec.references.container.Container`.
"""

from __future__ import annotations

from typing import Any, Mapping

from modelsec.references.container import Container
from modelsec.references.model import Workload

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

MAX_CONTAINERS = 64


def _dig(obj: Any, path: tuple[str, ...]) -> Any:
    for step in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(step)
    return obj


def _annotations(obj: Any) -> Mapping[str, str]:
    annotations = _dig(obj, ("metadata", "annotations"))
    return annotations if isinstance(annotations, dict) else {}


def workload_from_object(kind: str, obj: Any) -> Workload | None:
    """The workload ``obj`` of ``kind`` describes, or None for kinds that run nothing."""
    if not isinstance(obj, dict):
        return None
    if kind in KSERVE_KINDS:
        return _inference_service(kind, obj)
    path = POD_TEMPLATE_PATHS.get(kind)
    if path is None:
        return None
    template = _dig(obj, path) if path else obj
    if not isinstance(template, dict):
        return Workload(kind, (_annotations(obj),))
    annotations = (_annotations(obj),) if not path else (_annotations(obj), _annotations(template))
    return Workload(kind, annotations, pod_containers(template.get("spec")))


def pod_containers(pod_spec: Any) -> tuple[Container, ...]:
    if not isinstance(pod_spec, dict):
        return ()
    out: list[Container] = []
    for key, init in (("initContainers", True), ("containers", False)):
        items = pod_spec.get(key)
        if isinstance(items, list):
            out.extend(Container(c, init) for c in items[:MAX_CONTAINERS] if isinstance(c, dict))
    return tuple(out)


def _inference_service(kind: str, obj: dict[str, Any]) -> Workload:
    spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
    containers: list[Container] = []
    for component_name in KSERVE_COMPONENTS:
        component = spec.get(component_name)
        if not isinstance(component, dict):
            continue
        containers.extend(pod_containers(component))
        # `predictor.model` and the framework keys (`predictor.sklearn`, ...) are
        # containers with extra fields (storageUri, modelFormat, runtime).
        for name, part in component.items():
            if isinstance(part, dict) and any(k in part for k in ("args", "command", "env", "image")):
                containers.append(Container({**part, "name": f"{component_name}.{name}"}))
    return Workload(kind, (_annotations(obj),), tuple(containers), spec)
