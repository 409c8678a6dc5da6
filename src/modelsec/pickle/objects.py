"""Instances the stream builds, and the methods CPython's unpickler looks up on them.

The unpickler calls methods without any call opcode (``Modules/_pickle.c``, ``Lib/pickle.py``):

* ``BUILD`` calls ``getattr(inst, "__setstate__")`` if there is one, else writes the state
  into ``inst.__dict__`` and the slot state through ``setattr``, i.e.
  ``type(inst).__setattr__``;
* ``APPEND``/``APPENDS`` on anything but an exact list call ``inst.extend`` (the C unpickler,
  when it exists) or ``inst.append``; ``ADDITEMS`` on anything but a set calls ``inst.add``;
* ``SETITEM(S)`` calls ``type(obj).__setitem__``; ``NEWOBJ`` calls ``cls.__new__``; calling a
  class runs ``__new__`` and ``__init__``; ``dict(x)``-style consumers call ``x.keys()``.

Lookups through the *instance* (``getattr(inst, name)``) find the instance ``__dict__`` before
the class's methods, so a first ``BUILD`` that writes ``"__setstate__"`` or ``"extend"`` into
an instance decides what the next opcode calls. This module models exactly that: which
instance attributes the stream may have written (:class:`InstanceAttrs`), and what a lookup
finds (:func:`lookup`), from the class facts the allowlist generator computed by reading the
classes' code.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from modelsec.pickle.values import Container, Value, describe

if TYPE_CHECKING:
    from modelsec.pickle.classfacts import ClassFacts

# Names the unpickler (or a data consumer it calls) looks up on an instance, where an
# instance attribute shadows the class's method.
# ("items": pickle._Unpickler's BUILD walks a state with state.items(); "read": joblib
# calls wrapper.read(unpickler) on its array wrappers.)
INSTANCE_LOOKUPS = frozenset({"__setstate__", "append", "extend", "add", "keys", "items", "read"})
# Dict keys whose values matter beyond the container cap: the names above, what joblib's old
# array wrappers read from their state, and what setattr of a slot state turns
# into a different object (invoke.OBJECT_MACHINERY).
TRACKED_KEYS = INSTANCE_LOOKUPS | {"filename", "__class__", "__dict__"}
MAX_MERGED = 8  # states remembered per instance; past that its attributes are unknown


class Found(enum.Enum):
    ABSENT = "absent"  # AttributeError: CPython's unpickler fails there
    METHOD = "method"  # the class defines it (see MethodFact.safe)
    OVERRIDE = "override"  # the instance's __dict__ holds it: a value from the stream
    COMPUTED = "computed"  # nobody can tell statically (a __getattr__, an unknown __dict__)


@dataclass(frozen=True, slots=True)
class Lookup:
    """What a method lookup on a stream-built instance finds (an override, the class's method, ...)."""

    found: Found
    value: Value = None  # OVERRIDE: what the stream stored under the name
    owner: str = ""  # METHOD: the class that defines it; COMPUTED: why it cannot be told
    safe: bool = False  # METHOD: proven or reviewed safe by the allowlist generator
    why: str = ""  # METHOD: the generator's reason (pure, reviewed, or what it calls)


@dataclass(slots=True)
class InstanceAttrs:
    """What the stream may have written into one instance's ``__dict__``, as far as the
    unpickler's own lookups care: the tracked names, or "anything" once a state whose keys
    cannot be read was merged."""

    tracked: dict[str, Value]
    unknown: str = ""  # why its contents cannot be told, "" while they can
    written: bool = False  # the stream set attributes on it (any, tracked or not)
    # The dicts merged into it, for readers that judge every attribute (contracts.is_plain).
    merged: list[Container] = field(default_factory=list)

    def merge(self, state: Value) -> None:
        """``inst.__dict__.update(state)`` (or setattr of each item) with ``state`` as built."""
        if state is None:
            return
        if not (
            isinstance(state, Container) and state.kind == "dict" and not state.items and not state.dropped
        ):
            self.written = True
        if self.unknown:
            return
        if not isinstance(state, Container) or state.kind != "dict":
            self.unknown = f"its attributes were set from a {describe(state)}"
            return
        if state.opaque_keys:
            self.unknown = "its attributes were set from a dict with computed or uncounted keys"
            return
        if len(self.merged) >= MAX_MERGED:
            self.unknown = f"its attributes were set by more than {MAX_MERGED} states"
            return
        self.merged.append(state)
        for key, value in state.items:
            if isinstance(key, str) and key in INSTANCE_LOOKUPS:
                self.tracked[key] = value


def lookup(
    attrs: InstanceAttrs | None,
    facts: ClassFacts | None,
    cls_path: str,
    name: str,
) -> Lookup:
    """What ``getattr(instance, name)`` finds on an instance of ``cls_path``."""
    if facts is None:
        return Lookup(Found.COMPUTED, owner=f"nothing is known of the methods of {cls_path}")
    if facts.instance_dict and attrs is not None:
        if name in attrs.tracked:
            return Lookup(Found.OVERRIDE, attrs.tracked[name])
        if attrs.unknown:
            return Lookup(Found.COMPUTED, owner=attrs.unknown)
    method = facts.methods.get(name)
    if method is not None:
        return Lookup(Found.METHOD, owner=method.owner, safe=method.safe, why=method.why)
    if facts.dynamic_getattr:
        return Lookup(Found.COMPUTED, owner=f"{cls_path} computes missing attributes (__getattr__)")
    return Lookup(Found.ABSENT)


def type_lookup(facts: ClassFacts | None, cls_path: str, name: str) -> Lookup:
    """A special method looked up on the type (``type(obj).__setitem__``), never the instance."""
    if facts is None:
        return Lookup(Found.COMPUTED, owner=f"nothing is known of the methods of {cls_path}")
    method = facts.methods.get(name)
    if method is not None:
        return Lookup(Found.METHOD, owner=method.owner, safe=method.safe, why=method.why)
    return Lookup(Found.ABSENT)
