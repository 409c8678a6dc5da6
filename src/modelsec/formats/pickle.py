"""Raw pickle files (``.pkl``, ``.pickle``, ``.bin``, ``.joblib``, legacy ``torch.save``),
recognised by content, analysed by :mod:`modelsec.pickle` without unpickling anything."""

from __future__ import annotations

from modelsec.bytesource import ByteSource
from modelsec.context import ScanContext
from modelsec.formats.base import FormatCategory, FormatScanner, Reader
from modelsec.formats.pickle_head import rules_in, rules_out


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
        # Every file's head comes here: most are ruled out by their first bytes, without
        # importing the pickle machine (issue 14: start-up).
        if rules_out(head):
            return False
        if rules_in(head):
            return True
        from modelsec.pickle.scanner import looks_like_pickle

        return looks_like_pickle(head, source.size)

    def scan(self, source: ByteSource, ctx: ScanContext) -> None:
        from modelsec.pickle.scanner import scan_pickle_source

        scan_pickle_source(source, ctx)


SCANNER = PickleScanner()
