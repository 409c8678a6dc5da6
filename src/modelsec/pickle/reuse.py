"""One pickle's analysis reused for files laid out byte for byte alike (issue 14).

A directory of checkpoints, shards or per-fold models holds pickles that differ only in
their array data: the same opcodes, names, shapes and dtypes, other numbers in the bytes
literals. The machine's verdict on such a stream does not depend on those bytes unless a
check reads them, so the scan of one file can stand for the others, if that is proven
rather than assumed:

- A **template** is a clean file (its real scan reported nothing) scanned a second time
  with every bytes literal of :data:`~modelsec.pickle.opcodes.HOLE_MIN` bytes or more (a
  *hole*) replaced by a :class:`~modelsec.pickle.opcodes.Blob` that holds none of its
  content. Large literals are Blobs in every scan anyway (past 8 KiB), so the machine
  already treats a Blob as bytes it has not seen: at least as strictly as any content.
- Whatever that scan reads back from the file (a contract decoding array values, a loader
  payload, an embedded pickle) is recorded; a read that touches a hole means the verdict
  depends on hole bytes, and there is no template. So is a scan that reported anything,
  scanned a member, or changed the file's format.
- A later file **matches** a template when it has the same size and the same bytes
  everywhere outside the holes (so the same opcode stream, lengths included), and no hole
  of it looks like an embedded pickle (the one content test the machine makes of every
  literal as it reads it). A match is that clean verdict; anything else is scanned in full.

A template without holes stands for files of the same bytes (the pickle of one torch.save
layout in many checkpoints). A template is built on the second file of a (size, head)
seen, so a directory of unrelated pickles pays nothing but a dictionary lookup per file. Only small files take part: the
cost saved is per-file analysis, which large files amortise by themselves.
"""

from __future__ import annotations

import bisect
import threading
from collections import OrderedDict
from dataclasses import dataclass

from modelsec.bytesource import ByteSource, BytesSource
from modelsec.context import Limits, ScanContext, ScanSink
from modelsec.pickle.embedded import looks_embedded

MAX_TEMPLATE_BYTES = 1 << 20  # larger files are always scanned in full
# What one session (engine: the operator keeps one for its life) holds, oldest dropped first
MAX_TEMPLATES = 256
MAX_HELD_BYTES = 16 << 20
MAX_SIGHTINGS = 4096  # (size, head) keys remembered while waiting for a second file
# Bytes of a file's head in its key: its protocol and first opcode (a hole may follow soon)
KEY_HEAD = 8


@dataclass(frozen=True)
class Template:
    """A clean file's bytes and the spans (start, end) of its holes, sorted and disjoint."""

    data: bytes
    holes: tuple[tuple[int, int], ...]

    def matches(self, data: bytes) -> bool:
        """``data`` has this template's bytes outside the holes, and no hole that could be
        an embedded pickle."""
        if len(data) != len(self.data):
            return False
        template, at = self.data, 0
        for start, end in self.holes:
            if data[at:start] != template[at:start] or looks_embedded(data[start:end]):
                return False
            at = end
        return data[at:] == template[at:]


class _RecordingSource:
    """A file's bytes that record every span read through them."""

    def __init__(self, data: bytes) -> None:
        self._data = BytesSource(data)
        self.reads: list[tuple[int, int]] = []

    @property
    def size(self) -> int:
        return self._data.size

    def read_at(self, offset: int, length: int) -> bytes:
        self.reads.append((offset, offset + length))
        return self._data.read_at(offset, length)


class _NoMembers:
    """The template scan's dispatcher: a member or nested payload scanned means the
    verdict rests on more than this stream, and there is no template."""

    def __init__(self) -> None:
        self.called = False

    def __call__(self, source: ByteSource, ctx: ScanContext, expect: str | None) -> None:
        self.called = True


def _merged(spans: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """Spans sorted, overlapping ones joined (joblib's plain-pickle view reads some bytes
    a second time, so the same literal may be recorded twice)."""
    out: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return tuple(out)


def _overlaps(reads: list[tuple[int, int]], holes: tuple[tuple[int, int], ...]) -> bool:
    """True if a read touches a hole. Holes are sorted and disjoint, so the only one a read
    can touch first is the last that starts before the read ends."""
    starts = [start for start, _ in holes]
    for start, end in reads:
        last = bisect.bisect_left(starts, end) - 1
        if last >= 0 and holes[last][1] > start:
            return True
    return False


def build_template(data: bytes, limits: Limits) -> Template | None:
    """The template of ``data`` (a file whose real scan was clean), or None if its verdict
    could depend on the bytes of its holes."""
    from modelsec.pickle.scanner import PickleScan  # (the scanner consults this module)

    sink = ScanSink(limits)
    members = _NoMembers()
    ctx = ScanContext("<template>", sink, members)
    mark = ctx.mark()
    reads = _RecordingSource(data)
    spans: list[tuple[int, int]] = []
    scan = PickleScan(reads, ctx, refine_format=True, stream=BytesSource(data), holes=spans)
    try:
        scan.scan_all()
    except Exception:  # whatever went wrong, the file is simply scanned in full each time
        return None
    # joblib's array bytes are read twice, the second time as opcodes by plain pickle.load:
    # a hole there would be content that view runs (today the format's refinement to
    # "joblib" already refuses these files; this does not rest on it)
    if members.called or scan.joblib_arrays or not ctx.untouched_since(mark):
        return None
    holes = _merged(spans)
    if _overlaps(reads.reads, holes):
        return None
    return Template(data, holes)


class StreamTemplates:
    """The templates of one scan session (one engine, one set of limits at a time). The
    operator scans in several threads with one engine: the tables are changed under a
    lock, and a template is built outside it (a template never changes once made)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._templates: OrderedDict[tuple[int, bytes], Template | None] = OrderedDict()
        self._held = 0  # bytes of the templates' files
        self._sightings: set[tuple[int, bytes]] = set()
        self._limits: Limits | None = None

    def _key(self, source: ByteSource, limits: Limits) -> tuple[int, bytes] | None:
        size = source.size
        if size > MAX_TEMPLATE_BYTES or size <= KEY_HEAD:
            return None
        return size, source.read_at(0, KEY_HEAD)

    def _for(self, limits: Limits) -> None:
        """(Under the lock.) Templates hold for the limits they were scanned under."""
        if limits is not self._limits:
            self._templates.clear()
            self._sightings.clear()
            self._held = 0
            self._limits = limits

    def covers(self, source: ByteSource, limits: Limits) -> bool:
        """True if a template stands for ``source``: its scan would report nothing."""
        key = self._key(source, limits)
        if key is None:
            return False
        with self._lock:
            self._for(limits)
            template = self._templates.get(key)
        return template is not None and template.matches(source.read_at(0, source.size))

    def learn(self, source: ByteSource, limits: Limits) -> None:
        """``source`` was scanned clean: on the second such file of its (size, head), try
        to make it a template (once per key, successful or not)."""
        key = self._key(source, limits)
        if key is None:
            return
        with self._lock:
            self._for(limits)
            if key in self._templates:
                return
            if key not in self._sightings:
                if len(self._sightings) >= MAX_SIGHTINGS:
                    self._sightings.clear()
                self._sightings.add(key)
                return
            self._sightings.discard(key)
            self._templates[key] = None  # being built: no second build meanwhile
        template = build_template(source.read_at(0, source.size), limits)
        held = len(template.data) if template is not None else 0
        with self._lock:
            if limits is not self._limits or key not in self._templates:
                return  # the tables were reset meanwhile
            del self._templates[key]
            while self._templates and (
                len(self._templates) >= MAX_TEMPLATES or self._held + held > MAX_HELD_BYTES
            ):
                _, dropped = self._templates.popitem(last=False)
                self._held -= len(dropped.data) if dropped is not None else 0
            self._templates[key] = template
            self._held += held
