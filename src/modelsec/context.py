"""Per-file scanning context: where findings go, how deep we are, which limits apply."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from modelsec.bytesource import ByteSource
from modelsec.findings import Finding, Incomplete


@dataclass(frozen=True)
class Limits:
    """Bounds that keep hostile input from costing unbounded time, memory or disk."""

    max_depth: int = 6  # nested containers (zip in tar in zip ...)
    max_members: int = 50_000  # members across one top-level file
    max_expansion_ratio: float = 250.0  # decompressed / compressed, per member
    max_expanded_bytes: int = 32 << 30  # total bytes decompressed for one top-level file
    max_spool_bytes: int = 8 << 30  # one decompressed member copied for random access
    max_pickle_opcodes: int = 50_000_000  # per pickle stream
    max_pickle_memo: int = 1_000_000  # memo entries tracked symbolically
    max_inline_bytes: int = 64 << 20  # literal kept in memory for nested-pickle analysis
    max_header_bytes: int = 100 << 20  # safetensors / GGUF / JSON headers
    max_findings_per_file: int = 1_000  # further findings are counted, not kept
    # Out-of-process readers (libhdf5) for one top-level file, in total: an archive of many
    # HDF5 members must not cost PROBE_TIMEOUT each.
    max_probe_seconds: float = 300.0


MAX_NEEDS = 1000  # other files one file may make its loader open (ScanContext.needs_sibling)
UNSCANNED_SIBLING = "MS-GEN-005"  # a file's loader opens another that the scan does not hold
HEAD_SIZE = 64 * 1024  # bytes read up front for detection (and for sniffing members)


class FormatCategory(str, enum.Enum):
    """What a recognised format is to policy (re-exported by :mod:`modelsec.formats.base`
    for format authors; it lives here because the foundation records it)."""

    MODEL = "model"  # weights/graphs: what ApprovedFormats is about
    CONTAINER = "container"  # zip, tar, compressed streams: members are scanned in turn
    AUXILIARY = "auxiliary"  # configs, templates, text: scanned, not a model format
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class FormatRecord:
    """The format a file (or archive member) was read as."""

    path: str
    format: str
    category: FormatCategory


_Kept = TypeVar("_Kept")


class ScanSession:
    """What the scans of one engine share across files: state a format keeps from one file
    to the next (the pickle scanner's stream templates), one object per class. It lives
    as long as the engine, so whatever is kept must bound its own size."""

    def __init__(self) -> None:
        self._kept: dict[type, object] = {}

    def kept(self, kind: type[_Kept]) -> _Kept:
        """The session's ``kind`` object, made with ``kind()`` the first time. Scans in
        several threads (the operator's) get the same one: what is kept guards itself."""
        found = self._kept.get(kind)
        if not isinstance(found, kind):
            found = self._kept.setdefault(kind, kind())  # atomic: one object wins
            assert isinstance(found, kind)
        return found


@dataclass
class ScanSink:
    """Everything one top-level file produced, shared by its nested contexts."""

    limits: Limits
    session: ScanSession = field(default_factory=ScanSession)
    findings: list[Finding] = field(default_factory=list)
    incompletes: list[Incomplete] = field(default_factory=list)
    formats: list[FormatRecord] = field(default_factory=list)
    dropped_findings: int = 0
    seen: set[Finding] = field(default_factory=set)  # de-duplication without a list scan
    members_seen: int = 0
    expanded_bytes: int = 0
    probe_seconds: float = 0.0  # spent in out-of-process readers (Limits.max_probe_seconds)
    # Other files a loader of this one opens (display paths): the model's scan must hold
    # them, or it is incomplete (modelsec.engine.unscanned_needs)
    needs: list[str] = field(default_factory=list)
    needs_dropped: int = 0  # past MAX_NEEDS (the scan is incomplete)


Dispatcher = Callable[[ByteSource, "ScanContext", "str | None"], None]


class FormatView(Protocol):
    """The registered formats as a scanner may consult them, implemented by the engine and
    handed to every context: containers recognise members through it, so that nothing
    below the engine imports the format registry (which imports the containers)."""

    def sniff(self, source: ByteSource, name: str, signatures_only: bool) -> str | None:
        """The first format that claims ``source`` by content (``name`` is the member's
        name), or None; with ``signatures_only``, permissive detectors are not asked."""
        ...

    def knows(self, format_name: str) -> bool:
        """True if a scanner for ``format_name`` is registered."""
        ...


class _NoFormats:
    """For contexts built without the engine (unit tests of one scanner): any question
    about other formats is an error, which the engine reports as incomplete (fail closed)."""

    def sniff(self, source: ByteSource, name: str, signatures_only: bool) -> str | None:
        raise RuntimeError(f"cannot recognise {name}: this scan context has no format view")

    def knows(self, format_name: str) -> bool:
        raise RuntimeError(f"cannot look up {format_name}: this scan context has no format view")


class ScanContext:
    """Handed to a :class:`FormatScanner` for one file or archive member.

    ``path`` is the display path (``model.zip!archive/data.pkl``), ``depth`` the container
    nesting. Use :meth:`report` for findings, :meth:`incomplete` for what could not be
    inspected, :meth:`scan_member` to hand a member back to the engine for detection.
    """

    def __init__(
        self,
        path: str,
        sink: ScanSink,
        dispatch: Dispatcher,
        depth: int = 0,
        formats: FormatView | None = None,
    ) -> None:
        self.path = path
        self.depth = depth
        self._sink = sink
        self._dispatch = dispatch
        self._formats: FormatView = formats or _NoFormats()
        self._format_index: int | None = None

    @property
    def limits(self) -> Limits:
        return self._sink.limits

    @property
    def session(self) -> ScanSession:
        return self._sink.session

    def mark(self) -> tuple[object, ...]:
        """Everything this context's scan can have changed so far, to compare with a later
        mark (:meth:`untouched_since`)."""
        sink = self._sink
        return (
            len(sink.findings),
            sink.dropped_findings,
            len(sink.incompletes),
            len(sink.formats),
            self.format_record,
            len(sink.needs),
            sink.needs_dropped,
            sink.members_seen,
            sink.expanded_bytes,
            sink.probe_seconds,
        )

    def untouched_since(self, mark: tuple[object, ...]) -> bool:
        """True if nothing was reported, recorded, counted or scanned since ``mark``."""
        return self.mark() == mark

    def report(self, finding: Finding) -> None:
        if len(self._sink.findings) >= self.limits.max_findings_per_file:
            self._sink.dropped_findings += 1
            return
        if finding not in self._sink.seen:
            self._sink.seen.add(finding)
            self._sink.findings.append(finding)

    def incomplete(self, reason: str, code: str = "MS-GEN-001", path: str | None = None) -> None:
        self._sink.incompletes.append(Incomplete(path or self.path, reason, code))

    def needs_sibling(self, name: str) -> None:
        """A loader of this file also opens ``name``, relative to its directory (an old
        joblib dump's ``.npy`` files): judged only with that file, which the scan of the
        model must hold. ``name`` is a normalised relative path inside the directory."""
        sink = self._sink
        if len(sink.needs) >= MAX_NEEDS:
            if not sink.needs_dropped:
                self.incomplete(
                    f"its loader opens more than {MAX_NEEDS} other files; the rest were not matched"
                )
            sink.needs_dropped += 1
            return
        if self.depth:
            # an archive member: the loader of an extracted copy opens a file beside it,
            # which modelsec does not match against the members (a name may hold "!")
            self.incomplete(
                f"its loader also opens {name!r} beside it, and that is not matched inside an "
                "archive; extract the archive and scan the directory",
                code=UNSCANNED_SIBLING,
            )
            return
        # beside this file, as the loader joins it: the directory of its display path (a
        # local path, or a remote source's key)
        directory, slash, _ = self.path.rpartition("/")
        sink.needs.append(f"{directory}{slash}{name}")

    def set_format(self, name: str, category: FormatCategory) -> None:
        """Record (or refine) the format of the file this context covers."""
        record = FormatRecord(self.path, name, category)
        if self._format_index is None:
            self._format_index = len(self._sink.formats)
            self._sink.formats.append(record)
        else:
            self._sink.formats[self._format_index] = record

    @property
    def format_record(self) -> FormatRecord | None:
        """What :meth:`set_format` last recorded for this context, if anything."""
        return None if self._format_index is None else self._sink.formats[self._format_index]

    def alongside(self) -> ScanContext:
        """A context for another reading of the same bytes (a file that is two formats):
        same path and depth, its own format record."""
        return ScanContext(self.path, self._sink, self._dispatch, self.depth, self._formats)

    def sniff(self, source: ByteSource, name: str, *, signatures_only: bool = False) -> str | None:
        """The format that would claim member ``name`` by content, without scanning it.
        With ``signatures_only``, permissive detectors are not asked: for bytes no loader
        parses (raw tensor storage) they would mistake noise for a format about once a
        hundred."""
        return self._formats.sniff(source, name, signatures_only)

    def knows_format(self, format_name: str) -> bool:
        """True if a scanner for ``format_name`` is registered (``expect`` can force it)."""
        return self._formats.knows(format_name)

    def member_path(self, name: str) -> str:
        return f"{self.path}!{name}"

    def count_member(self) -> bool:
        """Count one archive member; False (and an incomplete) once the limit is reached."""
        self._sink.members_seen += 1
        if self._sink.members_seen > self.limits.max_members:
            if self._sink.members_seen == self.limits.max_members + 1:
                self.incomplete(
                    f"more than {self.limits.max_members} archive members; the rest were not inspected",
                    code="MS-ARC-010",
                )
            return False
        return True

    def account_expansion(self, nbytes: int) -> None:
        """Add decompressed bytes to the file's budget; raises LimitExceeded past it."""
        from modelsec.bytesource import LimitExceeded

        self._sink.expanded_bytes += nbytes
        if self._sink.expanded_bytes > self.limits.max_expanded_bytes:
            raise LimitExceeded(f"more than {self.limits.max_expanded_bytes} bytes decompressed in total")

    def probe_seconds_left(self) -> float:
        """What is left of the file's budget for out-of-process readers."""
        return self.limits.max_probe_seconds - self._sink.probe_seconds

    def account_probe(self, seconds: float) -> None:
        self._sink.probe_seconds += seconds

    def scan_member(self, source: ByteSource, name: str, expect: str | None = None) -> None:
        """Detect and scan a member (or a nested payload) in a child context.

        ``expect`` forces a format name (a nested pickle passed to ``pickle.loads``); else
        the member is recognised by content. Depth is enforced here.
        """
        child = ScanContext(self.member_path(name), self._sink, self._dispatch, self.depth + 1, self._formats)
        if child.depth > self.limits.max_depth:
            child.incomplete(
                f"nested deeper than {self.limits.max_depth} levels; not inspected",
                code="MS-ARC-011",
            )
            return
        self._dispatch(source, child, expect)
