"""Whether a pickled NumPy random state keeps its cursor inside its buffer.

The ``state`` setters of NumPy's bit generators copy the integers they are given into the
C state. ``MT19937`` keeps ``pos`` unchecked: ``mt19937_next`` regenerates its 624 words
only when ``pos`` equals 624 and otherwise reads ``key[pos++]``, so a larger (or negative)
``pos`` reads past the state, and every draw returns heap bytes until it reaches unmapped
memory (red team, 2026-12-07: ``Generator.random()`` segfaulted). ``Philox`` reads
``buffer[buffer_pos]`` while ``buffer_pos`` is below 4, so a negative one reads before it.

A state reaches a setter through ``BitGenerator.__setstate__`` (a dict, or a tuple of the
dict and a seed sequence), ``Generator.__setstate__`` (older pickles) and
``RandomState.__setstate__`` (a dict, or the legacy ``('MT19937', key, pos, has_gauss,
gauss)`` tuple). The bit generator is the one the dict names: a name that differs from the
object's class is a ``ValueError`` in NumPy, before any state is copied.
"""

from __future__ import annotations

from modelsec.pickle.values import Value, dict_items, sequence_items

MT19937_WORDS = 624  # RK_STATE_LEN: pos == 624 regenerates the key
PHILOX_BUFFER = 4


def state_problem(state: Value) -> str | None:
    """Why a bit generator's (or RandomState's) pickled state may move its cursor out of
    its buffer, or None."""
    items = sequence_items(state)
    if items is not None:
        if len(items) == 2 and dict_items(items[0]) is not None:
            return state_problem(items[0])  # BitGenerator: (state dict, seed sequence)
        if len(items) >= 3 and items[0] == "MT19937":
            return _cursor("pos", items[2], MT19937_WORDS)  # RandomState's legacy tuple
        return "its state is not a dict or the tuple numpy writes"
    fields = dict_items(state)
    if fields is None:
        return "its state is not a dict whose fields can be read"
    name = fields.get("bit_generator")
    inner = dict_items(fields.get("state"))
    if not isinstance(name, str):
        return "its state does not name its bit generator"
    if name == "MT19937":
        return _cursor("pos", inner.get("pos") if inner is not None else None, MT19937_WORDS)
    if name == "Philox":
        return _cursor("buffer_pos", fields.get("buffer_pos"), PHILOX_BUFFER)
    return None  # PCG64, PCG64DXSM, SFC64: no cursor into a buffer


def _cursor(name: str, value: Value, size: int) -> str | None:
    if not isinstance(value, int) or isinstance(value, bool):
        return f"its {name} is not a literal integer"
    if not 0 <= value <= size:
        return f"its {name} is {value}, outside 0..{size}: every draw reads past the generator's state"
    return None
