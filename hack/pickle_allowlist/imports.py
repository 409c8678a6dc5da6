"""Dotted paths to objects and back, the way the unpickler's ``find_class`` walks them."""

from __future__ import annotations

import importlib
import warnings


def dotted(obj: object) -> str:
    """``module.qualname`` of a class or function."""
    return f"{obj.__module__}.{obj.__qualname__}"  # type: ignore[attr-defined]


def resolve(path: str) -> object | None:
    """Import ``path``: the longest importable module prefix, then attributes; None if absent."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numpy.core.* paths warn, and still resolve
        parts = path.split(".")
        for cut in range(len(parts) - 1, 0, -1):
            try:
                obj: object = importlib.import_module(".".join(parts[:cut]))
            except Exception:  # not a module (or one that fails to import): try a shorter prefix
                continue
            try:
                for part in parts[cut:]:
                    obj = getattr(obj, part)
            except AttributeError:
                return None
            return obj
    return None
