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

from modelsec.pickle.array_values import ArrayData, Record, read_array
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
    return node_problem(nodes, count, n_features)


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
