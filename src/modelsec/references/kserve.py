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

The storage initializer and the Hugging Face runtime download with ``huggingface_hub``
and boto3, so their environment may send the download elsewhere (``HF_ENDPOINT``,
``AWS_ENDPOINT_URL``, a storage spec's ``endpoint_url``: modelsec.references.redirects).
An InferenceService's own storage URIs are judged as named: the initializer's environment
is KServe's to inject, and the Pod it makes is judged with it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from modelsec.references import hf_runtime, vllm
from modelsec.references.argv import describe, image_matches
from modelsec.references.container import Container
from modelsec.references.model import Found, Malformed, Unresolved, Workload
from modelsec.references.pins import Path, Spelled
from modelsec.references.redirects import Downloader
from modelsec.references.workloads import KSERVE_COMPONENTS

SOURCE_URI_ANNOTATION = "internal.serving.kserve.io/storage-initializer-sourceuri"
STORAGE_INITIALIZER = "storage-initializer"
HF_SERVER = "huggingfaceserver"
# How the initializer is started by hand: its image's entrypoint script, or the module
INITIALIZER_PROGRAMS = frozenset({"initializer-entrypoint", "kserve_storage", "storage-initializer"})
RUNTIME_ENGINE = vllm.Engine(HF_SERVER, hf_runtime.SPELLED, model_required=False)
# KServe reads storage URIs one level into a component (predictor.model.storageUri); the
# walk goes deeper to be safe, and a spec nested beyond that is reported, not skipped.
_MAX_DEPTH = 8
MAX_STORAGE_URIS = 256


def _storage_uris(
    node: dict[str, Any], path: str, steps: Path, depth: int = 0
) -> Iterator[tuple[str, str, Path] | Unresolved]:
    """(where, URI, its path in the object) of every storage URI under ``node``."""
    for key, value in node.items():
        where = f"{path}.{key}"
        if key == "storageUri":
            if not isinstance(value, str):
                raise Malformed(where, "a string")
            yield where, value, (*steps, key)
        elif key == "storageUris":
            if not isinstance(value, list):
                raise Malformed(where, "a list")
            if len(value) > MAX_STORAGE_URIS:
                yield Unresolved(
                    f"InferenceService {where}",
                    f"more than {MAX_STORAGE_URIS} storage URIs; modelsec does not judge a part of them",
                )
            for i, item in enumerate(value[:MAX_STORAGE_URIS]):
                uri = item.get("uri") if isinstance(item, dict) else item
                if not isinstance(uri, str):
                    raise Malformed(f"{where}[{i}]", "a string or an object with a string uri")
                yield (
                    f"{where}[{i}]",
                    uri,
                    (*steps, key, i, "uri") if isinstance(item, dict) else (*steps, key, i),
                )
        elif isinstance(value, dict):
            if depth >= _MAX_DEPTH:
                yield Unresolved(
                    f"InferenceService {where}",
                    f"nested more than {_MAX_DEPTH} levels deep; modelsec does not read it",
                )
                continue
            yield from _storage_uris(value, where, (*steps, key), depth + 1)


def _hugging_face_runtime(container: Container) -> bool:
    return (
        container.model_format == "huggingface"
        or image_matches(container, HF_SERVER)
        or any(_is_runtime(prog) for prog, _rest in container.programs)
    )


class KServeExtractor:
    name = "kserve"

    def extract(self, workload: Workload) -> Iterator[Found | Unresolved]:
        for component in KSERVE_COMPONENTS:
            node = workload.spec.get(component)
            if not isinstance(node, dict):
                continue
            for item in _storage_uris(node, f"spec.{component}", ("spec", component)):
                if isinstance(item, Unresolved):
                    yield item
                else:
                    where, uri, steps = item
                    yield Found(uri, f"InferenceService {where}", site=Spelled(steps, uri, "kserve"))
        for path, value in workload.annotation_sites(SOURCE_URI_ANNOTATION):
            yield Found(value, f"annotation {SOURCE_URI_ANNOTATION}", site=Spelled(path, value, "kserve"))
        for container in workload.containers:
            if container.init and (
                container.name == STORAGE_INITIALIZER or image_matches(container, "storage-initializer")
            ):
                yield from _initializer(container)
            elif _hugging_face_runtime(container):
                yield from _runtime(container)


def _initializer(container: Container) -> Iterator[Found | Unresolved]:
    """The ``<uri> <dest>`` pairs of every storage-initializer command line, each with the
    environment it runs in (a script may export another endpoint between two of them)."""
    if container.entrypoint:  # KServe's injection: args to the image's entrypoint
        launches = [(container.commands[0] if container.commands else (), container.environment)]
    else:
        launches = [(rest, env) for prog, rest, env in container.launches() if prog in INITIALIZER_PROGRAMS]
        if not launches and container.commands:
            yield Unresolved(
                describe(container, "storage-initializer"),
                "its command lines do not run KServe's storage initializer as modelsec knows it, "
                "so what it downloads cannot be read",
            )
    for args, env in launches:
        downloader = Downloader("kserve", env)
        for uri in args[0::2]:  # <uri> <dest> [<uri> <dest> ...]
            yield Found(
                uri,
                describe(container, "storage-initializer source"),
                site=container.word_site(uri, "kserve"),
                downloaders=(downloader,),
            )


def _is_runtime(program: str) -> bool:
    """``huggingfaceserver``, or a module of it run as the program (``__main__``)."""
    return program == HF_SERVER or program.startswith(f"{HF_SERVER}.")


def _runtime(container: Container) -> Iterator[Found | Unresolved]:
    """The Hugging Face runtime's command lines, read as the vLLM engine it hands them to
    (modelsec.references.hf_runtime)."""
    launches = [(rest, env) for prog, rest, env in container.launches() if _is_runtime(prog)]
    if container.entrypoint and container.commands:  # args to the image's entrypoint
        launches.append((container.commands[0], container.environment))
    if not launches and container.commands:
        yield Unresolved(
            describe(container, HF_SERVER),
            "its command lines do not start KServe's Hugging Face runtime as modelsec knows it, "
            "so what it loads cannot be read",
        )
    for args, env in launches:
        yield from vllm.launch(
            container, vllm.parse(hf_runtime.as_vllm(args)), Downloader("kserve-hf", env), RUNTIME_ENGINE
        )


EXTRACTOR = KServeExtractor()
