"""A scanned file's name inside its model: the key that signature manifests, ML-BOMs and
``modelsec verify`` use to pair a file with its recorded digest.

Display paths differ by source (``./my-model/`` is walked as ``my-model/config.json``;
remote files are ``hf://org/name/config.json``), so names are computed here, once: POSIX,
relative to the model root, ``None`` for a model that is a single file.
"""

from __future__ import annotations

import posixpath


def model_name(target: str, path: str) -> str | None:
    """``path`` (a report's display path) relative to ``target`` (the report's target)."""
    if "://" in target:
        root = target.rstrip("/")
        if path in (target, root):
            return None
        return path[len(root) + 1 :] if path.startswith(root + "/") else path
    root = posixpath.normpath(target)
    here = posixpath.normpath(path)
    if here == root:
        return None
    if root == "." and not here.startswith("../"):
        return here
    prefix = root.rstrip("/") + "/"
    return here[len(prefix) :] if here.startswith(prefix) else path


def is_under(name: str, prefixes: tuple[str, ...] | list[str]) -> bool:
    """Whether ``name`` is one of ``prefixes`` or inside one of them (``.git`` covers
    ``.git/config``), as OpenSSF model signing applies its ``ignore_paths``."""
    return any(name == p or name.startswith(p.rstrip("/") + "/") for p in prefixes if p)
