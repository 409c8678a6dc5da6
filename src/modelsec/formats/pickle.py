"""Raw pickle files (``.pkl``, ``.pickle``, ``.bin``, ``.joblib``, legacy ``torch.save``),
recognised by content, analysed by :mod:`modelsec.pickle` without unpickling anything."""

from __future__ import annotations

from modelsec.bytesource import ByteSource
from modelsec.context import ScanContext
from modelsec.formats.base import FormatCategory, FormatScanner, Reader
from modelsec.pickle.scanner import looks_like_pickle, scan_pickle_source


class PickleScanner(FormatScanner):
    name = "pickle"  # refined to "joblib" when joblib's array wrappers show up
    category = FormatCategory.MODEL
    # Permissive: after every format with a real signature, before plain text.
    priority = 80
    readers = (
        Reader(
            "pickle.load, torch.load (legacy, weights_only=False), joblib.load, "
            "numpy.load(allow_pickle=True), pandas.read_pickle",
            "opcodes from offset 0, to the first STOP (joblib: array bytes in between)",
        ),
    )

    def detect(self, head: bytes, source: ByteSource, filename: str) -> bool:
        return looks_like_pickle(head, source.size)

    def scan(self, source: ByteSource, ctx: ScanContext) -> None:
        scan_pickle_source(source, ctx)


SCANNER = PickleScanner()
