"""Calls the unpickler makes without a call opcode, trusted helpers with computed arguments,
and caps or lost identity that used to fail open. Each test is an attack class written
against the allowlist (no denylisted name anywhere), built from bytes and never loaded."""

from __future__ import annotations

import pytest
from pklbuild import (
    APPEND,
    APPENDS,
    BUILD,
    EMPTY_DICT,
    EMPTY_TUPLE,
    MARK,
    NEWOBJ,
    NONE,
    REDUCE,
    SETITEM,
    SETITEMS,
    TUPLE,
    TUPLE1,
    TUPLE2,
    call,
    sbu,
    scan,
    stack_global,
    summary,
    v4,
)

from modelsec.engine import FileResult
from modelsec.findings import Severity

UNKNOWN_CALL, UNRESOLVED, CONTRACT, EXTERNAL = "MS-PKL-101", "MS-PKL-103", "MS-PKL-107", "MS-PKL-106"


def blocking(result: FileResult) -> set[str]:
    """Threat codes at or above MEDIUM (what the built-in groups block on)."""
    return {f.threat for f in result.findings if f.severity >= Severity.MEDIUM}


def new(module: str, name: str) -> bytes:
    """module.name.__new__(module.name): an instance, as pickle protocol 2+ builds one."""
    return stack_global(module, name) + EMPTY_TUPLE + NEWOBJ


def state(*pairs: tuple[str, bytes]) -> bytes:
    return EMPTY_DICT + MARK + b"".join(sbu(key) + value for key, value in pairs) + SETITEMS


UFUNC = stack_global("numpy.core", "_ufunc_reconstruct")  # a resolver: import + getattr


# -- 1. implicit calls --------------------------------------------------------------------


@pytest.mark.parametrize(
    "cls", [("types", "SimpleNamespace"), ("argparse", "Namespace"), ("collections", "OrderedDict")]
)
def test_build_setstate_from_instance_dict(cls: tuple[str, str]) -> None:
    # A first BUILD puts __setstate__ into the instance's __dict__; the second BUILD calls
    # it with a state of the stream's choosing.
    data = v4(new(*cls) + state(("__setstate__", UFUNC)) + BUILD + sbu("os") + sbu("system") + TUPLE2 + BUILD)
    result = scan(data)
    assert blocking(result) & {UNRESOLVED, CONTRACT}, summary(result)


@pytest.mark.parametrize("opcodes", [MARK + sbu("os") + sbu("system") + APPENDS, sbu("os") + APPEND])
@pytest.mark.parametrize("method", ["extend", "append"])
def test_append_calls_extend_from_namespace(method: str, opcodes: bytes) -> None:
    data = v4(new("types", "SimpleNamespace") + state((method, UFUNC)) + BUILD + opcodes)
    result = scan(data)
    assert blocking(result) & {UNRESOLVED, CONTRACT}, summary(result)


def test_additems_calls_add_from_namespace() -> None:
    data = v4(new("argparse", "Namespace") + state(("add", UFUNC)) + BUILD + MARK + sbu("x") + b"\x90")
    result = scan(data)
    assert blocking(result) & {UNRESOLVED, CONTRACT}, summary(result)


def test_append_on_bunch_reads_items_through_getattr() -> None:
    # sklearn's Bunch is a dict whose __getattr__ returns items: an item named "extend"
    # becomes the method APPEND calls.
    data = v4(new("sklearn.utils._bunch", "Bunch") + sbu("extend") + UFUNC + SETITEM + sbu("os") + APPEND)
    result = scan(data)
    assert UNKNOWN_CALL in blocking(result), summary(result)


def test_overrides_past_the_container_cap_are_kept() -> None:
    filler = [(f"k{i}", NONE) for i in range(80)]
    data = v4(
        new("types", "SimpleNamespace") + state(*filler, ("__setstate__", UFUNC)) + BUILD + sbu("os") + BUILD
    )
    result = scan(data)
    assert blocking(result) & {UNRESOLVED, CONTRACT}, summary(result)


def test_computed_key_makes_the_instance_dict_unknowable() -> None:
    # str("extend") is a key nobody can read statically: whatever APPEND finds is unknown.
    key = stack_global("builtins", "str") + sbu("extend") + TUPLE1 + REDUCE
    data = v4(
        new("types", "SimpleNamespace") + EMPTY_DICT + key + UFUNC + SETITEM + BUILD + sbu("x") + APPEND
    )
    result = scan(data)
    assert UNKNOWN_CALL in blocking(result), summary(result)


def test_unsafe_setstate_of_an_allowlisted_class_is_a_finding() -> None:
    # ScoringMonitor.__setstate__ opens a listener at an address from the state.
    data = v4(new("sklearn.callback._scoring_monitor", "ScoringMonitor") + state(("_log", NONE)) + BUILD)
    result = scan(data)
    assert UNKNOWN_CALL in blocking(result) or "MS-PKL-105" in blocking(result), summary(result)


def test_build_on_the_result_of_a_safe_function_is_unknowable() -> None:
    data = v4(call("numpy.core.multiarray", "scalar") + state(("x", NONE)) + BUILD)
    result = scan(data)
    assert UNKNOWN_CALL in blocking(result), summary(result)


# -- 2. trusted helpers with computed arguments -------------------------------------------


def test_ufunc_reconstruct_with_computed_module_name() -> None:
    computed = stack_global("builtins", "str") + sbu("os") + TUPLE1 + REDUCE
    data = v4(UFUNC + computed + sbu("system") + TUPLE2 + REDUCE)
    result = scan(data)
    assert UNRESOLVED in blocking(result), summary(result)


def test_ufunc_reconstruct_with_literal_names_is_classified() -> None:
    data = v4(UFUNC + sbu("os") + sbu("system") + TUPLE2 + REDUCE)
    assert "os.system" in {f.subject for f in scan(data).findings}


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(
            sbu("MT19937") + stack_global("numpy.core", "_ufunc_reconstruct"), id="other bit generator ctor"
        ),
        pytest.param(stack_global("builtins", "str") + sbu("MT19937") + TUPLE1 + REDUCE, id="computed name"),
        pytest.param(sbu("EvilGenerator"), id="name outside the closed set"),
    ],
)
def test_random_state_ctor_outside_its_contract(args: bytes) -> None:
    data = v4(stack_global("numpy.random._pickle", "__randomstate_ctor") + MARK + args + TUPLE + REDUCE)
    result = scan(data)
    assert CONTRACT in blocking(result), summary(result)


def test_random_state_ctor_as_numpy_writes_it_is_clean() -> None:
    ctor = stack_global("numpy.random._pickle", "__bit_generator_ctor")
    data = v4(
        stack_global("numpy.random._pickle", "__randomstate_ctor") + sbu("MT19937") + ctor + TUPLE2 + REDUCE
    )
    result = scan(data)
    assert not result.findings, summary(result)


def test_reconstructor_with_a_base_that_is_not_a_builtin() -> None:
    data = v4(
        stack_global("copyreg", "_reconstructor")
        + MARK
        + stack_global("types", "SimpleNamespace")
        + stack_global("collections", "OrderedDict")
        + NONE
        + TUPLE
        + REDUCE
    )
    result = scan(data)
    assert CONTRACT in blocking(result), summary(result)


def test_rebuild_from_type_calls_its_function_under_that_functions_contract() -> None:
    computed = stack_global("builtins", "str") + sbu("os") + TUPLE1 + REDUCE
    data = v4(
        stack_global("torch._utils", "_rebuild_from_type_v2")
        + MARK
        + UFUNC
        + stack_global("torch", "Tensor")
        + computed
        + sbu("system")
        + TUPLE2
        + EMPTY_DICT
        + TUPLE
        + REDUCE
    )
    result = scan(data)
    assert UNRESOLVED in blocking(result), summary(result)


def test_helper_whose_arguments_are_computed() -> None:
    # copyreg._reconstructor(*x) with x a call result: nobody can check the class it builds.
    args = stack_global("builtins", "tuple") + EMPTY_TUPLE + TUPLE1 + REDUCE
    data = v4(stack_global("copyreg", "_reconstructor") + args + REDUCE)
    result = scan(data)
    assert CONTRACT in blocking(result), summary(result)


# -- 4. caps and lost identity ---------------------------------------------------------------


@pytest.mark.parametrize("how", ["NEWOBJ", "REDUCE"])
@pytest.mark.parametrize("slot_state", [False, True])
def test_old_joblib_wrapper_built_any_way_is_checked(how: str, slot_state: bool) -> None:
    wrapper = (
        stack_global("joblib.numpy_pickle_compat", "NDArrayWrapper")
        + EMPTY_TUPLE
        + (NEWOBJ if how == "NEWOBJ" else REDUCE)
    )
    fields = state(("filename", sbu("../../etc/evil.npy")))
    body = wrapper + ((NONE + fields + TUPLE2) if slot_state else fields) + BUILD
    result = scan(v4(body))
    assert EXTERNAL in blocking(result), summary(result)
