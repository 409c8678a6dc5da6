"""PyTorch pickles, hand-built to match what torch.save writes (torch is not installed).

torch.save pickles with protocol 2: tensors as ``torch._utils._rebuild_tensor_v2(
persistent_id(('storage', torch.FloatStorage, key, location, numel)), offset, size, stride,
requires_grad, OrderedDict())``; parameters through ``_rebuild_parameter``; whole modules as
``NEWOBJ(torch.nn.modules.<file>.<Class>)`` + ``BUILD`` of their ``__dict__``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pklbuild import (
    BINPERSID,
    BUILD,
    EMPTY_DICT,
    EMPTY_TUPLE,
    MARK,
    NEWFALSE,
    NEWOBJ,
    NEWTRUE,
    REDUCE,
    SETITEMS,
    STOP,
    TUPLE,
    TUPLE1,
    binint1,
    binput,
    binunicode,
    global_,
    proto,
    scan,
    subjects,
    summary,
)


def tuple_of(*items: bytes) -> bytes:
    return MARK + b"".join(items) + TUPLE


def ordered_dict(items: list[tuple[str, bytes]]) -> bytes:
    body = global_("collections", "OrderedDict") + EMPTY_TUPLE + REDUCE
    if items:
        body += MARK + b"".join(binunicode(k) + v for k, v in items) + SETITEMS
    return body


def tensor(key: str, shape: tuple[int, ...] = (2, 2), storage: str = "FloatStorage") -> bytes:
    numel = 1
    for n in shape:
        numel *= n
    persistent_id = (
        tuple_of(
            binunicode("storage"),
            global_("torch", storage),
            binunicode(key),
            binunicode("cpu"),
            binint1(numel),
        )
        + BINPERSID
    )
    size = tuple_of(*(binint1(n) for n in shape))
    stride = tuple_of(*(binint1(1) for _ in shape))
    return (
        global_("torch._utils", "_rebuild_tensor_v2")
        + tuple_of(persistent_id, binint1(0), size, stride, NEWFALSE, ordered_dict([]))
        + REDUCE
    )


def parameter(key: str, shape: tuple[int, ...] = (2, 2)) -> bytes:
    return (
        global_("torch._utils", "_rebuild_parameter")
        + tuple_of(tensor(key, shape), NEWTRUE, ordered_dict([]))
        + REDUCE
    )


def module(
    path: str,
    name: str,
    params: list[tuple[str, bytes]] = (),
    children: list[tuple[str, bytes]] = (),  # type: ignore[assignment]
    extra: list[tuple[str, bytes]] = (),
) -> bytes:  # type: ignore[assignment]
    state = [
        ("training", NEWTRUE),
        ("_parameters", ordered_dict(list(params))),
        ("_buffers", ordered_dict([])),
        ("_non_persistent_buffers_set", global_("builtins", "set") + b"]" + TUPLE1 + REDUCE),
        ("_backward_hooks", ordered_dict([])),
        ("_forward_hooks", ordered_dict([])),
        ("_forward_pre_hooks", ordered_dict([])),
        ("_state_dict_hooks", ordered_dict([])),
        ("_load_state_dict_pre_hooks", ordered_dict([])),
        ("_modules", ordered_dict(list(children))),
        *extra,
    ]
    body = MARK + b"".join(binunicode(k) + v for k, v in state) + SETITEMS
    return global_(path, name) + EMPTY_TUPLE + NEWOBJ + EMPTY_DICT + body + BUILD


def state_dict() -> bytes:
    return (
        proto(2)
        + ordered_dict(
            [
                ("fc.weight", tensor("0", (4, 3))),
                ("fc.bias", tensor("1", (4,))),
                ("bn.num_batches_tracked", tensor("2", (), "LongStorage")),
            ]
        )
        + STOP
    )


def whole_model() -> bytes:
    linear = module(
        "torch.nn.modules.linear",
        "Linear",
        [("weight", parameter("0")), ("bias", parameter("1", (2,)))],
        extra=[("in_features", binint1(2)), ("out_features", binint1(2))],
    )
    attention = module(
        "torch.nn.modules.activation",
        "MultiheadAttention",
        [("in_proj_weight", parameter("2", (6, 2)))],
        [("out_proj", module("torch.nn.modules.linear", "NonDynamicallyQuantizableLinear"))],
    )
    encoder = module(
        "torch.nn.modules.transformer",
        "TransformerEncoderLayer",
        children=[("self_attn", attention)],
        extra=[("activation", global_("torch.nn.functional", "relu"))],
    )
    children = [
        ("0", linear),
        ("1", module("torch.nn.modules.activation", "ReLU", extra=[("inplace", NEWFALSE)])),
        ("2", module("torch.nn.modules.dropout", "Dropout")),
        ("3", module("torch.nn.modules.normalization", "LayerNorm")),
        (
            "4",
            module("torch.nn.modules.sparse", "Embedding", [("weight", parameter("3", (10, 2)))]),
        ),
        ("5", module("torch.nn.modules.conv", "Conv2d")),
        ("6", module("torch.nn.modules.batchnorm", "BatchNorm2d")),
        ("7", module("torch.nn.modules.rnn", "LSTM")),
        ("8", encoder),
        ("9", module("torch.nn.modules.container", "ModuleList")),
    ]
    return proto(2) + module("torch.nn.modules.container", "Sequential", children=children) + STOP


def test_state_dict_is_clean() -> None:
    result = scan(state_dict(), name="data.pkl")
    assert not result.findings and not result.incompletes, summary(result)


def test_whole_module_pickle_is_clean() -> None:
    result = scan(whole_model(), name="data.pkl")
    assert not result.findings and not result.incompletes, summary(result)


def test_checkpoint_with_dtypes_devices_and_sizes() -> None:
    data = (
        proto(2)
        + EMPTY_DICT
        + MARK
        + b"".join(
            [
                binunicode("dtype") + global_("torch", "bfloat16"),
                binunicode("device")
                + global_("torch", "device")
                + tuple_of(binunicode("cuda"), binint1(0))
                + REDUCE,
                binunicode("size")
                + global_("torch", "Size")
                + tuple_of(tuple_of(binint1(2), binint1(3)))
                + REDUCE,
                binunicode("layout")
                + global_("torch.serialization", "_get_layout")
                + tuple_of(binunicode("torch.sparse_coo"))
                + REDUCE,
                binunicode("model") + ordered_dict([("w", parameter("0"))]),
                binunicode("epoch") + binint1(3),
            ]
        )
        + SETITEMS
        + STOP
    )
    result = scan(data)
    assert not result.findings and not result.incompletes, summary(result)


def test_custom_module_class_is_flagged() -> None:
    data = (
        proto(2)
        + module("mymodels.net", "Net", children=[("fc", module("torch.nn.modules.linear", "Linear"))])
        + STOP
    )
    result = scan(data)
    assert subjects(result, "MS-PKL-101") == {"mymodels.net.Net"}, summary(result)


def test_rebuild_from_type_with_unknown_function() -> None:
    data = (
        proto(2)
        + global_("torch._utils", "_rebuild_from_type_v2")
        + tuple_of(global_("acme.hooks", "rebuild"), global_("torch", "Tensor"), EMPTY_TUPLE, EMPTY_DICT)
        + REDUCE
        + STOP
    )
    assert subjects(scan(data), "MS-PKL-101") == {"acme.hooks.rebuild"}


def test_storage_type_in_persistent_id_must_be_safe() -> None:
    persistent_id = (
        tuple_of(
            binunicode("storage"),
            global_("torch.hub", "load"),
            binunicode("0"),
            binunicode("cpu"),
            binint1(1),
        )
        + BINPERSID
    )
    data = proto(2) + persistent_id + STOP
    assert subjects(scan(data), "MS-PKL-100") == {"torch.hub.load"}


def test_torch_utils_and_jit_are_dangerous() -> None:
    for module_name, name in (
        ("torch.utils.data", "DataLoader"),
        ("torch.jit", "load"),
        ("torch._dynamo", "optimize"),
    ):
        data = proto(2) + global_(module_name, name) + binput(0) + STOP
        assert subjects(scan(data), "MS-PKL-100") == {f"{module_name}.{name}"}


@pytest.mark.corpus
def test_real_torch_pickles_from_the_corpora(corpora: Path) -> None:
    for path in (
        corpora / "picklescan" / "pytorch_model.bin",
        corpora / "picklescan" / "new_pytorch_model.bin",
        corpora / "modelaudit" / "pytorch" / "safe_model.pt",
    ):
        from modelsec.engine import Engine

        report = Engine().scan_path(path)
        assert not report.all_findings() and not report.all_incompletes(), path
