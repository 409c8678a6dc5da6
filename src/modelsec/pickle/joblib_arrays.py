"""Sizing the raw array bytes joblib writes inside its pickles.

``joblib.dump`` pickles a ``NumpyArrayWrapper`` (subclass, shape, order, dtype,
allow_mmap, numpy_array_alignment_bytes) and writes the array right after the wrapper's
BUILD: one padding-length byte and that many pad bytes (joblib >= 1.2 on seekable files),
then ``prod(shape) * itemsize`` raw bytes, or, for dtypes holding objects, a whole nested
pickle. ``joblib.load`` reads exactly that and resumes unpickling after it; so do we.
The wrapper's dtype is itself a ``numpy.dtype(typestr, align, copy)`` call whose BUILD
state (version, byteorder, subarray, names, fields, elsize, alignment, flags) gives the
item size for strings and structured types.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from modelsec.pickle.values import Call, Container, Global, Value, dict_items, sequence_items

# Classes whose instances joblib follows with raw array bytes (or a nested pickle) in the
# same file, right after their BUILD.
JOBLIB_INLINE_ARRAY = frozenset(
    {"joblib.numpy_pickle.NumpyArrayWrapper", "sklearn.externals.joblib.numpy_pickle.NumpyArrayWrapper"}
)
# Older wrappers that load their array from a sibling file named in their state.
JOBLIB_FILE_ARRAY = frozenset(
    {
        f"{package}.{module}.{wrapper}"
        for package in ("joblib", "sklearn.externals.joblib")
        for module in ("numpy_pickle", "numpy_pickle_compat")  # joblib < 0.10 kept them in the first
        for wrapper in ("NDArrayWrapper", "ZNDArrayWrapper")
    }
)
JOBLIB_WRAPPERS = JOBLIB_INLINE_ARRAY | JOBLIB_FILE_ARRAY
# What joblib.dump writes into a NumpyArrayWrapper's state (joblib 0.10 to 1.x).
WRAPPER_FIELDS = frozenset(
    {"subclass", "shape", "order", "dtype", "allow_mmap", "numpy_array_alignment_bytes"}
)


def is_array_wrapper(value: Value) -> bool:
    """A NumpyArrayWrapper whose state holds only what joblib writes: joblib.load replaces
    it by the array, and plain pickle.load leaves a wrapper holding data."""
    if not (isinstance(value, Call) and value.cls is not None and value.cls.path in JOBLIB_INLINE_ARRAY):
        return False
    state = value.state
    return (
        isinstance(state, Container)
        and state.kind == "dict"
        and not state.dropped
        and not state.opaque_keys
        and all(isinstance(key, str) and key in WRAPPER_FIELDS for key, _ in state.items)
    )


def unwritten_wrapper(wrapper: Call) -> str | None:
    """Why ``wrapper`` (a NumpyArrayWrapper just built) is not one ``joblib.dump`` writes,
    or None if it is.

    joblib locates the array bytes from the wrapper *object*: every attribute any BUILD set,
    the defaults ``__init__`` sets when the class is called, and methods looked up on the
    instance (``read``, ``safe_get_numpy_array_alignment_bytes``), which a state can
    shadow. Its layout is known only for the shape joblib writes: created without
    ``__init__`` (``NEWOBJ`` or ``copyreg.__newobj__``, or ``copyreg._reconstructor`` at
    protocols 0 and 1), one
    BUILD, a plain dict of the fields it pickles."""
    created = _created_bare(wrapper)
    if created is not None:
        return created
    attrs = wrapper.attrs
    if attrs is not None and (attrs.unknown or len(attrs.merged) > 1):
        return "the wrapper's state was set more than once"
    if wrapper.grown:
        return "items were added to the wrapper"
    state = wrapper.state
    if not (
        isinstance(state, Container) and state.kind == "dict" and not state.dropped and not state.opaque_keys
    ):
        return "the wrapper's state is not a plain dict"
    extra = sorted(
        repr(key) if not isinstance(key, str) else key
        for key, _ in state.items
        if not (isinstance(key, str) and key in WRAPPER_FIELDS)
    )
    if extra:
        return f"the wrapper's state sets {', '.join(extra)}, which joblib never writes"
    return None


def _created_bare(wrapper: Call) -> str | None:
    """None if the instance was made from the class alone, without running ``__init__``:
    ``NEWOBJ`` with no arguments, ``copyreg.__newobj__(cls)`` or
    ``copyreg._reconstructor(cls, object, None)``."""
    args = sequence_items(wrapper.args)
    made_bare = f"the wrapper was made by {wrapper.how} with arguments, which joblib never writes"
    if not wrapper.bare or args is None or wrapper.cls is None:
        return made_bare
    if wrapper.how in ("NEWOBJ", "NEWOBJ_EX"):  # (NEWOBJ_EX with keyword arguments is no bare call)
        return None if args == () else made_bare
    first, rest = (args[0], args[1:]) if args else (None, ())
    if not (isinstance(first, Global) and first.path == wrapper.cls.path):
        return made_bare
    if rest == () or (len(rest) == 2 and _is_object(rest[0]) and rest[1] is None):
        return None
    return made_bare


def _is_object(value: Value) -> bool:
    return isinstance(value, Global) and value.path == "builtins.object"


_SIZED_TYPESTR = re.compile(r"[<>|=]?[a-zA-Z](\d+)(\[[a-zA-Z0-9]+\])?")
_FLEXIBLE = frozenset("VSUa")  # numpy's PyTypeNum_ISEXTENDED kinds
_ITEM_REFCOUNT = 0x01  # NPY_ITEM_REFCOUNT: the dtype holds Python objects
_DTYPE_CLASSES = frozenset({"numpy.dtype"})
_ABSENT = object()


@dataclass(frozen=True)
class ArrayLayout:
    """How the bytes after a joblib array wrapper are laid out."""

    nbytes: int  # raw data bytes (0 for object arrays: a nested pickle follows instead)
    padded: bool  # a padding-length byte (and pad bytes) precede the data
    objects: bool  # dtype holds Python objects: a nested pickle stream follows


_STATE_LENGTHS = (8, 9)  # the (version 3 and 4) states numpy's dtype.__reduce__ writes
_MAX_DTYPE_DEPTH = 8


def _dtype_info(dtype: Value) -> tuple[int, bool] | str:
    """(itemsize, holds objects) of a pickled ``numpy.dtype``, or why it cannot be told.

    Only the dtypes ``joblib.dump`` writes are sized: ``numpy.dtype(typestr, False, True)``
    with the 8- or 9-item state of ``dtype.__reduce__`` (or none). numpy reads older state
    layouts with the item size at another index, so any other shape fails closed."""
    if not (isinstance(dtype, Call) and isinstance(dtype.callee, Global)):
        return "dtype is not a numpy.dtype"
    if dtype.callee.path not in _DTYPE_CLASSES:
        return f"dtype built by {dtype.callee.subject}"
    typestr = _typestr(dtype)
    if typestr is None:
        return "dtype without a type string"
    state = sequence_items(dtype.state)
    if dtype.state is not None and (state is None or len(state) not in _STATE_LENGTHS):
        return f"dtype {typestr!r} with a state in a layout joblib does not write"
    state = state or ()
    elsize = state[5] if len(state) > 5 and isinstance(state[5], int) else None
    flags = state[7] if len(state) > 7 and isinstance(state[7], int) else 0
    kind = typestr.lstrip("<>|=")[:1]
    if (problem := dtype_state_problem(dtype)) is not None:
        return problem
    objects = kind == "O" or bool(flags & _ITEM_REFCOUNT)
    # numpy's dtype.__setstate__ takes elsize from the state only for flexible types (void,
    # bytes, str); for the others the type string decides, whatever the state claims.
    if kind in _FLEXIBLE and elsize is not None and elsize != -1:
        if elsize <= 0:
            return f"dtype {typestr!r} with an item size of {elsize}"
        return elsize, objects
    match = _SIZED_TYPESTR.fullmatch(typestr)
    if match is None:
        return f"dtype {typestr!r} has no item size"
    width = int(match.group(1))
    return (4 * width if kind == "U" else width), objects  # 'U' counts UCS-4 characters


def _typestr(dtype: Value) -> str | None:
    """The type string of a ``numpy.dtype(typestr, ...)`` call; None for anything else
    (callers describe why)."""
    if not (isinstance(dtype, Call) and isinstance(dtype.callee, Global)):
        return None
    if dtype.callee.path not in _DTYPE_CLASSES:
        return None
    args = sequence_items(dtype.args)
    return args[0] if args and isinstance(args[0], str) else None


# numpy.dtype flags (ndarraytypes.h): what numpy writes for an object dtype, and the bits
# a struct or subarray inherits from object items (NPY_FROM_FIELDS).
_OBJECT_FLAGS = 0x3F
_FROM_FIELDS = 0x1B


def dtype_state_problem(dtype: Value, depth: int = 0) -> str | None:
    """Why numpy's ``dtype.__setstate__`` would build a dtype that corrupts memory from
    this state, or None. numpy takes the state's flags and geometry as given: an object
    dtype whose flags lack NPY_ITEM_REFCOUNT or NPY_LIST_PICKLE reads raw bytes from the
    file as object pointers, and a field or subarray outside its item writes out of
    bounds. Only what numpy itself writes passes."""
    if depth > _MAX_DTYPE_DEPTH:
        return "dtype nested too deeply to check"
    items = sequence_items(dtype.state) if isinstance(dtype, Call) else None
    if items is None:
        return None  # no state: numpy builds the dtype from its type string
    typestr = _typestr(dtype)
    given = (sequence_items(dtype.args) or (None,))[0] if isinstance(dtype, Call) else None
    if typestr is None and not isinstance(given, Global):
        # numpy.dtype(D) is D itself: this BUILD would change D, which arrays already use
        # (red team, session 22); numpy writes a type string, or a scalar type (numpy.record)
        return "dtype made from neither a type string nor a type (numpy.dtype of a dtype returns that dtype)"
    typestr = typestr or ""
    if len(items) > 1 and items[1] not in ("<", ">", "=", "|"):
        return f"dtype whose byte order is {items[1]!r}, not one of the str numpy writes"
    flags = items[7] if len(items) > 7 else None
    if flags is not None and (type(flags) is not int or not 0 <= flags < 1 << 64):
        # numpy keeps the low 64 bits of whatever integer it is given: a LONG4 of 9,000
        # bytes (a BigInt here) whose low bits are 0 made an object dtype without
        # NPY_ITEM_REFCOUNT that no check read (red team, session 23)
        return "dtype flags that are not an int of 64 bits (numpy keeps only the low 64 bits of any other)"
    if isinstance(flags, int):
        if typestr.lstrip("<>|=")[:1] == "O" and flags != _OBJECT_FLAGS:
            return f"object dtype with flags {flags}, not the {_OBJECT_FLAGS} numpy writes: its arrays read raw bytes as object pointers"
        if flags & _FROM_FIELDS != _FROM_FIELDS and holds_objects(dtype):
            return f"dtype holding objects with flags {flags}: its arrays read raw bytes as object pointers"
    elsize = items[5] if len(items) > 5 and isinstance(items[5], int) else None
    subarray = sequence_items(items[2]) if len(items) > 2 and items[2] is not None else ()
    if subarray:
        return _subarray_problem(subarray, elsize, depth)
    fields = items[4] if len(items) > 4 else None
    if fields is not None:
        return _fields_problem(items[3] if len(items) > 3 else None, fields, elsize, depth)
    return None


def _itemsize(dtype: Value) -> int | None:
    info = _dtype_info(dtype)
    return None if isinstance(info, str) else info[0]


def _subarray_problem(subarray: tuple[Value, ...], elsize: int | None, depth: int) -> str | None:
    base, shape = subarray[0], sequence_items(subarray[1]) if len(subarray) > 1 else None
    if (inner := dtype_state_problem(base, depth + 1)) is not None:
        return inner
    size = _itemsize(base)
    if (
        size is None
        or shape is None
        or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)
    ):
        return "dtype subarray whose size cannot be checked"
    if elsize != size * math.prod(shape):
        return f"dtype subarray of {size * math.prod(shape)} bytes in an item of {elsize}"
    return None


def _fields_problem(names: Value, fields: Value, elsize: int | None, depth: int) -> str | None:
    listed = sequence_items(names)
    entries = dict_items(fields)
    if listed is None or entries is None or elsize is None or elsize < 0:
        return "dtype fields that cannot be checked"
    for name in listed:
        if not isinstance(name, str) or name not in entries:
            return f"dtype names field {name!r}, which its fields do not hold"
    for key, entry in entries.items():
        parts = sequence_items(entry)
        if parts is None or len(parts) not in (2, 3):
            return f"dtype field {key!r} is not (dtype, offset)"
        if key not in listed and not (len(parts) == 3 and parts[2] == key):
            return f"dtype field {key!r} is neither named nor a title"
        offset = parts[1]
        if (inner := dtype_state_problem(parts[0], depth + 1)) is not None:
            return inner
        size = _itemsize(parts[0])
        if not isinstance(offset, int) or isinstance(offset, bool) or size is None:
            return f"dtype field {key!r} whose place cannot be checked"
        if offset < 0 or offset + size > elsize:
            return f"dtype field {key!r} at bytes {offset}-{offset + size} of an item of {elsize}"
    return None


def holds_objects(dtype: Value, depth: int = 0) -> bool:
    """Whether a pickled dtype's type string, subarray or fields name an object dtype (a
    value too deep to tell counts as one: the caller then fails closed)."""
    if depth > _MAX_DTYPE_DEPTH:
        return True
    typestr = _typestr(dtype)
    if typestr is not None and typestr.lstrip("<>|=")[:1] == "O":
        return True
    if not isinstance(dtype, Call):
        return False
    state = sequence_items(dtype.state) or ()
    subarray = sequence_items(state[2]) if len(state) > 2 else None
    if subarray and holds_objects(subarray[0], depth + 1):
        return True
    fields = dict_items(state[4]) if len(state) > 4 else None
    for field_ in (fields or {}).values():
        parts = sequence_items(field_)
        if parts and holds_objects(parts[0], depth + 1):
            return True
    return False


def array_layout(state: Value) -> ArrayLayout | str:
    """What follows a NumpyArrayWrapper with BUILD ``state``, or why it cannot be sized
    (the caller then stops, failing closed: the rest of the stream cannot be located)."""
    fields = dict_items(state)
    if fields is None:
        return "wrapper state is not a plain dict"
    shape = sequence_items(fields.get("shape"))
    if shape is None or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape):
        return "wrapper shape is not a tuple of sizes"
    info = _dtype_info(fields.get("dtype"))
    if isinstance(info, str):
        return info
    itemsize, objects = info
    alignment = fields.get("numpy_array_alignment_bytes", _ABSENT)
    padded = alignment is not _ABSENT and alignment is not None
    if objects:
        return ArrayLayout(0, False, True)
    return ArrayLayout(math.prod(shape) * itemsize, padded, False)
