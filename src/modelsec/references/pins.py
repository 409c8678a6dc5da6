"""Where a found reference could carry a fixed revision, and writing one there.

The pinning webhook (``spec.enforcement.pin``) rewrites a reference without a fixed
revision to the revision its scan read, *in the place the serving stack reads it*, so the
Pod cannot fetch another revision. Each extractor knows that place, so it says with each
find how the stack takes a revision there: a :class:`Site`.

- :class:`Spelled`: the reference is a string (or an entry in a list-valued string) at a
  path in the object; pinning rewrites that string in a spelling the consumer reads:
  ``hf://org/name@<commit>`` and ``s3://bucket/key@<version>`` in ``modelsec.io/models``,
  ``hf://org/name:<commit>`` for KServe, ``https://huggingface.co/org/name/resolve/<commit>/f``
  in a Hub URL.
- :class:`Option`: a program option gives the revision (vLLM ``--revision``, TGI
  ``--revision`` or its ``REVISION`` variable, KServe's Hugging Face runtime
  ``--model_revision``); pinning sets it in the container's exec-form arguments or its
  environment.
- :class:`Unpinnable`: the stack takes no revision there (llama.cpp ``-hf`` always reads
  ``main``, a Triton repository is a directory of models, LoRA adapters, shell scripts
  modelsec does not rewrite); why, for the record.

Sites are data only (paths and names), never references to the object they were read
from, so an extraction cached by content can pin any object with that content.
:func:`apply` edits a copy of the object and reports what it changed and what it could
not.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any, Literal

Path = tuple[str | int, ...]
Spelling = Literal["uri", "kserve", "hub-url"]

_SEPARATORS = re.compile(r"([,\s]+)")
_HUB_URL = re.compile(
    r"^(https?://(?:www\.)?huggingface\.co/[^/]+/[^/]+/(?:resolve|blob|tree)/)([^/]+)(/.*)?$", re.IGNORECASE
)


@dataclass(frozen=True)
class Spelled:
    """The reference is ``text`` in the string at ``path`` (the whole string, or one entry
    of a comma/space-separated list: ``modelsec.io/models``)."""

    path: Path
    text: str
    spelling: Spelling


@dataclass(frozen=True)
class Option:
    """A program option of the container at ``container`` gives the revision: ``flag``
    in its exec-form arguments, or the environment variable ``env`` (TGI reads
    ``REVISION`` when ``--revision`` is not given)."""

    container: Path
    flag: str
    env: str | None = None


@dataclass(frozen=True)
class Unpinnable:
    """The serving stack takes no revision where the reference was found; ``why``, for the record."""

    why: str


Site = Spelled | Option | Unpinnable

SHELL_SCRIPT = Unpinnable("it is inside a shell script, which modelsec reads but does not rewrite")
EXPANDED = Unpinnable("it is built from $(VAR) or a ConfigMap value, which modelsec does not rewrite")
NOT_SAID = Unpinnable("modelsec does not know how this serving stack takes a revision")
S3_VERSIONS = (
    "S3 references are pinned only in modelsec.io/models: no serving stack modelsec "
    "knows takes an S3 version id"
)


def pinnable(site: Site, scheme: str) -> bool:
    """Whether a reference of ``scheme`` found at ``site`` can be pinned there."""
    if isinstance(site, Unpinnable):
        return False
    if scheme == "hf":
        return True
    return scheme == "s3" and isinstance(site, Spelled) and site.spelling == "uri"


def fixes(scheme: str, revision: str) -> bool:
    """Whether a scan's revision fixes the content when written into a reference: a Hub
    commit, an S3 object's version id; not an S3 ETag (an unversioned bucket) nor the digest
    of a prefix's listing (a prefix has no single version)."""
    if scheme == "s3":
        return not revision.startswith(("etag:", "sha256:"))
    return scheme == "hf"


def why_not(site: Site, scheme: str) -> str:
    if isinstance(site, Unpinnable):
        return site.why
    return S3_VERSIONS if scheme == "s3" else "it cannot be pinned there"


@dataclass(frozen=True)
class Pin:
    """Write ``revision`` for the reference ``scheme://location`` at ``site``."""

    site: Site
    scheme: str
    location: str
    revision: str


@dataclass
class Applied:
    """What :func:`apply` did: the edited copy, the anchors it rewrote, the pins it could not write."""

    obj: Any  # the edited copy
    changed: list[Path]  # anchors rewritten (a container, a string), for the JSON patch
    problems: list[tuple[Pin, str]]  # pins that could not be written, and why


def apply(obj: Any, pins: list[Pin]) -> Applied:
    """A copy of ``obj`` with each pin written; the original is never touched."""
    edited = copy.deepcopy(obj)
    result = Applied(edited, [], [])
    for pin in pins:
        problem = _write(edited, pin, result.changed)
        if problem is not None:
            result.problems.append((pin, problem))
    return result


def _at(obj: Any, path: Path) -> Any:
    for step in path:
        if isinstance(step, int):
            if not isinstance(obj, list) or step >= len(obj):
                return None
        elif not isinstance(obj, dict):
            return None
        obj = obj[step] if isinstance(step, int) else obj.get(step)
    return obj


def _set(obj: Any, path: Path, value: Any) -> None:
    parent = _at(obj, path[:-1])
    parent[path[-1]] = value


def _note(changed: list[Path], anchor: Path) -> None:
    if anchor not in changed:
        changed.append(anchor)


def _write(obj: Any, pin: Pin, changed: list[Path]) -> str | None:
    site = pin.site
    if not pinnable(site, pin.scheme):
        return why_not(site, pin.scheme)
    if isinstance(site, Spelled):
        return _rewrite_string(obj, site, pin, changed)
    assert isinstance(site, Option)
    return _set_option(obj, site, pin.revision, changed)


def spelled(site: Spelled, pin: Pin) -> str | None:
    """The pinned spelling of the reference at ``site``; None when it cannot carry one."""
    if site.spelling == "hub-url":
        match = _HUB_URL.match(site.text)
        return None if match is None else f"{match.group(1)}{pin.revision}{match.group(3) or ''}"
    if site.spelling == "kserve":  # KServe's storage URIs: hf://org/name:<revision>
        return f"hf://{pin.location}:{pin.revision}" if pin.scheme == "hf" else None
    return f"{pin.scheme}://{pin.location}@{pin.revision}"


def _rewrite_string(obj: Any, site: Spelled, pin: Pin, changed: list[Path]) -> str | None:
    current = _at(obj, site.path)
    if not isinstance(current, str):
        return "the place it was found in is gone"
    new = spelled(site, pin)
    if new is None:
        return "its spelling takes no revision"
    if current.strip() == site.text:
        updated = current.replace(site.text, new)
    else:  # an entry of a list: replace whole entries only
        parts = _SEPARATORS.split(current)
        if site.text not in parts:
            return "the place it was found in no longer names it"
        updated = "".join(new if part == site.text else part for part in parts)
    if updated != current:
        _set(obj, site.path, updated)
        _note(changed, site.path)
    return None


def _set_option(obj: Any, site: Option, revision: str, changed: list[Path]) -> str | None:
    container = _at(obj, site.container)
    if not isinstance(container, dict):
        return "the container it was found in is gone"
    command = list(container.get("command") or [])
    args = list(container.get("args") or [])
    words = command + args
    if "--" in words:
        return "its arguments end options with --, after which an option would be an argument"
    found = False
    for i, word in enumerate(words):
        if word == site.flag and i + 1 < len(words):
            words[i + 1] = revision
            found = True
        elif word.startswith(site.flag + "="):
            words[i] = f"{site.flag}={revision}"
            found = True
    if found:
        _store_words(container, command, words)
    elif site.env is not None:
        _set_env(container, site.env, revision)
    else:
        container["args"] = args + [f"{site.flag}={revision}"]
    _note(changed, site.container)
    return None


def _store_words(container: dict[str, Any], command: list[str], words: list[str]) -> None:
    if command:
        container["command"] = words[: len(command)]
    rest = words[len(command) :]
    if rest or "args" in container:
        container["args"] = rest


def _set_env(container: dict[str, Any], name: str, value: str) -> None:
    """``name=value`` in ``env``: every entry of that name set in place (later entries may
    refer to it as $(NAME)), or a new last entry (entries win over envFrom)."""
    env = list(container.get("env") or [])
    hits = [i for i, e in enumerate(env) if isinstance(e, dict) and e.get("name") == name]
    for i in hits:
        env[i] = {"name": name, "value": value}
    if not hits:
        env.append({"name": name, "value": value})
    container["env"] = env
