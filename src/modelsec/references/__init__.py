"""Model references in workloads: which models a Pod, a pod template or a KServe
InferenceService will load.

A workload is first normalised (:mod:`.workloads`: pod specs of every controller kind; :mod:`.container`: commands split
as the kubelet and a shell would split them, literal environment values);
then each *extractor* reads it with the conventions of one serving stack. An extractor is
one module under ``modelsec.references`` exposing ``EXTRACTOR`` (see :class:`Extractor`)
and one line in :data:`EXTRACTOR_MODULES`.

What comes out is a sorted, de-duplicated tuple of :class:`Reference` (a parsed
:class:`~modelsec.sources.ModelRef` plus where it was found), the references that were
explicitly written but cannot be understood (:class:`Invalid`), and places where a model
is named by something modelsec cannot see (:class:`Unresolved`, e.g. ``MODEL_ID`` from a
ConfigMap). The admission webhook judges all three; ``modelsec`` tools can print them.
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass
from typing import Iterable, Protocol

from modelsec.references.container import Container
from modelsec.references.model import (
    Found,
    Invalid,
    NotAReference,
    Reference,
    Unresolved,
    Workload,
    to_model_ref,
)
from modelsec.sources import ModelRefError

__all__ = [
    "Container", "EMPTY", "Extraction", "Extractor", "EXTRACTOR_MODULES", "Found", "Invalid",
    "Reference", "Unresolved", "Workload", "extract", "extractors", "to_model_ref",
]

# One line per serving convention: module under modelsec.references exposing EXTRACTOR.
EXTRACTOR_MODULES: tuple[str, ...] = (
    "annotation",
    "kserve",
    "vllm",
    "tgi",
    "llamacpp",
    "triton",
)

# A workload naming more models than this is judged on the first ones and the rest are
# reported as one Invalid entry: the webhook's work per request stays bounded.
MAX_REFERENCES = 64


class Extractor(Protocol):
    name: str

    def extract(self, workload: Workload) -> Iterable[Found | Unresolved | Invalid]: ...


@functools.cache
def extractors() -> tuple[Extractor, ...]:
    return tuple(
        importlib.import_module(f"modelsec.references.{name}").EXTRACTOR for name in EXTRACTOR_MODULES
    )


@dataclass(frozen=True)
class Extraction:
    references: tuple[Reference, ...] = ()
    invalid: tuple[Invalid, ...] = ()
    unresolved: tuple[Unresolved, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.references or self.invalid or self.unresolved)


EMPTY = Extraction()


def extract(workload: Workload) -> Extraction:
    """Every model reference ``workload`` carries, by every registered extractor."""
    origins: dict[tuple[str, str, str], tuple[Reference, list[str]]] = {}
    invalid: list[Invalid] = []
    unresolved: list[Unresolved] = []
    for extractor in extractors():
        for item in extractor.extract(workload):
            if isinstance(item, Unresolved):
                unresolved.append(item)
                continue
            if isinstance(item, Invalid):
                invalid.append(item)
                continue
            try:
                ref = to_model_ref(item.text, item.revision)
            except NotAReference:
                # Heuristic finds (a relative path, `gs://`) are simply not ours to judge;
                # what a user wrote in modelsec.io/models must be understood.
                if item.explicit:
                    invalid.append(Invalid(item.text, item.origin, "not a model reference "
                                           "(use hf://org/name, s3://bucket/key or file:///path)"))
                continue
            except ModelRefError as exc:
                if item.explicit:
                    invalid.append(Invalid(item.text, item.origin, str(exc)))
                continue
            key = (ref.uri, ref.revision or "", item.endpoint or "")
            if key in origins:
                origins[key][1].append(item.origin)
            else:
                origins[key] = (Reference(ref, item.endpoint, ()), [item.origin])
    references = sorted(
        (Reference(r.ref, r.endpoint, tuple(dict.fromkeys(o))[:4]) for r, o in origins.values()),
        key=lambda r: r.sort_key,
    )
    if len(references) > MAX_REFERENCES:
        invalid.append(Invalid(
            f"{len(references) - MAX_REFERENCES} more", "workload",
            f"more than {MAX_REFERENCES} model references in one workload",
        ))
        references = references[:MAX_REFERENCES]
    if not (references or invalid or unresolved):
        return EMPTY
    return Extraction(tuple(references), tuple(invalid), tuple(unresolved))
