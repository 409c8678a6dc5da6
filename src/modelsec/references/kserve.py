"""KServe: the model a storage initializer downloads, and InferenceService storage URIs.

- ``InferenceService``: every ``storageUri`` under ``spec.predictor`` / ``transformer`` /
  ``explainer`` (``predictor.model.storageUri``, framework keys such as
  ``predictor.sklearn.storageUri``), and ``storageUris[].uri``.
- Pods: KServe's pod mutator reads the annotation
  ``internal.serving.kserve.io/storage-initializer-sourceuri`` and injects an init
  container ``storage-initializer`` whose ``args`` are ``<source-uri> <dest-dir>`` pairs;
  both are read, so a Pod is judged before and after injection alike.
- KServe's Hugging Face runtime (``huggingfaceserver``): ``--model_id`` with
  ``--model_revision``.

``hf://org/name:<revision>`` is KServe's spelling of a pinned Hub model. ``pvc://``,
``gs://`` and plain ``https://`` URIs are not modelsec sources and are left alone.
"""

from __future__ import annotations

from typing import Any, Iterator

from modelsec.references.argv import describe, first, image_matches
from modelsec.references.container import Container
from modelsec.references.model import Found, Workload
from modelsec.references.workloads import KSERVE_COMPONENTS

SOURCE_URI_ANNOTATION = "internal.serving.kserve.io/storage-initializer-sourceuri"
STORAGE_INITIALIZER = "storage-initializer"
HF_SERVER = "huggingfaceserver"
_MAX_DEPTH = 4


def _storage_uris(node: Any, path: str, depth: int = 0) -> Iterator[tuple[str, str]]:
    if depth > _MAX_DEPTH or not isinstance(node, dict):
        return
    for key, value in node.items():
        where = f"{path}.{key}"
        if key == "storageUri" and isinstance(value, str):
            yield where, value
        elif key == "storageUris" and isinstance(value, list):
            for i, item in enumerate(value[:16]):
                uri = item.get("uri") if isinstance(item, dict) else item
                if isinstance(uri, str):
                    yield f"{where}[{i}]", uri
        elif isinstance(value, dict):
            yield from _storage_uris(value, where, depth + 1)


def _hugging_face_runtime(container: Container) -> bool:
    return (
        container.model_format == "huggingface"
        or image_matches(container, HF_SERVER)
        or any(prog == HF_SERVER for prog, _rest in container.programs)
    )


class KServeExtractor:
    name = "kserve"

    def extract(self, workload: Workload) -> Iterator[Found]:
        for component in KSERVE_COMPONENTS:
            yield from (
                Found(uri, f"InferenceService {where}")
                for where, uri in _storage_uris(workload.spec.get(component), f"spec.{component}")
            )
        for value in workload.annotation_values(SOURCE_URI_ANNOTATION):
            yield Found(value, f"annotation {SOURCE_URI_ANNOTATION}")
        for container in workload.containers:
            if container.init and (
                container.name == STORAGE_INITIALIZER or image_matches(container, "storage-initializer")
            ):
                args = container.commands[0] if container.entrypoint and container.commands else ()
                # <uri> <dest> [<uri> <dest> ...]
                for uri in args[0::2]:
                    yield Found(uri, describe(container, "storage-initializer source"))
            elif _hugging_face_runtime(container):
                for line in container.commands:
                    model = first(line, "--model_id")
                    if model:
                        yield Found(model, describe(container, "huggingfaceserver --model_id"),
                                    first(line, "--model_revision"))


EXTRACTOR = KServeExtractor()
