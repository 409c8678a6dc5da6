"""Real pickles of real libraries must pass clean, in every protocol and through joblib.

The fixtures are produced here with the installed libraries (never loaded back from
untrusted data): scikit-learn estimators, pandas frames, NumPy arrays and random states,
standard-library values, joblib dumps with inline arrays.
"""

from __future__ import annotations

import collections
import datetime
import decimal
import fractions
import io
import pickle
import uuid
import warnings
import zoneinfo
from collections.abc import Callable
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
from pklbuild import scan, summary

warnings.filterwarnings("ignore", category=UserWarning)

RNG = np.random.RandomState(0)
X = RNG.rand(60, 4)
Y = (X[:, 0] > 0.5).astype(int)


def _sklearn() -> dict[str, Callable[[], Any]]:
    from sklearn.cluster import KMeans
    from sklearn.compose import ColumnTransformer
    from sklearn.decomposition import PCA
    from sklearn.ensemble import (
        GradientBoostingClassifier,
        HistGradientBoostingClassifier,
        IsolationForest,
        RandomForestClassifier,
    )
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.feature_selection import SelectKBest
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.model_selection import GridSearchCV
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler
    from sklearn.svm import SVC
    from sklearn.tree import DecisionTreeRegressor

    return {
        "LogisticRegression": lambda: LogisticRegression().fit(X, Y),
        "RandomForest": lambda: RandomForestClassifier(n_estimators=4, random_state=0).fit(X, Y),
        "Pipeline(StandardScaler, LogisticRegression)": lambda: Pipeline(
            [("scale", StandardScaler()), ("clf", LogisticRegression())]
        ).fit(X, Y),
        "GradientBoosting": lambda: GradientBoostingClassifier(n_estimators=4).fit(X, Y),
        "HistGradientBoosting": lambda: HistGradientBoostingClassifier(max_iter=4).fit(X, Y),
        "KMeans": lambda: KMeans(3, n_init=2, random_state=0).fit(X),
        "PCA": lambda: PCA(2).fit(X),
        "SVC": lambda: SVC(probability=True, random_state=0).fit(X, Y),
        "KNeighbors(KDTree)": lambda: KNeighborsClassifier(algorithm="kd_tree").fit(X, Y),
        "DecisionTreeRegressor": lambda: DecisionTreeRegressor().fit(X, X[:, 1]),
        "TfidfVectorizer": lambda: TfidfVectorizer().fit(["apple banana cherry", "banana date egg"]),
        "OneHotEncoder": lambda: OneHotEncoder().fit([["a"], ["b"]]),
        "SelectKBest(f_classif)": lambda: SelectKBest(k=2).fit(X, Y),
        "MLPClassifier": lambda: MLPClassifier(max_iter=5, random_state=0).fit(X, Y),
        "FunctionTransformer(np.log1p)": lambda: FunctionTransformer(np.log1p).fit(X),
        "IsolationForest": lambda: IsolationForest(n_estimators=4, random_state=0).fit(X),
        "ColumnTransformer": lambda: ColumnTransformer([("s", StandardScaler(), [0, 1])]).fit(X),
        "GridSearchCV": lambda: GridSearchCV(LogisticRegression(), {"C": [1, 2]}, cv=2).fit(X, Y),
        "Ridge": lambda: Ridge().fit(X, Y),
    }


def _pandas() -> dict[str, Callable[[], Any]]:
    def frame() -> pd.DataFrame:
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
            }
        )

    return {
        "DataFrame(many dtypes)": frame,
        "Series(MultiIndex)": lambda: pd.Series(
            [1, 2], index=pd.MultiIndex.from_tuples([(1, "a"), (2, "b")])
        ),
        "Series(object)": lambda: pd.Series(["a", 1, None], dtype=object),
        "Timestamp/NaT/NA": lambda: [
            pd.Timestamp("2020-01-01", tz="UTC"),
            pd.NaT,
            pd.NA,
            pd.Timedelta(3),
        ],
        "SparseArray": lambda: pd.arrays.SparseArray([0, 0, 1]),
        "fixed-offset tz index": lambda: pd.date_range(
            "2020", periods=2, tz=datetime.timezone(datetime.timedelta(hours=3))
        ),
    }


def _numpy_and_stdlib() -> dict[str, Callable[[], Any]]:
    return {
        "ndarrays": lambda: [
            np.arange(10),
            np.zeros((2, 3), dtype="<U5", order="F"),
            np.array([(1, 2.0)], dtype=[("a", "i4"), ("b", "f8")]),
            np.array(["x", None], dtype=object),
            np.float64(1.5),
            np.datetime64("2020-01-01"),
            np.ma.masked_array([1, 2], [0, 1]),
            np.matrix([[1]]),
            np.rec.array([(1, 2.0)], dtype=[("a", "i4"), ("b", "f8")]),
            np.dtype("f8"),
            np.float32,
        ],
        "RandomState": lambda: np.random.RandomState(0),
        "Generator(PCG64)": lambda: np.random.default_rng(0),
        "Generator(PCG64DXSM/Philox/SFC64/MT19937)": lambda: [
            np.random.Generator(bg(1))
            for bg in (np.random.PCG64DXSM, np.random.Philox, np.random.SFC64, np.random.MT19937)
        ],
        "SeedSequence": lambda: np.random.SeedSequence(1),
        "stdlib": lambda: [
            collections.OrderedDict(a=1),
            collections.defaultdict(list, {"k": [1]}),
            collections.Counter("abca"),
            collections.deque([1, 2], maxlen=5),
            uuid.UUID("12345678-1234-5678-1234-567812345678"),
            decimal.Decimal("1.5"),
            datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
            datetime.datetime(2024, 1, 2, tzinfo=zoneinfo.ZoneInfo("Europe/Paris")),
            datetime.date(2024, 1, 2),
            datetime.time(3, 4),
            datetime.timedelta(days=3),
            fractions.Fraction(1, 3),
            1 + 2j,
            {1, 2},
            frozenset([3]),
            bytearray(b"xyz"),
            slice(1, 5, 2),
            range(3),
            Ellipsis,
            NotImplemented,
            b"\x00" * 20_000,
            "long text " * 5000,
        ],
    }


FIXTURES = {**_sklearn(), **_pandas(), **_numpy_and_stdlib()}


@pytest.fixture(scope="module", params=sorted(FIXTURES))
def obj(request: pytest.FixtureRequest) -> Any:
    return FIXTURES[request.param]()


def assert_clean(data: bytes, name: str = "model.pkl", fmt: str = "pickle") -> None:
    result = scan(data, name=name)
    assert not result.findings and not result.incompletes, summary(result)
    assert result.format == fmt


@pytest.mark.parametrize("protocol", range(0, 6))
def test_pickle_protocols(obj: Any, protocol: int) -> None:
    assert_clean(pickle.dumps(obj, protocol=protocol))


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_joblib_dump(obj: Any, protocol: int) -> None:
    buffer = io.BytesIO()
    joblib.dump(obj, buffer, protocol=protocol)
    data = buffer.getvalue()
    has_arrays = b"NumpyArrayWrapper" in data
    assert_clean(data, "model.joblib", "joblib" if has_arrays else "pickle")


class _Unseekable(io.RawIOBase):
    """A sink joblib cannot tell() on: it writes arrays without alignment padding."""

    def __init__(self) -> None:
        self.data = io.BytesIO()

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        return self.data.write(b)

    def tell(self) -> int:
        raise io.UnsupportedOperation("not seekable")


ARRAYS = {
    "float64": np.arange(1000, dtype="f8"),
    "big-endian int16 3-d": np.arange(24, dtype=">i2").reshape(2, 3, 4),
    "fortran unicode": np.zeros((2, 3), dtype="<U5", order="F"),
    "structured": np.array([(1, 2.0)] * 7, dtype=[("a", "i4"), ("b", "f8")]),
    "subarray": np.zeros(3, dtype=("<f4", (2, 3))),
    "object": np.array(["x", None, 3, {"k": 1}], dtype=object),
    "struct with object": np.array([(1, "x")], dtype=[("a", "i4"), ("b", "O")]),
    "empty": np.empty((0, 5)),
    "scalar": np.array(3.0),
    "datetime64": np.array(["2020-01-01", "2021-01-01"], dtype="M8[ns]"),
    "bool": np.array([True, False]),
    "complex": np.array([1 + 2j]),
    "bytes": np.array([b"ab", b"c"]),
}


@pytest.mark.parametrize("name", sorted(ARRAYS))
@pytest.mark.parametrize("aligned", [True, False], ids=["aligned", "unaligned"])
def test_joblib_inline_arrays(name: str, aligned: bool) -> None:
    value = {"array": ARRAYS[name], "after": [1, 2, 3]}
    if aligned:
        buffer = io.BytesIO()
        joblib.dump(value, buffer)
        data = buffer.getvalue()
    else:
        sink = _Unseekable()
        joblib.dump(value, sink)
        data = sink.data.getvalue()
    assert_clean(data, "model.joblib", "joblib")


def test_joblib_memmap_subclass_is_data(tmp_path: Any) -> None:
    # The wrapper records numpy.memmap as the array's class: a reference, never a call.
    mm = np.memmap(tmp_path / "mm.dat", dtype="f4", mode="w+", shape=(4,))
    buffer = io.BytesIO()
    joblib.dump(mm, buffer)
    data = buffer.getvalue()
    assert b"memmap" in data
    assert_clean(data, "m.joblib", "joblib")
    del mm


def test_protocol5_out_of_band_buffers() -> None:
    buffers: list[pickle.PickleBuffer] = []
    data = pickle.dumps(
        {"w": np.arange(100.0), "b": bytearray(b"abc")}, protocol=5, buffer_callback=buffers.append
    )
    assert b"\x97" in data and buffers  # NEXT_BUFFER present
    assert_clean(data)
    readonly = pickle.dumps(pickle.PickleBuffer(b"readonly"), protocol=5, buffer_callback=buffers.append)
    assert b"\x98" in readonly
    assert_clean(readonly)


def test_big_array_pickle_scans_without_keeping_it() -> None:
    data = pickle.dumps(np.zeros(4_000_000), protocol=4)  # 32 MB BINBYTES8 argument
    assert_clean(data)
