#!/usr/bin/env python3
"""Generate the library parts of the pickle allowlist from the installed wheels.

    .venv/bin/python hack/gen_pickle_allowlist.py

Writes one file per library under ``src/modelsec/pickle/`` (``allow_sklearn.txt``,
``allow_numpy.txt``, ``allow_pandas.txt``, ``allow_scipy.txt``): one ``module.qualname``
per line, sorted, with a header naming the versions. Commit the output; the scanner never
imports these libraries.

What goes in, name by name (never whole packages: ``sklearn.utils``, ``numpy.testing`` and
friends hold code runners):

* scikit-learn: every estimator from ``all_estimators()``, every *class* defined in a
  non-test, non-I/O module (Cython internals such as ``sklearn.tree._tree.Tree``, losses,
  distance metrics, KD/Ball trees, metadata-routing records), score functions that fitted
  estimators keep as attributes (``SelectKBest(score_func=f_classif)``, scorers), plus every
  global seen in pickles of a set of fitted estimators;
* NumPy: scalar types, dtype classes and ufuncs (pickled by name, e.g. in
  ``FunctionTransformer(func=np.log1p)``);
* pandas: public classes (frames, series, indexes, arrays, dtypes, offsets) under both
  their public and defining-module names, minus I/O classes;
* SciPy: sparse matrix/array classes that estimators store.

Anything whose path the denylist marks dangerous is dropped, so a generated name can never
whitelist a gadget. Functions are only taken from explicit lists.
"""

from __future__ import annotations

import importlib
import inspect
import io
import pickle
import pickletools
import pkgutil
import sys
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "src" / "modelsec" / "pickle"
sys.path.insert(0, str(REPO / "src"))

from modelsec.pickle.denylist import denied  # noqa: E402  (after the path tweak)

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
# Functions of sklearn.metrics that take a callable and call it: trampolines, not data.
METRIC_TRAMPOLINES = {
    "pairwise_distances",
    "pairwise_distances_chunked",
    "pairwise_distances_argmin",
    "pairwise_distances_argmin_min",
    "pairwise_kernels",
    "make_scorer",
    "check_scoring",
    "get_scorer",
    "get_scorer_names",
}


def dotted(obj: object) -> str:
    return f"{obj.__module__}.{obj.__qualname__}"  # type: ignore[attr-defined]


def globals_in(data: bytes) -> set[str]:
    """Globals a pickle *we just produced* imports (trusted data: pickletools is fine)."""
    found: set[str] = set()
    strings: list[str] = []
    memo: dict[int, object] = {}
    for op, arg, _ in pickletools.genops(io.BytesIO(data)):
        if op.name in ("GLOBAL", "INST"):
            found.add(str(arg).replace(" ", "."))
        elif op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8"):
            strings.append(str(arg))
        elif op.name == "MEMOIZE":
            memo[len(memo)] = strings[-1] if strings else None
        elif op.name in ("BINGET", "LONG_BINGET", "GET") and isinstance(memo.get(arg), str):
            strings.append(memo[arg])  # type: ignore[arg-type]
        elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
            found.add(f"{strings[-2]}.{strings[-1]}")
    return found


def walk_modules(package: str) -> list[str]:
    root = importlib.import_module(package)
    names = [package]
    for info in pkgutil.walk_packages(root.__path__, prefix=package + "."):
        if any(part in SKIP_MODULE_PARTS for part in info.name.split(".")):
            continue
        names.append(info.name)
    return names


def sklearn_names() -> set[str]:
    import numpy as np
    import sklearn
    from sklearn.utils import all_estimators

    names = {dotted(cls) for _, cls in all_estimators()}
    for modname in walk_modules("sklearn"):
        if modname.startswith(SKLEARN_SKIP_PREFIXES):
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                module = importlib.import_module(modname)
        except Exception:
            continue
        for _, obj in vars(module).items():
            if inspect.isclass(obj) and obj.__module__ == modname and not obj.__name__.startswith("Test"):
                names.add(dotted(obj))
    for modname in SCORE_FUNCTION_MODULES:
        module = importlib.import_module(modname)
        for public in getattr(module, "__all__", []):
            obj = getattr(module, public, None)
            if inspect.isfunction(obj) and public not in METRIC_TRAMPOLINES:
                if "plot" in public or "display" in public.lower():
                    continue
                names.add(dotted(obj))
    names |= {n for n in fitted_estimator_globals() if n.startswith("sklearn.")}
    print(f"scikit-learn {sklearn.__version__}: {len(names)} names", file=sys.stderr)
    del np
    return names


def fitted_estimator_globals() -> set[str]:
    """Globals in pickles of fitted estimators: what real model files reference."""
    import numpy as np
    from sklearn.utils import all_estimators

    rng = np.random.RandomState(0)
    X = rng.rand(40, 4)
    y_cls = (X[:, 0] > 0.5).astype(int)
    y_reg = X[:, 1] * 3.0
    found: set[str] = set()
    for _, cls in all_estimators():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                est = cls()
                for y in (y_cls, y_reg, None):
                    try:
                        est.fit(X, y) if y is not None else est.fit(X)
                        break
                    except Exception:
                        continue
                for proto in (2, 5):
                    found |= globals_in(pickle.dumps(est, protocol=proto))
        except Exception:
            continue
    return found


def numpy_names() -> set[str]:
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
    print(f"numpy {np.__version__}: {len(names)} names", file=sys.stderr)
    return names


PANDAS_EXCLUDE = {"ExcelWriter", "ExcelFile", "HDFStore", "option_context"}


def pandas_names() -> set[str]:
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
    for module in ("pandas.core.dtypes.dtypes", "pandas.core.arrays.sparse.dtype"):
        try:
            mod = importlib.import_module(module)
        except ImportError:
            continue
        for name, obj in vars(mod).items():
            if inspect.isclass(obj) and obj.__module__ == module and name.endswith("Dtype"):
                names.add(dotted(obj))
    print(f"pandas {pd.__version__}: {len(names)} names", file=sys.stderr)
    return names


def scipy_names() -> set[str]:
    import scipy
    import scipy.sparse as sp

    names: set[str] = set()
    for name in dir(sp):
        obj = getattr(sp, name)
        if inspect.isclass(obj) and (name.endswith("_matrix") or name.endswith("_array")):
            names.add(dotted(obj))
            names.add(f"scipy.sparse.{name}")
    print(f"scipy {scipy.__version__}: {len(names)} names", file=sys.stderr)
    return names


def write(library: str, version: str, names: set[str]) -> None:
    kept = sorted(n for n in names if denied(n) is None and "<locals>" not in n)
    dropped = sorted(n for n in names if denied(n) is not None)
    for name in dropped:
        print(f"  dropped (denylisted): {name}", file=sys.stderr)
    path = OUT / f"allow_{library}.txt"
    header = (
        f"# Generated by hack/gen_pickle_allowlist.py from {library} {version}; do not edit.\n"
        "# One importable global per line that pickles of this library may reference.\n"
    )
    path.write_text(header + "".join(f"{n}\n" for n in kept))
    print(f"wrote {path.relative_to(REPO)}: {len(kept)} names", file=sys.stderr)


def main() -> None:
    import numpy
    import pandas
    import scipy
    import sklearn

    write("numpy", numpy.__version__, numpy_names())
    write("pandas", pandas.__version__, pandas_names())
    write("scipy", scipy.__version__, scipy_names())
    write("sklearn", sklearn.__version__, sklearn_names())


if __name__ == "__main__":
    main()
