"""Messages for the person at the terminal, escaped: they quote paths, references and
group contents that may hold escape sequences (see :mod:`modelsec.safe_text`)."""

from __future__ import annotations

import sys
from typing import TextIO

from modelsec.safe_text import printable


def say(message: str, stream: TextIO | None = None) -> None:
    """Print ``message`` to ``stream`` (stderr by default) with every line escaped; the
    line breaks of a multi-line message (a list of validation problems) are kept."""
    print("\n".join(printable(line) for line in message.split("\n")), file=stream or sys.stderr)
