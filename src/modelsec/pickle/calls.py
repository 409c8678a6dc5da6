"""What allowlisted callables do with their arguments.

Most SAFE globals are plain constructors. A few are higher-order: ``copyreg._reconstructor``
instantiates the class it is given, ``collections.defaultdict`` calls its factory,
Cython's ``__pyx_unpickle_X`` builds ``cls``. Those arguments are invoked too, so they
must pass the allowlist themselves, or a gadget would hide behind a safe helper. A few
others resolve names (``getattr(cls, "attr")``, NumPy's ``_ufunc_reconstruct(module,
name)``): the machine turns them into the global they reach and classifies that.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class HigherOrder:
    invokes: tuple[int, ...]  # argument positions the callee calls or instantiates
    instance_of: int | None = None  # argument holding the class of the returned instance
    data_ok: bool = False  # DATA-only classes are fine here (ndarray subclasses)
    globals_only: bool = False  # other values there are data (instances), not called


_NUMPY_RECONSTRUCT = HigherOrder((0,), instance_of=0, data_ok=True)
_CYTHON_UNPICKLE = HigherOrder((0,), instance_of=0)

HIGHER_ORDER: dict[str, HigherOrder] = {
    "copyreg._reconstructor": HigherOrder((0, 1), instance_of=0),
    "copyreg.__newobj__": HigherOrder((0,), instance_of=0),
    "copyreg.__newobj_ex__": HigherOrder((0,), instance_of=0),
    "numpy.core.multiarray._reconstruct": _NUMPY_RECONSTRUCT,
    "numpy._core.multiarray._reconstruct": _NUMPY_RECONSTRUCT,
    "numpy.ma.core._mareconstruct": HigherOrder((0, 1), instance_of=0, data_ok=True),
    "collections.defaultdict": HigherOrder((0,)),
    "array._array_reconstructor": HigherOrder((0,), instance_of=0),
    # (bit generator instance, name or class; the ctor that builds one from a name/class)
    "numpy.random._pickle.__randomstate_ctor": HigherOrder((0, 1), globals_only=True),
    "numpy.random._pickle.__generator_ctor": HigherOrder((0, 1), globals_only=True),
    "numpy.random._pickle.__bit_generator_ctor": HigherOrder((0,), globals_only=True),
    "pandas.core.indexes.base._new_Index": HigherOrder((0,), instance_of=0),
    "pandas.core.indexes.datetimes._new_DatetimeIndex": HigherOrder((0,), instance_of=0),
    "pandas.core.indexes.period._new_PeriodIndex": HigherOrder((0,), instance_of=0),
    "torch._utils._rebuild_from_type": HigherOrder((0, 1)),
    "torch._utils._rebuild_from_type_v2": HigherOrder((0, 1)),
    "torch._tensor._rebuild_from_type": HigherOrder((0, 1)),
    "torch._tensor._rebuild_from_type_v2": HigherOrder((0, 1)),
    "torch._utils._rebuild_wrapper_subclass": HigherOrder((0,), instance_of=0),
}


def higher_order(path: str) -> HigherOrder | None:
    spec = HIGHER_ORDER.get(path)
    if spec is None and path.rsplit(".", 1)[-1].startswith("__pyx_unpickle_"):
        return _CYTHON_UNPICKLE  # Cython's generated reducer: __pyx_unpickle_X(cls, checksum, state)
    return spec


# getattr(obj, "name"[, default]): resolved statically when obj and name are known.
GETATTR = frozenset({"builtins.getattr"})
# f(module, name) -> the global module.name
IMPORTERS = frozenset({"numpy.core._ufunc_reconstruct", "numpy._core._ufunc_reconstruct"})

# Classes whose instances joblib follows with raw array bytes (or a nested pickle) in the
# same file, right after their BUILD.
JOBLIB_INLINE_ARRAY = frozenset(
    {"joblib.numpy_pickle.NumpyArrayWrapper", "sklearn.externals.joblib.numpy_pickle.NumpyArrayWrapper"}
)
# Older wrappers that load their array from a sibling file named in their state.
JOBLIB_FILE_ARRAY = frozenset(
    {
        "joblib.numpy_pickle.NDArrayWrapper",  # joblib < 0.10 kept it there
        "joblib.numpy_pickle.ZNDArrayWrapper",
        "sklearn.externals.joblib.numpy_pickle.NDArrayWrapper",
        "sklearn.externals.joblib.numpy_pickle.ZNDArrayWrapper",
        "joblib.numpy_pickle_compat.NDArrayWrapper",
        "joblib.numpy_pickle_compat.ZNDArrayWrapper",
        "sklearn.externals.joblib.numpy_pickle_compat.NDArrayWrapper",
        "sklearn.externals.joblib.numpy_pickle_compat.ZNDArrayWrapper",
    }
)
JOBLIB_WRAPPERS = JOBLIB_INLINE_ARRAY | JOBLIB_FILE_ARRAY
