"""Reading command lines the way the serving programs' own argument parsers do."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # container.py imports this module
    from modelsec.references.container import Container

# python, python3, python3.14, python3.13t, pypy3 ...
_PYTHON = re.compile(r"^(?:python|pypy)(?:\d+(?:\.\d+)?t?)?$")
_PYTHON_VALUE_FLAGS = frozenset({"-W", "-X", "--check-hash-based-pycs"})


def program(argv: tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
    """(program, its arguments): the executable's base name, or for ``python -m mod`` the
    module name. ``("", argv)`` when there is no command."""
    if not argv:
        return "", ()
    name = argv[0].rsplit("/", 1)[-1]
    if _PYTHON.match(name):
        rest = argv[1:]
        i = 0
        while i < len(rest) and rest[i].startswith("-") and rest[i] != "-m" and not rest[i].startswith("-m"):
            # interpreter flags: -u, -O, -I; -X dev and -W error take a value
            i += 2 if rest[i] in _PYTHON_VALUE_FLAGS else 1
        if i < len(rest) and rest[i].startswith("-m"):
            module = rest[i][2:] or (rest[i + 1] if i + 1 < len(rest) else "")
            return module, rest[i + (1 if rest[i][2:] else 2) :]
        if i < len(rest):
            return rest[i].rsplit("/", 1)[-1], rest[i + 1 :]
    return name, argv[1:]


def values(
    args: tuple[str, ...], *flags: str, many: bool = False, verbatim: bool = False
) -> Iterator[tuple[str, str]]:
    """(flag, value) for each ``--flag value`` and ``--flag=value`` in ``args``. With
    ``many`` a flag takes every following word up to the next option (argparse
    ``nargs='+'``); with ``verbatim`` it takes the next word whatever it looks like, as
    parsers that read ``argv[++i]`` do (llama.cpp: ``-m -evil.gguf`` opens ``-evil.gguf``)."""
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
        while i < len(args) and (verbatim or not _is_option(args[i])):
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


# Extractors ask for several flags of one command line in a row: the last few parsed lines
# are kept, by identity (the tuple itself is held, so its id cannot be reused). A handful
# of entries, never a cache keyed by content that could hold megabytes of arguments.
_RECENT: list[tuple[tuple[str, ...], dict[str, tuple[int, str]]]] = []
_RECENT_SIZE = 8


def _last_values(args: tuple[str, ...]) -> dict[str, tuple[int, str]]:
    """Each option's last (position, value), read as :func:`values` reads them."""
    for seen, parsed in _RECENT:
        if seen is args:
            return parsed
    parsed = _parse_options(args)
    _RECENT.insert(0, (args, parsed))
    del _RECENT[_RECENT_SIZE:]
    return parsed


def _parse_options(args: tuple[str, ...]) -> dict[str, tuple[int, str]]:
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
    return container.describe(what)
