"""Checks over the ``__dict__`` a BUILD leaves on an instance whose compiled code later
indexes with its attributes: SciPy's sparse matrices (sparsetools kernels), scikit-learn's
SVMs (libsvm). Such classes restore their state with a plain ``__dict__`` update (or a
Python ``__setstate__`` that ends in one), so no method contract sees it: the invoker runs
the check after every BUILD, on the attributes all merged states leave.

One registration per class: its path, what it is (for the message) and the check.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING

from modelsec.pickle import scipy_sparse, sklearn_svm, sklearn_trees
from modelsec.pickle import sklearn_state as sk
from modelsec.pickle.values import Container, Value

if TYPE_CHECKING:
    from modelsec.pickle.observer import Observer

Check = Callable[[dict[str, Value], "Observer"], "str | None"]

_KINDS = ("Classifier", "Regressor")

STATE_CHECKS: dict[str, tuple[str, Check]] = {
    **{
        path: (f"a {fmt} matrix", functools.partial(scipy_sparse.sparse_problem, fmt))
        for path, fmt in scipy_sparse.FORMATS.items()
    },
    **{
        path: ("an SVM", functools.partial(sklearn_svm.svm_problem, classifier))
        for path, classifier in sklearn_svm.SVMS.items()
    },
    **{
        path: ("a boosting estimator", sklearn_trees.hist_gradient_boosting_problem)
        for path in sklearn_trees.HGB_ESTIMATORS
    },
    # fitted scikit-learn estimators (modelsec.pickle.sklearn_state)
    **{
        f"sklearn.ensemble._gb.GradientBoosting{kind}": ("a boosting estimator", sk.gradient_boosting_problem)
        for kind in _KINDS
    },
    **{
        f"sklearn.ensemble._forest.{name}{kind}": ("a forest", sk.tree_ensemble_problem)
        for name in ("RandomForest", "ExtraTrees")
        for kind in _KINDS
    },
    "sklearn.ensemble._iforest.IsolationForest": ("a forest", sk.tree_ensemble_problem),
    **{
        f"sklearn.tree._classes.{name}{kind}": ("a decision tree", sk.decision_tree_problem)
        for name in ("DecisionTree", "ExtraTree")
        for kind in _KINDS
    },
    "sklearn.feature_extraction._hash.FeatureHasher": ("a feature hasher", sk.feature_hasher_problem),
    "sklearn.feature_extraction.text.HashingVectorizer": ("a feature hasher", sk.feature_hasher_problem),
    **{
        f"sklearn.cluster._kmeans.{name}": ("a k-means model", sk.kmeans_problem)
        for name in ("KMeans", "MiniBatchKMeans")
    },
    "sklearn.cluster._bisect_k_means.BisectingKMeans": ("a k-means model", sk.kmeans_problem),
    **{
        f"sklearn.neighbors.{module}.{name}": (
            "a neighbours model",
            functools.partial(sk.neighbors_problem, name.endswith("Classifier")),
        )
        for module, name in (
            ("_classification", "KNeighborsClassifier"),
            ("_classification", "RadiusNeighborsClassifier"),
            ("_regression", "KNeighborsRegressor"),
            ("_regression", "RadiusNeighborsRegressor"),
            ("_unsupervised", "NearestNeighbors"),
            ("_graph", "KNeighborsTransformer"),
            ("_graph", "RadiusNeighborsTransformer"),
        )
    },
    "sklearn.preprocessing._encoders.OneHotEncoder": ("a one-hot encoder", sk.one_hot_problem),
    **{
        f"sklearn.feature_extraction.{path}": ("a vectorizer", sk.vocabulary_problem)
        for path in ("text.CountVectorizer", "text.TfidfVectorizer", "_dict_vectorizer.DictVectorizer")
    },
    "scipy.interpolate._bsplines.BSpline": ("a B-spline", sk.bspline_problem),
}


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
