"""Checks on archive member names and link targets, shared by every container format.

Names are judged the way the most permissive extractor would use them: backslashes are
separators (Windows tools), a drive letter or leading separator makes a path absolute, and
``..`` components are resolved lexically against the archive root.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from modelsec.archive import threats
from modelsec.context import ScanContext
from modelsec.findings import Threat

_DRIVE = re.compile(r"^[A-Za-z]:")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class NameProblem:
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
        problems.append(
            NameProblem(threats.ABSOLUTE_PATH, f"member name {name!r} is an absolute path")
        )
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


def report_name(ctx: ScanContext, name: str, display: str | None = None) -> None:
    """Report every problem with ``name`` against the archive member it names."""
    for problem in check_name(name):
        ctx.report(problem.threat.at(ctx.member_path(display or name), problem.message, subject=name))


def normalized(name: str) -> str:
    """The name as an extractor would create it, for duplicate detection."""
    return "/".join(_parts(name))
