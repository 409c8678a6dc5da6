"""Red-team class: indexes inside allowlisted compiled models (2026-12-07, "compiled" pass).

A scikit-learn ``Tree`` whose node array points outside itself loads cleanly and segfaults
in ``predict()`` (bounds checks off). Every file here is a real fitted estimator pickled by
this process (never loaded) with bytes of its node array replaced; each malicious case was
ALLOWED before the node contract (``modelsec.pickle.sklearn_trees``).
"""

from __future__ import annotations

import copy
import io
import pickle
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from joblib.numpy_pickle_utils import _write_fileobject
from pklbuild import (
    BUILD,
    MARK,
    NEWFALSE,
    NEWTRUE,
    NONE,
    POP,
    REDUCE,
    STOP,
    TUPLE,
    TUPLE2,
    TUPLE3,
    binget,
    binint,
    binint1,
    binput,
    binunicode,
    global_,
    piece,
    proto,
    scan,
    short_binbytes,
    with_code,
    writers,
)
from sklearn.ensemble import (
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    IsolationForest,
    RandomForestClassifier,
)
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor
from sklearn.tree._tree import NODE_DTYPE

from modelsec.findings import Finding
from modelsec.pickle.sklearn_trees import NODE, PREDICTOR

RNG = np.random.default_rng(7)
X = RNG.normal(size=(300, 4))
Y = (X[:, 0] + X[:, 1] > 0).astype(int)


def _fitted() -> dict[str, Any]:
    return {
        "tree": DecisionTreeClassifier(max_depth=4, random_state=0).fit(X, Y),
        "forest": RandomForestClassifier(n_estimators=3, max_depth=3, random_state=0).fit(X, Y),
        "boosting": GradientBoostingClassifier(n_estimators=3, max_depth=2, random_state=0).fit(X, Y),
        "extra": ExtraTreesRegressor(n_estimators=2, max_depth=3, random_state=0).fit(X, X[:, 2]),
        "isolation": IsolationForest(n_estimators=2, random_state=0).fit(X),
        # 2,000+ nodes: more than the reader keeps inline, so the bytes are read back
        "large": DecisionTreeRegressor(random_state=0).fit(RNG.normal(size=(2000, 3)), RNG.normal(size=2000)),
    }


MODELS = _fitted()


WRITERS = writers("pickle-2", "pickle-4", "pickle-5", "joblib")


def contract_findings(data: bytes) -> list[Finding]:
    return [f for f in with_code(scan(data), "MS-PKL-107") if "Tree.__setstate__" in f.message]


def test_the_node_layout_is_scikit_learns() -> None:
    assert NODE.numpy_dtype() == NODE_DTYPE


@pytest.mark.parametrize("writer", sorted(WRITERS))
@pytest.mark.parametrize("model", sorted(MODELS))
def test_fitted_trees_pass(model: str, writer: str) -> None:
    result = scan(WRITERS[writer](MODELS[model]))
    assert not result.findings or {f.threat for f in result.findings} <= {"MS-POL-001"}, result.findings
    assert not result.incompletes


def _forged(model: Any, writer: str, change: Callable[[np.ndarray], None], tree: int = 0) -> bytes:
    """``model`` written by ``writer`` after ``change`` to one tree's nodes (set on a copy
    made in this process: scikit-learn copies node arrays without reading them)."""
    model = copy.deepcopy(model)
    estimators = getattr(model, "estimators_", None)
    target = (model if estimators is None else np.ravel(estimators)[tree]).tree_
    state = target.__getstate__()
    change(state["nodes"])
    target.__setstate__(state)
    return WRITERS[writer](model)


def _set(field: str, index: int, value: int) -> Callable[[np.ndarray], None]:
    def change(nodes: np.ndarray) -> None:
        nodes[field][index] = value

    return change


def _children(index: int, left: int, right: int) -> Callable[[np.ndarray], None]:
    def change(nodes: np.ndarray) -> None:
        nodes["left_child"][index], nodes["right_child"][index] = left, right

    return change


FORGERIES: dict[str, Callable[[np.ndarray], None]] = {
    "child past the array (predict reads 2**40 nodes away)": _children(0, 1 << 40, 1 << 40),
    "negative child": _children(0, -5, 2),
    "child pointing back at the root (predict loops forever)": _children(1, 0, 0),
    "one child a leaf marker, the other a node": _children(0, -1, 2),
    "feature past the input": _set("feature", 0, 4),
    "negative feature": _set("feature", 0, -3),
}


@pytest.mark.parametrize("writer", sorted(WRITERS))
@pytest.mark.parametrize("forgery", sorted(FORGERIES))
def test_forged_nodes_are_contract_violations(forgery: str, writer: str) -> None:
    found = contract_findings(_forged(MODELS["tree"], writer, FORGERIES[forgery]))
    assert len(found) == 1 and "bounds checks off" in found[0].message


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_forged_nodes_read_back_from_the_file_are_found(writer: str) -> None:
    # The large tree's nodes are a Blob (pickle), a joblib array, or a PickleBuffer.
    data = _forged(MODELS["large"], writer, _children(1500, 3, 3))
    (found,) = contract_findings(data)
    assert "node 1500" in found.message


@pytest.mark.parametrize("model", ["forest", "boosting", "isolation"])
def test_one_forged_tree_in_an_ensemble_is_found(model: str) -> None:
    data = _forged(MODELS[model], "joblib", _set("feature", 0, 1 << 20), tree=1)
    assert len(contract_findings(data)) == 1


def test_a_compressed_joblib_file_is_checked() -> None:
    data = _forged(MODELS["tree"], "joblib", _children(0, 1 << 40, 1 << 40))
    out = io.BytesIO()
    with _write_fileobject(out, compress=("zlib", 3)) as stream:
        stream.write(data)
    assert any("Tree.__setstate__" in f.message for f in scan(out.getvalue()).findings)


def test_node_count_past_the_array_is_a_violation() -> None:
    data = pickle.dumps(MODELS["tree"], protocol=4)
    count = MODELS["tree"].tree_.node_count
    key = b"\x8c\nnode_count\x94K"  # node_count is a BININT1 after its memoised key
    assert data.count(key + bytes([count])) == 1
    (found,) = contract_findings(data.replace(key + bytes([count]), key + bytes([count + 1])))
    assert f"node_count is {count + 1}" in found.message


# -- NumPy random states: the cursor into the generator's buffer ------------------------


def _generators() -> dict[str, Callable[[], Any]]:
    return {
        "Generator(MT19937)": lambda: np.random.Generator(np.random.MT19937(1)),
        "Generator(PCG64)": lambda: np.random.default_rng(1),
        "Generator(PCG64DXSM)": lambda: np.random.Generator(np.random.PCG64DXSM(1)),
        "Generator(Philox)": lambda: np.random.Generator(np.random.Philox(1)),
        "Generator(SFC64)": lambda: np.random.Generator(np.random.SFC64(1)),
        "RandomState": lambda: np.random.RandomState(1),
        "MT19937": lambda: np.random.MT19937(1),
        "estimator holding a RandomState": lambda: RandomForestClassifier(
            n_estimators=1, random_state=np.random.RandomState(0)
        ),
    }


def random_findings(data: bytes) -> list[Finding]:
    return [f for f in with_code(scan(data), "MS-PKL-107") if "__setstate__" in f.message]


@pytest.mark.parametrize("protocol", [2, 4, 5])
@pytest.mark.parametrize("name", sorted(_generators()))
def test_random_states_pass(name: str, protocol: int) -> None:
    result = scan(pickle.dumps(_generators()[name](), protocol=protocol))
    assert {f.threat for f in result.findings} <= {"MS-POL-001"}, result.findings


def _with_cursor(bit_generator: Any, field: str, value: int) -> Any:
    # Set in this process and never drawn from: numpy copies the cursor unchecked.
    state = bit_generator.state
    (state["state"] if field == "pos" else state)[field] = value
    bit_generator.state = state
    return bit_generator


@pytest.mark.parametrize("protocol", [2, 4, 5])
@pytest.mark.parametrize("pos", [625, 1 << 30, -1])
def test_mt19937_cursor_past_its_words_is_a_violation(pos: int, protocol: int) -> None:
    generator = np.random.Generator(_with_cursor(np.random.MT19937(1), "pos", pos))
    (found,) = random_findings(pickle.dumps(generator, protocol=protocol))
    assert f"its pos is {pos}, outside 0..624" in found.message


def test_random_state_cursor_is_checked_too() -> None:
    legacy = np.random.RandomState(1)
    state = list(legacy.get_state(legacy=True))
    state[2] = 1 << 20
    legacy.set_state(tuple(state))
    found = random_findings(pickle.dumps(legacy, protocol=4))
    assert found and all("its pos is 1048576" in f.message for f in found)


@pytest.mark.parametrize("buffer_pos", [-1, 5])
def test_philox_buffer_cursor_outside_its_buffer_is_a_violation(buffer_pos: int) -> None:
    generator = np.random.Generator(_with_cursor(np.random.Philox(1), "buffer_pos", buffer_pos))
    assert len(random_findings(pickle.dumps(generator, protocol=4))) == 1


# -- KDTree and BallTree: row order, node ranges, children, metric parameters --------------


def _neighbours() -> dict[str, Callable[[], Any]]:
    from sklearn.cluster import DBSCAN
    from sklearn.neighbors import BallTree, KDTree, KNeighborsClassifier

    data = RNG.normal(size=(120, 3))
    return {
        "KDTree": lambda: KDTree(data, leaf_size=8),
        "BallTree": lambda: BallTree(data, leaf_size=8),
        "BallTree(mahalanobis)": lambda: BallTree(data, leaf_size=8, metric="mahalanobis", VI=np.eye(3)),
        "BallTree(seuclidean)": lambda: BallTree(data, leaf_size=8, metric="seuclidean", V=np.ones(3)),
        "KDTree(weighted minkowski)": lambda: KDTree(data, metric="minkowski", p=3),
        "KNeighborsClassifier(kd_tree)": lambda: KNeighborsClassifier(algorithm="kd_tree").fit(
            data, data[:, 0] > 0
        ),
        "KNeighborsClassifier(ball_tree)": lambda: KNeighborsClassifier(algorithm="ball_tree").fit(
            data, data[:, 0] > 0
        ),
        "DBSCAN": lambda: DBSCAN(algorithm="kd_tree").fit(data),
    }


def binary_findings(data: bytes) -> list[Finding]:
    return [f for f in with_code(scan(data), "MS-PKL-107") if "BinaryTree" in f.message]


@pytest.mark.parametrize("writer", sorted(WRITERS))
@pytest.mark.parametrize("name", sorted(_neighbours()))
def test_neighbour_trees_pass(name: str, writer: str) -> None:
    result = scan(WRITERS[writer](_neighbours()[name]()))
    assert {f.threat for f in result.findings} <= {"MS-POL-001"}, result.findings


def _forged_tree(name: str, change: Callable[[list[Any]], None]) -> bytes:
    tree = _neighbours()[name]()
    state = list(tree.__getstate__())
    change(state)
    tree.__setstate__(tuple(state))  # in this process, never queried
    return pickle.dumps(tree, protocol=4)


def _idx(value: int, at: int = 3) -> Callable[[list[Any]], None]:
    def change(state: list[Any]) -> None:
        state[1] = state[1].copy()
        state[1][at] = value

    return change


def _node(field: str, value: int, at: int = 0) -> Callable[[list[Any]], None]:
    def change(state: list[Any]) -> None:
        state[2] = state[2].copy()
        state[2][field][at] = value

    return change


def _levels(state: list[Any]) -> None:
    state[5] += 1  # n_levels claims a deeper tree than node_data holds


def _bounds(state: list[Any]) -> None:
    state[3] = np.ascontiguousarray(state[3][:1])  # a KDTree with a BallTree's one side


TREE_FORGERIES: dict[str, tuple[str, Callable[[list[Any]], None]]] = {
    "idx_array entry past the data": ("KDTree", _idx(1 << 40)),
    "idx_array repeating a row": ("BallTree", _idx(0, at=5)),
    "node range past the data": ("KDTree", _node("idx_end", 10_000)),
    "node range starting below zero": ("BallTree", _node("idx_start", -4)),
    "leaf marker cleared on the last node": ("KDTree", _node("is_leaf", 0, at=-1)),
    "n_levels deeper than node_data": ("KDTree", _levels),
    "KDTree with one side of bounds": ("KDTree", _bounds),
}


@pytest.mark.parametrize("forgery", sorted(TREE_FORGERIES))
def test_forged_neighbour_trees_are_violations(forgery: str) -> None:
    name, change = TREE_FORGERIES[forgery]
    assert len(binary_findings(_forged_tree(name, change))) == 1


@pytest.mark.parametrize(
    "metric, kwargs, field",
    [("mahalanobis", {"VI": np.eye(3)}, 2), ("seuclidean", {"V": np.ones(3)}, 1)],
)
def test_metric_parameters_smaller_than_the_data_are_violations(
    metric: str, kwargs: dict[str, Any], field: int
) -> None:
    from sklearn.neighbors import BallTree

    tree = BallTree(RNG.normal(size=(60, 3)), metric=metric, **kwargs)
    state = list(tree.__getstate__())
    metric_state = list(state[11].__reduce__()[2])
    metric_state[field] = np.eye(1) if field == 2 else np.ones(1)
    state[11].__setstate__(tuple(metric_state))  # in this process, never used
    tree.__setstate__(tuple(state))
    (found,) = binary_findings(pickle.dumps(tree, protocol=4))
    assert "for 3 features" in found.message


# -- SciPy sparse matrices: indexes inside the shape -------------------------------------

SPARSE = ("csr", "csc", "bsr", "coo", "dia", "lil", "dok")


def _sparse(fmt: str, array: bool = False) -> Any:
    import scipy.sparse as sp

    matrix = sp.random(12, 8, density=0.3, format="csr", random_state=0).asformat(fmt)
    return getattr(sp, f"{fmt}_array")(matrix) if array else matrix


def sparse_findings(data: bytes) -> list[Finding]:
    return [f for f in with_code(scan(data), "MS-PKL-107") if "matrix" in f.message or "array" in f.message]


@pytest.mark.parametrize("writer", sorted(WRITERS))
@pytest.mark.parametrize("array", [False, True])
@pytest.mark.parametrize("fmt", SPARSE)
def test_sparse_matrices_pass(fmt: str, array: bool, writer: str) -> None:
    result = scan(WRITERS[writer](_sparse(fmt, array)))
    assert {f.threat for f in result.findings} <= {"MS-POL-001"}, result.findings


def _sparse_forged(
    fmt: str, field: str, change: Callable[[np.ndarray], None], writer: str = "pickle-4"
) -> bytes:
    matrix = _sparse(fmt)
    if field in ("row", "col"):
        coords = list(matrix.coords)
        coords[0 if field == "row" else 1] = coords[0 if field == "row" else 1].copy()
        change(coords[0 if field == "row" else 1])
        matrix.coords = tuple(coords)  # set in this process, never used
    else:
        values = getattr(matrix, field).copy()
        change(values)
        setattr(matrix, field, values)
    return WRITERS[writer](matrix)


def _at(index: int, value: int) -> Callable[[np.ndarray], None]:
    def change(values: np.ndarray) -> None:
        values[index] = value

    return change


SPARSE_FORGERIES: dict[str, tuple[str, str, Callable[[np.ndarray], None]]] = {
    "csr column past the shape (toarray writes there)": ("csr", "indices", _at(0, 1 << 30)),
    "csr negative column": ("csr", "indices", _at(1, -7)),
    "csc row past the shape": ("csc", "indices", _at(0, 12)),
    "csr indptr running past the indices": ("csr", "indptr", _at(-1, 1 << 20)),
    "csr indptr decreasing": ("csr", "indptr", _at(3, 0)),
    "bsr block column past the shape": ("bsr", "indices", _at(0, 8)),
    "coo row past the shape": ("coo", "row", _at(0, 12)),
    "coo negative column": ("coo", "col", _at(0, -1)),
    "dia offsets without data rows": ("dia", "offsets", lambda values: None),
}


@pytest.mark.parametrize("writer", ["pickle-2", "pickle-5", "joblib"])
@pytest.mark.parametrize("forgery", sorted(SPARSE_FORGERIES))
def test_forged_sparse_matrices_are_violations(forgery: str, writer: str) -> None:
    fmt, field, change = SPARSE_FORGERIES[forgery]
    if fmt == "dia":
        matrix = _sparse("dia")
        matrix.offsets = np.concatenate(
            [matrix.offsets, matrix.offsets[:1]]
        )  # one more offset than data rows
        data = WRITERS[writer](matrix)
    else:
        data = _sparse_forged(fmt, field, change, writer)
    assert len(sparse_findings(data)) == 1


def _wide_lil(array: bool = False) -> Any:
    # more than the 64 rows, and a row of more than the 64 items, the machine keeps
    import scipy.sparse as sp

    matrix = sp.lil_matrix((100, 150))
    matrix[3, :] = np.arange(1, 151)
    matrix[:, 7] = np.arange(1, 101).reshape(-1, 1)
    return sp.lil_array(matrix) if array else matrix


@pytest.mark.parametrize("writer", sorted(WRITERS))
@pytest.mark.parametrize("array", [False, True])
def test_wide_lil_matrices_pass(array: bool, writer: str) -> None:
    assert not sparse_findings(WRITERS[writer](_wide_lil(array)))


def _lil_forged(change: Callable[[Any], None]) -> Any:
    matrix = _wide_lil()
    change(matrix)  # set in this process, never used
    return matrix


def _lil_row(row: int, columns: list[int], values: list[float] | None = None) -> Callable[[Any], None]:
    def change(matrix: Any) -> None:
        matrix.rows[row] = columns
        matrix.data[row] = values if values is not None else [1.0] * len(columns)

    return change


LIL_FORGERIES: dict[str, Callable[[Any], None]] = {
    # red team, session 22: lil @ x and tocsr().toarray() segfaulted on the first
    "column past the shape (tocsr builds without a full check)": _lil_row(0, [1 << 20]),
    "negative column": _lil_row(1, [-3]),
    "column past the shape after the 64 kept items": _lil_row(3, [*range(149), 150]),
    "column past the shape in a row after the 64 kept rows": _lil_row(90, [7, 151]),
    "fewer values than columns (tocsr reads past the data)": _lil_row(2, [1, 2, 3], [1.0]),
    "fewer rows than the shape": lambda m: setattr(m, "rows", m.rows[:50]),
}


@pytest.mark.parametrize("writer", ["pickle-2", "pickle-5", "joblib"])
@pytest.mark.parametrize("forgery", sorted(LIL_FORGERIES))
def test_forged_lil_matrices_are_violations(forgery: str, writer: str) -> None:
    data = WRITERS[writer](_lil_forged(LIL_FORGERIES[forgery]))
    assert len(sparse_findings(data)) == 1, scan(data).findings


def test_a_lil_row_grown_after_its_check_is_a_violation() -> None:
    # the object array holds the stream's own lists: appending to one through the memo
    # after the matrix's BUILD changes what the check read
    import pickletools

    matrix = _wide_lil()
    made = pickle.dumps((matrix, matrix.rows[0]), protocol=2)
    row = [arg for info, arg, _ in pickletools.genops(made) if info.name == "BINGET"][-1]
    assert isinstance(row, int)
    spliced = made[:-1] + b"0h" + bytes([row]) + b"J" + (1 << 30).to_bytes(4, "little") + b"a."
    assert not sparse_findings(made)
    found = with_code(scan(spliced), "MS-PKL-107")
    assert any("grows its list after its state was checked" in f.message for f in found), found


def test_a_second_build_of_an_array_is_a_violation() -> None:
    # What a contract read is what compiled code uses: numpy writes an array once.
    state = (1, (3,), np.dtype("<i8"), False, bytes(24))
    once = b"\x80\x02" + piece(np.arange(3)) + b"."
    twice = b"\x80\x02" + piece(np.arange(3)) + piece(state) + b"b."
    assert not contract_or_malformed(once)
    assert contract_or_malformed(twice) == ["a second BUILD replaces the contents of an array"]


def test_a_build_after_frombuffer_is_a_violation() -> None:
    # Protocol 5 hands the contents to _frombuffer; a BUILD after it would replace them.
    made = pickle.dumps(np.arange(3), protocol=5)
    assert b"_frombuffer" in made and not contract_or_malformed(made)
    spliced = made[: made.rindex(b".")] + piece((1, (3,), np.dtype("<i8"), False, bytes(24))) + b"b."
    assert "a second BUILD replaces the contents of an array" in contract_or_malformed(spliced)


def test_a_second_build_of_a_dtype_is_a_violation() -> None:
    # An array's dtype changed after a contract read the array: numpy builds a dtype once.
    made = piece(np.dtype("<i4"))
    state = piece((3, "<", None, None, None, -1, -1, 0))
    assert not contract_or_malformed(b"\x80\x02" + made + b".")
    assert contract_or_malformed(b"\x80\x02" + made + state + b"b.") == [
        "a second BUILD replaces the fields of a dtype"
    ]


def contract_or_malformed(data: bytes) -> list[str]:
    result = scan(data)
    return [
        f.message.rpartition(": ")[2] if f.threat == "MS-PKL-107" else f.threat
        for f in result.findings
        if f.threat != "MS-POL-001"
    ]


# -- HistGradientBoosting's TreePredictor ------------------------------------------------


def _boosted() -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    # (no categorical features: a forged is_categorical would then point past empty bitsets)
    data = RNG.normal(size=(300, 4))
    return HistGradientBoostingClassifier(max_iter=4, random_state=0).fit(data, data[:, 0] + data[:, 3] > 0)


def test_the_predictor_layout_is_scikit_learns() -> None:
    from sklearn.ensemble._hist_gradient_boosting.common import PREDICTOR_RECORD_DTYPE

    assert PREDICTOR.numpy_dtype() == PREDICTOR_RECORD_DTYPE


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_boosted_predictors_pass(writer: str) -> None:
    result = scan(WRITERS[writer](_boosted()))
    assert {f.threat for f in result.findings} <= {"MS-POL-001"}, result.findings


def _forged_predictor(field: str, value: int, writer: str = "pickle-4") -> bytes:
    model = _boosted()
    predictor = model._predictors[1][0]
    nodes = predictor.nodes.copy()
    inner = int(np.flatnonzero(nodes["is_leaf"] == 0)[0])
    nodes[field][inner] = value
    predictor.nodes = nodes  # set in this process, never used
    return WRITERS[writer](model)


@pytest.mark.parametrize("writer", sorted(WRITERS))
@pytest.mark.parametrize(
    "field, value",
    [
        ("left", 1 << 30),
        ("right", 0),
        ("feature_idx", -2),
        ("is_categorical", 1),
        ("feature_idx", 4),
        ("feature_idx", 1 << 30),
    ],
)
def test_forged_predictor_nodes_are_violations(field: str, value: int, writer: str) -> None:
    # is_categorical on a predictor without bitsets: raw_left_cat_bitsets[bitset_idx] past the
    # table; feature 4 of an input of 4 features: read past each row (judged at the end)
    assert len(predictor_findings(_forged_predictor(field, value, writer))) == 1


# -- scikit-learn SVMs: the array sizes libsvm reads --------------------------------------


def _svms() -> dict[str, Callable[[], Any]]:
    import scipy.sparse as sp
    from sklearn.svm import SVC, SVR, NuSVC, OneClassSVM

    data = RNG.normal(size=(60, 3))
    return {
        "SVC binary": lambda: SVC().fit(data, np.arange(60) % 2),
        "SVC 4 classes": lambda: SVC().fit(data, np.arange(60) % 4),
        "SVC 4 classes with probabilities": lambda: _quietly(
            lambda: SVC(probability=True).fit(data, np.arange(60) % 4)
        ),
        "NuSVC": lambda: NuSVC().fit(data, np.arange(60) % 3),
        "SVR": lambda: SVR().fit(data, data[:, 0]),
        "OneClassSVM": lambda: OneClassSVM().fit(data),
        "SVC on sparse data": lambda: SVC().fit(sp.csr_matrix(data), np.arange(60) % 3),
        "SVC not fitted": lambda: SVC(),
    }


def _quietly(make: Callable[[], Any]) -> Any:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # probability=True is deprecated in 1.9
        return make()


def svm_findings(data: bytes) -> list[Finding]:
    return [f for f in with_code(scan(data), "MS-PKL-107") if "an SVM" in f.message]


@pytest.mark.parametrize("writer", sorted(WRITERS))
@pytest.mark.parametrize("name", sorted(_svms()))
def test_svms_pass(name: str, writer: str) -> None:
    result = scan(WRITERS[writer](_svms()[name]()))
    assert {f.threat for f in result.findings} <= {"MS-POL-001"}, result.findings


def _short(field: str, keep: int) -> Callable[[Any], None]:
    def change(model: Any) -> None:
        value = getattr(model, field)
        setattr(model, field, np.ascontiguousarray(value[..., :keep] if value.ndim > 1 else value[:keep]))

    return change


def _counts(model: Any) -> None:
    model._n_support = (model._n_support * 1000).astype(np.int32)


SVM_FORGERIES: dict[str, tuple[str, Callable[[Any], None]]] = {
    "dual coefficients shorter than the support vectors": ("SVC 4 classes", _short("_dual_coef_", 5)),
    "fewer intercepts than class pairs": ("SVC 4 classes", _short("_intercept_", 1)),
    "fewer probability parameters than class pairs": (
        "SVC 4 classes with probabilities",
        _short("_probA", 2),
    ),
    "class counts past the support vectors": ("NuSVC", _counts),
    "regressor with no dual coefficients": ("SVR", _short("_dual_coef_", 0)),
}


@pytest.mark.parametrize("writer", ["pickle-4", "joblib"])
@pytest.mark.parametrize("forgery", sorted(SVM_FORGERIES))
def test_forged_svms_are_violations(forgery: str, writer: str) -> None:
    name, change = SVM_FORGERIES[forgery]
    model = _svms()[name]()
    change(model)  # in this process, never used
    assert len(svm_findings(WRITERS[writer](model))) == 1


def test_dict_of_an_object_runs_its_methods() -> None:
    # dict(x) copies a dict or pairs; of any other object it runs keys() or iteration
    # (library code: a sparse matrix's rows, a pandas Series' index).
    fine = b"\x80\x02" + piece(_Reduce(dict, ([("a", 1)],))) + b"."
    also_fine = b"\x80\x02" + piece(_Reduce(dict, ({"a": 1},))) + b"."
    assert not contract_or_malformed(fine) and not contract_or_malformed(also_fine)
    objected = b"\x80\x02" + piece(_Reduce(dict, (_sparse("csr"),))) + b"."
    assert contract_or_malformed(objected) == [
        "argument 1 (result of scipy.sparse._csr.csr_matrix) is an object, and builtins.dict runs its "
        "keys() or iteration"
    ]


class _Reduce:
    """Pickles as ``func(*args)`` (and a BUILD of ``state``): how a crafted stream calls an
    allowlisted callable."""

    def __init__(self, func: Any, args: tuple[Any, ...], state: Any = None) -> None:
        self.func, self.args, self.state = func, args, state

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.func, self.args) if self.state is None else (self.func, self.args, self.state)


def test_the_widest_predictor_feature_within_the_input_passes() -> None:
    assert not predictor_findings(_forged_predictor("feature_idx", 3))


def predictor_findings(data: bytes) -> list[Finding]:
    # (a feature past the input is the estimator's finding: it knows the input's width)
    return [
        f
        for f in with_code(scan(data), "MS-PKL-107")
        if "TreePredictor" in f.message or "a predictor splits on feature" in f.message
    ]


def test_an_array_handed_to_many_trees_is_examined_within_a_bound() -> None:
    # One memoised node array, thousands of trees: what contracts examine is bounded by a
    # few times the file (4x + 64 MiB); past it they fail closed instead of running on.
    from modelsec.pickle import scanner

    tree = MODELS["tree"].tree_
    state = tree.__getstate__()  # one dict, one nodes array: memoised, every tree gets it

    def trees(count: int) -> bytes:
        made = [
            _Reduce(type(tree), (tree.n_features, tree.n_classes, tree.n_outputs), state)
            for _ in range(count)
        ]
        return pickle.dumps(made, protocol=4)

    assert not [f for f in scan(trees(3)).findings if f.threat == "MS-PKL-107"]
    floor = scanner.READ_BACK_FLOOR
    scanner.READ_BACK_FLOOR = 0  # the floor alone would take 10,000 trees of these nodes
    try:
        found = [f for f in scan(trees(400)).findings if "bytes cannot be read" in f.message]
    finally:
        scanner.READ_BACK_FLOOR = floor
    assert found, "past the bound the contract fails closed"


@pytest.mark.parametrize("case", ["no classes", "values narrower than the classes", "values for fewer nodes"])
def test_tree_values_smaller_than_prediction_reads_are_a_violation(case: str) -> None:
    # predict reads value[leaf] as n_outputs x max(n_classes) doubles (red-team review:
    # Tree(2, [0], 1) with values of shape (N, 1, 0) segfaulted in a boosting stage)
    tree = MODELS["tree"].tree_
    state = dict(tree.__getstate__())
    classes = tree.n_classes.copy()
    values = state["values"]
    if case == "no classes":
        classes[:] = 0
        values = np.zeros((values.shape[0], 1, 0))
    elif case == "values narrower than the classes":
        values = np.ascontiguousarray(values[:, :, :1])
    else:
        values = np.ascontiguousarray(values[:-1])
    state["values"] = values
    data = pickle.dumps(_Reduce(type(tree), (tree.n_features, classes, tree.n_outputs), state), protocol=4)
    assert contract_findings(data)


# -- what a contract reads is what numpy read (red team, session 22) ----------------------

DTYPE_I4 = global_("numpy", "dtype") + binunicode("i4") + NEWFALSE + NEWTRUE + TUPLE3 + REDUCE
BIG_ENDIAN = MARK + binint1(3) + binunicode(">") + NONE * 3 + binint(-1) + binint(-1) + binint1(0) + TUPLE


def _scalar(dtype: bytes, data: bytes) -> bytes:
    return global_("numpy._core.multiarray", "scalar") + dtype + data + TUPLE2 + REDUCE


def test_a_dtype_built_after_a_scalar_used_it_is_a_violation() -> None:
    # numpy decoded 00 00 00 80 little-endian (-2**31) when the scalar was made; setting
    # the dtype big-endian afterwards made the lil contract read 128, inside the shape
    made = DTYPE_I4 + binput(1) + POP + _scalar(binget(1), short_binbytes(b"\x00\x00\x00\x80"))
    later = binget(1) + BIG_ENDIAN + BUILD + POP
    found = with_code(scan(proto(2) + made + later + STOP), "MS-PKL-107")
    assert any("changes a dtype after something read it" in f.message for f in found), found
    # built first, as numpy writes it: fine
    assert not with_code(
        scan(
            proto(2)
            + DTYPE_I4
            + BIG_ENDIAN
            + BUILD
            + binput(1)
            + _scalar(b"", short_binbytes(bytes(4)))
            + STOP
        ),
        "MS-PKL-107",
    )


def test_bytes_made_with_an_errors_handler_are_not_followed() -> None:
    # _codecs.encode(s, 'latin1', 'surrogateescape') gives other bytes than the strict
    # rebuild the readers make: a lil column read as 4,128,768 (inside 5,000,000 columns)
    # was 16,711,680
    import struct

    import scipy.sparse as sp

    matrix = sp.lil_matrix((2, 5_000_000))
    matrix.rows[0], matrix.data[0] = [123456789], [1.0]  # set here, never used
    made = pickle.dumps(matrix, protocol=2)
    sentinel = b"J" + struct.pack("<i", 123456789)
    assert made.count(sentinel) == 1
    surrogate = "\x00\udcff\x00\x00".encode("utf-8", "surrogatepass")  # as picklers write it
    text = b"X" + struct.pack("<I", len(surrogate)) + surrogate + binunicode("latin1")
    for errors, violated in (("surrogateescape", True), ("strict", False)):
        data = global_("_codecs", "encode") + text + binunicode(errors) + TUPLE3 + REDUCE
        forged = made.replace(sentinel, _scalar(DTYPE_I4 + BIG_ENDIAN + BUILD, data))
        assert bool(sparse_findings(forged)) is violated, errors


class _TypeString:
    """A dtype pickled with its byte order in the type string: numpy.dtype('>i4', False,
    True) and no BUILD, which numpy makes big-endian (numpy itself never writes this)."""

    def __init__(self, typestr: str) -> None:
        self.typestr = typestr

    def __reduce__(self) -> tuple[Any, ...]:
        return (np.dtype, (self.typestr, False, True))


class _Alias:
    """numpy.dtype(D) (which is D itself) with a BUILD that makes it big-endian."""

    def __init__(self, dtype: np.dtype[Any]) -> None:
        self.dtype = dtype

    def __reduce__(self) -> tuple[Any, ...]:
        return (np.dtype, (self.dtype,), (3, ">", None, None, None, -1, -1, 0))


def _forged_csr(protocol: int, index_dtype: object, extra: object = None) -> bytes:
    """A csr matrix whose indices' bytes are 80 00 00 00, 01 00 00 00 with ``index_dtype``:
    128 and 1 little-endian, inside its 5,000 columns; -2**31 and 2**24 big-endian."""
    import io

    import scipy.sparse as sp
    from numpy._core.multiarray import _reconstruct
    from numpy._core.numeric import _frombuffer

    matrix = sp.csr_matrix(
        (np.array([1.0, 2.0]), np.array([5, 1], dtype=np.int32), np.array([0, 1, 2], dtype=np.int32)),
        shape=(2, 5000),
    )
    raw = b"\x80\x00\x00\x00\x01\x00\x00\x00"

    class Forger(pickle.Pickler):
        def reducer_override(self, obj: Any) -> Any:
            if obj is matrix.indices:
                if protocol >= 5:
                    return (_frombuffer, (raw, index_dtype, obj.shape, "C"))
                return (_reconstruct, (np.ndarray, (0,), b"b"), (1, obj.shape, index_dtype, False, raw))
            return NotImplemented

    out = io.BytesIO()
    Forger(out, protocol=protocol).dump((matrix, extra))
    return out.getvalue()


@pytest.mark.parametrize("protocol", [2, 5])
def test_a_byte_order_in_the_type_string_is_not_dropped(protocol: int) -> None:
    # red team, session 22: '>i4' with no BUILD was read as '<i4' (128 for numpy's -2**31)
    assert sparse_findings(_forged_csr(protocol, _TypeString(">i4")))


def test_a_dtype_aliased_by_numpy_dtype_and_rebuilt_is_a_violation() -> None:
    shared = np.dtype("<i4")
    data = _forged_csr(2, shared, _Alias(shared))
    found = [f.message for f in with_code(scan(data), "MS-PKL-107")]
    assert any("numpy.dtype of a dtype returns that dtype" in m for m in found), found


def test_a_dtype_anywhere_in_a_state_dict_is_marked_read() -> None:
    # repeated keys put joblib's wrapper dtype past an 8-item window
    from modelsec.pickle.invoke import _note_dtypes_read
    from modelsec.pickle.policy import classify
    from modelsec.pickle.values import Call, Container, Global

    dtype_class = Global("numpy", "dtype", 0, "GLOBAL", classify("numpy", "dtype"))
    dtype = Call(dtype_class, ("i4", False, True), 0, "REDUCE", dtype_class)
    state = Container("dict", [("order", "C")] * 11 + [("dtype", dtype)])
    _note_dtypes_read(state)
    assert dtype.used


def test_writing_into_a_bytearray_is_a_finding() -> None:
    # protocol 5 hands numpy a BYTEARRAY8 it shares: SETITEM on it wrote a byte after the
    # check read it (red team, session 22)
    made = proto(5) + b"\x96" + (3).to_bytes(8, "little") + b"abc" + binint1(0) + binint1(1) + b"s" + STOP
    assert any("writes into a bytearray in place" in f.message for f in scan(made).findings)


class _BytesOrder:
    """An int32 dtype whose BUILD gives the byte order as bytes: numpy takes b'>' as
    big-endian (red team, session 22: it was read as native)."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (np.dtype, ("i4", False, True), (3, b">", None, None, None, -1, -1, 0))


def test_a_byte_order_given_as_bytes_is_not_read_as_native() -> None:
    found = with_code(scan(_forged_csr(2, _BytesOrder())), "MS-PKL-107")
    assert any("byte order is" in f.message and "not one of the str" in f.message for f in found), found


def test_setitem_into_a_checked_array_is_a_violation() -> None:
    # ndarray.__setitem__ through the memo after the matrix's check: indices[0] = 2**30
    import pickletools

    import scipy.sparse as sp

    matrix = sp.csr_matrix(
        (np.array([1.0]), np.array([3], dtype=np.int32), np.array([0, 1], dtype=np.int32)), shape=(1, 100)
    )
    made = pickle.dumps((matrix, matrix.indices), protocol=2)
    indices = [arg for info, arg, _ in pickletools.genops(made) if info.name == "BINGET"][-1]
    assert isinstance(indices, int) and not sparse_findings(made)
    spliced = made[:-1] + POP + binget(indices) + binint1(0) + binint(1 << 30) + b"s" + STOP
    found = with_code(scan(spliced), "MS-PKL-107")
    assert any("SETITEM writes into the contents of an array" in f.message for f in found), found
