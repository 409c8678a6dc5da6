"""Whether a pickled SciPy sparse matrix keeps its indexes inside its shape.

A sparse matrix unpickles as ``__newobj__`` and a BUILD of its ``__dict__``: nothing
validates it (``check_format`` runs in ``__init__`` only, and even there does not look at
index values). Every later operation hands the arrays to the C++ kernels of
``scipy/sparse/sparsetools``, which index with them unchecked: ``csr_todense`` writes
``Bx[i * n_col + Aj[jj]]``, ``csr_tocsc`` increments ``Bp[Aj[n]]``, ``coo_todense`` writes at
``row * n_col + col``; an index the file chose writes out of bounds (red team, 2026-12-07:
``toarray()`` and ``A @ x`` segfaulted, and ``str()`` during the load already did before
builtins on objects became findings).

So the attributes the kernels read must be what ``check_format(full_check=True)`` accepts:

- csr/csc/bsr: ``indptr`` has one entry per major row plus one, starts at 0, never
  decreases, and ends at most at the number of ``indices``, which the ``data`` match;
  every index lies in ``0 .. minor - 1`` (bsr: blocks of ``data.shape[1:]`` tile the shape);
- coo: one row and one column per value, inside the shape;
- dia: one row of ``data`` per offset, every offset a diagonal of the shape.

- lil: one list of column indexes and one of values per row (object arrays of lists),
  as long as each other, every index inside the shape. ``tocsr`` (and so ``A @ x``)
  flattens them into a csr matrix built with ``check_format(full_check=False)``: an
  index past the shape then writes out of bounds (red team, session 22: ``lil @ x``
  segfaulted), and a values list shorter than its indexes reads past the data.

``dok`` (a dict) is read by Python code, and the conversions that leave it check what they
build.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from modelsec.pickle.array_values import (
    ArrayData,
    array_shape,
    object_items,
    read_array,
    read_ints,
    scalar_int,
)
from modelsec.pickle.values import Call, Container, Value, every_item, is_count, sequence_items

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from modelsec.pickle.observer import Observer


def sparse_problem(fmt: str, fields: dict[str, Value], observer: Observer) -> str | None:
    """Why a ``fmt`` matrix with these ``__dict__`` fields may index out of bounds, or None."""
    shape = sequence_items(fields.get("_shape"))
    if shape is None or len(shape) != 2 or not all(is_count(n) for n in shape):
        return "its _shape is not two literal sizes"
    rows, cols = shape
    if fmt == "lil":
        return _lil(rows, cols, fields, observer)
    data = read_array(fields.get("data"), observer)
    if isinstance(data, str):
        return f"its data is {data}"
    if fmt in ("csr", "csc", "bsr"):
        return _compressed(fmt, rows, cols, data, fields, observer)
    if fmt == "coo":
        return _coo(rows, cols, data, fields, observer)
    offsets = _index_array(fields.get("offsets"), observer, "offsets")
    if isinstance(offsets, str):
        return offsets
    if len(data.shape) != 2 or offsets.shape != (data.shape[0],):
        return f"its data has {data.shape[0] if data.shape else 0} rows for {offsets.shape} offsets"
    # dia_matvec computes n_row + offset in the index type: an offset near 2**31 wraps and
    # the loop reads past the data (the use campaign, session 22); a diagonal outside the
    # shape holds nothing anyway
    if offsets.size and (int(offsets.min()) <= -rows or int(offsets.max()) >= cols):
        return f"an offset is outside {-rows + 1}..{cols - 1} (the kernels add it to the shape unchecked)"
    return None


def _compressed(
    fmt: str, rows: int, cols: int, data: ArrayData, fields: dict[str, Value], observer: Observer
) -> str | None:

    block = (1, 1)
    if fmt == "bsr":
        if len(data.shape) != 3 or not all(data.shape[1:]):
            return "its data is not an array of blocks"
        block = (data.shape[1], data.shape[2])
        if rows % block[0] or cols % block[1]:
            return f"its {block[0]} x {block[1]} blocks do not tile a {rows} x {cols} shape"
    elif len(data.shape) != 1:
        return "its data is not one-dimensional"
    major, minor = (cols, rows) if fmt == "csc" else (rows // block[0], cols // block[1])
    indptr = _index_array(fields.get("indptr"), observer, "indptr")
    indices = _index_array(fields.get("indices"), observer, "indices")
    if isinstance(indptr, str):
        return indptr
    if isinstance(indices, str):
        return indices
    # compared, not subtracted: a difference of int32 offsets wraps (0 .. 15, -2**31 read
    # as increasing; the use campaign's first hole, benchmarks/use_campaign.py)
    if len(indptr) != major + 1 or indptr[0] != 0 or (indptr[1:] < indptr[:-1]).any():
        return f"its indptr is not {major + 1} non-decreasing offsets from 0"
    stored = int(indptr[-1])
    if stored > len(indices) or len(indices) != data.shape[0]:
        return f"its indptr ends at {stored}, for {len(indices)} indices and {data.shape[0]} values"
    used = indices[:stored]
    if used.size and (int(used.min()) < 0 or int(used.max()) >= minor):
        return f"an index is outside 0..{minor - 1} (the kernels index with it unchecked)"
    return None


def _coo(rows: int, cols: int, data: ArrayData, fields: dict[str, Value], observer: Observer) -> str | None:
    coords = fields.get("coords")
    pair = sequence_items(coords) if coords is not None else (fields.get("row"), fields.get("col"))
    if pair is None or len(pair) != 2 or len(data.shape) != 1:
        return "its coordinates are not a row and a column array"
    for values, size, name in zip(pair, (rows, cols), ("row", "col"), strict=True):
        found = _index_array(values, observer, name)
        if isinstance(found, str):
            return found
        if len(found) != data.shape[0]:
            return f"its {name} array has {len(found)} entries for {data.shape[0]} values"
        if found.size and (int(found.min()) < 0 or int(found.max()) >= size):
            return f"a {name} is outside 0..{size - 1} (the kernels index with it unchecked)"
    return None


def _lil(rows: int, cols: int, fields: dict[str, Value], observer: Observer) -> str | None:
    indexes = object_items(fields.get("rows"), observer)
    values = object_items(fields.get("data"), observer)
    if indexes is None or values is None:
        return "its rows and data are not object arrays it can read"
    if len(indexes) != rows or len(values) != rows:
        return f"its rows and data have {len(indexes)} and {len(values)} entries for {rows} rows"
    for row, (columns, data) in enumerate(zip(indexes, values, strict=True)):
        found = (
            every_item(columns, observer)
            if isinstance(columns, Container) and columns.kind == "list"
            else None
        )
        if found is None:
            return f"its rows[{row}] is not a list of column indexes it can read"
        if not (
            isinstance(data, Container)
            and data.kind == "list"
            and len(data.items) + data.dropped == len(found)
        ):
            return f"its data[{row}] is not a list of one value per column index"
        for column in found:
            index = scalar_int(column)
            if index is None or not 0 <= index < cols:
                return f"its rows[{row}] holds a column outside 0..{cols - 1} (tocsr builds without a full check)"
    return None


def _index_array(value: Value, observer: Observer, name: str) -> npt.NDArray[np.signedinteger[Any]] | str:
    found = read_ints(value, observer)
    if isinstance(found, str):
        return f"its {name} is {found}"
    return found if found.ndim == 1 else f"its {name} is not one-dimensional"


def matrix_shape(value: Value) -> tuple[int, ...] | None:
    """The shape of a sparse matrix the stream built (its ``_shape``, as the merged states
    leave it), or of an array (:func:`array_shape`); None for anything else."""
    from modelsec.pickle.state_checks import SPARSE_CLASSES, effective_fields

    if isinstance(value, Call) and value.cls is not None and value.cls.path in SPARSE_CLASSES:
        attrs = value.attrs
        fields = effective_fields(attrs.merged) if attrs is not None and not attrs.unknown else None
        shape = sequence_items(fields.get("_shape")) if fields is not None else None
        return tuple(shape) if shape is not None and all(is_count(n) for n in shape) else None
    return array_shape(value)
