"""The abstract values of the backdoor analysis: what is known of each value in the graph.

A :class:`Val` says whether a value depends on input data, on shapes only, or on embedded
constants only, and what is known about the triggers and switches it depends on (see
:mod:`modelsec.backdoor.analysis`). Values only grow along the dataflow; :func:`join` is
the least upper bound used where control flow merges values. :class:`Trigger` and
:class:`Switch` record what the analysis found; an :class:`Effect` is a switch's influence
carried by a value, with the path it took.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from modelsec.backdoor.graph import Constant

# A path is a cons list: (label, rest) ... None. Values share tails, so keeping a path per
# value costs one tuple.
Path = tuple[str, "Path"] | None

SWITCH = "switch"  # output becomes a constant when triggered
OFFSET = "offset"  # output is shifted or scaled by a constant when triggered


@dataclass(frozen=True, slots=True)
class Effect:
    """A switch's influence carried by a value: which switch, whether it switches or offsets, its path."""

    sid: int
    strength: str
    path: Path = field(compare=False, hash=False, default=None)


@dataclass(frozen=True, slots=True)
class Val:
    """What is known of one value: data dependence, constants, triggers and switch effects."""

    data: bool = False  # depends on input element values
    aux: bool = False  # depends on shapes/randomness, not on embedded constants only
    const: Constant | None = None  # what is known of a non-data value
    reduced: bool = False  # a reduction/selection of data, through transparent ops
    trig: frozenset[int] = frozenset()  # triggers this value depends on
    ind: frozenset[tuple[int, bool]] = frozenset()  # is the indicator "trigger == pol"
    gated: bool = False  # data-dependent only through triggers
    gate_uniform: bool = False  # gated, and one uniform value per trigger outcome
    # gated, and a mere selection between constants by the trigger's boolean (casts,
    # logic, Where(c, K1, K2), c*K): the values that can be switched or blended in. A
    # value computed from a mask (CumSum position ids, an embedding lookup) is gated but
    # is not a constant being switched in.
    selector: bool = False
    effects: frozenset[Effect] = frozenset()
    src: Path = field(default=None, compare=False, hash=False)  # input -> here

    @property
    def pure_const(self) -> bool:
        return not self.data and not self.aux

    @property
    def uniform(self) -> float | None:
        return self.const.uniform if self.const is not None and not self.data else None


DATA_UNKNOWN = Val(data=True)
CONST_UNKNOWN = Val()
AUX = Val(aux=True)


@dataclass(frozen=True)
class Trigger:
    """A comparison of input data with an embedded constant, and the path the data took to it."""

    id: int
    node: str
    op: str
    constant: str
    constant_uniform: float | None
    reduced: bool
    source: Path


@dataclass(frozen=True)
class Switch:
    """Where a trigger switches in a constant (or shifts the output by one): kind, node, trigger, fill."""

    id: int
    kind: str  # where | if | loop | gate | blend | offset
    node: str
    where: str
    trigger: Trigger
    fill: str
    fill_zero: bool = False  # what is switched in is 0: adding it to other data is no-op
    offset: int | None = None


class Scope:
    __slots__ = ("parent", "values")

    def __init__(self, parent: Scope | None = None) -> None:
        self.values: dict[str, Val] = {}
        self.parent = parent

    def get(self, name: str) -> Val:
        scope: Scope | None = self
        while scope is not None:
            found = scope.values.get(name)
            if found is not None:
                return found
            scope = scope.parent
        return DATA_UNKNOWN  # undefined: assume it is data (computed, not a constant)

    def set(self, name: str, value: Val) -> None:
        if name:
            self.values[name] = value


def path_list(path: Path) -> list[str]:
    out: list[str] = []
    while path is not None:
        out.append(path[0])
        path = path[1]
    out.reverse()
    return out


def join(vals: Iterable[Val]) -> Val:
    """What is known of a value that may be any of ``vals`` (merged control flow)."""
    values = list(vals)
    if not values:
        return DATA_UNKNOWN
    data_vals = [v for v in values if v.data]
    consts = {id(v.const) for v in values}
    return Val(
        data=bool(data_vals),
        aux=any(v.aux for v in values),
        const=values[0].const if not data_vals and len(consts) == 1 else None,
        trig=frozenset[int]().union(*(v.trig for v in values)),
        gated=bool(data_vals) and all(v.gated for v in data_vals),
        selector=bool(data_vals) and all(v.selector for v in data_vals),
        effects=frozenset[Effect]().union(*(v.effects for v in values)),
        src=next((v.src for v in data_vals if v.src is not None), None),
    )


def describe_fill(v: Val) -> str:
    """What a switch puts in place of the computed value, for the finding."""
    if v.const is not None:
        return v.const.describe()
    return "a constant computed in the graph"
