"""Names of pickle globals: Python 2 aliases, dotted attribute paths, identifier checks.

A pickle names a global with two strings, a module and a qualified name. The unpickler
imports the module and walks the name attribute by attribute (``pathlib`` + ``os.system``
reaches ``os.system`` through ``pathlib.os``), after mapping Python 2 names for protocols
below 3 (``__builtin__`` -> ``builtins``). The policy must see every path an import can take,
so this module turns one (module, name) pair into all the dotted paths it may resolve to.
"""

from __future__ import annotations

import _compat_pickle
from dataclasses import dataclass


@dataclass(frozen=True)
class GlobalName:
    """A global as written in the stream, and as CPython 3 would import it."""

    module: str
    name: str

    @property
    def path(self) -> str:
        return f"{self.module}.{self.name}" if self.name else self.module

    def py3(self) -> GlobalName:
        """The name after ``_compat_pickle``'s Python 2 -> 3 mapping (``fix_imports``),
        which CPython applies to protocol 0-2 streams; the same name if none applies."""
        key = (self.module, self.name)
        if key in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[key]
            return GlobalName(module, name)
        if self.module in _compat_pickle.IMPORT_MAPPING:
            return GlobalName(_compat_pickle.IMPORT_MAPPING[self.module], self.name)
        return self

    def candidate_paths(self) -> list[str]:
        """Every dotted path this global can denote.

        The full path, plus each tail of the attribute chain: each attribute the unpickler
        walks through may be a module re-exported under another name, so ``pkg`` +
        ``os.system`` is also ``os.system``. Tails start only inside the *name*: the module
        part is imported as one unit (``a.b`` is the submodule ``b`` of ``a``).
        """
        paths = [self.path]
        parts = self.name.split(".") if self.name else []
        for start in range(len(parts)):
            tail = ".".join(parts[start:])
            if tail not in paths:
                paths.append(tail)
        return paths


def is_dotted_identifier(text: str) -> bool:
    """True for ``a``, ``a.b_c``: what a real module or qualified name looks like."""
    return bool(text) and all(part.isidentifier() for part in text.split("."))
