"""Red-team class: fitted scikit-learn state that compiled code trusts at use time
(2026-12-07, "estimator state" pass). Each forged estimator loaded cleanly and crashed,
corrupted the heap or read out of bounds in transform()/predict() in a sandboxed child; each
was ALLOWED before the checks in ``modelsec.pickle.sklearn_state``. Estimators are fitted
and forged in this process (never loaded) and only pickled here."""

from __future__ import annotations

import pickle
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from pklbuild import joblib_bytes, piece, scan, with_code, writers

from modelsec.findings import Finding

RNG = np.random.default_rng(11)
X = RNG.normal(size=(80, 4))
Y = (X[:, 0] > 0).astype(int)
CATEGORIES = np.array(
    [["a", "x"], ["b", "y"], ["c", "x"], ["a", "z"], ["a", "x"], ["d", "y"]] * 5, dtype=object
)


WRITERS = writers("pickle-2", "pickle-5", "joblib")


def _models() -> dict[str, Callable[[], Any]]:
    from scipy.interpolate import make_interp_spline
    from sklearn.cluster import KMeans, MiniBatchKMeans
    from sklearn.ensemble import (
        GradientBoostingClassifier,
        GradientBoostingRegressor,
        IsolationForest,
        RandomForestRegressor,
    )
    from sklearn.feature_extraction import FeatureHasher
    from sklearn.feature_extraction.text import HashingVectorizer
    from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors, RadiusNeighborsClassifier
    from sklearn.preprocessing import KBinsDiscretizer, OneHotEncoder, SplineTransformer
    from sklearn.tree import DecisionTreeClassifier

    three = np.arange(80) % 3
    return {
        "decision tree": lambda: DecisionTreeClassifier(max_depth=3).fit(X, Y),
        "forest": lambda: RandomForestRegressor(n_estimators=3, max_depth=3).fit(X, X[:, 1]),
        "isolation forest (feature subsets)": lambda: IsolationForest(n_estimators=3, max_features=2).fit(X),
        "boosting classifier": lambda: GradientBoostingClassifier(n_estimators=2, max_depth=2).fit(X, Y),
        # three classes: the multinomial loss, Cython-pickled (allowlisted in session 21)
        "boosting, 3 classes": lambda: GradientBoostingClassifier(n_estimators=2, max_depth=2).fit(X, three),
        "boosting regressor": lambda: GradientBoostingRegressor(n_estimators=2, max_depth=2).fit(X, X[:, 2]),
        "feature hasher": lambda: FeatureHasher(n_features=64),
        "hashing vectorizer": lambda: HashingVectorizer(n_features=128),
        "k-means": lambda: KMeans(n_clusters=3, n_init=1).fit(X),
        "mini-batch k-means": lambda: MiniBatchKMeans(n_clusters=3, n_init=1).fit(X),
        "k neighbours (brute, manhattan)": lambda: KNeighborsClassifier(
            algorithm="brute", metric="manhattan"
        ).fit(X, three),
        "k neighbours (kd tree)": lambda: KNeighborsClassifier(algorithm="kd_tree").fit(X, three),
        "k neighbours (2 outputs)": lambda: KNeighborsClassifier().fit(X, np.c_[Y, three]),
        "radius neighbours": lambda: RadiusNeighborsClassifier(radius=5.0).fit(X, three),
        "nearest neighbours": lambda: NearestNeighbors().fit(X),
        "one-hot": lambda: OneHotEncoder().fit(CATEGORIES),
        "one-hot, drop first": lambda: OneHotEncoder(drop="first").fit(CATEGORIES),
        "one-hot, drop if binary": lambda: OneHotEncoder(drop="if_binary").fit(CATEGORIES),
        "one-hot, infrequent": lambda: OneHotEncoder(min_frequency=6).fit(CATEGORIES),
        "one-hot, infrequent and drop": lambda: OneHotEncoder(min_frequency=6, drop="first").fit(CATEGORIES),
        "bins": lambda: KBinsDiscretizer(n_bins=3, encode="onehot").fit(X),
        "spline": lambda: make_interp_spline(np.arange(10.0), np.arange(10.0) ** 2),
        "spline transformer": lambda: SplineTransformer().fit(X),
    }


MODELS = _models()


def state_findings(data: bytes) -> list[Finding]:
    return [f for f in with_code(scan(data), "MS-PKL-107") if " gives " in f.message]


@pytest.mark.parametrize("writer", sorted(WRITERS))
@pytest.mark.parametrize("name", sorted(MODELS))
def test_fitted_estimators_pass(name: str, writer: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = MODELS[name]()
    result = scan(WRITERS[writer](model))
    assert {f.threat for f in result.findings} <= {"MS-POL-001"}, result.findings


def _forge(name: str, change: Callable[[Any], None]) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = MODELS[name]()
    change(model)  # in this process, never used
    return model


def _set(attribute: str, value: Callable[[Any], Any]) -> Callable[[Any], None]:
    def change(model: Any) -> None:
        setattr(model, attribute, value(model))

    return change


def _tree_width(model: Any) -> None:
    # the tree's own n_features (and a split on it) past the estimator's input
    state = model.tree_.__getstate__()
    wide = type(model.tree_)(10**6, model.tree_.n_classes, model.tree_.n_outputs)
    state["nodes"] = state["nodes"].copy()
    state["nodes"]["feature"][0] = 10**6 - 1
    wide.__setstate__(state)
    model.tree_ = wide


def _member_width(model: Any) -> None:
    model.estimators_[0].n_features_in_ = 40  # a member reads features the forest never checks


FORGERIES: dict[str, tuple[str, Callable[[Any], None]]] = {
    "tree built for more features than its input": ("decision tree", _tree_width),
    "forest member wider than the forest": ("forest", _member_width),
    "boosting stages wider than its outputs": (
        "boosting regressor",
        _set("estimators_", lambda m: np.concatenate([m.estimators_, m.estimators_], axis=1)),
    ),
    "multiclass boosting stages wider than its classes": (
        "boosting, 3 classes",
        _set("estimators_", lambda m: np.concatenate([m.estimators_, m.estimators_[:, :1]], axis=1)),
    ),
    "hasher with no features (divide by zero)": ("feature hasher", _set("n_features", lambda m: 0)),
    "hashing vectorizer with no features": ("hashing vectorizer", _set("n_features", lambda m: 0)),
    "centres narrower than the input": (
        "k-means",
        _set("cluster_centers_", lambda m: m.cluster_centers_[:, :2].copy()),
    ),
    "labels past the classes": ("k neighbours (brute, manhattan)", _set("_y", lambda m: m._y * 10**6)),
    "labels fewer than the fitted rows": (
        "k neighbours (brute, manhattan)",
        _set("_y", lambda m: m._y[:5].copy()),
    ),
    "negative label": ("radius neighbours", _set("_y", lambda m: m._y - 1)),
    "fitted rows narrower than the input": (
        "nearest neighbours",
        _set("_fit_X", lambda m: m._fit_X[:, :1].copy()),
    ),
    "one-hot counts smaller than the categories": ("one-hot", _set("_n_features_outs", lambda m: [1, 1])),
    "one-hot negative count": ("one-hot", _set("_n_features_outs", lambda m: [-(10**8), 3])),
    "one-hot dropped category past the categories": (
        "one-hot, drop first",
        _set("_drop_idx_after_grouping", lambda m: np.array([-5, 0], dtype=object)),
    ),
    "one-hot infrequent mapping past the groups": (
        "one-hot, infrequent",
        _set(
            "_default_to_infrequent_mappings",
            lambda m: [None if x is None else x * 10**6 for x in m._default_to_infrequent_mappings],
        ),
    ),
    "one-hot infrequent index past the categories, mapping dropped": (
        "one-hot, infrequent",
        lambda m: (
            setattr(m, "_infrequent_indices", [np.array([5 * 10**7]) for _ in m._infrequent_indices]),
            setattr(m, "_default_to_infrequent_mappings", [None for _ in m._default_to_infrequent_mappings]),
        ),
    ),
    "bins encoder counts": ("bins", lambda m: setattr(m._encoder, "_n_features_outs", [1, 1, 1, 1])),
    "spline coefficients too few": ("spline", _set("_c", lambda m: m.c[:2].copy())),
    "spline degree huge": ("spline", _set("k", lambda m: 10**6)),
    "spline degree negative": ("spline", _set("k", lambda m: -5)),
}


@pytest.mark.parametrize("writer", ["pickle-2", "joblib"])
@pytest.mark.parametrize("forgery", sorted(FORGERIES))
def test_forged_estimator_state_is_a_violation(forgery: str, writer: str) -> None:
    name, change = FORGERIES[forgery]
    assert state_findings(WRITERS[writer](_forge(name, change))), forgery


# -- vectorizers: every vocabulary value is a column of the vocabulary ---------------------

DOCUMENTS = [f"term{i} word{i % 7} token{i % 13} x{i * 7 % 101}" for i in range(300)]


def _vectorizers() -> dict[str, Callable[[], Any]]:
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer

    return {
        "counts": lambda: CountVectorizer().fit(DOCUMENTS),
        "counts, bigrams, max_features": lambda: CountVectorizer(ngram_range=(1, 2), max_features=200).fit(
            DOCUMENTS
        ),
        "counts, min_df": lambda: CountVectorizer(min_df=2).fit(DOCUMENTS),
        "tf-idf": lambda: TfidfVectorizer().fit(DOCUMENTS),
        "dict": lambda: DictVectorizer().fit([{f"f{i}": 1.0, f"g{i % 9}": 2.0} for i in range(200)]),
    }


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
@pytest.mark.parametrize("name", sorted(_vectorizers()))
def test_fitted_vectorizers_pass(name: str, protocol: int) -> None:
    model = _vectorizers()[name]()
    assert len(model.vocabulary_) > 64, "more terms than the machine keeps"
    assert {f.threat for f in scan(pickle.dumps(model, protocol=protocol)).findings} <= {"MS-POL-001"}
    assert {f.threat for f in scan(joblib_bytes(model)).findings} <= {"MS-POL-001"}


@pytest.mark.parametrize("protocol", [2, 4])
@pytest.mark.parametrize(
    "value", [10**8, -3, 1.0, True], ids=["past the vocabulary", "negative", "a float", "a bool"]
)
@pytest.mark.parametrize("name", ["counts", "dict"])
def test_a_vocabulary_column_outside_the_vocabulary_is_a_violation(
    name: str, value: Any, protocol: int
) -> None:
    model = _vectorizers()[name]()
    term = sorted(model.vocabulary_)[-1]  # the last term: past the items the machine keeps
    model.vocabulary_[term] = value  # in this process, never used
    assert state_findings(pickle.dumps(model, protocol=protocol))


def test_a_vocabulary_grown_after_its_check_is_a_violation() -> None:
    # The vocabulary dict is shared with the vectorizer's __dict__: a SETITEM after the
    # BUILD would add a column nobody checked.
    model = _vectorizers()["counts"]()
    data = pickle.dumps(model, protocol=2)
    body = data[: data.rindex(b".")]  # the vectorizer on the stack, before STOP
    # fetch the vocabulary dict back from the memo (BINGET) and give it one more term
    vocabulary_key = body.index(b"vocabulary_")
    get = body.index(b"}", vocabulary_key)  # EMPTY_DICT right after the key
    put = body[get + 1 : get + 3]  # protocol 2 memoises it with BINPUT n
    assert put[:1] == b"q"
    grown = body + b"0h" + put[1:] + b"X\x04\x00\x00\x00evil" + b"J\x00\xe1\xf5\x05" + b"s0."
    found = [f for f in with_code(scan(grown), "MS-PKL-107") if "after its state was checked" in f.message]
    assert found


# -- ensembles: each member against its own model, however many members -------------------


def _wide_stage(model: Any) -> None:
    # one boosting stage (not the first) built for more features than the model's input
    from sklearn.tree import DecisionTreeRegressor

    wide_X = np.hstack([X, X, X])
    model.estimators_[1, 0] = DecisionTreeRegressor(max_depth=2).fit(wide_X, wide_X[:, 11])


def test_a_boosting_stage_wider_than_its_model_is_a_violation() -> None:
    model = _forge("boosting regressor", _wide_stage)
    found = state_findings(pickle.dumps(model, protocol=4))
    assert any("a member reads 12 features, and the model's input has 4" in f.message for f in found)


def test_a_forest_of_many_trees_judges_every_member() -> None:
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.tree import DecisionTreeRegressor

    forest = RandomForestRegressor(n_estimators=80, max_depth=2).fit(X, X[:, 0])
    assert not state_findings(pickle.dumps(forest, protocol=4))
    wide_X = np.hstack([X, X])
    forest.estimators_[75] = DecisionTreeRegressor(max_depth=2).fit(wide_X, wide_X[:, 7])  # past the 64 kept
    assert state_findings(pickle.dumps(forest, protocol=4))


def test_members_walked_are_bounded_per_scan(monkeypatch: pytest.MonkeyPatch) -> None:
    # One memoised list of trees given to many forests (shallow copies share estimators_)
    # was walked once per forest, unbounded: now charged to the scan's examination budget.
    import copy

    from sklearn.ensemble import RandomForestRegressor

    from modelsec.pickle import scanner
    from modelsec.pickle.observer import Observer
    from modelsec.pickle.state_checks import widest_model
    from modelsec.pickle.values import Container

    class Spent(Observer):
        def may_examine(self, items: int) -> bool:
            return False

    assert widest_model(Container("list"), Spent()) == "more members than the scan may examine"
    forest = RandomForestRegressor(n_estimators=5, max_depth=2).fit(X, X[:, 0])
    forests = [copy.copy(forest) for _ in range(4)]
    assert forests[0].estimators_ is forests[3].estimators_
    data = pickle.dumps(forests, protocol=4)
    assert not state_findings(data)
    monkeypatch.setattr(scanner, "EXAMINE_FACTOR", 0)
    monkeypatch.setattr(scanner, "EXAMINE_FLOOR", 10)
    found = state_findings(data)
    assert any("than the scan may examine" in f.message for f in found), found


def test_models_of_different_widths_in_one_file_pass() -> None:
    from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestClassifier, StackingClassifier
    from sklearn.feature_selection import SelectKBest
    from sklearn.pipeline import make_pipeline
    from sklearn.tree import DecisionTreeClassifier

    wide = np.hstack([X, X])
    models = {
        "narrow forest": RandomForestClassifier(n_estimators=3).fit(X[:, :2], Y),
        "wide tree": DecisionTreeClassifier().fit(wide, Y),
        "pipeline": make_pipeline(SelectKBest(k=2), RandomForestClassifier(n_estimators=3)).fit(wide, Y),
        "stacking": StackingClassifier(
            [("f", RandomForestClassifier(n_estimators=3))],
            final_estimator=DecisionTreeClassifier(),
            passthrough=True,
        ).fit(X, Y),
        "boosted narrow": HistGradientBoostingRegressor(max_iter=3).fit(X[:, :2], X[:, 0]),
        "boosted wide": HistGradientBoostingRegressor(max_iter=3).fit(
            wide, wide[:, 7]
        ),  # splits on feature 7
    }
    for writer in WRITERS.values():
        result = scan(writer(models))
        assert {f.threat for f in result.findings} <= {"MS-POL-001"}, result.findings


def test_a_vocabulary_with_repeated_keys_is_judged_by_its_distinct_terms() -> None:
    # A stream can repeat a key: the loaded dict then has fewer terms than pairs written,
    # and a column below the pair count can be past the vocabulary (red-team review).
    model = _vectorizers()["counts"]()
    count = len(model.vocabulary_)
    model.vocabulary_ = {**model.vocabulary_, "MARKR": count}
    body = pickle.dumps(model, protocol=2)
    key = b"X\x05\x00\x00\x00MARKR"  # BINUNICODE, then its LONG_BINPUT, then BININT2 count
    start = body.index(key)
    end = body.index(b"M" + count.to_bytes(2, "little"), start) + 3
    repeated = b"".join(key + b"J" + (count + 1 + n).to_bytes(4, "little") for n in range(1000))
    forged = body[:start] + repeated + body[end:]  # 1,000 pairs, one term: columns past the vocabulary
    assert [f for f in state_findings(forged) if "vocabulary_" in f.message]
    assert not state_findings(body)


def test_the_keys_dicts_remember_are_bounded_per_scan(monkeypatch: pytest.MonkeyPatch) -> None:
    # A dict that drops items remembers its keys' hashes to count distinct terms; a scan
    # remembers at most KEY_HASH_BUDGET of them, and a size it cannot tell fails closed.
    from modelsec.pickle import scanner

    model = _vectorizers()["counts"]()
    data = pickle.dumps(model, protocol=4)
    assert not state_findings(data)
    monkeypatch.setattr(scanner, "KEY_HASH_BUDGET", 100)
    assert [f for f in state_findings(data) if "vocabulary_ is not a dict" in f.message]


def test_a_member_built_after_it_joined_the_forest_fails_closed() -> None:
    # A stream can append a tree to estimators_ and give it its state only after the
    # forest was checked: the member's width is read when the forest is built, so an
    # unmeasured member is a finding (and a second BUILD of a checked one too).
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.tree import DecisionTreeRegressor

    forest = RandomForestRegressor(n_estimators=1, max_depth=2).fit(X, X[:, 0])
    wide = np.hstack([X, X])
    member = DecisionTreeRegressor(max_depth=2).fit(wide, wide[:, 7])
    state = {k: v for k, v in forest.__getstate__().items() if k != "estimators_"}
    tree = b"csklearn.tree._classes\nDecisionTreeRegressor\n)\x81q\x00"  # NEWOBJ, memo 0
    late = (
        b"\x80\x02"
        + tree
        + b"0"  # POP: the member waits in the memo, without a state
        + b"csklearn.ensemble._forest\nRandomForestRegressor\n)\x81"
        + piece(state)[: -0 or None]
        + b"X\x0b\x00\x00\x00estimators_]h\x00as"  # estimators_ = [member]
        + b"b"  # BUILD the forest: its member is not measured yet
        + b"h\x00"
        + piece(member.__getstate__())
        + b"b0"  # the member's state, afterwards
        + b"."
    )
    found = state_findings(late)
    assert any("never checked" in f.message for f in found), [f.message for f in found]


def test_members_the_stream_computes_fail_closed() -> None:
    # estimators_ = list((member,)): predict iterates it like any list, but nothing can
    # measure what list() returns, so the forest's members cannot be judged.
    from sklearn.ensemble import RandomForestRegressor

    forest = RandomForestRegressor(n_estimators=2, max_depth=2).fit(X, X[:, 0])

    class Computed:
        def __reduce__(self) -> tuple[Any, ...]:
            return list, (tuple(forest.estimators_),)

    state = {**forest.__getstate__(), "estimators_": Computed()}

    class Forest:
        def __reduce__(self) -> tuple[Any, ...]:
            return type(forest), (), state

    found = state_findings(pickle.dumps(Forest(), protocol=4))
    assert any("members the stream computed" in f.message for f in found), [f.message for f in found]
    assert not state_findings(pickle.dumps(forest, protocol=4))


# -- checks that need every item: one-hot encoders of more than 64 features -----------------

WIDE = RNG.integers(0, 4, size=(40, 70))  # 70 features: past the 64 items a container keeps


def _wide_encoders() -> dict[str, Callable[[], Any]]:
    from sklearn.ensemble import RandomTreesEmbedding
    from sklearn.preprocessing import OneHotEncoder

    return {
        "one-hot": lambda: OneHotEncoder().fit(WIDE),
        "one-hot, drop first": lambda: OneHotEncoder(drop="first").fit(WIDE),
        "one-hot, infrequent and drop": lambda: OneHotEncoder(min_frequency=9, drop="first").fit(WIDE),
        # one feature per tree
        "random trees embedding": lambda: RandomTreesEmbedding(n_estimators=70, max_depth=2).fit(X),
    }


WIDE_ENCODERS = _wide_encoders()


@pytest.mark.parametrize("writer", [*sorted(WRITERS), "pickle-3", "pickle-4"])
@pytest.mark.parametrize("name", sorted(WIDE_ENCODERS))
def test_encoders_of_more_than_64_features_pass(name: str, writer: str) -> None:
    write = WRITERS.get(writer) or (lambda m: pickle.dumps(m, protocol=int(writer[-1])))
    model = WIDE_ENCODERS[name]()
    encoder = getattr(model, "one_hot_encoder_", model)
    assert len(encoder.categories_) > 64
    result = scan(write(model))
    assert {f.threat for f in result.findings} <= {"MS-POL-001"}, result.findings


def _wide(name: str, change: Callable[[Any], None]) -> Any:
    model = WIDE_ENCODERS[name]()
    change(model)  # in this process, never used
    return model


def _at(attribute: str, index: int, value: Callable[[Any], Any]) -> Callable[[Any], None]:
    def change(model: Any) -> None:
        items = list(getattr(model, attribute))
        items[index] = value(items[index])
        setattr(model, attribute, items)

    return change


def _drop_at(index: int, value: int) -> Callable[[Any], None]:
    def change(model: Any) -> None:
        drops = model._drop_idx_after_grouping.copy()
        drops[index] = value
        model._drop_idx_after_grouping = drops

    return change


HIDDEN = 68  # past the 64 items the machine keeps
WIDE_FORGERIES: dict[str, tuple[str, Callable[[Any], None]]] = {
    "a count smaller than its categories": ("one-hot", _at("_n_features_outs", HIDDEN, lambda n: 1)),
    "a negative count": ("one-hot", _at("_n_features_outs", HIDDEN, lambda n: -(10**8))),
    "a count that is not an int": ("one-hot", _at("_n_features_outs", HIDDEN, lambda n: "3")),
    "categories wider than the count": (
        "one-hot",
        _at("categories_", HIDDEN, lambda c: np.arange(10**4)),
    ),
    "a dropped category past the categories": ("one-hot, drop first", _drop_at(HIDDEN, 10**6)),
    "a negative dropped category": ("one-hot, drop first", _drop_at(HIDDEN, -5)),
    "an infrequent mapping past the groups": (
        "one-hot, infrequent and drop",
        lambda m: setattr(
            m,
            "_default_to_infrequent_mappings",
            [
                x * 10**6 if i >= HIDDEN and x is not None else x
                for i, x in enumerate(m._default_to_infrequent_mappings)
            ],
        ),
    ),
    "an infrequent index past the categories": (
        "one-hot, infrequent and drop",
        lambda m: setattr(
            m,
            "_infrequent_indices",
            [np.array([5 * 10**7]) if i == HIDDEN else x for i, x in enumerate(m._infrequent_indices)],
        ),
    ),
}


@pytest.mark.parametrize("writer", ["pickle-2", "pickle-5", "joblib"])
@pytest.mark.parametrize("forgery", sorted(WIDE_FORGERIES))
def test_a_forged_entry_past_the_kept_items_is_a_violation(forgery: str, writer: str) -> None:
    name, change = WIDE_FORGERIES[forgery]
    model = _wide(name, change)
    found = [f.message for f in state_findings(WRITERS[writer](model)) if "one-hot encoder" in f.message]
    if forgery == "a count that is not an int":  # (a str is not kept aside: fails closed)
        assert any("entry per feature it can read" in m for m in found), found
        return
    # judged on the forged entry itself, not failed closed for want of reading it
    assert any(f"[{HIDDEN}]" in m or f"feature {HIDDEN} " in m for m in found), found


def test_the_infrequent_forgeries_reach_past_the_kept_items() -> None:
    # (the forgeries above are only worth something if the feature they forge is infrequent)
    model = WIDE_ENCODERS["one-hot, infrequent and drop"]()
    assert model._infrequent_indices[HIDDEN] is not None
    assert model._default_to_infrequent_mappings[HIDDEN] is not None


def test_items_kept_aside_are_bounded_per_scan(monkeypatch: pytest.MonkeyPatch) -> None:
    # A scan keeps at most TAIL_BUDGET items aside; past it, a check that needs them fails
    # closed. A list that cannot be kept whole gives its items back to the budget.
    from modelsec.pickle import scanner

    model = WIDE_ENCODERS["one-hot"]()
    assert not state_findings(pickle.dumps(model, protocol=4))
    monkeypatch.setattr(scanner, "TAIL_BUDGET", 8)  # 6 categories and 6 counts past the 64
    found = state_findings(pickle.dumps(model, protocol=4))
    assert any("not lists of one entry per feature it can read" in f.message for f in found), found
    monkeypatch.setattr(scanner, "TAIL_BUDGET", 20)
    assert not state_findings(pickle.dumps((list(range(10**5)), model), protocol=4))  # given back
    assert state_findings(pickle.dumps(([*range(70), "x"], list(range(70)), model), protocol=4)) == []
    assert state_findings(pickle.dumps((list(range(78)), model), protocol=4))  # 14 of 20 kept


def test_items_examined_past_the_kept_ones_are_bounded_per_scan(monkeypatch: pytest.MonkeyPatch) -> None:
    # the same list handed to many encoders is examined each time: bounded by the file
    from modelsec.pickle import scanner

    model = WIDE_ENCODERS["one-hot"]()
    assert not state_findings(pickle.dumps(model, protocol=4))
    monkeypatch.setattr(scanner, "EXAMINE_FACTOR", 0)
    monkeypatch.setattr(scanner, "EXAMINE_FLOOR", 11)  # 12 items past the 64 are needed
    found = state_findings(pickle.dumps(model, protocol=4))
    assert any("not lists of one entry per feature it can read" in f.message for f in found), found


def test_a_list_of_millions_of_items_is_not_kept() -> None:
    # 3,000,000 items appended 1,000 at a time (BININT1 0, then DUP): the machine keeps at
    # most TAIL_BUDGET of them aside, then gives up on the list and returns them
    from modelsec.bytesource import BytesSource
    from modelsec.context import Limits
    from modelsec.pickle.machine import TAIL_BUDGET, StackMachine
    from modelsec.pickle.observer import Observer
    from modelsec.pickle.opcodes import OpcodeReader
    from modelsec.pickle.scanner import _run
    from modelsec.pickle.values import Container

    data = b"\x80\x04]" + (b"(K\x00" + b"2" * 999 + b"e") * 3000 + b"."
    machine = StackMachine(Observer(), Limits())
    reader = OpcodeReader(BytesSource(data), 0)
    result = _run(reader, machine, 10**8, None)
    assert result.error is None
    made = machine.result
    assert isinstance(made, Container) and made.dropped == 3_000_000 - 64
    assert made.tail is None and made.tail_lost and machine.tail_room[0] == TAIL_BUDGET


def test_items_kept_after_a_list_dropped_some_go_to_its_tail(monkeypatch: pytest.MonkeyPatch) -> None:
    # Red team, session 22: the stream spends the machine's budget of kept items, so a list
    # of 69 counts keeps 10 and sets 59 aside; then joblib's plain-pickle view (a machine
    # that goes on with budget of its own) appended one more, which landed at index 10
    # instead of 69. The encoder check read [a0..a9, x, a10..a68], a permutation that
    # matched its categories, while the real list (the last feature: 300 categories, 2
    # columns) made transform() write far past its output.
    import struct

    from sklearn.preprocessing import OneHotEncoder

    from modelsec.pickle import machine

    budget = 400
    monkeypatch.setattr(machine, "RETAIN_BUDGET", budget)
    real = [2] * 69
    real[68] = 300
    checked = [*real[:10], 2, *real[10:]]  # what the machine read before the fix
    encoder = OneHotEncoder(categories=[np.arange(n) for n in checked], sparse_output=False)
    encoder.fit(np.zeros((1, 70), dtype=np.int64))
    encoder._n_features_outs = "OUTS"  # replaced below by: GET A, BININT1 2, APPEND
    made = pickle.dumps(encoder, protocol=2)
    a_index, d_index = 9000, 9001
    sentinel = b"X" + struct.pack("<I", 4) + b"OUTS"
    assert made.count(sentinel) == 1
    made = made.replace(sentinel, b"j" + struct.pack("<I", a_index) + b"K\x02a")
    view = b"0" + made[2:]  # plain pickle.load: pop the wrapper, then the encoder

    def text(s: str) -> bytes:
        return b"X" + struct.pack("<I", len(s)) + s.encode()

    out = bytearray(b"\x80\x02")
    out += b"}(" + text("subclass") + b"cnumpy\nndarray\n" + text("shape")
    out += b"J" + struct.pack("<i", len(view)) + b"\x85" + text("order") + text("C") + text("dtype")
    out += b"cnumpy\ndtype\n" + text("u1") + b"\x89\x88\x87R(K\x03" + text("|")
    out += b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb" + text("allow_mmap") + b"\x89u"
    out += b"r" + struct.pack("<I", d_index) + b"0"
    left = budget - 21  # all but about 10 (the wrapper's state keeps 11 items of its own)
    while left > 0:
        out += b"(" + b"N" * min(64, left) + b"l0"
        left -= min(64, left)
    out += b"(" + b"".join(b"J" + struct.pack("<i", v) for v in real) + b"l"
    out += b"r" + struct.pack("<I", a_index) + b"0"
    out += b"cjoblib.numpy_pickle\nNumpyArrayWrapper\n)\x81j" + struct.pack("<I", d_index) + b"b"
    out += view + b"."
    found = state_findings(bytes(out))
    assert any("_n_features_outs" in f.message for f in found), found
