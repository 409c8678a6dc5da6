"""Relative paths and ``~`` in command lines, resolved the way the container resolves them.

A serving program opens a relative path from its working directory: the container's
``workingDir`` (:attr:`Container.working_dir`), unless the script changed directory
(``cd``, ``env --chdir``: :mod:`.shell`), in which case it is unknown. Where the
directory is unknown (no ``workingDir``: the image decides) the path is *unresolved*,
never dropped: the model it names could be anywhere.

Which words are paths: text a program takes as a path only (llama.cpp's ``-m``,
Triton's ``--model-repository``: ``takes_path``), and elsewhere (vLLM's and TGI's model,
which is a Hub id or a path) text spelled as a relative path: ``./x``, ``../x``, ``.``,
``..``, ``~``-prefixed, or with more components than a Hub id (``models/team/llama``).
``org/name`` stays a Hub id and a single name (``gpt2``) stays unrecognised, as before.

``~`` the shell expands is already ``$HOME`` when it gets here (:func:`.shell._tildes`).
A ``~`` that reaches the program (exec form, quoted) is read both ways: as a directory
named ``~`` in the working directory (what the program opens unless it expands it) and
as ``$HOME`` (a program may expand it itself).

``..`` segments are folded after joining (:func:`~.model.clean_path`), so a path that
climbs out of a Local source by ``..`` is judged where it lands.
"""

from __future__ import annotations

import posixpath
import re

from modelsec.references.container import MARK, Env, Unknown
from modelsec.references.model import HF_ID, SCHEMES

HOME_NOT_SET = Unknown("$HOME is not set in the pod spec (the image or the runtime sets it)")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_relative_path(text: str, takes_path: bool) -> bool:
    """Whether ``text`` (found where a program takes a model) names a relative path. Text
    with control characters is left to :func:`~.model.to_model_ref`, which refuses it."""
    if (
        not text
        or not text.isprintable()
        or text.startswith("/")
        or _SCHEME.match(text)
        or text.lower().startswith(SCHEMES)
    ):
        return False
    if takes_path:
        return True
    if text in (".", "..", "~") or text.startswith(("./", "../", "~")):
        return True
    if "/" not in text or any(c.isspace() for c in text) or text[0] in "{[":
        return False  # a single name (a Hub id without organisation), JSON, a sentence
    return not (HF_ID.match(text) and ".." not in text)


def readings(text: str, env: Env, takes_path: bool = False) -> list[str | Unknown] | None:
    """The absolute paths a relative path ``text`` may name for a program running in
    ``env``, or why one cannot be known; None when ``text`` is not a relative path."""
    if MARK in text or not is_relative_path(text, takes_path):
        return None
    found: list[str | Unknown] = [_join(env.cwd, text)]
    if text == "~" or text.startswith("~"):
        head, _slash, rest = text.partition("/")
        if head != "~":
            found.append(Unknown(f"{head[:80]!r} names a home directory the image's user database decides"))
        else:
            found.append(_join(_home(env), rest or "."))
    return found


def _home(env: Env) -> str | Unknown:
    home = env.values.get("HOME")
    if home is None:
        return env.why_unknown("HOME") or HOME_NOT_SET
    if home == "" or MARK in home:
        return Unknown("$HOME is empty or built from values modelsec cannot see")
    return home


def _join(base: str | Unknown, text: str) -> str | Unknown:
    if isinstance(base, Unknown):
        return Unknown(f"the relative path {text[:200]!r} depends on the working directory: {base.why}")
    if not base.startswith("/"):
        return Unknown(f"the relative path {text[:200]!r} leads from {base[:200]!r}, which is not absolute")
    return posixpath.join(base, text)
