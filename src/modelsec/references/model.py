"""The shapes extractors work on and produce, and how found text becomes a ModelRef."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Mapping

from modelsec.sources import ModelRef, ModelRefError, parse_model_uri

if TYPE_CHECKING:
    from modelsec.references.container import Container


# Every annotation an extractor reads. Like container.FIELDS, the webhook caches
# extractions keyed by exactly these, so Workload refuses to read any other.
ANNOTATIONS = (
    "modelsec.io/models",
    "internal.serving.kserve.io/storage-initializer-sourceuri",
)


@dataclass(frozen=True)
class Workload:
    """What extractors read: annotations (object first, then pod template), containers,
    and for kinds that are not pod templates (InferenceService) the raw spec."""

    kind: str
    annotations: tuple[Mapping[str, str], ...] = ()
    containers: tuple[Container, ...] = ()
    spec: Mapping[str, object] = field(default_factory=dict)

    def annotation_values(self, key: str) -> tuple[str, ...]:
        if key not in ANNOTATIONS:
            raise KeyError(f"{key}: add it to modelsec.references.model.ANNOTATIONS first")
        return tuple(a[key] for a in self.annotations if isinstance(a.get(key), str))


@dataclass(frozen=True)
class Found:
    """A model named by a workload, before parsing. ``explicit`` marks text a user wrote to
    name a model for modelsec (the annotation): if it cannot be parsed that is an error,
    whereas a heuristic find that is not a reference is just ignored."""

    text: str
    origin: str  # where: "container vllm: --model", "annotation modelsec.io/models"
    revision: str | None = None
    endpoint: str | None = None  # object-store endpoint named with the reference (Triton)
    explicit: bool = False


@dataclass(frozen=True)
class Reference:
    ref: ModelRef
    endpoint: str | None
    origins: tuple[str, ...]

    @property
    def sort_key(self) -> tuple[str, str, str]:
        return (self.ref.uri, self.ref.revision or "", self.endpoint or "")

    def __str__(self) -> str:
        return str(self.ref)


@dataclass(frozen=True)
class Invalid:
    text: str
    origin: str
    problem: str


@dataclass(frozen=True)
class Unresolved:
    """A model named through something the workload does not carry (a ConfigMap or Secret
    value, a variable set at run time), so it cannot be judged from the object."""

    origin: str
    why: str


class NotAReference(ModelRefError):
    """The text does not name a model modelsec can judge (relative path, other scheme)."""


# Hub ids: `org/name`, each part [A-Za-z0-9._-], no leading dot or dash, <= 96 chars.
_HF_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_HF_URI = re.compile(r"^hf://([A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*)(?:@([^@/\s]+))?$")
_SCHEMES = ("hf://", "s3://", "file://", "https://huggingface.co/", "http://huggingface.co/",
            "https://www.huggingface.co/")


def to_model_ref(text: str, revision: str | None = None) -> ModelRef:
    """Parse text found in a workload the way the serving stack reads it.

    - ``hf://``, ``s3://``, ``file://`` and huggingface.co URLs as
      :func:`~modelsec.sources.parse_model_uri` reads them; ``hf://org/name:rev`` (KServe's
      spelling) carries a revision too;
    - a bare Hub id ``org/name`` is ``hf://org/name`` (what vLLM, TGI and TEI do with it);
    - an absolute path is ``file:///path`` (judged only where a Local source holds it).

    Raises :class:`NotAReference` for anything else (relative paths, single names,
    ``gs://``, ``pvc://``), :class:`ModelRefError` for malformed references.
    """
    text = text.strip()
    revision = revision.strip() if revision else None
    if not text:
        raise NotAReference("empty")
    lowered = text.lower()
    if lowered.startswith("hf://"):
        head, sep, tail = text[5:].partition(":")
        if sep and "@" not in head:  # hub names have no ':'; KServe writes hf://org/name:rev
            if not tail:
                raise ModelRefError(f"{text}: empty revision after ':'")
            text, revision = f"hf://{head}", revision or tail
        fast = _HF_URI.match(text)
        if fast is not None:  # the common case, without urlsplit; same result
            return ModelRef("hf", fast.group(1), revision or fast.group(2))
        return parse_model_uri(text, revision)
    if lowered.startswith(_SCHEMES):
        return parse_model_uri(text, revision)
    if "://" in text:
        raise NotAReference(f"{text}: scheme not judged by modelsec")
    if text.startswith("/"):
        return ModelRef("file", _clean_path(text), revision)
    if _HF_ID.match(text) and ".." not in text:
        return ModelRef("hf", text, revision)
    raise NotAReference(f"{text}: neither a Hub id, an absolute path nor a URI")


def _clean_path(path: str) -> str:
    import posixpath

    return "/" + posixpath.normpath(path).lstrip("/")
