"""Genuine fitted models with one integer changed: candidates for the oracle's use step.

The compiled code of scikit-learn, SciPy and NumPy trusts the integers a pickle hands it
(tree children and features, sparse indexes, neighbour-tree indexes, encoder counts).
modelsec's contracts check them (``pickle/state_checks.py``); this generator makes the
files those contracts exist for: a genuine model, one integer set to an edge value
(-1, the size, the size plus one, 2**31, ...), pickled. The campaign
(benchmarks/use_campaign.py) scans each and, where modelsec ALLOWS it, loads and uses it in
the oracle's confined child: a crash there is a hole in a contract.

The mutation is made on the model object in this process (built and fitted here); the
candidate bytes are only ever loaded by the oracle.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from pklbuild import writers

MAX_DEPTH = 4


@dataclass(frozen=True)
class Site:
    """One integer of a model that a mutation may change."""

    where: str  # "tree_.nodes[3].left_child"
    size: int  # the length of the array it indexes, as far as it can tell (for edge values)
    apply: Callable[[int], None]  # sets it (on the model copy the site was found in)


def genuine_models() -> dict[str, Callable[[], Any]]:
    """Small fitted models of every class a contract covers."""
    import scipy.sparse as sp
    from scipy.interpolate import make_interp_spline
    from sklearn.cluster import KMeans
    from sklearn.ensemble import (
        GradientBoostingClassifier,
        HistGradientBoostingClassifier,
        RandomForestClassifier,
    )
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.neighbors import BallTree, KDTree, KNeighborsClassifier
    from sklearn.preprocessing import OneHotEncoder
    from sklearn.svm import SVC
    from sklearn.tree import DecisionTreeClassifier

    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3))
    y = (x[:, 0] > 0).astype(int) + (x[:, 1] > 0)
    matrix = sp.random(6, 5, density=0.5, format="csr", random_state=0)
    return {
        "decision tree": lambda: DecisionTreeClassifier(max_depth=3).fit(x, y),
        "random forest": lambda: RandomForestClassifier(n_estimators=2, max_depth=2).fit(x, y),
        "gradient boosting": lambda: GradientBoostingClassifier(n_estimators=2, max_depth=2).fit(x, y),
        "hist gradient boosting": lambda: HistGradientBoostingClassifier(max_iter=2).fit(x, y),
        "k neighbours": lambda: KNeighborsClassifier(n_neighbors=3).fit(x, y),
        "kd tree": lambda: KDTree(x, leaf_size=4),
        "ball tree": lambda: BallTree(x, leaf_size=4),
        "svc": lambda: SVC().fit(x, y),
        "one-hot encoder": lambda: OneHotEncoder().fit(rng.integers(0, 4, size=(20, 3))),
        "count vectorizer": lambda: CountVectorizer().fit(["alpha beta gamma", "beta delta", "gamma alpha"]),
        "k-means": lambda: KMeans(n_clusters=2, n_init=1, random_state=0).fit(x),
        "b-spline": lambda: make_interp_spline(np.linspace(0, 1, 8), np.sin(np.linspace(0, 3, 8)), k=3),
        **{
            f"{fmt} matrix": (lambda fmt=fmt: matrix.asformat(fmt))
            for fmt in ("csr", "csc", "coo", "bsr", "dia", "lil")
        },
    }


def sites(obj: Any, where: str = "", depth: int = 0) -> Iterator[Site]:
    """The integers of ``obj`` (its attributes, their arrays and lists, a Tree's nodes, a
    neighbour tree's state) that a mutation may change."""
    if depth > MAX_DEPTH:
        return
    name = type(obj).__name__
    if name == "Tree" and hasattr(obj, "__getstate__"):
        yield from _tree_sites(obj, where)
        return
    if name in ("KDTree", "BallTree", "BinaryTree"):
        yield from _state_tuple_sites(obj, where)
        return
    holder = getattr(obj, "__dict__", None)
    if isinstance(holder, dict) and type(obj).__module__.split(".")[0] in ("sklearn", "scipy", "numpy"):
        for key, value in list(holder.items()):
            yield from _value_sites(value, f"{where}.{key}", lambda v, k=key: holder.__setitem__(k, v), depth)
    elif isinstance(obj, list):
        for index, value in enumerate(obj[:64]):
            yield from _value_sites(
                value, f"{where}[{index}]", lambda v, i=index: obj.__setitem__(i, v), depth
            )


def _value_sites(value: Any, where: str, put: Callable[[Any], None], depth: int) -> Iterator[Site]:
    if isinstance(value, bool):
        return
    if isinstance(value, (int, np.integer)):
        yield Site(where, int(value), lambda v: put(v))
    elif isinstance(value, np.ndarray) and value.dtype.kind in "iu" and value.size:
        yield from _array_sites(value, where, put)
    elif isinstance(value, np.ndarray) and value.dtype.names and value.size:  # a predictor's nodes
        yield from _record_sites(value, where, put)
    elif isinstance(value, np.ndarray) and value.dtype == object:
        for index, item in enumerate(value.ravel()[:64]):
            yield from sites(item, f"{where}[{index}]", depth + 1)
    elif isinstance(value, dict) and depth < MAX_DEPTH:  # a vectorizer's vocabulary
        for key, item in list(value.items())[:64]:
            yield from _value_sites(
                item, f"{where}[{key!r}]", lambda v, k=key: value.__setitem__(k, v), depth + 1
            )
    elif isinstance(value, list) and depth < MAX_DEPTH:
        for index, item in enumerate(value[:64]):
            yield from _value_sites(
                item, f"{where}[{index}]", lambda v, i=index: value.__setitem__(i, v), depth + 1
            )
    elif isinstance(value, tuple) and depth < MAX_DEPTH:  # a coo matrix's coords
        for index, item in enumerate(value[:64]):

            def replace(v: Any, i: int = index) -> None:
                put((*value[:i], v, *value[i + 1 :]))

            yield from _value_sites(item, f"{where}[{index}]", replace, depth + 1)
    else:
        yield from sites(value, where, depth + 1)


def _array_sites(array: np.ndarray, where: str, put: Callable[[Any], None]) -> Iterator[Site]:
    flat = array.reshape(-1)
    for index in sorted({0, flat.size // 2, flat.size - 1}):

        def change(v: int, index: int = index) -> None:
            changed = array.copy()
            changed.reshape(-1)[index] = v
            put(changed)

        yield Site(f"{where}[{index}]", flat.size, change)


def _record_sites(array: np.ndarray, where: str, put: Callable[[Any], None]) -> Iterator[Site]:
    for field in array.dtype.names or ():
        if array.dtype[field].kind not in "iu":
            continue
        for index in sorted({0, array.size // 2, array.size - 1}):

            def change(v: int, field: str = field, index: int = index) -> None:
                changed = array.copy()
                changed.reshape(-1)[index][field] = v
                put(changed)

            yield Site(f"{where}[{index}].{field}", array.size, change)


def _tree_sites(tree: Any, where: str) -> Iterator[Site]:
    state = tree.__getstate__()
    nodes = state["nodes"]
    for field in ("left_child", "right_child", "feature"):
        for index in sorted({0, len(nodes) // 2, len(nodes) - 1}):

            def change(v: int, field: str = field, index: int = index) -> None:
                fresh = tree.__getstate__()
                changed = fresh["nodes"].copy()
                changed[field][index] = v
                fresh["nodes"] = changed
                tree.__setstate__(fresh)

            yield Site(f"{where}.nodes[{index}].{field}", len(nodes), change)


def _state_tuple_sites(tree: Any, where: str) -> Iterator[Site]:
    state = list(tree.__getstate__())
    for position, value in enumerate(state):

        def put(v: Any, position: int = position) -> None:
            fresh = list(tree.__getstate__())
            fresh[position] = v
            tree.__setstate__(tuple(fresh))

        yield from _value_sites(value, f"{where}.state[{position}]", put, MAX_DEPTH)


def edge_values(size: int) -> tuple[int, ...]:
    return (-1, size, size + 1, 2**31 - 1, -(2**31), 2**40)


@dataclass(frozen=True)
class Mutant:
    model: str
    where: str
    value: int
    data: bytes


# How a mutant is written (pklbuild.WRITERS: the scanner reads array bytes differently in each).
WRITERS = writers("pickle-2", "pickle-4", "pickle-5", "joblib")


def mutants(
    name: str, make: Callable[[], Any], rng: np.random.Generator, count: int, writer: str = "pickle-4"
) -> Iterator[Mutant]:
    """``count`` files of ``make()``'s model written by ``writer``, each with one integer changed."""
    model = make()
    found = list(sites(model))
    if not found:
        return
    for _ in range(count):
        clone = copy.deepcopy(model)
        clone_sites = list(sites(clone))
        if len(clone_sites) != len(found):
            continue
        site = clone_sites[int(rng.integers(len(clone_sites)))]
        value = int(rng.choice(edge_values(site.size)))
        try:
            site.apply(value)
            data = WRITERS[writer](clone)
        except Exception:  # noqa: BLE001 - a setter that refuses the value: no candidate
            continue
        yield Mutant(name, site.where, value, data)
