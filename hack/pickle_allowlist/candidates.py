"""Names the generator considers, library by library, before inspecting their code.

Never whole packages: ``sklearn.utils``, ``numpy.testing`` and friends hold code runners.

* scikit-learn: every estimator, every class defined in a non-test, non-I/O module (Cython
  internals such as ``sklearn.tree._tree.Tree``, losses, distance metrics, KD/Ball trees,
  metadata-routing records), and the public functions of the score-function modules
  (fitted estimators keep them as attributes: ``SelectKBest(score_func=f_classif)``);
* NumPy: scalar types, dtype classes and ufuncs (pickled by name, e.g. in
  ``FunctionTransformer(func=np.log1p)``);
* pandas: public classes (frames, series, indexes, arrays, dtypes, offsets) under both
  their public and defining-module names, minus I/O classes;
* SciPy: the sparse matrix/array classes estimators store.

Globals that real pickles of these libraries use (:mod:`observe`) are added to these.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import warnings

from pickle_allowlist.imports import dotted

SKIP_MODULE_PARTS = ("tests", "_testing", "conftest", "_build_utils", "__check_build")
SKLEARN_SKIP_PREFIXES = (
    "sklearn.datasets",  # downloaders and file readers
    "sklearn.externals",
    "sklearn.utils._testing",
    "sklearn.utils._mocking",  # test doubles that call the checks they are given
    "sklearn.utils._show_versions",
    "sklearn.experimental",
)
SCORE_FUNCTION_MODULES = ("sklearn.feature_selection", "sklearn.metrics")
PANDAS_EXCLUDE = {"ExcelWriter", "ExcelFile", "HDFStore", "option_context"}


def _walk_modules(package: str) -> list[str]:
    root = importlib.import_module(package)
    names = [package]
    for info in pkgutil.walk_packages(root.__path__, prefix=package + "."):
        if any(part in SKIP_MODULE_PARTS for part in info.name.split(".")):
            continue
        names.append(info.name)
    return names


def sklearn_estimators() -> set[str]:
    from sklearn.utils import all_estimators

    return {dotted(cls) for _, cls in all_estimators()}


def sklearn() -> set[str]:
    names = sklearn_estimators()
    for modname in _walk_modules("sklearn"):
        if modname.startswith(SKLEARN_SKIP_PREFIXES):
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                module = importlib.import_module(modname)
        except Exception:
            continue
        for obj in vars(module).values():
            if inspect.isclass(obj) and obj.__module__ == modname and not obj.__name__.startswith("Test"):
                names.add(dotted(obj))
    for modname in SCORE_FUNCTION_MODULES:
        module = importlib.import_module(modname)
        for public in getattr(module, "__all__", []):
            obj = getattr(module, public, None)
            if inspect.isfunction(obj) and "plot" not in public and "display" not in public.lower():
                names.add(dotted(obj))
    return names


def numpy() -> set[str]:
    import numpy as np

    names: set[str] = set()
    for scalar in set(np.sctypeDict.values()):
        names.add(dotted(scalar))
        names.add(f"numpy.{scalar.__name__}")
    for name in dir(np):
        obj = getattr(np, name, None)
        if isinstance(obj, np.ufunc):
            names.add(f"numpy.{name}")
        elif inspect.isclass(obj) and issubclass(obj, np.generic):
            names.add(f"numpy.{name}")
            names.add(dotted(obj))
    for name in dir(np.dtypes):
        obj = getattr(np.dtypes, name)
        if inspect.isclass(obj) and issubclass(obj, np.dtype):
            names.add(dotted(obj))
            names.add(f"numpy.dtypes.{name}")
    return names


def pandas() -> set[str]:
    import pandas as pd

    names: set[str] = set()
    spaces = {"pandas": pd, "pandas.arrays": pd.arrays, "pandas.offsets": pd.offsets}
    for prefix, module in spaces.items():
        for name in dir(module):
            obj = getattr(module, name)
            if not inspect.isclass(obj) or name in PANDAS_EXCLUDE or name.startswith("_"):
                continue
            home = obj.__module__
            if home.startswith("pandas.io") or not home.startswith("pandas"):
                continue
            names.add(f"{prefix}.{name}")
            names.add(dotted(obj))
    for modname in ("pandas.core.dtypes.dtypes", "pandas.core.arrays.sparse.dtype"):
        try:
            module = importlib.import_module(modname)
        except ImportError:
            continue
        for name, obj in vars(module).items():
            if inspect.isclass(obj) and obj.__module__ == modname and name.endswith("Dtype"):
                names.add(dotted(obj))
    return names


def scipy() -> set[str]:
    import scipy.sparse as sp

    names: set[str] = set()
    for name in dir(sp):
        obj = getattr(sp, name)
        if inspect.isclass(obj) and (name.endswith("_matrix") or name.endswith("_array")):
            names.add(dotted(obj))
            names.add(f"scipy.sparse.{name}")
    return names


LIBRARIES = {"numpy": numpy, "pandas": pandas, "scipy": scipy, "sklearn": sklearn}
