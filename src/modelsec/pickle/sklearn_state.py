"""Fitted scikit-learn estimators whose attributes compiled code indexes with at use time.

A second red-team pass (2026-12-07, "estimator state") forged fitted attributes of
allowlisted estimators, pickled them, and used the loaded objects in a sandboxed child:
``transform``/``predict`` wrote or read out of bounds (segfaults, heap aborts, a
divide-by-zero fault) because the Cython or C code trusts sizes scikit-learn derived at
``fit`` and never checks again after a load. Each estimator restores its state with a
plain ``__dict__`` update, so these checks run on the ``__dict__`` every BUILD leaves
(:mod:`modelsec.pickle.state_checks`). Unfitted estimators (no fitted attribute) pass.

Sizes come from the arrays' own pickled state (:func:`array_shape`: no bytes are read);
index values from their bytes where a check needs them (:func:`read_array`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelsec.pickle.array_values import array_shape, object_items, read_ints, scalar_int
from modelsec.pickle.scipy_sparse import matrix_shape
from modelsec.pickle.state_checks import widest_model
from modelsec.pickle.values import (
    Call,
    Value,
    describe,
    dict_value_range,
    every_item,
    is_count,
    sequence_items,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from modelsec.pickle.observer import Observer

MAX_HASHED_FEATURES = 2**31 - 1  # FeatureHasher's own parameter bound


def _width(fields: dict[str, Value]) -> int | str:
    """How wide the estimator's input is: ``n_features_in_`` (``n_features_`` in
    scikit-learn before 1.0)."""
    width = fields.get("n_features_in_", fields.get("n_features_"))
    if isinstance(width, int) and not isinstance(width, bool) and width >= 0:
        return width
    return "its n_features_in_ is not a literal count"


def gradient_boosting_problem(fields: dict[str, Value], observer: Observer) -> str | None:
    # predict_stages writes out[:, k] for k < estimators_.shape[1]; out has
    # n_trees_per_iteration_ columns
    if "estimators_" not in fields:
        return None
    shape, per_iteration = array_shape(fields["estimators_"]), fields.get("n_trees_per_iteration_")
    if shape is None or len(shape) != 2 or not is_count(per_iteration) or shape[1] != per_iteration:
        return f"its estimators_ {shape} are not n_trees_per_iteration_ ({per_iteration!r}) trees wide"
    return _tree_ensemble_problem(fields, observer)


def tree_ensemble_problem(fields: dict[str, Value], observer: Observer) -> str | None:
    """A forest: its members are read by the width the ensemble checks the input against."""
    if "estimators_" not in fields:
        return None
    return _tree_ensemble_problem(fields, observer)


def _tree_ensemble_problem(fields: dict[str, Value], observer: Observer) -> str | None:
    # predict() validates the input against the ensemble's width and hands it to every
    # member unchecked: no member may be wider. Containers keep every model appended to
    # them (Container.models), so a list longer than the machine keeps is still judged.
    width = _width(fields)
    if isinstance(width, str):
        return width
    return wider_members(
        fields,
        "estimators_",
        width,
        observer,
        lambda widest: f"a member reads {widest} features, and the model's input has {width}",
    )


def wider_members(
    fields: dict[str, Value], key: str, width: int, observer: Observer, too_wide: Callable[[int], str]
) -> str | None:
    """Why the models in ``fields[key]`` may read past an input ``width`` wide, or None;
    ``too_wide`` says it, given the widest member's width."""
    widest = members_widest(fields[key], observer)
    if isinstance(widest, str):
        return f"its {key} hold {widest}"
    return too_wide(widest) if widest is not None and widest > width else None


def members_widest(value: Value, observer: Observer) -> int | str | None:
    """The widest input any model in ``value`` needs: a list or tuple of models (or of
    lists of them), or an object array of them (boosting stages)."""
    if isinstance(value, Call) and value.cls is not None and "NumpyArrayWrapper" in value.cls.path:
        value = observer.joblib_array_value(value)
    if isinstance(value, Call) and value.cls is not None and value.cls.path == "numpy.ndarray":
        state = sequence_items(value.state)
        value = state[4] if state is not None and len(state) == 5 else None
    return widest_model(value, observer)


def decision_tree_problem(fields: dict[str, Value], observer: Observer) -> str | None:
    # the tree's own n_features bounds its split features (the Tree contract); the input
    # is as wide as n_features_in_, which predict() validates
    tree = fields.get("tree_")
    if tree is None:
        return None
    width = _width(fields)
    if isinstance(width, str):
        return width
    args = sequence_items(tree.args) if isinstance(tree, Call) else None
    if not args or args[0] != width:
        return f"its tree_ is built for {args[0] if args else '?'} features, its input has {width}"
    return None


def feature_hasher_problem(fields: dict[str, Value], observer: Observer) -> str | None:
    # transform takes hashes modulo n_features (0: a divide-by-zero fault in C); without
    # the attribute it raises before that
    if "n_features" not in fields:
        return None
    n_features = fields["n_features"]
    if (
        not isinstance(n_features, int)
        or isinstance(n_features, bool)
        or not 1 <= n_features <= MAX_HASHED_FEATURES
    ):
        return f"its n_features is {n_features!r}, outside 1..{MAX_HASHED_FEATURES}"
    return None


def kmeans_problem(fields: dict[str, Value], observer: Observer) -> str | None:
    # the Cython distance loops read cluster_centers_ rows as wide as the input
    if "cluster_centers_" not in fields:
        return None
    width = _width(fields)
    shape = array_shape(fields["cluster_centers_"])
    if isinstance(width, str) or shape is None or len(shape) != 2 or shape[1] != width:
        return f"its cluster_centers_ {shape} are not {width} features wide"
    return None


def neighbors_problem(classifier: bool, fields: dict[str, Value], observer: Observer) -> str | None:
    # brute-force search reads _fit_X rows as wide as the input; the classifiers' compiled
    # class modes write class_scores[i][_y[j]] for every neighbour j
    if "_fit_X" not in fields:
        return None
    width = _width(fields)
    if isinstance(width, str):
        return width
    shape = matrix_shape(fields["_fit_X"])
    if shape is None or len(shape) != 2 or shape[1] != width:
        return f"its _fit_X {shape} is not {width} features wide"
    if not classifier or "_y" not in fields:
        return None
    return _labels_problem(fields["_y"], fields.get("classes_"), shape[0], observer)


def _labels_problem(labels: Value, classes: Value, rows: int, observer: Observer) -> str | None:
    values = read_ints(labels, observer)
    if isinstance(values, str):
        return f"its _y is {values}"
    columns = [classes] if values.ndim == 1 else list(sequence_items(classes) or ())
    if values.ndim == 1:
        values = values[:, None]
    elif values.ndim != 2:
        return f"its _y has {values.ndim} dimensions"
    if values.shape[0] != rows or values.shape[1] != len(columns):
        return f"its _y {values.shape} does not label its {rows} fitted rows"
    for column, labels_of in enumerate(columns):
        count = array_shape(labels_of)
        if count is None or len(count) != 1:
            return "its classes_ are not arrays whose length can be read"
        if values.size and (int(values[:, column].min()) < 0 or int(values[:, column].max()) >= count[0]):
            return f"a label in _y is outside its {count[0]} classes"
    return None


def one_hot_problem(fields: dict[str, Value], observer: Observer) -> str | None:
    # transform places feature i's code (after grouping infrequent categories and removing
    # the dropped one) at column sum(_n_features_outs[:i]) + code, in a matrix as wide as
    # their sum built without a full check: each count must be what fit computes
    # (OneHotEncoder._compute_n_features_outs), and a dropped index a category's
    if "categories_" not in fields:
        return None
    categories = _listed(fields["categories_"], observer)
    outs = _listed(fields.get("_n_features_outs"), observer)
    if categories is None or outs is None or len(outs) != len(categories):
        # (also more than 64 features whose items the machine could not keep aside, or
        # past the items the scan may examine: fail closed)
        return "its categories_ and _n_features_outs are not lists of one entry per feature it can read"
    groups = []
    infrequent = (
        _listed(fields.get("_infrequent_indices"), observer) if fields.get("_infrequent_enabled") else None
    )
    if fields.get("_infrequent_enabled") and (infrequent is None or len(infrequent) != len(categories)):
        return "its _infrequent_indices are not one entry per feature"
    for index, array in enumerate(categories):
        shape = array_shape(array)
        if shape is None or len(shape) != 1:
            return "its categories_ are not arrays whose length can be read"
        infrequent_here = infrequent[index] if infrequent is not None else None
        grouped = array_shape(infrequent_here) if infrequent_here is not None else (1,)
        if grouped is None or len(grouped) != 1 or not 1 <= grouped[0] <= shape[0]:
            return f"its _infrequent_indices[{index}] are not among its categories"
        # transform writes infrequent_indices[0] as the code of unknown values
        if infrequent_here is not None and (problem := _codes_problem(infrequent_here, shape[0], observer)):
            return f"its _infrequent_indices[{index}] {problem}"
        groups.append(shape[0] - grouped[0] + 1)
    if infrequent is not None:
        # transform remaps each code with np.take(mapping, code): the mapping's values are
        # the codes that reach the matrix
        mappings = _listed(fields.get("_default_to_infrequent_mappings"), observer)
        if mappings is None or len(mappings) != len(groups):
            return "its _default_to_infrequent_mappings are not one entry per feature"
        for index, mapping in enumerate(mappings):
            if (mapping is None) != (infrequent[index] is None):
                return (
                    f"its _default_to_infrequent_mappings[{index}] does not match its infrequent categories"
                )
            if mapping is not None and (problem := _codes_problem(mapping, groups[index], observer)):
                return f"its _default_to_infrequent_mappings[{index}] {problem}"
    drops: list[Value] = [None] * len(groups)
    if fields.get("_drop_idx_after_grouping") is not None:
        found = object_items(fields["_drop_idx_after_grouping"], observer)
        if found is None or len(found) != len(groups):
            return "its _drop_idx_after_grouping is not an array of one entry per feature it can read"
        drops = found
    for index, (out, count, drop) in enumerate(zip(outs, groups, drops, strict=True)):
        # (drop_idx_ holds NumPy integers where infrequent categories were grouped)
        dropped = scalar_int(drop) if drop is not None else None
        if drop is not None and (dropped is None or not 0 <= dropped < count):
            return f"its dropped category {describe(drop)} of feature {index} is not one of its {count}"
        if scalar_int(out) != count - (drop is not None):
            return f"its _n_features_outs[{index}] is {out!r}, not the {count - (drop is not None)} its categories make"
    return None


def vocabulary_problem(fields: dict[str, Value], observer: Observer) -> str | None:
    # transform builds a sparse matrix as wide as the vocabulary with the vocabulary's
    # values as column indexes, without a full check: toarray() and a model's product
    # write and read at them
    if "vocabulary_" not in fields:
        return None
    found = dict_value_range(fields["vocabulary_"])
    if found is None:
        return "its vocabulary_ is not a dict of terms to literal column numbers"
    low, high, count = found
    if low < 0 or high >= count:
        return f"its vocabulary_ maps terms to columns {low}..{high} of {count}"
    return None


def _codes_problem(value: Value, count: int, observer: Observer) -> str | None:
    codes = read_ints(value, observer)
    if isinstance(codes, str):
        return "is not an integer array that can be read"
    if codes.size and (int(codes.min()) < 0 or int(codes.max()) >= count):
        return f"maps to codes outside 0..{count - 1}"
    return None


def bspline_problem(fields: dict[str, Value], observer: Observer) -> str | None:
    # evaluation (C) reads k + 1 coefficients from the knot interval it finds in _t
    degree = fields.get("k")
    knots, coefficients = array_shape(fields.get("_t")), array_shape(fields.get("_c"))
    if not isinstance(degree, int) or isinstance(degree, bool) or not 0 <= degree <= 64:
        return f"its degree k is {degree!r}, not a literal 0..64"
    if knots is None or len(knots) != 1 or knots[0] < 2 * degree + 2:
        return f"its knots {knots} are fewer than 2k + 2 = {2 * degree + 2}"
    if coefficients is None or not coefficients or coefficients[0] < knots[0] - degree - 1:
        return f"its coefficients {coefficients} are fewer than len(t) - k - 1 = {knots[0] - degree - 1}"
    return None


def _listed(value: Value, observer: Observer) -> list[Value] | None:
    """Every item of a list or tuple the stream built (None if some cannot be read)."""
    return every_item(value, observer)
