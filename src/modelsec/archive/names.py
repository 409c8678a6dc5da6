"""Checks on archive member names and link targets, shared by every container format.

Names are judged the way the most permissive extractor would use them: backslashes are
separators (Windows tools), a drive letter or leading separator makes a path absolute, and
``..`` components are resolved lexically against the archive root.
"""

from __future__ import annotations

import re
import stat
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from modelsec.archive import threats
from modelsec.findings import Threat

if TYPE_CHECKING:  # the byte-level parsers (zipparse) use this module without a scan
    from modelsec.context import ScanContext

_DRIVE = re.compile(r"^[A-Za-z]:")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class NameProblem:
    """Why an archive member's name is a threat (absolute, climbing out, control characters)."""

    threat: Threat
    message: str


def _parts(name: str) -> list[str]:
    return [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]


def is_absolute(name: str) -> bool:
    return name.startswith(("/", "\\")) or bool(_DRIVE.match(name))


def escapes_root(parts: list[str]) -> bool:
    """True if resolving ``parts`` from the root ever climbs above it."""
    depth = 0
    for part in parts:
        if part == "..":
            depth -= 1
            if depth < 0:
                return True
        else:
            depth += 1
    return False


def check_name(name: str) -> list[NameProblem]:
    """Problems with one member name (empty list if it is a plain relative path)."""
    problems: list[NameProblem] = []
    if is_absolute(name):
        problems.append(NameProblem(threats.ABSOLUTE_PATH, f"member name {name!r} is an absolute path"))
    elif escapes_root(_parts(name)):
        problems.append(
            NameProblem(threats.PATH_TRAVERSAL, f"member name {name!r} climbs out of the archive")
        )
    if _CONTROL.search(name):
        problems.append(
            NameProblem(threats.SUSPICIOUS_NAME, f"member name {name!r} contains control characters")
        )
    return problems


def link_escapes(member: str, target: str, *, hard: bool = False) -> bool:
    """True if a link named ``member`` pointing at ``target`` resolves outside the root.

    Symlink targets are relative to the link's directory; hard-link targets (tar) are
    relative to the archive root.
    """
    if not target or is_absolute(target) or _CONTROL.search(target):
        return True
    base = [] if hard else _parts(member)[:-1]
    if escapes_root(base):
        return True
    return escapes_root(base + _parts(target))


def link_target(member: str, target: str, *, hard: bool = False) -> str:
    """The archive name a link inside the archive points to (as :func:`normalized` spells
    names), ``..`` folded; call only when :func:`link_escapes` is False."""
    parts: list[str] = []
    for part in ([] if hard else _parts(member)[:-1]) + _parts(target):
        if part == "..":
            parts.pop()
        else:
            parts.append(part)
    return "/".join(parts)


def report_name(ctx: ScanContext, name: str, display: str | None = None) -> None:
    """Report every problem with ``name`` against the archive member it names."""
    for problem in check_name(name):
        ctx.report(problem.threat.at(ctx.member_path(display or name), problem.message, subject=name))


def normalized(name: str) -> str:
    """The name as an extractor would create it, for duplicate detection."""
    return "/".join(_parts(name))


def special_file_type(mode: int | None) -> bool:
    """True if a Unix ``st_mode`` names a file that is neither regular, a directory nor a
    symlink (device, FIFO, socket, or a type no extractor knows). No mode, or mode bits
    without a type (many zip tools), is a regular file."""
    if mode is None or stat.S_IFMT(mode) == 0:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode))


@dataclass
class ArchiveNames:
    """The member names one archive scan has met so far.

    Every member gets a display name of its own (a repeated name becomes ``name#2``, and
    so on), so findings and nested paths never merge two members. Each name is checked
    (:func:`report_name`), and a name an extractor would create twice is reported once,
    since loaders differ on which copy wins.
    """

    ctx: ScanContext
    _displays: set[str] = field(default_factory=set)
    _seen: dict[str, int] = field(default_factory=dict)

    def display(self, name: str, suffix: str = "") -> str:
        """A display name for ``name`` (plus ``suffix``) not yet given to another member."""
        display = name + suffix
        n = 2
        while display in self._displays:
            display = f"{name}{suffix}#{n}"
            n += 1
        self._displays.add(display)
        return display

    def admit(self, name: str, display: str, *, may_repeat: bool = False) -> None:
        """Check ``name`` and count it; the second member with the same extracted path is
        a duplicate unless ``may_repeat`` (a directory entry repeated creates nothing)."""
        report_name(self.ctx, name, display)
        key = normalized(name)
        self._seen[key] = self._seen.get(key, 0) + 1
        if self._seen[key] == 2 and not may_repeat:
            self.ctx.report(
                threats.DUPLICATE_NAME.at(
                    self.ctx.member_path(name),
                    f"member name {name!r} appears more than once; every copy was scanned",
                    subject=name,
                )
            )

    def enter(self, name: str, *, may_repeat: bool = False) -> str:
        """:meth:`display` and :meth:`admit` in one: the display name of a new member."""
        display = self.display(name)
        self.admit(name, display, may_repeat=may_repeat)
        return display

    def special_file(self, display: str, description: str) -> None:
        """Report a device, FIFO or other special member (``description`` says which)."""
        self.ctx.report(threats.SPECIAL_FILE.at(self.ctx.member_path(display), f"member is a {description}"))
