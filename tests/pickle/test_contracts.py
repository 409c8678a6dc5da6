"""Every allowlisted callable is accounted for: a class whose methods the generator read, a
function with an argument contract, or a constant nobody calls; and every conditional review
in the class facts has the contract that checks its condition."""

from __future__ import annotations

import pytest
from pklbuild import (
    BUILD,
    EMPTY_DICT,
    EMPTY_TUPLE,
    MARK,
    NEWOBJ,
    REDUCE,
    SETITEMS,
    sbu,
    scan,
    stack_global,
    summary,
    v4,
)

from modelsec.pickle.allowlist import reference_only, safe_globals
from modelsec.pickle.classfacts import class_facts, known_classes
from modelsec.pickle.contracts import METHOD_CONTRACTS, contract_for, is_plain
from modelsec.pickle.objects import InstanceAttrs
from modelsec.pickle.policy import classify
from modelsec.pickle.values import Call, Container, Global


def test_every_callable_global_is_a_known_class_or_has_a_contract() -> None:
    unaccounted = sorted(p for p in safe_globals() if class_facts(p) is None and contract_for(p) is None)
    assert not unaccounted, (
        f"allowlisted, but neither a class with facts nor a contracted function: {unaccounted}"
    )


def test_constants_are_reference_only() -> None:
    for path in ("torch.float32", "torch.strided", "builtins.Ellipsis", "pandas.NA"):
        assert path in reference_only() and path not in safe_globals()


def _conditional_reviews() -> set[str]:
    found = set()
    for path in known_classes():
        facts = class_facts(path)
        assert facts is not None
        for method, fact in facts.methods.items():
            if "safe only if" in fact.why:
                found.add(f"{fact.owner}.{method}")
    return found


def test_every_conditional_review_is_checked_by_a_contract() -> None:
    reviews = _conditional_reviews()
    assert reviews == set(METHOD_CONTRACTS), (
        f"reviewed with a condition but unchecked: {sorted(reviews - set(METHOD_CONTRACTS))}; "
        f"contracts for no conditional review: {sorted(set(METHOD_CONTRACTS) - reviews)}"
    )


def _global(path: str) -> Global:
    module, _, name = path.rpartition(".")
    return Global(module, name, 0, "GLOBAL", classify(module, name))


def _instance(path: str, **attributes: object) -> Call:
    cls = _global(path)
    made = Call(cls, (), 0, "NEWOBJ", cls, attrs=InstanceAttrs({}))
    assert made.attrs is not None
    if attributes:
        made.attrs.merge(Container("dict", list(attributes.items())))
    return made


@pytest.mark.parametrize(
    "value, plain",
    [
        (1, True),
        ("x", True),
        (Container("list", [1, "a", (2, 3)]), True),
        (_instance("types.SimpleNamespace"), True),
        (_instance("types.SimpleNamespace", cache=Container("dict", [("n", 1)])), True),
        (_instance("types.SimpleNamespace", copy=_global("builtins.len")), False),
        (_instance("types.SimpleNamespace", inner=Container("list", [_global("builtins.len")])), False),
        (
            Container("dict", [("data", _instance("argparse.Namespace", __array__=_global("builtins.set")))]),
            False,
        ),
        (Container("dict", [("dtype", _global("builtins.float"))]), True),
        (Container("list", [1], dropped=100, objects=True), False),
        (Container("list", [1], dropped=100, objects=False), True),
        (_instance("acme.Gadget"), False),
    ],
)
def test_plain_data(value: object, plain: bool) -> None:
    assert is_plain(value) is plain


def test_pandas_constructor_given_an_object_with_attributes_breaks_its_review() -> None:
    # _new_Index(Index, {"data": ns}) where ns = SimpleNamespace with attributes from the
    # stream: Index.__new__ would call np.asarray(ns), which reads ns.__array__.
    ns = stack_global("types", "SimpleNamespace") + EMPTY_TUPLE + NEWOBJ + EMPTY_DICT + MARK
    ns += sbu("__array__") + stack_global("builtins", "len") + SETITEMS + BUILD
    data = v4(
        stack_global("pandas.core.indexes.base", "_new_Index")
        + MARK
        + stack_global("pandas", "Index")
        + EMPTY_DICT
        + MARK
        + sbu("data")
        + ns
        + SETITEMS
        + b"t"
        + REDUCE
    )
    result = scan(data)
    assert "MS-PKL-107" in {f.threat for f in result.findings}, summary(result)


def test_pandas_index_as_pandas_writes_it_is_clean() -> None:
    import pickle

    import pandas as pd

    result = scan(pickle.dumps(pd.Index(["a", "b"]), protocol=4))
    assert not result.findings, summary(result)


def test_isotonic_state_that_sets_build_f() -> None:
    data = v4(
        stack_global("sklearn.isotonic", "IsotonicRegression")
        + EMPTY_TUPLE
        + NEWOBJ
        + EMPTY_DICT
        + MARK
        + sbu("_build_f")
        + stack_global("builtins", "len")
        + SETITEMS
        + BUILD
    )
    result = scan(data)
    assert "MS-PKL-107" in {f.threat for f in result.findings}, summary(result)


def _module_build(state: bytes) -> bytes:
    return v4(stack_global("torch.nn.modules.linear", "Linear") + EMPTY_TUPLE + NEWOBJ + state + BUILD)


def test_torch_module_state_that_replaces_register_parameter() -> None:
    # Module.__setstate__ assigns the missing _is_full_backward_hook through
    # Module.__setattr__, which calls self.register_parameter: the state can supply it.
    state = EMPTY_DICT + MARK + sbu("register_parameter") + stack_global("builtins", "len") + SETITEMS
    result = scan(_module_build(state))
    assert "MS-PKL-107" in {f.threat for f in result.findings}, summary(result)


def test_torch_module_state_as_torch_writes_it_is_clean() -> None:
    state = EMPTY_DICT + MARK + sbu("training") + b"\x88" + sbu("_parameters") + EMPTY_DICT + SETITEMS
    result = scan(_module_build(state))
    assert not result.findings, summary(result)


def test_tensor_new_with_keyword_arguments() -> None:
    # Tensor.__new__(Tensor, cdata=<int>) casts the int to a TensorImpl pointer.
    kwargs = EMPTY_DICT + sbu("cdata") + b"J\x00\x10\x00\x00" + b"s"
    data = v4(stack_global("torch", "Tensor") + EMPTY_TUPLE + kwargs + b"\x92")
    result = scan(data)
    assert "MS-PKL-107" in {f.threat for f in result.findings}, summary(result)


# -- pandas BlockManager placements (red team, 2026-12-07) --------------------------------
# pandas' compiled _rebuild_blknos_and_blklocs writes at every block placement into arrays of
# len(items), bounds checks off: a placement outside the items axis crashed every loader.


def _legacy_manager(placement: list[int], labels: int = 1) -> bytes:
    """BlockManager((), [[], []]) rebuilt from the legacy '0.14.1' state with one block."""
    from pklbuild import NONE, STOP, TUPLE, binint, proto

    manager = stack_global("pandas.core.internals.managers", "BlockManager") + EMPTY_TUPLE
    manager += b"]" + MARK + b"]" + b"]" + b"e" + b"\x86" + REDUCE
    axes = b"]" + MARK + b"]" + MARK + b"".join(sbu(f"c{i}") for i in range(labels)) + b"e" + b"]" + b"e"
    block = EMPTY_DICT + MARK + sbu("values") + NONE + sbu("mgr_locs") + b"]" + MARK
    block += b"".join(binint(i) for i in placement) + b"e" + SETITEMS
    inner = EMPTY_DICT + MARK + sbu("axes") + axes + sbu("blocks") + b"]" + block + b"a" + SETITEMS
    state = MARK + NONE + NONE + NONE + EMPTY_DICT + sbu("0.14.1") + inner + b"s" + TUPLE + BUILD
    return proto(2) + manager + state + STOP


@pytest.mark.parametrize(
    "placement", [[1 << 28], [-(1 << 28)], [0, 5]], ids=["far", "negative", "past-the-end"]
)
def test_legacy_block_placement_outside_the_items_axis(placement: list[int]) -> None:
    result = scan(_legacy_manager(placement))
    assert "MS-PKL-107" in {f.threat for f in result.findings}, summary(result)


def test_legacy_block_placement_inside_the_items_axis_is_clean() -> None:
    result = scan(_legacy_manager([0, 1], labels=2))
    assert not result.findings, summary(result)


def test_block_placement_past_the_placements_a_verified_manager_counts() -> None:
    """BlockManager(blocks, axes) verifies that the items axis is as long as all placements
    together: an index at or past that count is out of bounds."""
    from pklbuild import NONE, STOP, TUPLE3, binint1, proto

    block = stack_global("pandas._libs.internals", "_unpickle_block") + NONE
    block += stack_global("builtins", "slice") + binint1(5) + binint1(6) + binint1(1) + TUPLE3 + REDUCE
    block += binint1(2) + TUPLE3 + REDUCE
    manager = stack_global("pandas.core.internals.managers", "BlockManager")
    manager += b"]" + block + b"a" + b"]" + MARK + b"]" + b"]" + b"e" + b"\x86" + REDUCE
    result = scan(proto(4) + manager + STOP)
    assert "MS-PKL-107" in {f.threat for f in result.findings}, summary(result)


@pytest.mark.parametrize("shape", ["contiguous", "interleaved", "multi-index"])
def test_dataframes_as_pandas_writes_them_are_clean(shape: str) -> None:
    import pickle

    import numpy as np
    import pandas as pd

    frame = {
        "contiguous": pd.DataFrame({"a": [1, 2], "b": [3, 4]}),
        "interleaved": pd.DataFrame({"a": [1], "b": [1.0], "c": [2], "d": ["x"], "e": [3]}),
        "multi-index": pd.DataFrame(
            np.arange(6).reshape(2, 3),
            columns=pd.MultiIndex.from_tuples([("a", "x"), ("a", "y"), ("b", "z")]),
        ),
    }[shape]
    for protocol in (2, 4):
        result = scan(pickle.dumps(frame, protocol=protocol))
        assert not result.findings, summary(result)
