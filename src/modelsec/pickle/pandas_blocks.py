"""Whether a pickled pandas ``BlockManager`` places its blocks inside its items axis.

pandas rebuilds a manager from blocks and axes (``BlockManager(blocks, axes)``, each block
``_unpickle_block(values, placement, ndim)``; or the legacy ``"0.14.1"`` state of
``BlockManager.__setstate__``). Its compiled ``_rebuild_blknos_and_blklocs`` then writes
into two arrays of ``len(items)`` at every placement index, with bounds checks off: a
placement past the items axis (or negative) writes out of bounds, at an offset the file
chooses (SIGSEGV in every loader; red team, 2026-12-07).

``BlockManager(blocks, axes)`` first verifies that the items axis is as long as all
placements together, so there every index must lie below that count. The legacy state is
not verified: there the items axis's length must be read from the stream (an Index of an
array, a RangeIndex). Placements are slices of literal ints, or int arrays whose bytes
the stream holds; what cannot be read that way cannot be checked, and fails closed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelsec.pickle.array_values import array_shape, read_ints
from modelsec.pickle.values import Call, Container, Global, Value, dict_items, sequence_items

if TYPE_CHECKING:
    from modelsec.pickle.observer import Observer

_INT_SIZES = {1: "b", 2: "h", 4: "i", 8: "q"}
MAX_DECODED = 1 << 16  # placement entries read per array (a DataFrame's columns)


def placement_problem(
    placements: list[Value], observer: Observer, items_axis: Value | None = None
) -> str | None:
    """Why these block placements may fall outside the items axis, or None. Without
    ``items_axis`` (a verified manager) its length is the number of placements."""
    bounds = [placement_bounds(placement, observer) for placement in placements]
    if any(b is None for b in bounds):
        return "a block placement is not a slice or an int array the stream shows"
    known = [b for b in bounds if b is not None]
    length = sum(count for _, _, count in known) if items_axis is None else axis_length(items_axis)
    if length is None:
        return "its items axis is not one whose length the stream shows"
    for low, high, count in known:
        if count and (low < 0 or high >= length):
            return f"a block is placed at items {low}..{high} of an axis of {length}"
    return None


def placement_bounds(value: Value, observer: Observer) -> tuple[int, int, int] | None:
    """(lowest, highest, count) of a placement's indexes, or None."""
    if _is_call_of(value, "pandas._libs.internals.BlockPlacement"):
        args = sequence_items(value.args) if isinstance(value, Call) else None
        return placement_bounds(args[0], observer) if args else None
    listed = sequence_items(value) if isinstance(value, (tuple, Container)) else None
    if listed is not None:
        ints = [i for i in listed if isinstance(i, int) and not isinstance(i, bool)]
        if len(ints) != len(listed):
            return None
        return (min(ints), max(ints), len(ints)) if ints else (0, -1, 0)
    if _is_call_of(value, "builtins.slice"):
        parts = sequence_items(value.args) if isinstance(value, Call) else None
        if parts is None or not all(p is None or _is_int(p) for p in parts) or not 1 <= len(parts) <= 3:
            return None
        start, stop, step = (None, parts[0], None) if len(parts) == 1 else (*parts, None)[:3]
        if stop is None or step == 0:
            return None
        indices = range(start or 0, stop, step if step is not None else 1)
        return (min(indices), max(indices), len(indices)) if indices else (0, -1, 0)
    values = read_ints(value, observer, MAX_DECODED * 8)
    if isinstance(values, str) or values.ndim != 1:
        return None
    return (int(values.min()), int(values.max()), len(values)) if values.size else (0, -1, 0)


def axis_length(value: Value) -> int | None:
    """The length of a pickled items axis: a list of labels, ``_new_Index(cls, {"data":
    array, ...})``, a RangeIndex's ``start``/``stop``/``step``, a MultiIndex's ``codes``."""
    listed = sequence_items(value) if isinstance(value, (tuple, Container)) else None
    if listed is not None:
        return len(listed)  # ensure_index of a plain list of labels
    if not isinstance(value, Call):
        return None
    args = sequence_items(value.args)
    fields = dict_items(args[1]) if args is not None and len(args) == 2 else None
    if fields is None:
        return None
    if "data" in fields:
        shape = array_shape(fields["data"])
        return shape[0] if shape else None
    if {"start", "stop"} <= fields.keys():
        start, stop, step = fields["start"], fields["stop"], fields.get("step", 1)
        if _is_int(start) and _is_int(stop) and _is_int(step) and step:
            return len(range(start, stop, step))
        return None
    codes = sequence_items(fields.get("codes"))
    if codes:
        shape = array_shape(codes[0])
        return shape[0] if shape else None
    return None


def _is_int(value: Value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_call_of(value: Value, path: str) -> bool:
    return isinstance(value, Call) and (
        (value.cls is not None and value.cls.path == path)
        or (isinstance(value.callee, Global) and value.callee.path == path)
    )


def unpickled_blocks(blocks: Value) -> list[Value] | None:
    """The placements of ``BlockManager(blocks, ...)``'s blocks, each made by
    ``_unpickle_block(values, placement, ndim)``; None if a block is anything else."""
    items = sequence_items(blocks)
    if items is None:
        return None
    placements = []
    for block in items:
        if not _is_call_of(block, "pandas._libs.internals._unpickle_block"):
            return None
        args = sequence_items(block.args) if isinstance(block, Call) else None
        if args is None or len(args) < 2:
            return None
        placements.append(args[1])
    return placements


def legacy_state_blocks(state: Value) -> tuple[list[Value], Value] | None:
    """(placements, items axis) of the ``"0.14.1"`` state ``BlockManager.__setstate__``
    reads, or None if the state is not that."""
    parts = sequence_items(state)
    extra = dict_items(parts[3]) if parts is not None and len(parts) >= 4 else None
    legacy = dict_items(extra.get("0.14.1")) if extra is not None else None
    if legacy is None:
        return None
    axes = sequence_items(legacy.get("axes"))
    blocks = sequence_items(legacy.get("blocks"))
    if not axes or blocks is None:
        return None
    placements = []
    for block in blocks:
        fields = dict_items(block) if isinstance(block, Container) else None
        if fields is None:
            return None
        placements.append(fields.get("mgr_locs"))
    return placements, axes[0]
