"""Whether a pickled scikit-learn SVM's arrays are the sizes libsvm reads.

``predict`` hands ``support_vectors_``, ``_n_support``, ``_dual_coef_``, ``_intercept_``
and ``_probA``/``_probB`` to libsvm's ``set_model``, which takes their sizes from the
number of classes and of support vectors: ``nr_class - 1`` rows of ``l`` dual
coefficients, ``nr_class * (nr_class - 1) / 2`` intercepts and probability parameters.
scikit-learn checks that ``_n_support`` adds up to the support vectors, not the rest, so
shorter arrays are read past their end (a file can make that megabytes: every support
vector it adds is another row read). The estimator's ``__setstate__`` merges the state into
``__dict__`` as it is.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from modelsec.pickle.array_values import read_ints
from modelsec.pickle.scipy_sparse import matrix_shape
from modelsec.pickle.values import Value

if TYPE_CHECKING:
    from modelsec.pickle.observer import Observer


def svm_problem(classifier: bool, fields: dict[str, Value], observer: Observer) -> str | None:
    """Why libsvm may read these fitted arrays past their end, or None (not fitted: no
    support vectors yet, nothing to read)."""
    if "support_vectors_" not in fields:
        return None
    vectors = _rows(fields.get("support_vectors_"), observer)
    if isinstance(vectors, str):
        return f"its support_vectors_ are {vectors}"
    classes = 2  # regression and one-class: libsvm reads two "classes" and no counts
    if classifier:
        per_class = read_ints(fields.get("_n_support"), observer)
        if isinstance(per_class, str) or per_class.dtype.itemsize != 4 or per_class.ndim != 1:
            return "its _n_support is not an int32 array"  # libsvm reads it as int
        classes = int(per_class.size)
        if classes < 2 or (per_class < 0).any() or int(per_class.sum()) != vectors:
            return f"its _n_support {per_class.tolist()[:8]} does not count {vectors} support vectors"
    dual = _shape(fields.get("_dual_coef_"), observer)
    if dual != (classes - 1, vectors):
        return f"its _dual_coef_ is {dual}, not the {(classes - 1, vectors)} libsvm reads"
    pairs = classes * (classes - 1) // 2
    for name, may_be_empty in (("_intercept_", False), ("_probA", True), ("_probB", True)):
        size = _size(fields.get(name), observer)
        if size is None or (size < pairs and not (may_be_empty and size == 0)):
            return f"its {name} holds {size} values where libsvm reads {pairs}"
    return None


def _rows(value: Value, observer: Observer) -> int | str:
    shape = matrix_shape(value)
    return shape[0] if shape and len(shape) == 2 else "not a two-dimensional array or matrix"


def _shape(value: Value, observer: Observer) -> tuple[int, ...] | None:
    """The shape of a dense array or a sparse matrix, as their pickled states say."""
    return matrix_shape(value)


def _size(value: Value, observer: Observer) -> int | None:
    shape = _shape(value, observer)
    return math.prod(shape) if shape is not None else None
