"""The contract between the engine and one file format.

A format module defines one :class:`FormatScanner` subclass and is registered by one line in
:mod:`modelsec.formats`. Scanners read bytes only, through the :class:`ByteSource` they are
given, and report through the :class:`~modelsec.context.ScanContext`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from modelsec.bytesource import ByteSource

# Part of the format author's API (format modules import them from here).
from modelsec.context import HEAD_SIZE as HEAD_SIZE
from modelsec.context import FormatCategory as FormatCategory

if TYPE_CHECKING:
    from modelsec.context import ScanContext

# Scanners below this priority recognise a format by a specific signature (see
# FormatScanner.priority); the later ones are permissive by design (pickle, text).
SIGNATURE_PRIORITY = 50


@dataclass(frozen=True)
class Reader:
    """One real loader that reads a format, and where in a file it looks for it.

    Declared by each format (``FormatScanner.readers``) so that the loaders a file can meet
    are written down next to the code that reads it the same way: the engine names them
    when one file is read as several formats, and ``docs/formats/loaders.md`` lists them.
    """

    loader: str  # "pickle.load", "torch.load (legacy)", "h5py.File" ...
    looks_at: str  # "offset 0", "superblock at 0, 512, 1024, 2048 ...", "end of file" ...


class FormatScanner(ABC):
    """One file format: recognise it by content, then scan it.

    ``name`` is the stable format name users put in ``approvedFormats``; a scanner may refine
    it while scanning (a zip that turns out to be a PyTorch archive) with ``ctx.set_format``.
    ``priority`` orders detection and reports: lower runs first, so specific signatures
    (safetensors, GGUF) come before permissive ones (raw pickle, text).

    Every scanner whose ``detect`` claims a file scans it: loaders disagree about what a
    file is (``torch.load`` runs a pickle at offset 0 of a file ``h5py`` opens as HDF5), so
    each interpretation is inspected (see :mod:`modelsec.interpretations`). ``readers``
    says which loaders take this interpretation; a scanner with readers counts towards a
    polyglot finding. ``covers`` names formats whose reading of the same bytes this
    scanner's own scan already includes (a legacy PyTorch file is a run of pickles), so
    they are not scanned twice. A ``fallback`` format (plain text) is only used when
    nothing else claims the file.
    """

    name: ClassVar[str]
    category: ClassVar[FormatCategory] = FormatCategory.MODEL
    priority: ClassVar[int] = 50
    readers: ClassVar[tuple[Reader, ...]] = ()
    covers: ClassVar[frozenset[str]] = frozenset()
    fallback: ClassVar[bool] = False

    @abstractmethod
    def detect(self, head: bytes, source: ByteSource, filename: str) -> bool:
        """True if the content is this format. ``head`` is the first :data:`HEAD_SIZE`
        bytes; ``filename`` (the last path component) may break ties between formats that
        share a signature but must never be the only evidence."""

    @abstractmethod
    def scan(self, source: ByteSource, ctx: ScanContext) -> None:
        """Inspect ``source`` and report findings, members and incompletes via ``ctx``.
        Raise nothing for malformed input: report it. The engine turns any exception that
        escapes into an ERROR (fail closed), never into ALLOWED."""

    def claims(self, head: bytes, source: ByteSource, filename: str) -> bool:
        """:meth:`detect`, with a detector that trips on odd bytes counting as no claim:
        what every caller that sniffs content means (:func:`modelsec.formats.claimants`)."""
        try:
            return self.detect(head, source, filename)
        except Exception:  # noqa: BLE001  # any crash of a probe on hostile bytes means "not mine"
            return False

    @property
    def by_signature(self) -> bool:
        """True if this format is recognised by a specific signature rather than by a
        permissive probe (see :data:`SIGNATURE_PRIORITY`)."""
        return self.priority < SIGNATURE_PRIORITY

    def read_by_name(self, filename: str) -> bool:
        """True if loaders read a file with this name as this format whatever its bytes:
        its reading is kept beside any other text reading of the same file."""
        return False

    def covers_claim(self, other: FormatScanner, head: bytes) -> bool:
        """True if scanning this file with ``self`` already inspects what ``other`` (which
        also claimed it) would read. Override when it depends on the bytes."""
        return other.name in self.covers


def filename_of(path: str) -> str:
    """The last component of a display path (``a.zip!dir/x.pkl`` -> ``x.pkl``)."""
    inner = path.rsplit("!", 1)[-1]
    return inner.replace("\\", "/").rsplit("/", 1)[-1]


class DirectoryAnalyzer(ABC):
    """Checks that need several files of a model directory at once (a Hugging Face
    snapshot's ``config.json`` plus its ``*.py``; a SavedModel's ``variables/``). Runs once
    per directory the user scans, after the files were scanned one by one."""

    name: ClassVar[str]

    @abstractmethod
    def analyze(self, root: Path, files: list[Path], ctx: ScanContext) -> None:
        """``files`` are the regular files under ``root`` (relative paths resolved)."""
