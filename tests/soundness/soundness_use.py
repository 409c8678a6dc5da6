"""The oracle's "use" step: what a program does with a model after loading it.

A pickle that loads cleanly can still hand compiled code indexes it trusts: a tree node
whose child points past its array, a sparse matrix's column past its shape. Loading shows
nothing; ``predict()``, ``A @ x`` or ``transform()`` then reads or writes out of bounds
(docs/red-team.md, sessions 21 and 22). :func:`exercise` calls what library users call on
each kind of object, with inputs of the width the object says it takes. A Python exception
is a refusal, not a finding; a crash of the process (SIGSEGV, SIGBUS, an abort) is.

For the oracle's confined children only (soundness_zygote.py): it runs on generated
candidates, never on a user's file.
"""

from __future__ import annotations

from typing import Any

MAX_DEPTH = 4  # containers of models (a list of estimators, a dict of arrays)
_CALLS = ("predict", "predict_proba", "decision_function", "transform", "apply", "score_samples")


def exercise(obj: object, depth: int = 0) -> list[str]:
    """Use ``obj`` the way programs use what they load; what was called (for the record)."""
    done: list[str] = []
    if depth > MAX_DEPTH:
        return done
    if isinstance(obj, dict):
        for value in list(obj.values())[:16]:
            done += exercise(value, depth + 1)
        return done
    if isinstance(obj, (list, tuple)):
        for value in list(obj)[:16]:
            done += exercise(value, depth + 1)
        return done
    for use in (_sparse, _estimator, _neighbour_tree, _random, _spline):
        done += use(obj)
    return done


def _attempt(done: list[str], name: str, call: Any, *args: Any) -> None:
    try:
        call(*args)
        done.append(name)
    except Exception:  # noqa: BLE001 - a refusal is not a crash
        done.append(f"{name}!")


def _sparse(obj: Any) -> list[str]:
    import numpy as np
    import scipy.sparse as sp

    if not sp.issparse(obj):
        return []
    done: list[str] = []
    rows, cols = obj.shape
    _attempt(done, "matvec", lambda: obj @ np.ones(cols))
    _attempt(done, "rmatvec", lambda: obj.T @ np.ones(rows))
    _attempt(done, "toarray", obj.toarray)
    _attempt(done, "tocsr.toarray", lambda: obj.tocsr().toarray())
    _attempt(done, "tocsc.toarray", lambda: obj.tocsc().toarray())
    _attempt(done, "sum", obj.sum)
    return done


def _width(obj: Any) -> int | None:
    width = getattr(obj, "n_features_in_", None)
    return width if isinstance(width, int) and 0 < width <= 10_000 else None


def _estimator(obj: Any) -> list[str]:
    import numpy as np

    done: list[str] = []
    categories = getattr(obj, "categories_", None)
    if isinstance(categories, list) and categories:
        # an encoder: the first and the last category of each feature
        for pick in (0, -1):
            row = [[c[pick] if len(c) else 0 for c in categories]]
            _attempt(done, f"transform[{pick}]", lambda row=row: obj.transform(np.array(row, dtype=object)))
        return done
    if hasattr(obj, "vocabulary_"):
        _attempt(done, "transform(text)", lambda: obj.transform(["alpha beta gamma", "beta delta alpha"]))
        return done
    width = _width(obj)
    if width is None:
        return done
    data = np.random.default_rng(0).normal(size=(6, width))
    for name in _CALLS:
        method = getattr(obj, name, None)
        if callable(method):
            _attempt(done, name, method, data)
    members = getattr(obj, "estimators_", None)
    if isinstance(members, (list, np.ndarray)):  # forests' trees, boosting stages
        for member in np.ravel(np.asarray(members, dtype=object))[:8]:
            done += _estimator(member)
    return done


def _neighbour_tree(obj: Any) -> list[str]:
    import numpy as np

    arrays = getattr(obj, "get_arrays", None)
    if not callable(arrays) or not hasattr(obj, "query"):
        return []
    done: list[str] = []
    try:
        data = arrays()[0]
        points = np.asarray(data)[:3]
    except Exception:  # noqa: BLE001
        return ["get_arrays!"]
    _attempt(done, "query", obj.query, points, 2)
    _attempt(done, "query_radius", obj.query_radius, points, 1.0)
    return done


def _random(obj: Any) -> list[str]:
    done: list[str] = []
    for name in ("random", "random_sample", "random_raw"):
        method = getattr(obj, name, None)
        if callable(method) and type(obj).__module__.startswith("numpy.random"):
            _attempt(done, name, method, 8)
    return done


def _spline(obj: Any) -> list[str]:
    import numpy as np

    if type(obj).__name__ != "BSpline" or not callable(obj):
        return []
    done: list[str] = []
    _attempt(done, "spline", obj, np.linspace(0.0, 1.0, 5))
    return done


def warm_up() -> None:
    """Use genuine models once, so that what using them imports is imported before the
    oracle's children arm their audit hook."""
    import numpy as np
    import scipy.sparse as sp
    from sklearn.ensemble import (
        GradientBoostingClassifier,
        HistGradientBoostingClassifier,
        RandomForestClassifier,
    )
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.neighbors import KDTree, KNeighborsClassifier
    from sklearn.preprocessing import OneHotEncoder
    from sklearn.svm import SVC
    from sklearn.tree import DecisionTreeClassifier

    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 3))
    y = (x[:, 0] > 0).astype(int)
    models: list[object] = [
        DecisionTreeClassifier().fit(x, y),
        RandomForestClassifier(n_estimators=2).fit(x, y),
        GradientBoostingClassifier(n_estimators=2).fit(x, y),
        HistGradientBoostingClassifier(max_iter=2).fit(x, y),
        KNeighborsClassifier().fit(x, y),
        SVC(probability=True).fit(x, y),
        OneHotEncoder().fit(rng.integers(0, 3, size=(10, 2))),
        CountVectorizer().fit(["alpha beta", "gamma delta"]),
        KDTree(x),
        np.random.default_rng(1),
        *(
            sp.random(4, 5, density=0.5, format=fmt, random_state=0)
            for fmt in ("csr", "coo", "lil", "bsr", "dia")
        ),
    ]
    for model in models:
        exercise(model)
