"""Checks over the ``__dict__`` a BUILD leaves on an instance whose compiled code later
indexes with its attributes: SciPy's sparse matrices (sparsetools kernels), scikit-learn's
SVMs (libsvm). Such classes restore their state with a plain ``__dict__`` update (or a
Python ``__setstate__`` that ends in one), so no method contract sees it: the invoker runs
the check after every BUILD, on the attributes all merged states leave.

One registration per class: its path, what it is (for the message) and the check.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from modelsec.pickle.values import Call, Container, Value

if TYPE_CHECKING:
    from modelsec.pickle.observer import Observer

Check = Callable[[dict[str, Value], "Observer"], "str | None"]
# A check named, not imported: (what the instance is, "module:function", leading arguments).
# The modules (and NumPy behind them) load when a stream first builds such a class, not
# with every worker.
Entry = tuple[str, str, tuple[object, ...]]

_KINDS = ("Classifier", "Regressor")
_SPARSE = {
    f"scipy.sparse{module}.{fmt}_{kind}": fmt
    for fmt in ("csr", "csc", "bsr", "coo", "dia", "lil")
    for kind in ("matrix", "array")
    for module in (f"._{fmt}", "")
}
_SVMS = {  # class -> whether it classifies (libsvm then reads _n_support)
    "sklearn.svm._classes.SVC": True,
    "sklearn.svm._classes.NuSVC": True,
    "sklearn.svm._classes.SVR": False,
    "sklearn.svm._classes.NuSVR": False,
    "sklearn.svm._classes.OneClassSVM": False,
}
_NEIGHBOURS = (
    ("_classification", "KNeighborsClassifier"),
    ("_classification", "RadiusNeighborsClassifier"),
    ("_regression", "KNeighborsRegressor"),
    ("_regression", "RadiusNeighborsRegressor"),
    ("_unsupervised", "NearestNeighbors"),
    ("_graph", "KNeighborsTransformer"),
    ("_graph", "RadiusNeighborsTransformer"),
)
_SK = "modelsec.pickle.sklearn_state"

REGISTRY: dict[str, Entry] = {
    **{
        path: (f"a {fmt} matrix", "modelsec.pickle.scipy_sparse:sparse_problem", (fmt,))
        for path, fmt in _SPARSE.items()
    },
    **{
        path: ("an SVM", "modelsec.pickle.sklearn_svm:svm_problem", (classifier,))
        for path, classifier in _SVMS.items()
    },
    **{
        f"sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoosting{kind}": (
            "a boosting estimator",
            "modelsec.pickle.sklearn_trees:hist_gradient_boosting_problem",
            (),
        )
        for kind in _KINDS
    },
    # fitted scikit-learn estimators (modelsec.pickle.sklearn_state)
    **{
        f"sklearn.ensemble._gb.GradientBoosting{kind}": (
            "a boosting estimator",
            f"{_SK}:gradient_boosting_problem",
            (),
        )
        for kind in _KINDS
    },
    **{
        f"sklearn.ensemble._forest.{name}{kind}": ("a forest", f"{_SK}:tree_ensemble_problem", ())
        for name in ("RandomForest", "ExtraTrees")
        for kind in _KINDS
    },
    "sklearn.ensemble._iforest.IsolationForest": ("a forest", f"{_SK}:tree_ensemble_problem", ()),
    **{
        f"sklearn.tree._classes.{name}{kind}": ("a decision tree", f"{_SK}:decision_tree_problem", ())
        for name in ("DecisionTree", "ExtraTree")
        for kind in _KINDS
    },
    "sklearn.feature_extraction._hash.FeatureHasher": (
        "a feature hasher",
        f"{_SK}:feature_hasher_problem",
        (),
    ),
    "sklearn.feature_extraction.text.HashingVectorizer": (
        "a feature hasher",
        f"{_SK}:feature_hasher_problem",
        (),
    ),
    **{
        f"sklearn.cluster.{path}": ("a k-means model", f"{_SK}:kmeans_problem", ())
        for path in ("_kmeans.KMeans", "_kmeans.MiniBatchKMeans", "_bisect_k_means.BisectingKMeans")
    },
    **{
        f"sklearn.neighbors.{module}.{name}": (
            "a neighbours model",
            f"{_SK}:neighbors_problem",
            (name.endswith("Classifier"),),
        )
        for module, name in _NEIGHBOURS
    },
    "sklearn.preprocessing._encoders.OneHotEncoder": ("a one-hot encoder", f"{_SK}:one_hot_problem", ()),
    **{
        f"sklearn.feature_extraction.{path}": ("a vectorizer", f"{_SK}:vocabulary_problem", ())
        for path in ("text.CountVectorizer", "text.TfidfVectorizer", "_dict_vectorizer.DictVectorizer")
    },
    "scipy.interpolate._bsplines.BSpline": ("a B-spline", f"{_SK}:bspline_problem", ()),
}
SPARSE_CLASSES = frozenset(_SPARSE)
# Models whose input width their container's owner judges (Call.width): a forest's trees,
# a boosting estimator's stages and predictors.
MEASURED = frozenset(
    {
        *(f"sklearn.tree._classes.{n}{k}" for n in ("DecisionTree", "ExtraTree") for k in _KINDS),
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    }
)


def note_models(container: Container, items: Iterable[Value]) -> None:
    """Keep the models (and containers of models) appended to ``container``, dropped
    ones included, so that their widths are read when the owner is checked, not when
    they were appended (a model built after it was appended is still seen)."""
    for item in items:
        kind = type(item)
        if (kind is Call and item.cls is not None and item.cls.path in MEASURED) or (
            kind is Container and item.models
        ):
            if container.models is None:
                container.models = []
            container.models.append(item)


def widest_model(value: Value, observer: Observer, depth: int = 0) -> int | str | None:
    """The widest input the models in ``value`` need: a list, tuple or set of models, or of
    such lists. Every item must be one (a member the stream computed, such as
    ``list(...)`` of something, cannot be measured), and every model measured (its own
    check passed); why not, otherwise. None for no models at all. The members walked are
    charged to the scan (``observer.may_examine``): one memoised list of many models given
    to many owners would otherwise be walked once per owner."""
    if depth > 4:
        return "models nested too deeply to check"
    if isinstance(value, Container):
        if len(value.models or ()) != len(value.items) + value.dropped:
            return "a member that is not a model it can measure"
        items: Sequence[Value] = value.models or ()
    elif isinstance(value, tuple):
        items = value
    else:
        return "members the stream computed"
    if not observer.may_examine(len(items)):
        return "more members than the scan may examine"
    widest: int | None = None
    for item in items:
        if isinstance(item, (Container, tuple)):
            width = widest_model(item, observer, depth + 1)
        elif isinstance(item, Call) and item.cls is not None and item.cls.path in MEASURED:
            width = item.width if item.width is not None else "a member whose input width was never checked"
        else:
            return "a member that is not a model it can measure"
        if isinstance(width, str):
            return width
        if width is not None and (widest is None or width > widest):
            widest = width
    return widest


@functools.cache
def check_for(path: str) -> tuple[str, Check] | None:
    """What an instance of ``path`` is and the check its state must pass, or None."""
    entry = REGISTRY.get(path)
    if entry is None:
        return None
    what, target, leading = entry
    module, _, name = target.partition(":")
    function = getattr(importlib.import_module(module), name)
    return what, (functools.partial(function, *leading) if leading else function)


def effective_fields(merged: list[Container]) -> dict[str, Value] | None:
    """The ``__dict__`` the merged states leave (the last write of each key wins); None
    if a state dropped items the machine did not keep."""
    fields: dict[str, Value] = {}
    for state in merged:
        if state.dropped:
            return None
        for key, value in state.items:
            if isinstance(key, str):
                fields[key] = value
    return fields
