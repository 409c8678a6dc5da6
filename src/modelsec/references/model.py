"""The shapes extractors work on and produce, and how found text becomes a ModelRef."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit, urlunsplit

from modelsec.references.pins import Path, Site, pinnable
from modelsec.sources import ModelRef, ModelRefError, parse_model_uri

if TYPE_CHECKING:
    from modelsec.references.container import Container, Env
    from modelsec.references.redirects import Downloader


# Every annotation an extractor reads. Like container.FIELDS, the webhook caches
# extractions keyed by exactly these, so Workload refuses to read any other.
ANNOTATIONS = (
    "modelsec.io/models",
    "internal.serving.kserve.io/storage-initializer-sourceuri",
)

# The longest reference a ModelScan can record (spec.model's maxLength): a longer one can
# never get a verdict, so it is refused at once rather than left pending forever.
MAX_REFERENCE_LENGTH = 2048
MAX_REVISION_LENGTH = 256


@dataclass(frozen=True)
class Workload:
    """What extractors read: annotations (object first, then pod template), containers,
    and for kinds that are not pod templates (InferenceService) the raw spec."""

    kind: str
    annotations: tuple[Mapping[str, str], ...] = ()
    containers: tuple[Container, ...] = ()
    spec: Mapping[str, object] = field(default_factory=dict)
    # Problems found while reading the object that make part of it unjudgeable (more
    # containers than are read, ...): reported with the extraction, never dropped.
    problems: tuple[Unresolved, ...] = ()
    # Where each of ``annotations`` is in the object (for pinning): same order.
    annotation_paths: tuple[Path, ...] = ()
    # The pod's ``hostAliases``, (hostname, ip): /etc/hosts lines that send a host's
    # connections to an address of the workload's choosing (modelsec.references.redirects)
    host_aliases: tuple[tuple[str, str], ...] = ()

    def annotation_values(self, key: str) -> tuple[str, ...]:
        if key not in ANNOTATIONS:
            raise KeyError(f"{key}: add it to modelsec.references.model.ANNOTATIONS first")
        return tuple(a[key] for a in self.annotations if isinstance(a.get(key), str))

    def annotation_sites(self, key: str) -> tuple[tuple[Path, str], ...]:
        """(path of the value in the object, value) of annotation ``key`` at each level."""
        if key not in ANNOTATIONS:
            raise KeyError(f"{key}: add it to modelsec.references.model.ANNOTATIONS first")
        paths = self.annotation_paths or tuple(("metadata", "annotations") for _ in self.annotations)
        return tuple(
            ((*path, key), a[key]) for path, a in zip(paths, self.annotations) if isinstance(a.get(key), str)
        )


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
    site: Site | None = None  # how the serving stack takes a revision there (pinning)
    # The programs that may download it, each with its environment, which may send the
    # download to another server (modelsec.references.redirects): one where the workload
    # says which program reads it, every container for the annotation, none for a path.
    downloaders: tuple[Downloader, ...] = field(default=(), compare=False, repr=False)
    # The environment of the command line it was found on (its working directory and
    # $HOME): a relative path is resolved against it (modelsec.references.paths). None
    # where no program reads it (the annotation, KServe's storageUri).
    env: Env | None = field(default=None, compare=False, repr=False)
    takes_path: bool = False  # the program reads a path there (not a Hub id): `gpt2` is ./gpt2


@dataclass(frozen=True)
class Reference:
    """A model a workload names, parsed: its endpoint, where it was found and whether it can be pinned."""

    ref: ModelRef
    endpoint: str | None
    origins: tuple[str, ...]
    # Where the workload names it, for pinning: data only, and not part of equality (the
    # webhook's caches key on references); ``pinnable`` is, since decisions depend on it.
    sites: tuple[Site, ...] = field(default=(), compare=False, repr=False)
    pinnable: bool = False
    site_origins: tuple[str, ...] = field(default=(), compare=False, repr=False)  # one per site
    # The environment variable that set ``endpoint`` (HF_ENDPOINT, AWS_ENDPOINT_URL...):
    # the download goes there instead of where the reference says, so it is judged only
    # by a ModelSource of that endpoint, and is unresolved where there is none.
    redirected_by: str | None = None

    @classmethod
    def found_at(
        cls,
        ref: ModelRef,
        endpoint: str | None,
        origins: tuple[str, ...],
        sites: tuple[tuple[Site, str], ...],
        redirected_by: str | None = None,
    ) -> Reference:
        """``sites``: (site, origin) of every place it was found."""
        return cls(
            ref,
            endpoint,
            origins,
            tuple(s for s, _ in sites),
            any(pinnable(s, ref.scheme) for s, _ in sites),
            tuple(o for _, o in sites),
            redirected_by,
        )

    @property
    def sort_key(self) -> tuple[str, str, str]:
        return (self.ref.uri, self.ref.revision or "", self.endpoint or "")

    def __str__(self) -> str:
        return str(self.ref)


@dataclass(frozen=True)
class Invalid:
    """Text a user wrote to name a model that is not a usable reference, or an object the
    webhook cannot read: always denied."""

    text: str
    origin: str
    problem: str


@dataclass(frozen=True)
class Unresolved:
    """A place where the workload names a model that cannot be judged from the object: a
    value from a ConfigMap or Secret, a shell variable set elsewhere, an argument that looks
    like a reference but does not parse, more of something than modelsec reads.

    ``configmaps`` names the ConfigMaps (in the workload's namespace) whose values would
    resolve it; the webhook may read them and extract again."""

    origin: str
    why: str
    configmaps: tuple[str, ...] = ()


class NotAReference(ModelRefError):
    """The text does not name a model modelsec can judge (relative path, other scheme)."""


class Malformed(ValueError):
    """A field extractors read has a JSON type Kubernetes never sends there (a list where a
    string belongs, a container that is not an object). The API server validates built-in
    kinds, so this comes from a direct call or a custom resource with a loose schema."""

    def __init__(self, path: str, expected: str) -> None:
        super().__init__(f"{path} is not {expected}")
        self.path = path
        self.expected = expected


# Hub ids: `org/name`, each part [A-Za-z0-9._-], no leading dot or dash, <= 96 chars.
HF_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_HF_URI = re.compile(r"^hf://([A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*)(?:@([^@/\s]+))?$")
_COMMIT = re.compile(r"^[0-9a-fA-F]{40}$")
_SPACE = re.compile(r"\s")
SCHEMES = ("hf://", "s3://", "file://")
# The Hub's own host names: a client fetches the same files from each.
HUB_HOSTS = frozenset({"huggingface.co", "www.huggingface.co", "hf.co"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


def reference_problem(text: str, revision: str | None = None) -> str | None:
    """Why ``text`` (with ``revision``) can never be recorded and judged, or None: control or
    invisible characters (a NUL, a newline, a bidi override) and lengths a ModelScan cannot
    hold. Checked before parsing, by the webhook and the operator alike."""
    if not text.isprintable():
        return "it contains control or invisible characters"
    if len(text) > MAX_REFERENCE_LENGTH:
        return f"it is longer than {MAX_REFERENCE_LENGTH} characters"
    if revision is not None:
        if not revision.isprintable() or _SPACE.search(revision):
            return "its revision contains spaces, control or invisible characters"
        if len(revision) > MAX_REVISION_LENGTH:
            return f"its revision is longer than {MAX_REVISION_LENGTH} characters"
    return None


def to_model_ref(text: str, revision: str | None = None) -> ModelRef:
    """Parse text found in a workload the way the serving stack reads it.

    - ``hf://``, ``s3://``, ``file://`` and Hub URLs (every spelling of the Hub's host:
      :func:`hub_url`) as :func:`~modelsec.sources.parse_model_uri` reads them;
      ``hf://org/name:rev`` (KServe's spelling) carries a revision too;
    - a bare Hub id ``org/name`` is ``hf://org/name`` (what vLLM, TGI and TEI do with it);
    - an absolute path is ``file:///path`` (judged only where a Local source holds it).

    Local paths come out in one canonical spelling (``//``, ``./`` and ``a/..`` folded), so
    that every spelling of a file is one ModelScan.

    Raises :class:`NotAReference` for anything else (relative paths, single names,
    ``gs://``, ``pvc://``), :class:`ModelRefError` for malformed references.
    """
    text = text.strip()
    revision = revision.strip() if revision else None
    if not text:
        raise NotAReference("empty")
    problem = reference_problem(text, revision)
    if problem:
        raise ModelRefError(f"{text[:80]!r}: not a usable reference: {problem}")
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
        return _checked(parse_model_uri(text, revision))
    if lowered.startswith(("http://", "https://")):
        url = hub_url(text)
        if url is None:
            raise NotAReference(f"{text}: not a Hugging Face Hub URL")
        return _checked(parse_model_uri(url, revision))
    if lowered.startswith(SCHEMES):
        return _checked(parse_model_uri(text, revision))
    if "://" in text:
        raise NotAReference(f"{text}: scheme not judged by modelsec")
    if text.startswith("/"):
        return ModelRef("file", clean_path(text), revision)
    if HF_ID.match(text) and ".." not in text:
        return ModelRef("hf", text, revision)
    raise NotAReference(f"{text}: neither a Hub id, an absolute path nor a URI")


def hub_url(text: str) -> str | None:
    """``text`` spelled ``https://huggingface.co/<path>`` when it is an http(s) URL that a
    client (curl, requests) fetches from the Hub, whatever its spelling: any case of the
    host, ``hf.co`` or ``www.``, user info (``anon@``), the scheme's default port, a
    trailing dot after the host (the same DNS name). None for a URL on another server
    (another port included).

    Raises :class:`ModelRefError` for a URL that does not parse, or whose path has ``.``
    or ``..`` segments (plain or percent-encoded): clients fold them before sending, so
    ``/good/model/../../evil/model/...`` fetches another repository than it names."""
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise ModelRefError(f"{text[:200]}: not a valid URL ({exc})") from None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")  # hostname: lower case, no user info or port
    if scheme not in _DEFAULT_PORTS or host not in HUB_HOSTS:
        return None
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        return None
    if any(segment in (".", "..") for segment in unquote(parts.path).split("/")):
        raise ModelRefError(f"{text[:200]}: '.' and '..' segments name another path than they spell")
    return urlunsplit(("https", "huggingface.co", parts.path, parts.query, ""))


def _checked(ref: ModelRef) -> ModelRef:
    if ref.scheme == "file":
        return ModelRef("file", clean_path(ref.location), ref.revision)
    if ref.scheme == "hf" and not HF_ID.match(ref.location):
        raise ModelRefError(f"hf://{ref.location}: not a Hub id (org/name, letters, digits, . _ -)")
    if ref.scheme == "s3" and dot_segments(ref.location):
        raise ModelRefError(
            f"s3://{ref.location}: '.' and '..' segments are ambiguous in S3 keys "
            "(clients and servers fold them differently)"
        )
    return ref


def dot_segments(key: str) -> bool:
    """Whether an object key has ``.`` or ``..`` segments: S3 keys are literal, but HTTP
    clients, proxies and servers may fold them, so the bytes read could lie outside the
    prefix a source covers."""
    return any(part in (".", "..") for part in key.split("/"))


def clean_path(path: str) -> str:
    """The canonical spelling of an absolute path: ``//``, ``.`` and ``a/..`` folded
    lexically, as the webhook's source matching folds them."""
    return "/" + posixpath.normpath("/" + path).lstrip("/")


def canonical(ref: ModelRef) -> tuple[str, str]:
    """(uri, revision) naming what ``ref`` loads, one spelling per model: Local paths
    folded (:func:`clean_path`), Hub ids lower-cased (the Hub resolves repository ids
    case-insensitively) and Hub commit shas too. S3 keys are case-sensitive and kept."""
    revision = ref.revision or ""
    if ref.scheme == "file":
        return f"file://{clean_path(ref.location)}", revision
    if ref.scheme == "hf":
        if _COMMIT.match(revision):
            revision = revision.lower()
        return f"hf://{ref.location.lower()}", revision
    return ref.uri, revision
