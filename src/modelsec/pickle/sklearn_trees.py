"""Whether a pickled scikit-learn decision tree's nodes stay inside it.

``Tree.__setstate__`` (``sklearn/tree/_tree.pyx``) checks the node array's dtype and
shape, then copies it into the tree as it is. Prediction (``_apply_dense``, compiled with
bounds checks off) follows ``left_child``/``right_child`` from the root and reads
``X[i, feature]``: a child index past the array, or a feature past the input's width,
reads out of bounds at an offset the file chose, and a child pointing back at an
ancestor loops forever (red team, 2026-12-07: ``predict()`` segfaulted). Every tree
ensemble (random forests, gradient boosting, isolation forests) is made of these.

The contract reads the node bytes (:mod:`~modelsec.pickle.array_values`) and requires what
scikit-learn's builders write: ``node_count`` nodes (1 or more, no more than the array
holds); each a leaf (both children ``-1``) or a split whose children come after it and
inside ``node_count``, on a feature below the tree's ``n_features``.

Left open: the input's width is the *estimator's* ``n_features_in_``, which the tree does
not know; an estimator claiming fewer features than its trees makes a prediction read up to
a row past its input (not a write).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelsec.pickle.array_values import ArrayData, Record, array_shape, read_array, read_ints
from modelsec.pickle.values import Call, Value, dict_items, sequence_items

if TYPE_CHECKING:
    from modelsec.pickle.observer import Observer

# sklearn.tree._tree.NODE_DTYPE (tests compare it with the installed scikit-learn), and the
# layout before missing-value support (1.3), which __setstate__ converts.
NODE = Record(
    (
        ("left_child", "<i8", 0),
        ("right_child", "<i8", 8),
        ("feature", "<i8", 16),
        ("threshold", "<f8", 24),
        ("impurity", "<f8", 32),
        ("n_node_samples", "<i8", 40),
        ("weighted_n_node_samples", "<f8", 48),
        ("missing_go_to_left", "|u1", 56),
    ),
    64,
)
NODE_BEFORE_1_3 = Record(NODE.fields[:7], 56)
LEAF = -1  # sklearn's _TREE_LEAF


def tree_problem(tree: Value, state: Value, observer: Observer) -> str | None:
    """Why the tree ``Tree(n_features, n_classes, n_outputs)`` with BUILD ``state`` may
    read outside its nodes or its input, or None."""
    args = sequence_items(tree.args) if isinstance(tree, Call) else None
    n_features = args[0] if args else None
    if not isinstance(n_features, int) or isinstance(n_features, bool) or n_features < 0:
        return "its n_features is not a literal count"
    fields = dict_items(state)
    if fields is None:
        return "its state is not a dict whose fields can be read"
    count = fields.get("node_count")
    if not isinstance(count, int) or isinstance(count, bool):
        return "its node_count is not a literal count"
    nodes = read_array(fields.get("nodes"), observer)
    if isinstance(nodes, str):
        return f"state['nodes'] is {nodes}"
    if (problem := _values_problem(args or (), fields.get("values"), nodes.shape, observer)) is not None:
        return problem
    return node_problem(nodes, count, n_features)


def _values_problem(
    args: tuple[Value, ...], values: Value, nodes: tuple[int, ...], observer: Observer
) -> str | None:
    """Prediction reads ``value[node]`` as ``n_outputs x max(n_classes)`` doubles: the
    outputs and classes ``Tree(n_features, n_classes, n_outputs)`` declares must be at
    least one each, and the values array exactly that size per node."""

    outputs = args[2] if len(args) > 2 else None
    per_output = read_ints(args[1], observer) if len(args) > 1 else "missing"
    if not isinstance(outputs, int) or isinstance(outputs, bool) or outputs < 1:
        return "its n_outputs is not a literal count of at least one"
    if isinstance(per_output, str) or per_output.shape != (outputs,):
        return "its n_classes is not one integer per output"
    if (per_output < 1).any():
        return "its n_classes holds a count below one"
    shape = array_shape(values)
    wanted = (nodes[0] if nodes else 0, outputs, int(per_output.max()))
    if shape != wanted:
        return f"state['values'] is {shape}, not the {wanted} prediction reads"
    return None


def node_problem(nodes: ArrayData, count: int, n_features: int) -> str | None:
    """Why ``count`` nodes of ``nodes`` do not form a tree over ``n_features`` inputs."""
    if nodes.layout not in (NODE, NODE_BEFORE_1_3) or not isinstance(nodes.layout, Record):
        return "state['nodes'] does not have scikit-learn's node layout"
    if len(nodes.shape) != 1:
        return f"state['nodes'] has {len(nodes.shape)} dimensions, not 1"
    if not 1 <= count <= nodes.shape[0]:
        return f"its node_count is {count}, for an array of {nodes.shape[0]} nodes"
    import numpy as np

    view = np.frombuffer(nodes.data, dtype=nodes.layout.numpy_dtype(), count=count)
    left, right, feature = view["left_child"], view["right_child"], view["feature"]
    index = np.arange(count)
    leaf = (left == LEAF) & (right == LEAF)
    split = (index < left) & (left < count) & (index < right) & (right < count)
    split &= (feature >= 0) & (feature < n_features)
    bad = np.flatnonzero(~(leaf | split))
    if bad.size:
        i = int(bad[0])
        return (
            f"node {i} of {count} has children {int(left[i])} and {int(right[i])} and feature "
            f"{int(feature[i])} (of {n_features}): not a leaf, nor a split whose children follow it "
            "inside the tree (prediction follows them with bounds checks off)"
        )
    return None


# -- KDTree and BallTree (sklearn/neighbors/_binary_tree.pxi.tp) ----------------------------
#
# __setstate__ assigns the 13-tuple __getstate__ writes to typed memoryviews without a
# cross-check; queries (bounds checks off) read data[idx_array[i]] for i in each node's
# idx_start..idx_end, recurse into nodes 2i+1 and 2i+2 below every node not marked a leaf,
# read node_bounds[0 or 1, node, feature], and hand the metric n_features coordinates.

NODE_DATA = Record(
    (("idx_start", "<i8", 0), ("idx_end", "<i8", 8), ("is_leaf", "<i8", 16), ("radius", "<f8", 24)), 32
)
_FLOATS = {"64": "<f8", "32": "<f4"}  # BinaryTree64 / BinaryTree32: the data's type
# Metrics that index a parameter by feature: (the state field, how it must be shaped).
_METRIC_PARAMETERS = {
    "MahalanobisDistance": "mat",  # (n_features, n_features)
    "SEuclideanDistance": "vec",  # (n_features,)
    "MinkowskiDistance": "weights",  # (n_features,) or (0,): unweighted
}


def binary_tree_problem(owner: str, state: Value, observer: Observer) -> str | None:
    """Why the ``KDTree``/``BallTree`` state given to ``owner.__setstate__`` (the
    ``BinaryTree64``/``BinaryTree32`` of ``_kd_tree`` or ``_ball_tree``) may make a query
    read out of bounds, or None."""
    items = sequence_items(state)
    if items is None or len(items) != 13:
        return "its state is not the 13-tuple scikit-learn writes"
    float_type = _FLOATS.get(owner[-2:])
    arrays = [read_array(items[i], observer) for i in range(4)]
    for name, found in zip(("data", "idx_array", "node_data", "node_bounds"), arrays, strict=True):
        if isinstance(found, str):
            return f"its {name} is {found}"
    data, idx, nodes, bounds = (a for a in arrays if isinstance(a, ArrayData))
    if data.layout != float_type or len(data.shape) != 2:
        return f"its data is not a 2-dimensional {float_type} array"
    samples, features = data.shape
    if idx.layout != "<i8" or idx.shape != (samples,):  # intp, as the memoryview types it
        return f"its idx_array is not {samples} indexes"
    import numpy as np

    order = np.frombuffer(idx.data, dtype="<i8")
    if not np.array_equal(np.sort(order), np.arange(samples)):
        return f"its idx_array is not an order of its {samples} rows"
    n_levels, n_nodes = items[5], items[6]
    if not all(isinstance(n, int) and not isinstance(n, bool) for n in (n_levels, n_nodes)):
        return "its n_levels and n_nodes are not literal counts"
    if not 1 <= n_levels <= 62 or n_nodes != 2**n_levels - 1:
        return f"its n_nodes ({n_nodes}) is not the size of a tree of {n_levels} levels"
    if nodes.layout != NODE_DATA or nodes.shape != (n_nodes,):
        return f"its node_data is not {n_nodes} nodes of scikit-learn's layout"
    sides = 2 if "_kd_tree" in owner else 1
    if bounds.layout != float_type or bounds.shape != (sides, n_nodes, features):
        return f"its node_bounds is not {sides} x {n_nodes} x {features}"
    view = np.frombuffer(nodes.data, dtype=NODE_DATA.numpy_dtype())
    start, end, leaf = view["idx_start"], view["idx_end"], view["is_leaf"]
    inner = np.flatnonzero(leaf == 0)
    bad = (start < 0) | (start > end) | (end > samples) | ((leaf != 0) & (leaf != 1))
    if bad.any() or (inner.size and 2 * int(inner.max()) + 2 >= n_nodes):
        i = int(np.flatnonzero(bad)[0]) if bad.any() else int(inner.max())
        return (
            f"node {i} of {n_nodes} covers rows {int(start[i])}..{int(end[i])} of {samples} "
            f"(leaf flag {int(leaf[i])}): queries read them, and its children, with bounds checks off"
        )
    weights = items[12]
    if weights is not None:
        read = read_array(weights, observer)
        if isinstance(read, str) or read.shape != (samples,):
            return "its sample_weight is not one weight per row"
    return _metric_problem(items[11], features, observer)


def _metric_problem(metric: Value, features: int, observer: Observer) -> str | None:
    cls = metric.cls if isinstance(metric, Call) else None
    if cls is None:
        return "its dist_metric is not a metric the stream built"
    kind = next((k for k in _METRIC_PARAMETERS if cls.name.startswith(k)), None)
    if kind is None:
        return None  # no parameter indexed by feature
    state = sequence_items(metric.state)
    if state is None or len(state) < 3:
        return f"its {cls.name} has no (p, vec, mat) state"
    which = _METRIC_PARAMETERS[kind]
    read = read_array(state[2] if which == "mat" else state[1], observer)
    if isinstance(read, str):
        return f"its {cls.name} parameters: {read}"
    wanted = {
        "mat": ((features, features),),
        "vec": ((features,),),
        "weights": ((features,), (0,)),
    }[which]
    if read.shape not in wanted:
        return f"its {cls.name} parameters have shape {read.shape} for {features} features"
    return None


# -- HistGradientBoosting's TreePredictor (sklearn/ensemble/_hist_gradient_boosting) --------
#
# _predict_one_from_raw_data (bounds checks off) follows node.left/node.right from the root,
# reads numeric_data[row, node.feature_idx], and for categorical splits
# raw_left_cat_bitsets[node.bitset_idx]. The width of the input is the estimator's
# n_features_in_, which a predictor does not know: each predictor's widest split feature
# becomes its width, and the estimator's _predictors (lists of lists, however long) keep
# every predictor appended to them (Container.models).

PREDICTOR = Record(
    (
        ("value", "<f8", 0),
        ("count", "<u4", 8),
        ("feature_idx", "<i8", 12),
        ("num_threshold", "<f8", 20),
        ("missing_go_to_left", "|u1", 28),
        ("left", "<u4", 29),
        ("right", "<u4", 33),
        ("gain", "<f8", 37),
        ("depth", "<u4", 45),
        ("is_leaf", "|u1", 49),
        ("bin_threshold", "|u1", 50),
        ("is_categorical", "|u1", 51),
        ("bitset_idx", "<u4", 52),
    ),
    56,
)


def hist_gradient_boosting_problem(fields: dict[str, Value], observer: Observer) -> str | None:
    """A fitted boosting estimator's predictors need no wider input than it declares."""
    if "_predictors" not in fields:
        return None  # not fitted
    width = fields.get("n_features_in_")
    if not isinstance(width, int) or isinstance(width, bool) or width < 0:
        return "its n_features_in_ is not a literal count"
    from modelsec.pickle.sklearn_state import wider_members

    return wider_members(
        fields,
        "_predictors",
        width,
        observer,
        lambda widest: f"a predictor splits on feature {widest - 1}, and its input has {width} features",
    )


def predictor_problem(predictor: Value, state: Value, observer: Observer) -> str | None:
    """Why a ``TreePredictor`` with BUILD ``state`` may read outside its nodes or bitsets.
    The input width it needs becomes its ``width``, which its estimator's predictor lists
    remember (:func:`hist_gradient_boosting_problem`)."""
    if isinstance(predictor, Call) and predictor.width is not None:
        return "a second BUILD changes a predictor already checked"
    fields = dict_items(state)
    if fields is None:
        return "its state is not a dict whose fields can be read"
    nodes = read_array(fields.get("nodes"), observer)
    if isinstance(nodes, str):
        return f"state['nodes'] is {nodes}"
    if nodes.layout != PREDICTOR or len(nodes.shape) != 1 or not nodes.shape[0]:
        return "state['nodes'] is not a list of nodes of scikit-learn's layout"
    bitsets = [
        read_array(fields.get(key), observer) for key in ("binned_left_cat_bitsets", "raw_left_cat_bitsets")
    ]
    rows = [b.shape[0] for b in bitsets if not isinstance(b, str) and b.layout == "<u4" and len(b.shape) == 2]
    if len(rows) != 2:
        return "its categorical bitsets are not two uint32 tables"
    import numpy as np

    count = nodes.shape[0]
    view = np.frombuffer(nodes.data, dtype=PREDICTOR.numpy_dtype())
    index = np.arange(count)
    left, right = view["left"].astype(np.int64), view["right"].astype(np.int64)
    split = (index < left) & (left < count) & (index < right) & (right < count) & (view["feature_idx"] >= 0)
    categorical = view["is_categorical"] != 0
    split &= ~categorical | (view["bitset_idx"].astype(np.int64) < min(rows))
    inner = view["is_leaf"] == 0
    bad = np.flatnonzero(inner & ~split)
    if isinstance(predictor, Call):  # the input it needs: its widest split feature, plus one
        predictor.width = int(view["feature_idx"][inner].max()) + 1 if inner.any() else 0
    if bad.size:
        i = int(bad[0])
        return (
            f"node {i} of {count} has children {int(left[i])} and {int(right[i])}, feature "
            f"{int(view['feature_idx'][i])} and bitset {int(view['bitset_idx'][i])} of {min(rows)}: not a "
            "split whose children follow it inside the tree (prediction follows them with bounds checks off)"
        )
    return None
