"""Fuzz targets for format scanners: the input goes through the engine's dispatch exactly
as a file or an archive member does (every detector's probe, then every reading that
claims it), so a finding is one production would hit. Only ``pickle`` is forced, as
archives force it on the members that torch.load and joblib read as pickles."""

from __future__ import annotations

from collections.abc import Callable

from harness import OracleFailure

from modelsec import formats
from modelsec.bytesource import BytesSource
from modelsec.context import Limits, ScanContext, ScanSink
from modelsec.engine import dispatch
from modelsec.interpretations import REGISTERED

# The product's defaults: a finding under them is a finding in production.
LIMITS = Limits()


def scan_as(filename: str, forced: str | None = None) -> Callable[[bytes], None]:
    """An entry point that scans the input as a file named ``filename`` (the name breaks
    detection ties, as it does for real files), or as ``forced`` when given. Escapes from
    scanners are seen by the harness's observer."""
    if forced is not None and formats.by_name(forced) is None:
        raise KeyError(f"no format named {forced!r}")

    def run(data: bytes) -> None:
        sink = ScanSink(LIMITS)
        dispatch(BytesSource(data), ScanContext(filename, sink, dispatch, formats=REGISTERED), forced)
        if not sink.formats:
            raise OracleFailure("the scan recorded no format for the file")

    return run
