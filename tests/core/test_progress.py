"""The progress bar measures what it will show only when it can be shown: a directory's
total size is a walk of its own, which a quiet or piped scan must not pay (issue 14)."""

from __future__ import annotations

import io

import pytest

from modelsec.cli.progress import SHOW_AFTER_BYTES, Progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _total(calls: list[int], size: int):  # type: ignore[no-untyped-def]
    def measure() -> int:
        calls.append(size)
        return size

    return measure


@pytest.mark.parametrize("enabled", [True, False])
def test_the_total_is_not_measured_without_a_terminal(enabled: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stderr", io.StringIO())
    calls: list[int] = []
    Progress(_total(calls, SHOW_AFTER_BYTES), enabled=enabled).close()
    assert calls == []


def test_the_total_is_not_measured_when_the_bar_is_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stderr", _Terminal())
    calls: list[int] = []
    Progress(_total(calls, SHOW_AFTER_BYTES), enabled=False).close()
    assert calls == []


@pytest.mark.parametrize("size", [SHOW_AFTER_BYTES - 1, SHOW_AFTER_BYTES])
def test_on_a_terminal_the_total_decides_whether_a_bar_is_shown(
    size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    terminal = _Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    calls: list[int] = []
    progress = Progress(_total(calls, size), enabled=True)
    progress(1024)
    progress.close()
    assert calls == [size]
    assert ("scanning" in terminal.getvalue()) == (size >= SHOW_AFTER_BYTES)
    plain = Progress(size, enabled=True)  # a number is taken as it is
    assert (plain._bar is not None) == (size >= SHOW_AFTER_BYTES)
    plain.close()
