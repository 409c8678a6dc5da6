"""Content sniffing has one implementation (``formats.claimants`` over ``FormatScanner.claims``),
and containers reach it through their scan context, never through the format registry."""

from __future__ import annotations

import io
import pickle
import zipfile
from typing import ClassVar

import pytest

from modelsec import formats
from modelsec.bytesource import ByteSource, BytesSource
from modelsec.context import Limits, ScanContext, ScanSink
from modelsec.engine import dispatch
from modelsec.formats.base import FormatCategory, FormatScanner
from modelsec.interpretations import REGISTERED, claims


class _Fixed(FormatScanner):
    """A detector with a fixed answer (or a crash), counting how often it was asked."""

    category: ClassVar[FormatCategory] = FormatCategory.MODEL

    def __init__(self, name: str, answer: bool | None, priority: int = 10) -> None:
        self.name = name  # type: ignore[misc]  # instances stand in for registered classes
        self.priority = priority  # type: ignore[misc]
        self.answer = answer
        self.asked = 0

    def detect(self, head: bytes, source: ByteSource, filename: str) -> bool:
        self.asked += 1
        if self.answer is None:
            raise ValueError("a detector tripping on odd bytes")
        return self.answer

    def scan(self, source: ByteSource, ctx: ScanContext) -> None:
        raise AssertionError("sniffing never scans")


def _zip(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


def test_a_detector_that_trips_is_no_claim_and_the_rest_are_still_asked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    crashing, yes, no = _Fixed("crashing", None), _Fixed("yes", True), _Fixed("no", False)
    monkeypatch.setattr(formats, "scanners", lambda: (crashing, no, yes))
    assert claims(b"x", BytesSource(b"x"), "f") == (yes,)
    assert (crashing.asked, no.asked, yes.asked) == (1, 1, 1)


def test_claimants_asks_lazily_and_only_among_the_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    first, second, skipped = _Fixed("first", True), _Fixed("second", True), _Fixed("skipped", True)
    monkeypatch.setattr(formats, "scanners", lambda: (skipped, first, second))
    found = formats.claimants(b"x", BytesSource(b"x"), "f", lambda s: s is not skipped)
    assert next(found) is first
    assert (skipped.asked, first.asked, second.asked) == (0, 1, 0)


def test_members_are_sniffed_through_the_context() -> None:
    data = pickle.dumps({"weights": [1, 2]}, protocol=2)  # bytes only: nothing is loaded
    assert REGISTERED.sniff(BytesSource(data), "archive/data/0", False) == "pickle"
    # permissive detectors are not asked for raw storage
    assert REGISTERED.sniff(BytesSource(data), "archive/data/0", True) is None
    assert REGISTERED.sniff(BytesSource(_zip({"a.txt": b"hi"})), "archive/data/0", True) == "zip"
    assert REGISTERED.knows("pickle") and not REGISTERED.knows("no-such-format")


def test_a_context_without_the_engine_fails_closed_when_asked() -> None:
    """A zip scanned in a context built without the engine's format view cannot recognise
    its members: that is an incomplete (ERROR), never a member silently skipped."""
    archive = _zip(
        {
            "archive/data.pkl": pickle.dumps({"w": 1}, protocol=2),
            "archive/data/0": _zip({"inner.txt": b"hi"}),  # raw storage that is really a zip
        }
    )
    sink = ScanSink(Limits())
    dispatch(BytesSource(archive), ScanContext("model.pt", sink, dispatch), None)
    reasons = [i.reason for i in sink.incompletes]
    assert any("has no format view" in r for r in reasons), reasons

    with_view = ScanSink(Limits())
    dispatch(BytesSource(archive), ScanContext("model.pt", with_view, dispatch, formats=REGISTERED), None)
    assert not any("format view" in i.reason for i in with_view.incompletes)
    assert "model.pt!archive/data/0!inner.txt" in {f.path for f in with_view.formats}
