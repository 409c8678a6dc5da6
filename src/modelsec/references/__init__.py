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

import dataclasses
import functools
import importlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol

from modelsec.references.container import MARK, ConfigMapData, Container, Unknown, Unreadable, unknowns_in
from modelsec.references.model import (
    Found,
    Invalid,
    Malformed,
    NotAReference,
    Reference,
    Unresolved,
    Workload,
    canonical,
    to_model_ref,
)
from modelsec.references.paths import readings
from modelsec.references.pins import NOT_SAID, Site
from modelsec.references.redirects import Redirected, aliased, redirect_any
from modelsec.sources import ModelRefError

__all__ = [
    "ConfigMapData",
    "Container",
    "EMPTY",
    "Extraction",
    "Extractor",
    "EXTRACTOR_MODULES",
    "Found",
    "Invalid",
    "Reference",
    "Unreadable",
    "Unresolved",
    "Workload",
    "extract",
    "extract_object",
    "extractors",
    "to_model_ref",
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

# A workload naming more models than this is judged on the first ones and reported as
# unjudgeable (the webhook denies it wherever a group applies): the work per request
# stays bounded, and nothing beyond the cap is silently admitted.
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
    """The references, invalid texts and unresolved places found in one workload, or why it is unreadable."""

    references: tuple[Reference, ...] = ()
    invalid: tuple[Invalid, ...] = ()
    unresolved: tuple[Unresolved, ...] = ()
    malformed: str | None = None  # the object itself could not be read: why

    def __bool__(self) -> bool:
        return bool(self.references or self.invalid or self.unresolved or self.malformed)

    @property
    def configmaps(self) -> frozenset[str]:
        """ConfigMaps whose values would resolve some of :attr:`unresolved`."""
        return frozenset(name for u in self.unresolved for name in u.configmaps)


EMPTY = Extraction()


def extract_object(
    kind: str, obj: object, configmaps: Mapping[str, ConfigMapData] | None = None
) -> Extraction:
    """Every model reference a Kubernetes object of ``kind`` carries; never raises for
    what the object holds (a malformed object is an Extraction saying so)."""
    from modelsec.references.workloads import workload_from_object

    try:
        workload = workload_from_object(kind, obj, configmaps)
        return extract(workload) if workload is not None else EMPTY
    except Malformed as exc:
        return Extraction(malformed=str(exc))


def _resolved(
    items: Iterable[Found | Unresolved | Invalid], unresolved: list[Unresolved]
) -> Iterator[Found | Unresolved | Invalid]:
    """``items``, each relative path a program reads replaced by the absolute paths it may
    name (modelsec.references.paths); what cannot be known goes to ``unresolved``."""
    for item in items:
        if not isinstance(item, Found) or item.env is None or item.explicit:
            yield item
            continue
        # (as written: " ../x" is a directory named " .." to the program, not a way out)
        found = readings(item.text, item.env, item.takes_path)
        if found is None:
            yield item
            continue
        for reading in found:
            if isinstance(reading, Unknown):
                unresolved.append(Unresolved(item.origin, reading.why, reading.configmaps))
            else:
                yield dataclasses.replace(item, text=reading)


def extract(workload: Workload) -> Extraction:
    """Every model reference ``workload`` carries, by every registered extractor."""
    origins: dict[tuple[str, str, str, str], tuple[Reference, list[str], list[tuple[Site, str]]]] = {}
    invalid: list[Invalid] = []
    unresolved: list[Unresolved] = list(workload.problems)
    for extractor in extractors():
        for item in _resolved(extractor.extract(workload), unresolved):
            if isinstance(item, Unresolved):
                unresolved.append(item)
                continue
            if isinstance(item, Invalid):
                invalid.append(item)
                continue
            if not item.explicit and (MARK in item.text or (item.revision and MARK in item.revision)):
                # Built from a value the request does not show: say so, never guess or drop.
                for unknown in unknowns_in(item.text + (item.revision or ""), workload.containers):
                    unresolved.append(Unresolved(item.origin, unknown.why, unknown.configmaps))
                continue
            try:
                ref = to_model_ref(item.text, item.revision)
            except NotAReference:
                # Heuristic finds (a relative path, `gs://`) are simply not ours to judge;
                # what a user wrote in modelsec.io/models must be understood.
                if item.explicit:
                    invalid.append(
                        Invalid(
                            item.text,
                            item.origin,
                            "not a model reference (use hf://org/name, s3://bucket/key or file:///path)",
                        )
                    )
                continue
            except ModelRefError as exc:
                if item.explicit:
                    invalid.append(Invalid(item.text, item.origin, str(exc)))
                else:
                    # It looks like a reference (a scheme modelsec judges) but does not
                    # parse: the program may still load something from it.
                    unresolved.append(
                        Unresolved(
                            item.origin,
                            f"{item.text[:200]!r} looks like a model reference but is not one ({exc})",
                        )
                    )
                continue
            endpoint, redirected_by = item.endpoint, None
            if item.downloaders:
                where = redirect_any(item.downloaders, ref.scheme, item.endpoint, MARK)
                if isinstance(where, Redirected):
                    whys = unknowns_in(where.marked, workload.containers) if where.marked else ()
                    for unknown in whys:
                        unresolved.append(
                            Unresolved(item.origin, f"{where.why}: {unknown.why}", unknown.configmaps)
                        )
                    if not whys:
                        unresolved.append(Unresolved(item.origin, where.why))
                    continue
                if where is not None:
                    endpoint, redirected_by = where.url, where.variable
            if workload.host_aliases and (alias := aliased(ref.scheme, endpoint, workload.host_aliases)):
                unresolved.append(
                    Unresolved(
                        item.origin,
                        f"hostAliases maps {alias[0]} to {alias[1]}, so the pod downloads it from an "
                        "address of its choosing",
                    )
                )
                continue
            uri, revision = canonical(ref)
            key = (uri, revision, endpoint or "", redirected_by or "")
            site = item.site or NOT_SAID
            if key in origins:
                origins[key][1].append(item.origin)
                origins[key][2].append((site, item.origin))
            else:
                reference = Reference(ref, endpoint, (), redirected_by=redirected_by)
                origins[key] = (reference, [item.origin], [(site, item.origin)])
    for container in workload.containers:
        container.commands  # noqa: B018 - reading a script reports what could not be read
        unresolved.extend(container.problems)
    references = sorted(
        (
            Reference.found_at(
                r.ref, r.endpoint, tuple(dict.fromkeys(o))[:4], tuple(dict.fromkeys(sites)), r.redirected_by
            )
            for r, o, sites in origins.values()
        ),
        key=lambda r: r.sort_key,
    )
    if len(references) > MAX_REFERENCES:
        unresolved.append(
            Unresolved(
                "workload",
                f"too many model references to judge: {len(references)}, more than "
                f"{MAX_REFERENCES}; only the first are judged",
            )
        )
        references = references[:MAX_REFERENCES]
    if not (references or invalid or unresolved):
        return EMPTY
    return Extraction(tuple(references), tuple(invalid), tuple(dict.fromkeys(unresolved)))
