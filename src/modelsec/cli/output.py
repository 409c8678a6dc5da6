"""Where ``modelsec scan -o FILE`` writes its report, checked before the scan starts.

A scan can take minutes; finding out afterwards that the report cannot be written (a
directory that does not exist, a read-only file system) would throw the verdict away. So
the path is checked first, and the report is written to it only once it is complete.
"""

from __future__ import annotations

import os
import stat

from modelsec.safe_text import printable


class OutputError(Exception):
    """The report cannot be written where the user asked; the message says why."""


def check_writable(path: str) -> None:
    """Raise :class:`OutputError` unless a report can be written to ``path``.

    A path that exists must be a regular file we may write, or something made to be
    written to (``/dev/stdout``, a pipe from ``>(...)``); a new file needs an existing,
    writable directory. ``os.access`` also reports a read-only file system (EROFS).
    """
    shown = printable(path)
    if not path:
        raise OutputError("empty output path")
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise OutputError(f"{shown}: cannot use as output: {exc.strerror or exc}") from None
    if mode is not None:
        if stat.S_ISDIR(mode):
            raise OutputError(f"{shown}: is a directory; name a file to write the report to")
        if not os.access(path, os.W_OK):
            raise OutputError(f"{shown}: not writable")
        return
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise OutputError(f"{shown}: directory {printable(parent)} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"{shown}: cannot create a file in {printable(parent)} (not writable)")


def write_report(path: str, text: str) -> None:
    """Write the finished report; raise :class:`OutputError` with a one-line reason."""
    try:
        with open(path, "w", encoding="utf-8", errors="backslashreplace") as out:
            out.write(text)
    except OSError as exc:
        raise OutputError(f"{printable(path)}: cannot write the report: {exc.strerror or exc}") from None
