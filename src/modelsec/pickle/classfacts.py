"""What the unpickler can run on an allowlisted class without a call opcode.

CPython's unpickler invokes methods it looks up at run time: ``cls.__new__`` (NEWOBJ),
``cls(*args)`` (REDUCE/INST/OBJ: ``__new__`` then ``__init__``), ``__setstate__`` looked up
on the instance (BUILD), ``type(inst).__setattr__`` (the slot-state half of BUILD),
``type(obj).__setitem__`` (SETITEM(S) on a non-dict), ``extend``/``append`` looked up on the
instance (APPEND(S) on anything but an exact list), ``add`` (ADDITEMS on a non-set) and
``keys`` (``dict(x)``-style constructors). Whether an allowlisted class is safe depends on
those methods, not on its name. This module tells the machine, class by class:

* which of those methods the class has (other than ``object``'s), which class defines
  each (a metaclass ``__call__`` that is not safe shows as ``__init__``: it is what a call
  of the class runs), and whether it is safe: inherited from a builtin type ("builtin"), proven pure by
  the generator's analysis ("pure"), or read by a person ("reviewed"); otherwise the reason
  it is not ("calls open_listener", "compiled code, not reviewed", "reviewed: safe only if
  ..." for a review with a condition the machine has to check);
* the nearest builtin base (the unpickler's fast paths for exact lists, dicts, sets);
* whether instances have a writable ``__dict__`` (an instance attribute named
  ``__setstate__`` or ``append`` is what the unpickler calls, not the method), and whether
  attribute lookups are computed (``__getattr__`` or a custom ``__getattribute__``).

The facts come from ``classfacts_<group>.json`` beside this module, written by
``hack/gen_pickle_allowlist.py`` from the installed libraries (every callable class of the
generated lists and the hand-written classes of :mod:`~modelsec.pickle.allowlist`), and
from :mod:`~modelsec.pickle.classfacts_torch`, written by hand (PyTorch is not installed).
They are read on first use and kept. docs/pickle-allowlist.md explains how they are made.

"Safe" assumes what the unpickler hands the method is what pickles build: a BUILD state is
a dict (or the tuple the class's own ``__reduce__`` writes) and arguments are values of
allowlisted types. A method that pops keys from its state calls the state's ``pop``: the
machine must treat a state or argument of any other type as a computed call.
"""

from __future__ import annotations

import functools
import json
import types
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

IMPLICIT_METHODS = (
    "__new__",
    "__init__",
    "__setstate__",
    "__setattr__",
    "__setitem__",
    "append",
    "extend",
    "add",
    "keys",
)

BUILTIN_BASES = (
    "object", "list", "dict", "set", "frozenset", "tuple", "int", "float", "str", "bytes",
    "bytearray", "other",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class MethodFact:
    """One implicit method of an allowlisted class: who defines it and whether it is safe."""

    owner: str  # dotted path of the class whose __dict__ defines it (first in the MRO)
    safe: bool  # inherited from object/builtins, proven pure, or reviewed (hash matches)
    why: str  # "builtin", "pure", "reviewed", or the reason it is not safe


@dataclass(frozen=True, slots=True)
class ClassFacts:
    """What unpickling an instance of an allowlisted class can run (hack/gen_pickle_allowlist.py records it)."""

    path: str  # the defining path (module.qualname), whichever alias was asked for
    builtin_base: str  # nearest builtin base that changes unpickler fast paths (BUILTIN_BASES)
    instance_dict: bool  # instances have a writable __dict__ (instance attributes shadow methods)
    dynamic_getattr: bool  # __getattr__ or a custom __getattribute__: any attribute lookup is computed
    methods: Mapping[str, MethodFact]  # only IMPLICIT_METHODS the class has other than object's defaults


class ClassFactsError(RuntimeError):
    """A class-facts file is missing fields or malformed: the allowlist cannot be trusted."""


def class_facts(path: str) -> ClassFacts | None:
    """The facts of the class at ``path`` (public alias or defining module); None when
    ``path`` is not a known class (a function, a value, or unknown)."""
    entry = _entries().get(path)
    if entry is None:
        return None
    source, defining, value = entry
    facts = _parsed.get(defining)  # one object for a class and all its aliases
    if facts is None:
        facts = _parsed[defining] = _parse(source, defining, value)
    return facts


def is_class(path: str) -> bool:
    return path in _entries()


def known_classes() -> Iterator[str]:
    """Every path with facts (aliases included)."""
    return iter(_entries())


# scikit-learn < 0.23 vendored joblib as sklearn.externals.joblib: the same code under another
# path, which old model pickles name. Its array wrappers have joblib's facts.
VENDORED_ALIASES: Mapping[str, object] = {
    f"sklearn.externals.joblib.{module}.{wrapper}": f"joblib.{module}.{wrapper}"
    for module, wrappers in (
        ("numpy_pickle", ("NumpyArrayWrapper", "NDArrayWrapper", "ZNDArrayWrapper")),
        ("numpy_pickle_compat", ("NDArrayWrapper", "ZNDArrayWrapper")),
    )
    for wrapper in wrappers
}


# -- loading ---------------------------------------------------------------------------------


# An entry is parsed when a stream first names its class: reading every file's 1,048 is a
# few milliseconds of each scan worker's start-up (issue 14). A malformed entry still fails
# every scan that names the class (ClassFactsError), and a test parses them all.
_parsed: dict[str, ClassFacts] = {}


@functools.cache
def _entries() -> dict[str, tuple[str, str, object]]:
    """Every class's raw entry by path (aliases included): the file it came from, the
    defining path and the entry."""
    from modelsec.pickle.classfacts_torch import TORCH_CLASSES  # hand-written, PyTorch-free

    entries: dict[str, tuple[str, str, object]] = {}
    aliases: dict[str, str] = {}
    sources = [
        *_generated_files(),
        ("classfacts_torch.py", TORCH_CLASSES),
        ("classfacts.py", VENDORED_ALIASES),
    ]
    for name, mapping in sources:
        for path, value in mapping.items():
            if isinstance(value, str):
                aliases[path] = value
            else:
                entries[path] = (name, path, value)
    for alias, target in aliases.items():
        if target not in entries:
            raise ClassFactsError(f"class facts: alias {alias} names {target}, which has no facts")
        entries.setdefault(alias, entries[target])
    return entries


def _generated_files() -> Iterator[tuple[str, Mapping[str, object]]]:
    # Listed beside this module rather than through importlib.resources, whose readers
    # import zipfile (start-up cost of every scan worker, issue 14): modelsec is installed
    # as files (the wheel, the image).
    for entry in sorted(Path(__file__).parent.iterdir(), key=lambda e: e.name):
        if entry.name.startswith("classfacts_") and entry.name.endswith(".json"):
            try:
                document = json.loads(entry.read_text(encoding="utf-8"))
                classes = document["classes"]
            except (ValueError, KeyError, TypeError) as error:
                raise ClassFactsError(f"class facts: cannot read {entry.name}: {error}") from error
            if not isinstance(classes, dict):
                raise ClassFactsError(f"class facts: {entry.name}: 'classes' is not an object")
            yield entry.name, classes


def _parse(source: str, path: str, value: object) -> ClassFacts:
    try:
        assert isinstance(value, dict)
        base = value["builtin_base"]
        if base not in BUILTIN_BASES:
            raise ValueError(f"builtin_base {base!r}")
        methods = {}
        for name, fact in value["methods"].items():
            if name not in IMPLICIT_METHODS:
                raise ValueError(f"method {name!r} is not an implicit method")
            owner, safe, why = fact
            methods[name] = MethodFact(str(owner), bool(safe), str(why))
        return ClassFacts(
            path=path,
            builtin_base=base,
            instance_dict=bool(value["instance_dict"]),
            dynamic_getattr=bool(value["dynamic_getattr"]),
            methods=types.MappingProxyType(methods),
        )
    except (AssertionError, KeyError, TypeError, ValueError) as error:
        raise ClassFactsError(f"class facts: {source}: bad entry for {path}: {error}") from error
