"""Reading command lines the way the serving programs' own argument parsers do."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Iterator

if TYPE_CHECKING:  # container.py imports this module
    from modelsec.references.container import Container

_PYTHONS = ("python", "python3", "python3.9", "python3.10", "python3.11", "python3.12", "python3.13")


def program(argv: tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
    """(program, its arguments): the executable's base name, or for ``python -m mod`` the
    module name. ``("", argv)`` when there is no command."""
    if not argv:
        return "", ()
    name = argv[0].rsplit("/", 1)[-1]
    if name.startswith("python") and name in _PYTHONS:
        rest = argv[1:]
        i = 0
        while i < len(rest) and rest[i].startswith("-") and rest[i] != "-m":
            i += 1  # interpreter flags: -u, -O, -X dev (a flag with a value is rare here)
        if i + 1 < len(rest) and rest[i] == "-m":
            return rest[i + 1], rest[i + 2:]
        if i < len(rest):
            return rest[i].rsplit("/", 1)[-1], rest[i + 1:]
    return name, argv[1:]


def values(args: tuple[str, ...], *flags: str, many: bool = False) -> Iterator[tuple[str, str]]:
    """(flag, value) for each ``--flag value`` and ``--flag=value`` in ``args``. With
    ``many`` a flag takes every following word up to the next option (argparse
    ``nargs='+'``)."""
    wanted = frozenset(flags)
    i = 0
    while i < len(args):
        word = args[i]
        i += 1
        if word == "--":
            return
        name, eq, inline = word.partition("=")
        if name not in wanted:
            continue
        if eq:
            yield name, inline
            continue
        while i < len(args) and not _is_option(args[i]):
            yield name, args[i]
            i += 1
            if not many:
                break


def _is_option(word: str) -> bool:
    return len(word) > 1 and word[0] == "-" and not word[1].isdigit()


def first(args: tuple[str, ...], *flags: str) -> str | None:
    """The last value given for any of ``flags`` (argparse: the last occurrence wins)."""
    index = _last_values(args)
    best: tuple[int, str] | None = None
    for flag in flags:
        hit = index.get(flag)
        if hit is not None and (best is None or hit[0] > best[0]):
            best = hit
    return best[1] if best else None


@functools.lru_cache(maxsize=4096)
def _last_values(args: tuple[str, ...]) -> dict[str, tuple[int, str]]:
    """Each option's last (position, value), read as :func:`values` reads them: extractors
    ask for several flags of the same command line, which is parsed once."""
    out: dict[str, tuple[int, str]] = {}
    for i, word in enumerate(args):
        if word == "--":
            break
        if not _is_option(word):
            continue
        name, eq, inline = word.partition("=")
        if eq:
            out[name] = (i, inline)
        elif i + 1 < len(args) and not _is_option(args[i + 1]):
            out[name] = (i, args[i + 1])
    return out


def image_matches(container: Container, *needles: str) -> bool:
    name = container.image_name
    for needle in needles:
        if needle in name:
            return True
    return False


def describe(container: Container, what: str) -> str:
    kind = "init container" if container.init else "container"
    return f"{kind} {container.name or '?'}: {what}"
