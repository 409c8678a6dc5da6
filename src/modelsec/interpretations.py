"""Every interpretation of a file: which formats claim it, which of them are scanned, and
whether the file is a polyglot.

Loaders disagree about what a file is. ``pickle.load``, legacy ``torch.load``,
``joblib.load`` and ``numpy.load(allow_pickle=True)`` run a pickle at offset 0; ``h5py``
finds an HDF5 superblock at 0, 512, 1024, 2048 ...; ``zipfile`` reads the central
directory at the end of the file, after any prefix; ``tarfile`` a header at offset 0. One
file can satisfy several of them, and a scanner that picks one reading leaves the others
to whoever built the file. So every format's detector is asked (each one is a bounded
probe: a head, a few small reads), and every format that claims the file scans it.

Formats declare the rest themselves (:class:`~modelsec.formats.base.FormatScanner`):
``readers`` (the loaders that take that interpretation), ``covers`` (formats whose reading
of the same bytes their own scan already includes) and ``fallback`` (plain text, only when
nothing else claims the file). Nothing here names a format.
"""

from __future__ import annotations

from dataclasses import dataclass

from modelsec import formats
from modelsec.bytesource import ByteSource
from modelsec.findings import Finding, Severity, threat
from modelsec.formats.base import HEAD_SIZE, FormatCategory, FormatScanner, filename_of
from modelsec.safe_text import printable

POLYGLOT = threat(
    "MS-FMT-001",
    "SuspiciousComponents",
    Severity.HIGH,
    "File is valid as several formats that different loaders read differently (polyglot)",
    "Do not load this file. Rebuild the model from trusted data as a single format.",
    "Model files written by their frameworks are one format. A file that one loader opens "
    "as, say, HDF5 or a zip archive and another runs as a pickle shows each tool a "
    "different model: that is built on purpose, to pass a scanner that reads it one way. "
    "Every interpretation was scanned.",
)


_LOADED = frozenset({FormatCategory.MODEL, FormatCategory.CONTAINER})


@dataclass(frozen=True)
class Interpretations:
    """The formats that claimed one file, reduced to the readings that must be scanned."""

    claimed: tuple[FormatScanner, ...]  # every detector that said yes, in detection order
    scanned: tuple[FormatScanner, ...]  # the readings to scan, in detection order

    @property
    def primary(self) -> FormatScanner | None:
        return self.scanned[0] if self.scanned else None

    @property
    def loader_readings(self) -> tuple[FormatScanner, ...]:
        """Scanned readings that some loader takes by content: model and container formats,
        and any format that declares ``readers`` (Python source is imported)."""
        return tuple(s for s in self.scanned if s.readers or s.category in _LOADED)

    @property
    def polyglot(self) -> bool:
        return len(self.loader_readings) > 1


def claims(head: bytes, source: ByteSource, filename: str) -> tuple[FormatScanner, ...]:
    """Every registered format whose detector claims the file, in detection order."""
    return tuple(formats.claimants(head, source, filename))


def interpret(claimed: tuple[FormatScanner, ...], head: bytes, filename: str = "") -> Interpretations:
    """Which of the ``claimed`` readings to scan.

    Dropped: a reading another claimed format covers (its scan inspects those bytes the
    same way), fallbacks when anything else claimed the file, and text readings after the
    first (auxiliary formats without readers are alternative views of one text, chosen by
    consumers that go by the file's name, and the first one is the most specific), unless
    loaders read a file of that name as that format whatever its bytes
    (:meth:`~modelsec.formats.base.FormatScanner.read_by_name`).
    """
    kept = [c for c in claimed if not any(o is not c and o.covers_claim(c, head) for o in claimed)]
    if len(kept) > 1:
        kept = [c for c in kept if not c.fallback] or kept[:1]
    scanned: list[FormatScanner] = []
    text_reading = False
    for scanner in kept:
        if (
            scanner.category == FormatCategory.AUXILIARY
            and not scanner.readers
            and not scanner.read_by_name(filename)
        ):
            if text_reading:
                continue
            text_reading = True
        scanned.append(scanner)
    return Interpretations(claimed, tuple(scanned))


def detect_all(head: bytes, source: ByteSource, filename: str) -> Interpretations:
    return interpret(claims(head, source, filename), head, filename)


class RegisteredFormats:
    """The format registry as scanners consult it through their context
    (:class:`~modelsec.context.FormatView`): a container asks whether a member's bytes are
    a format without importing the registry, which imports the containers."""

    def sniff(self, source: ByteSource, name: str, signatures_only: bool) -> str | None:
        head = source.read_at(0, HEAD_SIZE)
        among = _by_signature if signatures_only else None
        found = next(formats.claimants(head, source, filename_of(name), among), None)
        return None if found is None else found.name

    def knows(self, format_name: str) -> bool:
        return formats.by_name(format_name) is not None


def _by_signature(scanner: FormatScanner) -> bool:
    return scanner.by_signature


REGISTERED = RegisteredFormats()


def polyglot_finding(path: str, found: Interpretations) -> Finding:
    """The finding for a file that loaders read as several formats, naming who reads what."""
    readings = "; ".join(_reading(s) for s in found.loader_readings)
    names = " + ".join(s.name for s in found.loader_readings)
    return POLYGLOT.at(
        path,
        printable(
            f"valid as {len(found.loader_readings)} formats: {readings}; every interpretation was scanned"
        ),
        subject=names,
    )


def _reading(scanner: FormatScanner) -> str:
    if not scanner.readers:
        return scanner.name
    loaders = ", ".join(r.loader for r in scanner.readers[:3])
    return f"{scanner.name} (read by {loaders}: {scanner.readers[0].looks_at})"
