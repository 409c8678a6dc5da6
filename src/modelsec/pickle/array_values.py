"""The contents of NumPy arrays a stream builds, for contracts over indexes that compiled
code trusts.

scikit-learn's trees, scipy's sparse matrices and NumPy's bit generators keep child
pointers, column indexes and cursors in arrays, and their compiled code follows them with
bounds checks off: a value the file chose reads or writes out of bounds when the object is
used (red team, 2026-12-07). The bytes are in the stream, so a contract can read them:

- an array the stream pickled itself is ``_reconstruct(ndarray, (0,), b'b')`` and a BUILD
  of ``(version, shape, dtype, is_fortran, data)``; ``data`` is a bytes literal, or a
  :class:`~modelsec.pickle.opcodes.Blob` (large) whose bytes the scanner reads back;
- a joblib ``NumpyArrayWrapper`` (state ``shape``, ``dtype``, ``order``): its bytes follow
  the stream, where the scanner recorded them.

A dtype is compared by its *layout*, never built from the stream: a plain type as a type
string with its byte order (``"<i8"``), a record as its fields (name, type string,
offset) and item size. Contracts compare layouts with the ones the library writes and view
the bytes through their own NumPy dtype. What cannot be read this way is a problem string;
contracts fail closed on it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelsec.pickle.values import (
    Call,
    Container,
    Derived,
    Global,
    Value,
    describe,
    dict_items,
    every_item,
    from_buffer,
    sequence_items,
)

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from modelsec.pickle.observer import Observer

# The most a contract reads of one array: a forest's largest trees are a few MB of nodes.
MAX_ARRAY_BYTES = 256 << 20
_NDARRAYS = frozenset({"numpy.ndarray"})
_WRAPPERS = frozenset(
    {"joblib.numpy_pickle.NumpyArrayWrapper", "sklearn.externals.joblib.numpy_pickle.NumpyArrayWrapper"}
)
_SCALARS = frozenset({"numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar"})
_DTYPES = frozenset({"numpy.dtype", "numpy.core.multiarray.dtype", "numpy._core.multiarray.dtype"})


@dataclass(frozen=True)
class Record:
    """A record dtype's layout: (name, type string, offset) per field, and its item size."""

    fields: tuple[tuple[str, str, int], ...]
    itemsize: int

    def numpy_dtype(self) -> np.dtype[np.void]:
        import numpy as np

        names, formats, offsets = zip(*self.fields, strict=True)
        spec = {
            "names": list(names),
            "formats": list(formats),
            "offsets": list(offsets),
            "itemsize": self.itemsize,
        }
        made: np.dtype[np.void] = np.dtype(spec)  # type: ignore[call-overload]  # stubs lack the dict form
        return made


Layout = str | Record  # "<i8", "|u1", or a record


@dataclass(frozen=True)
class ArrayData:
    """An array's shape, dtype layout and bytes (C order)."""

    shape: tuple[int, ...]
    layout: Layout
    data: bytes


def read_array(value: Value, observer: Observer, limit: int = MAX_ARRAY_BYTES) -> ArrayData | str:
    """What ``value`` holds, if it is a NumPy array the stream built; else why not."""
    if not (isinstance(value, Call) and value.cls is not None):
        return f"{describe(value)}, not an array the stream built"
    path = value.cls.path
    if path in _NDARRAYS and value.state is None and from_buffer(value):
        # protocol 5: _frombuffer(buffer, dtype, shape, order)
        args = sequence_items(value.args) or ()
        if len(args) != 4:
            return "an array made by _frombuffer with other arguments than numpy writes"
        buffer, dtype, shape, fortran = args[0], args[1], args[2], args[3] != "C"
        data = observer.literal_bytes(buffer, limit)
    elif path in _NDARRAYS:
        state = sequence_items(value.state)
        if state is None or len(state) != 5:
            return "an array whose BUILD state is not numpy's (version, shape, dtype, order, data)"
        shape, dtype, fortran = state[1], state[2], state[3] is not False
        data = observer.literal_bytes(state[4], limit)
    elif path in _WRAPPERS:
        fields = dict_items(value.state)
        if fields is None:
            return "a joblib array wrapper whose state cannot be read"
        shape, dtype, fortran = fields.get("shape"), fields.get("dtype"), fields.get("order") != "C"
        data = observer.joblib_array_bytes(value, limit)
    else:
        return f"an instance of {value.cls.subject}, not a numpy array"
    if data is None:
        return "an array whose bytes cannot be read"
    dims = sequence_items(shape)
    if dims is None or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in dims):
        return "an array whose shape cannot be read"
    layout = dtype_layout(dtype)
    if layout is None:
        return "an array whose dtype cannot be read"
    size = math.prod(dims) * (layout.itemsize if isinstance(layout, Record) else _itemsize(layout))
    if len(data) != size:
        return f"an array of {len(data)} bytes where its shape and dtype make {size}"
    if fortran and len(dims) > 1:
        return "an array in Fortran order"  # contracts read C order; these libraries write C
    return ArrayData(tuple(dims), layout, data)


def array_shape(value: Value) -> tuple[int, ...] | None:
    """The shape of a NumPy array the stream built, as its own state says (no bytes are
    read: object arrays too), or None if it is no such array."""
    if not (isinstance(value, Call) and value.cls is not None):
        return None
    if value.cls.path in _NDARRAYS and value.state is None and from_buffer(value):
        args = sequence_items(value.args) or ()
        dims = sequence_items(args[2]) if len(args) == 4 else None
    elif value.cls.path in _NDARRAYS:
        state = sequence_items(value.state)
        dims = sequence_items(state[1]) if state is not None and len(state) == 5 else None
    elif value.cls.path in _WRAPPERS:
        fields = dict_items(value.state)
        dims = sequence_items(fields.get("shape")) if fields is not None else None
    else:
        return None
    if dims is None or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in dims):
        return None
    return tuple(dims)


def object_items(value: Value, observer: Observer) -> list[Value] | None:
    """The items of a 1-dimensional object array the stream built (``_reconstruct`` and a
    BUILD whose data is the list of items, or joblib's nested stream of one), or None."""
    if isinstance(value, Call) and value.cls is not None and value.cls.path in _WRAPPERS:
        value = observer.joblib_array_value(value)
    shape = array_shape(value)
    state = sequence_items(value.state) if isinstance(value, Call) else None
    if shape is None or len(shape) != 1 or state is None or len(state) != 5:
        return None
    items = every_item(state[4], observer) if isinstance(state[4], Container) else None
    if items is None or state[4].kind != "list":
        return None
    return items if len(items) == shape[0] else None


def scalar_int(value: Value) -> int | None:
    """An int, or a NumPy integer scalar (``scalar(dtype, data)``, as pickles of
    ``np.int64(3)`` are written) as an int; None for anything else."""
    if type(value) is int:
        return value
    if not (isinstance(value, Call) and isinstance(value.callee, Global) and value.callee.path in _SCALARS):
        return None
    args = sequence_items(value.args) or ()
    data = args[1] if len(args) == 2 else None
    if isinstance(data, Derived) and data.transform == "encode:latin-1" and isinstance(data.source, str):
        data = data.source.encode("latin-1", "replace")  # protocol 2: _codecs.encode(s, 'latin1')
    if not isinstance(data, bytes):
        return None
    layout = dtype_layout(args[0])
    if not isinstance(layout, str) or layout[1:2] not in ("i", "u") or len(data) != _itemsize(layout):
        return None
    return int.from_bytes(data, "big" if layout[0] == ">" else "little", signed=layout[1] == "i")


INT_LAYOUTS = frozenset({"<i4", "<i8"})  # the index types these libraries write


def read_ints(
    value: Value, observer: Observer, limit: int = MAX_ARRAY_BYTES
) -> npt.NDArray[np.signedinteger[Any]] | str:
    """The values of a little-endian int32 or int64 array the stream built, in its shape;
    else why not (for contracts over indexes)."""
    found = read_array(value, observer, limit)
    if isinstance(found, str):
        return found
    if not isinstance(found.layout, str) or found.layout not in INT_LAYOUTS:
        return "not an integer array"
    import numpy as np

    return np.frombuffer(found.data, dtype=found.layout).reshape(found.shape)


def dtype_layout(dtype: Value, depth: int = 0) -> Layout | None:
    """The layout of a pickled ``numpy.dtype(typestr, False, True)`` (and its BUILD)."""
    if depth > 2 or not (isinstance(dtype, Call) and isinstance(dtype.callee, Global)):
        return None
    args = sequence_items(dtype.args)
    if dtype.callee.path not in _DTYPES or not args or not isinstance(args[0], str):
        return None
    typestr = args[0]
    if typestr[:1] in ("<", ">", "|", "="):
        # numpy writes the byte order in the state, never in the type string: '>i4' is
        # big-endian to numpy with no BUILD at all (red team, session 22)
        return None
    state = sequence_items(dtype.state) if dtype.state is not None else ()
    if state is None:
        return None
    order = state[1] if len(state) > 1 else "="
    if order not in ("<", ">", "=", "|"):
        # numpy also takes the order as bytes (b'>'), which made it big-endian while this
        # read it as native (red team, session 22): only the str numpy writes is read
        return None
    names = sequence_items(state[3]) if len(state) > 4 and state[3] is not None else None
    if names is None:
        if typestr[:1] == "V" or (len(state) > 2 and state[2] is not None):
            return None  # a void without fields, or a subarray: not what these arrays hold
        size = _itemsize(typestr)
        if size <= 0:
            return None
        return ("|" if size == 1 else ">" if order == ">" else "<") + typestr
    fields = dict_items(state[4])
    itemsize = state[5] if len(state) > 5 else None
    if fields is None or not isinstance(itemsize, int) or isinstance(itemsize, bool):
        return None
    out = []
    for name in names:
        entry = sequence_items(fields.get(name)) if isinstance(name, str) else None
        if entry is None or len(entry) != 2 or not isinstance(entry[1], int):
            return None
        inner = dtype_layout(entry[0], depth + 1)
        if not isinstance(inner, str):
            return None
        out.append((name, inner, entry[1]))
    return Record(tuple(out), itemsize)


def _itemsize(typestr: str) -> int:
    kind, width = typestr.lstrip("<>|=")[:1], typestr.lstrip("<>|=")[1:]
    if kind not in "biufc" or not width.isdigit():
        return 0
    return int(width)
