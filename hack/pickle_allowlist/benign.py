"""Real objects of the allowlisted libraries, as model files carry them.

Every scikit-learn estimator fitted with its defaults where that works, plus the
configurations the defaults miss (tree-based neighbours, pipelines, searches, score
functions kept as attributes); pandas frames of every dtype, indexes and offsets; NumPy
arrays, scalars, masked arrays and random states; SciPy sparse matrices and arrays in
every format; the standard-library values the hand-written allowlist covers.
"""

from __future__ import annotations

import argparse
import array
import collections
import datetime
import decimal
import fractions
import re
import types
import uuid
import warnings
import zoneinfo
from collections.abc import Callable, Iterator
from typing import Any

Factory = tuple[str, Callable[[], object]]


def _data() -> tuple[Any, Any, Any]:
    import numpy as np

    rng = np.random.RandomState(0)
    features = rng.rand(40, 4)
    classes = (features[:, 0] > 0.5).astype(int)
    return features, classes, features[:, 1] * 3.0


def _fit_defaults(cls: type) -> object:
    features, classes, values = _data()
    estimator = cls()
    for target in (classes, values, None):
        try:
            return estimator.fit(features, target) if target is not None else estimator.fit(features)
        except Exception:
            continue
    return estimator  # unfitted: still what a pickled configuration looks like


def sklearn_objects() -> Iterator[Factory]:
    import numpy as np
    from sklearn.cluster import KMeans
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import (
        GradientBoostingClassifier,
        HistGradientBoostingClassifier,
        RandomForestClassifier,
    )
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.feature_selection import SelectKBest, mutual_info_classif
    from sklearn.linear_model import LogisticRegression, SGDClassifier
    from sklearn.model_selection import GridSearchCV
    from sklearn.neighbors import BallTree, KDTree, KNeighborsClassifier, NearestNeighbors
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler
    from sklearn.svm import SVC
    from sklearn.utils import all_estimators

    features, classes, _ = _data()
    for name, cls in all_estimators():
        yield f"sklearn {name}", lambda cls=cls: _fit_defaults(cls)
    extras: dict[str, Callable[[], object]] = {
        "KNeighbors(kd_tree)": lambda: KNeighborsClassifier(algorithm="kd_tree").fit(features, classes),
        "KNeighbors(ball_tree)": lambda: KNeighborsClassifier(algorithm="ball_tree").fit(features, classes),
        "NearestNeighbors(ball_tree, haversine)": lambda: NearestNeighbors(
            algorithm="ball_tree", metric="haversine"
        ).fit(features[:, :2]),
        "KDTree": lambda: KDTree(features),
        "BallTree(manhattan)": lambda: BallTree(features, metric="manhattan"),
        "Pipeline": lambda: Pipeline([("s", StandardScaler()), ("c", LogisticRegression())]).fit(
            features, classes
        ),
        "GridSearchCV": lambda: GridSearchCV(LogisticRegression(), {"C": [1, 2]}, cv=2).fit(
            features, classes
        ),
        "ColumnTransformer": lambda: ColumnTransformer([("s", StandardScaler(), [0, 1])]).fit(features),
        "SelectKBest(f_classif)": lambda: SelectKBest(k=2).fit(features, classes),
        "SelectKBest(mutual_info_classif)": lambda: SelectKBest(mutual_info_classif, k=2).fit(
            features, classes
        ),
        "FunctionTransformer(np.log1p)": lambda: FunctionTransformer(np.log1p).fit(features),
        "OneHotEncoder": lambda: OneHotEncoder().fit([["a"], ["b"]]),
        "TfidfVectorizer": lambda: TfidfVectorizer().fit(["apple banana", "banana cherry"]),
        "RandomForest": lambda: RandomForestClassifier(n_estimators=3, random_state=0).fit(features, classes),
        "HistGradientBoosting": lambda: HistGradientBoostingClassifier(max_iter=3).fit(features, classes),
        # categorical features: a preprocessor whose FunctionTransformer keeps
        # functools.partial(check_array, dtype=[float64], ensure_all_finite=False)
        "HistGradientBoosting(categorical)": lambda: HistGradientBoostingClassifier(
            max_iter=3, categorical_features=[0]
        ).fit(np.c_[np.arange(len(features)) % 3, features[:, 1:]], classes),
        # more than two classes: the multinomial loss (CyHalfMultinomialLoss), pickled by Cython
        "GradientBoosting(3 classes)": lambda: GradientBoostingClassifier(n_estimators=2).fit(
            features, np.arange(len(features)) % 3
        ),
        "KMeans": lambda: KMeans(3, n_init=2, random_state=0).fit(features),
        "SVC(probability)": lambda: SVC(probability=True, random_state=0).fit(features, classes),
        "SGDClassifier(log_loss)": lambda: SGDClassifier(loss="log_loss").fit(features, classes),
    }
    yield from extras.items()


def pandas_objects() -> Iterator[Factory]:
    import pandas as pd

    def frame() -> object:
        return pd.DataFrame(
            {
                "int": [1, 2, 3],
                "float": [1.0, 2.5, None],
                "str": ["x", "y", "z"],
                "category": pd.Categorical(["u", "v", "u"]),
                "datetime_tz": pd.date_range("2020-01-01", periods=3, tz="Europe/Paris"),
                "datetime_utc": pd.date_range("2020-01-01", periods=3, tz="UTC"),
                "datetime": pd.date_range("2020-01-01", periods=3),
                "bool": [True, False, True],
                "Int64": pd.array([1, None, 3], dtype="Int64"),
                "timedelta": pd.to_timedelta([1, 2, 3], unit="s"),
                "period": pd.period_range("2020-01", periods=3, freq="M"),
                "string": pd.array(["a", None, "c"], dtype="string"),
                "interval": pd.interval_range(0, 3),
                "Float64": pd.array([1.0, None, 2.0], dtype="Float64"),
                "boolean": pd.array([True, None, False], dtype="boolean"),
                "sparse": pd.arrays.SparseArray([0, 0, 1]),
            }
        )

    yield from {
        "DataFrame(many dtypes)": frame,
        "Series(MultiIndex)": lambda: pd.Series(
            [1, 2], index=pd.MultiIndex.from_tuples([(1, "a"), (2, "b")])
        ),
        "Series(object)": lambda: pd.Series(["a", 1, None], dtype=object),
        "scalars": lambda: [pd.Timestamp("2020-01-01", tz="UTC"), pd.NaT, pd.NA, pd.Timedelta(3)],
        "Period/Interval": lambda: [pd.Period("2020-01", freq="M"), pd.Interval(0, 1)],
        "indexes": lambda: [
            pd.RangeIndex(3),
            pd.Index([1.5, 2.5]),
            pd.CategoricalIndex(["a", "b"]),
            pd.timedelta_range("1D", periods=2),
            pd.IntervalIndex.from_breaks([0, 1, 2]),
            pd.period_range("2020", periods=2, freq="Y"),
        ],
        "offsets": lambda: [pd.offsets.Day(2), pd.offsets.BusinessDay(), pd.offsets.MonthEnd()],
        "fixed-offset tz index": lambda: pd.date_range(
            "2020", periods=2, tz=datetime.timezone(datetime.timedelta(hours=3))
        ),
        "dtypes": lambda: [pd.CategoricalDtype(["a"]), pd.DatetimeTZDtype(tz="UTC"), pd.Int64Dtype()],
    }.items()


def numpy_objects() -> Iterator[Factory]:
    import numpy as np

    yield from {
        "ndarrays": lambda: [
            np.arange(10),
            np.zeros((2, 3), dtype="<U5", order="F"),
            np.array([(1, 2.0)], dtype=[("a", "i4"), ("b", "f8")]),
            np.array(["x", None], dtype=object),
            np.datetime64("2020-01-01"),
            np.timedelta64(3, "s"),
            np.ma.masked_array([1, 2], [0, 1]),
            np.matrix([[1]]),
            np.rec.array([(1, 2.0)], dtype=[("a", "i4"), ("b", "f8")]),
        ],
        "scalars and dtypes": lambda: [
            np.float64(1.5),
            np.int8(3),
            np.bool_(True),
            np.str_("x"),
            np.complex128(1j),
            np.dtype("f8"),
            np.dtype([("a", "i4")]),
            np.float32,
            np.int64,
        ],  # fmt: skip
        "ufuncs": lambda: [np.log1p, np.add],
        "RandomState": lambda: np.random.RandomState(0),
        "Generator(PCG64)": lambda: np.random.default_rng(0),
        "bit generators": lambda: [
            np.random.Generator(bg(1))
            for bg in (np.random.PCG64DXSM, np.random.Philox, np.random.SFC64, np.random.MT19937)
        ],
        "SeedSequence": lambda: np.random.SeedSequence(1),
    }.items()


def scipy_objects() -> Iterator[Factory]:
    import numpy as np
    import scipy.sparse as sp

    dense = np.eye(3)
    for fmt in ("csr", "csc", "coo", "bsr", "dia", "lil", "dok"):
        yield f"scipy {fmt}_matrix", lambda fmt=fmt: getattr(sp, f"{fmt}_matrix")(dense)
        yield f"scipy {fmt}_array", lambda fmt=fmt: getattr(sp, f"{fmt}_array")(dense)


def stdlib_objects() -> Iterator[Factory]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        values: list[object] = [
            collections.OrderedDict(a=1),
            collections.defaultdict(list, {"k": [1]}),
            collections.Counter("abca"),
            collections.deque([1, 2], maxlen=5),
            uuid.UUID("12345678-1234-5678-1234-567812345678"),
            uuid.UUID(int=5, is_safe=uuid.SafeUUID.safe),
            decimal.Decimal("1.5"),
            datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
            datetime.datetime(2024, 1, 2, tzinfo=zoneinfo.ZoneInfo("Europe/Paris")),
            datetime.date(2024, 1, 2),
            datetime.time(3, 4),
            datetime.timedelta(days=3),
            fractions.Fraction(1, 3),
            re.compile("a+b", re.I),
            array.array("d", [1.0, 2.0]),
            argparse.Namespace(lr=0.1),
            types.SimpleNamespace(depth=3),
            {1, 2},
            frozenset([3]),
            bytearray(b"xyz"),
            slice(1, 5, 2),
            range(3),
            1 + 2j,
            b"\x00\xff",
        ]
    yield "stdlib", lambda: values


def all_objects() -> Iterator[Factory]:
    yield from stdlib_objects()
    yield from numpy_objects()
    yield from scipy_objects()
    yield from pandas_objects()
    yield from sklearn_objects()
