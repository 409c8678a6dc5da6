"""The abstract values of the static evaluator: what an expression may evaluate to.

A :class:`Val` over-approximates the set of runtime values of one template expression:

* ``consts``: values known exactly (strings, numbers, booleans, None, and lists as tuples),
  so that ``'__cla' ~ 'ss__'`` or ``'ssalc__'|reverse`` fold to the name they build;
* ``num``: some number not known statically (``loop.index``, ``messages|length``);
* ``data``: a value the caller passed in (``messages``, ``tools``) or selected from one;
* ``text``: a string computed at render time whose content is unknown;
* ``obj``: an arbitrary Python object (a Jinja global, a macro, something unknown);
* ``seq``: it may be a container whose elements are described by ``seq``.

Folding is bounded (:data:`MAX_CONSTS` alternatives, :data:`MAX_STR` characters,
:data:`MAX_TUPLE` items); past a bound a value widens to ``text``/``num``/``obj``, which is
always the safe direction: only a name the evaluator can prove harmless passes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

MAX_CONSTS = 64
MAX_STR = 1 << 16
MAX_TUPLE = 4096
MAX_INT = 1 << 64

# Consts are stored tagged with their type so that 1, 1.0 and True stay distinct.
Tagged = tuple[type, Any]


def _tag(value: Any) -> Tagged:
    return (type(value), value)


@dataclass(frozen=True)
class Val:
    """What one template expression may evaluate to: known constants, and kinds of unknown value."""

    consts: frozenset[Tagged] = frozenset()
    num: bool = False
    data: bool = False
    text: bool = False
    obj: bool = False
    seq: Val | None = field(default=None)
    # Self-similar: iterating the value may again yield anything the value is (lists nested
    # deeper than MAX_SEQ_DEPTH collapse to this, which keeps the lattice finite).
    rec: bool = False

    # --- construction ---------------------------------------------------------------------
    @staticmethod
    def of(*values: Any) -> Val:
        return from_values(values)

    @property
    def values(self) -> Iterator[Any]:
        return (v for _, v in self.consts)

    @property
    def strings(self) -> list[str]:
        return [v for v in self.values if isinstance(v, str)]

    @property
    def exact(self) -> bool:
        """Every possible value is known."""
        return not (self.num or self.data or self.text or self.obj or self.seq is not None or self.rec)

    @property
    def computed(self) -> bool:
        """May be a string or object built at render time with content we cannot know."""
        return self.text or self.obj

    def join(self, other: Val) -> Val:
        if other is self or other == NOTHING:
            return self
        if self == NOTHING:
            return other
        seq = self.seq if other.seq is None else (other.seq if self.seq is None else self.seq.join(other.seq))
        joined = Val(
            self.consts | other.consts,
            self.num or other.num,
            self.data or other.data,
            self.text or other.text,
            self.obj or other.obj,
            seq,
            self.rec or other.rec,
        )
        return _limit_depth(_capped(joined))


NOTHING = Val()
NUM = Val(num=True)
DATA = Val(data=True)
TEXT = Val(text=True)
OBJ = Val(obj=True)
BOOL = Val(frozenset({_tag(True), _tag(False)}))
# Anything at all: what a value we cannot follow must be assumed to be.
TOP = Val(num=True, data=True, text=True, obj=True)


def only_data(val: Val) -> bool:
    """Apart from its constants, the value is the caller's data and nothing else."""
    return val.data and not (val.num or val.text or val.obj or val.rec)


def join_all(vals: Iterable[Val]) -> Val:
    out = NOTHING
    for v in vals:
        out = out.join(v)
    return out


def _widen(values: Iterable[Any]) -> Val:
    """An inexact description of many constants."""
    out = NOTHING
    items: list[Any] = []
    for v in values:
        if isinstance(v, str):
            out = Val(num=out.num, data=out.data, text=True, obj=out.obj, seq=out.seq)
        elif isinstance(v, (bool, int, float)):
            out = Val(num=True, data=out.data, text=out.text, obj=out.obj, seq=out.seq)
        elif isinstance(v, tuple):
            items.extend(v[:MAX_TUPLE])
    if items:
        element = _widen(items) if len(set(map(_tag_safe, items))) > MAX_CONSTS else from_values(items)
        out = Val(
            num=out.num,
            data=out.data,
            text=out.text,
            obj=out.obj,
            seq=element if out.seq is None else out.seq.join(element),
        )
    return out


def _tag_safe(value: Any) -> Any:
    try:
        hash(value)
        return _tag(value)
    except TypeError:
        return id(value)


def _capped(val: Val) -> Val:
    if len(val.consts) <= MAX_CONSTS:
        return val
    wide = _widen(val.values)
    return Val(
        frozenset(),
        val.num or wide.num,
        val.data,
        val.text or wide.text,
        val.obj,
        wide.seq if val.seq is None else (val.seq if wide.seq is None else val.seq.join(wide.seq)),
        val.rec,
    )


MAX_SEQ_DEPTH = 3


def _flat(val: Val) -> Val:
    return Val(val.consts, val.num, val.data, val.text, val.obj, None, val.rec)


def _collapse(val: Val) -> Val:
    """One self-similar value covering ``val`` and everything nested in it."""
    consts: frozenset[Tagged] = frozenset()
    num = data = text = obj = False
    cur: Val | None = val
    while cur is not None:
        consts |= cur.consts
        num, data, text, obj = num or cur.num, data or cur.data, text or cur.text, obj or cur.obj
        cur = cur.seq
    return _capped(Val(consts, num, data, text, obj, None, True))


def _limit_depth(val: Val) -> Val:
    levels = []
    cur: Val | None = val
    while cur is not None:
        levels.append(cur)
        cur = cur.seq
    if len(levels) <= MAX_SEQ_DEPTH:
        return val
    out = _collapse(levels[MAX_SEQ_DEPTH - 1])
    for level in reversed(levels[: MAX_SEQ_DEPTH - 1]):
        out = Val(level.consts, level.num, level.data, level.text, level.obj, out, level.rec)
    return out


def normalise(value: Any) -> Any:
    """A folded Python value as a storable constant, or ``_UNKNOWN`` if it is not one."""
    if value is None or isinstance(value, (bool, str)):
        if isinstance(value, str) and len(value) > MAX_STR:
            return _UNKNOWN_TEXT
        return value
    if isinstance(value, int):
        return value if -MAX_INT <= value <= MAX_INT else _UNKNOWN_NUM
    if isinstance(value, float):
        return value if math.isfinite(value) else _UNKNOWN_NUM
    if isinstance(value, (list, tuple)):
        if len(value) > MAX_TUPLE:
            return _UNKNOWN_OBJ
        items = tuple(normalise(v) for v in value)
        if any(isinstance(i, _Unknown) for i in items):
            return _UNKNOWN_OBJ
        return items
    return _UNKNOWN_OBJ


class _Unknown:
    def __init__(self, val: Val) -> None:
        self.val = val


_UNKNOWN_TEXT = _Unknown(TEXT)
_UNKNOWN_NUM = _Unknown(NUM)
_UNKNOWN_OBJ = _Unknown(OBJ)


def from_values(values: Iterable[Any]) -> Val:
    """A Val for folded Python values (normalised; unknowns widen)."""
    consts: set[Tagged] = set()
    out = NOTHING
    for raw in values:
        v = normalise(raw)
        if isinstance(v, _Unknown):
            out = out.join(v.val)
            continue
        consts.add(_tag(v))
        if len(consts) > MAX_CONSTS:
            return out.join(_capped(Val(frozenset(consts))))
    return out.join(Val(frozenset(consts)))


def elements(val: Val) -> Val:
    """What iterating over ``val`` yields."""
    parts: list[Any] = []
    out = NOTHING
    for v in val.values:
        if isinstance(v, str):
            parts.extend(set(v) if len(v) > MAX_CONSTS else v)
        elif isinstance(v, tuple):
            parts.extend(v)
    if parts:
        out = out.join(from_values(parts))
    if val.seq is not None:
        out = out.join(val.seq)
    if val.data:
        out = out.join(DATA)
    if val.text:
        out = out.join(TEXT)  # characters of an unknown string
    if val.obj:
        out = out.join(TOP)  # iterating an unknown object yields anything
    if val.rec:
        out = out.join(val)
    return out


def estimated_len(value: Any, budget: int = MAX_STR) -> int:
    """An upper bound of ``len(str(value))`` for a constant, computed without building the
    string (stops counting once past ``budget``)."""
    if isinstance(value, str):
        return len(value) + 2  # repr quotes inside lists
    if isinstance(value, tuple):
        total = 2
        for item in value:
            total += estimated_len(item, budget - total) + 2
            if total > budget:
                return total
        return total
    return 32  # None, bools, bounded ints and floats


def to_str(value: Any) -> str | None:
    """``str()`` of a constant as Jinja would print it, bounded; None if too long."""
    if isinstance(value, tuple):
        if estimated_len(value) > MAX_STR:
            return None
        value = list(value)
    try:
        text = str(value)
    except Exception:
        return None
    return text if len(text) <= MAX_STR else None
