"""functools.partial: a call trampoline real scikit-learn pickles carry.

A HistGradientBoosting model fitted with categorical features keeps
``partial(check_array, dtype=[float64], ensure_all_finite=False)`` as its preprocessor's
``func``; its pickles were BLOCKED (red-team notes, "False positives of the state checks").
A partial may now bind a function of ``contracts.PARTIAL_FUNCTIONS`` with literal data, and
nothing else: every other way of building, rebuilding or calling one is a finding. Models are
fitted and fixtures built here, never loaded."""

from __future__ import annotations

import functools
import pickle
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pklbuild import (
    BUILD,
    EMPTY_DICT,
    EMPTY_TUPLE,
    MARK,
    NONE,
    POP,
    REDUCE,
    SETITEM,
    STOP,
    TUPLE,
    TUPLE1,
    binget,
    binput,
    binunicode,
    global_,
    piece,
    proto,
    scan,
    with_code,
    writers,
)

from modelsec.findings import Finding
from modelsec.pickle.allowlist import reference_only, safe_globals

RNG = np.random.default_rng(5)
X = np.c_[RNG.integers(0, 4, 60), RNG.normal(size=60)]
Y = (X[:, 0] > 1).astype(int)


WRITERS = writers("pickle-2", "pickle-3", "pickle-4", "pickle-5", "joblib")


def _clean(data: bytes) -> bool:
    return {f.threat for f in scan(data).findings} <= {"MS-POL-001"}


def _boosted(categorical: str) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    if categorical == "indexes":
        return HistGradientBoostingClassifier(max_iter=2, categorical_features=[0]).fit(X, Y)
    import pandas as pd

    frame = pd.DataFrame({"c": pd.Categorical(["a", "b", "c", "d"] * 15), "x": X[:, 1]})
    return HistGradientBoostingClassifier(max_iter=2, categorical_features="from_dtype").fit(frame, Y)


@pytest.mark.parametrize("writer", sorted(WRITERS))
@pytest.mark.parametrize("categorical", ["indexes", "pandas dtype"])
def test_boosting_with_categorical_features_passes(categorical: str, writer: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = _boosted(categorical)
    data = WRITERS[writer](model)
    assert b"partial" in data and b"check_array" in data
    result = scan(data)
    assert {f.threat for f in result.findings} <= {"MS-POL-001"}, result.findings


def test_the_bindable_functions_are_reference_only_and_take_no_callable() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "hack"))
    from modelsec.pickle.contracts import PARTIAL_FUNCTIONS
    from pickle_allowlist.imports import resolve
    from pickle_allowlist.trampoline import takes_callable

    for path in PARTIAL_FUNCTIONS:
        assert path in reference_only() and path not in safe_globals(), path
        assert takes_callable(resolve(path)) is None, path


# -- hand-built partials -----------------------------------------------------------------

PARTIAL = global_("functools", "partial")
CHECK_ARRAY = global_("sklearn.utils.validation", "check_array")
KEYWORDS = EMPTY_DICT + binput(1) + binunicode("ensure_all_finite") + b"\x89" + SETITEM


def _state(
    func: bytes = CHECK_ARRAY, args: bytes = EMPTY_TUPLE, keywords: bytes = KEYWORDS, namespace: bytes = NONE
) -> bytes:
    return MARK + func + args + keywords + namespace + TUPLE


def _partial(func: bytes = CHECK_ARRAY, state: bytes | None = None, after: bytes = b"") -> bytes:
    """partial(func) memoised as 0, its BUILD, then ``after`` (the partial on the stack)."""
    body = PARTIAL + func + TUPLE1 + REDUCE + binput(0)
    if state is not None:
        body += state + BUILD
    return proto(2) + body + after + STOP


def violations(data: bytes) -> list[str]:
    found: list[Finding] = with_code(scan(data), "MS-PKL-107")
    return [f.message for f in found]


def test_the_partial_scikit_learn_writes_passes() -> None:
    assert _clean(_partial(state=_state()))
    assert _clean(
        pickle.dumps(functools.partial(_check_array(), dtype=[np.float64], ensure_all_finite=False))
    )


def _check_array() -> Any:
    from sklearn.utils.validation import check_array

    return check_array


@pytest.mark.parametrize(
    "func, what",
    [
        (global_("posix", "system"), "posix.system"),  # dangerous: reported on import, and here
        (global_("numpy.core", "_ufunc_reconstruct"), "_ufunc_reconstruct"),  # a safe resolver
        (global_("copyreg", "_reconstructor"), "_reconstructor"),  # a safe helper
        (global_("sklearn.metrics", "accuracy_score"), "accuracy_score"),  # reference-only, not listed
        (global_("numpy", "memmap"), "memmap"),  # reference-only class that opens files
    ],
)
def test_a_partial_of_another_function_is_a_violation(func: bytes, what: str) -> None:
    # as the argument of partial(), and as the function its state sets
    assert any("not a function a partial may bind" in m for m in violations(_partial(func)))
    found = violations(_partial(state=_state(func=func)))
    assert any("its function is" in m and what in m for m in found), found


def test_a_trusted_helper_with_bound_arguments_is_a_violation() -> None:
    # partial(_ufunc_reconstruct, "os")(X) resolves os.<X>: bound arguments do not make it safe
    resolver = global_("numpy.core", "_ufunc_reconstruct")
    data = proto(2) + PARTIAL + MARK + resolver + binunicode("os") + TUPLE + REDUCE + STOP
    assert any("not a function a partial may bind" in m for m in violations(data))


def test_bound_objects_are_a_violation() -> None:
    # check_array(X, estimator=<an object the stream built>): literal data only
    estimator = piece(__import__("sklearn.linear_model", fromlist=["x"]).LogisticRegression())
    keywords = EMPTY_DICT + binunicode("estimator") + estimator + SETITEM
    assert any(
        "not a literal dict of literal data" in m
        for m in violations(_partial(state=_state(keywords=keywords)))
    )
    args = MARK + estimator + TUPLE
    assert any("not a literal tuple" in m for m in violations(_partial(state=_state(args=args))))
    positional = proto(2) + PARTIAL + MARK + CHECK_ARRAY + estimator + TUPLE + REDUCE + STOP
    assert any("bound argument 1" in m for m in violations(positional))


def test_a_state_that_sets_the_partials_dict_is_a_violation() -> None:
    namespace = EMPTY_DICT + binunicode("__setstate__") + global_("posix", "system") + SETITEM
    found = violations(_partial(state=_state(namespace=namespace)))
    assert any("sets its __dict__" in m for m in found), found


def test_a_state_that_is_not_partials_tuple_is_a_violation() -> None:
    found = violations(_partial(state=EMPTY_DICT))
    assert any("not the (func, args, keywords, dict) tuple" in m for m in found), found


def test_a_nested_partial_is_a_violation() -> None:
    # partial(partial(check_array)): partial_new unwraps the inner one; no pickler writes it
    inner = PARTIAL + CHECK_ARRAY + TUPLE1 + REDUCE
    found = violations(proto(2) + PARTIAL + inner + TUPLE1 + REDUCE + STOP)
    assert any("its function is" in m for m in found), found
    found = violations(_partial(state=_state(func=inner)))
    assert any("its function is" in m for m in found), found


def test_a_partial_built_with_computed_arguments_is_a_violation() -> None:
    computed = global_("builtins", "tuple") + MARK + MARK + CHECK_ARRAY + b"l" + TUPLE + REDUCE
    found = violations(proto(2) + PARTIAL + computed + REDUCE + STOP)
    assert any("computed by the stream" in m for m in found), found


def test_a_second_build_is_a_violation() -> None:
    again = binget(0) + _state() + BUILD + POP
    found = violations(_partial(state=_state(), after=POP + again + binget(0)))
    assert any("a second BUILD replaces the function and arguments of a partial" in m for m in found), found


def test_keywords_added_after_the_check_are_a_violation() -> None:
    # partial_setstate keeps an exact dict as its keywords: the stream still holds it (memo 1)
    grow = binget(1) + binunicode("dtype") + global_("posix", "system") + SETITEM + POP
    found = violations(_partial(state=_state(), after=grow))
    assert any("grows its dict after its state was checked" in m for m in found), found


# Red team, session 22: a list bound empty (literal data at the check), then given through
# the memo an object whose __array_interface__ points at an address of the stream's choice:
# check_array(L, X) made numpy read there (SIGSEGV, or process memory copied into the output).
SCALER = global_("sklearn.preprocessing._data", "StandardScaler") + EMPTY_TUPLE + REDUCE
EMPTY_LIST_AT_2 = b"]" + binput(2)
GROW_THE_LIST = binget(2) + SCALER + b"a" + POP


def test_an_argument_list_grown_after_the_check_is_a_violation() -> None:
    args = MARK + EMPTY_LIST_AT_2 + TUPLE
    found = violations(_partial(state=_state(args=args), after=GROW_THE_LIST))
    assert any("grows its list after its state was checked" in m for m in found), found


def test_a_keyword_value_grown_after_the_check_is_a_violation() -> None:
    keywords = EMPTY_DICT + binput(1) + binunicode("dtype") + EMPTY_LIST_AT_2 + SETITEM
    found = violations(_partial(state=_state(keywords=keywords), after=GROW_THE_LIST))
    assert any("grows its list after its state was checked" in m for m in found), found


def test_an_argument_list_of_partial_new_grown_after_the_check_is_a_violation() -> None:
    # partial(check_array, L) by REDUCE: partial_new copies the arguments tuple, not L
    made = PARTIAL + MARK + CHECK_ARRAY + EMPTY_LIST_AT_2 + TUPLE + REDUCE
    found = violations(proto(2) + made + GROW_THE_LIST + STOP)
    assert any("grows its list after its state was checked" in m for m in found), found


def test_calling_the_partial_is_a_finding() -> None:
    # the stream calls the partial it built: check_array("x") runs at load time
    call = MARK + binunicode("x") + TUPLE + REDUCE
    result = scan(_partial(state=_state(), after=call))
    assert not _clean(_partial(state=_state(), after=call))
    assert any(f.threat != "MS-POL-001" for f in result.findings)


def test_a_partial_as_a_default_factory_is_a_finding() -> None:
    # defaultdict calls its factory on a missing key, later
    factory = (
        global_("collections", "defaultdict") + PARTIAL + CHECK_ARRAY + TUPLE1 + REDUCE + TUPLE1 + REDUCE
    )
    assert not _clean(proto(2) + factory + STOP)


def test_str_of_a_partial_is_a_finding() -> None:
    # str() runs partial's repr, which runs the repr of everything it binds
    data = (
        proto(2)
        + global_("builtins", "str")
        + PARTIAL
        + CHECK_ARRAY
        + TUPLE1
        + REDUCE
        + TUPLE1
        + REDUCE
        + STOP
    )
    assert violations(data)


def test_a_bound_container_larger_than_the_machine_keeps_is_a_violation() -> None:
    # items past the 64 kept are neither judged nor watched, and check_array gets them all
    args = MARK + b"]" + MARK + NONE * 70 + b"e" + TUPLE
    found = violations(_partial(state=_state(args=args)))
    assert any("binds a list of more items than modelsec keeps" in m for m in found), found
