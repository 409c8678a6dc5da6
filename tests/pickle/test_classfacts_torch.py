"""The hand-written PyTorch class facts (torch is not installed, so nothing here imports it).

``src/modelsec/pickle/classfacts_torch.py`` was written from PyTorch's source, file by file
(its docstring names each file and commit). These tests hold the facts to what that reading
found: every allowlisted torch class has facts; each method names the class whose code really
runs; a module's ``__setstate__`` is a review *with a condition* the machine can check (it can
reach ``self.register_parameter`` through ``Module.__setattr__``); the legacy tensor
constructor is not safe with keywords; every fact says where it comes from.
"""

from __future__ import annotations

import re

import pytest

from modelsec.pickle.allowlist import HAND_WRITTEN_SAFE
from modelsec.pickle.classfacts import ClassFacts, MethodFact, class_facts, is_class
from modelsec.pickle.classfacts_torch import STATE_CONDITIONS, TORCH_CLASSES

NN = "torch.nn.modules"
MODULE = f"{NN}.module.Module"
TORCH_ALLOWLIST = sorted(p for p in HAND_WRITTEN_SAFE if p.startswith("torch"))
MODULE_CLASSES = [p for p in TORCH_ALLOWLIST if p.startswith(f"{NN}.")]
# "[file @ <commit>]" or "[file id <index id>]": the PyTorch source a fact was read in.
SOURCED = re.compile(r"\[[^\]]*(@ [0-9a-f]{8}|ids? \d+)[^\]]*\]")


def facts(path: str) -> ClassFacts:
    found = class_facts(path)
    assert found is not None, path
    return found


def method(path: str, name: str) -> MethodFact:
    return facts(path).methods[name]


def _is_class_name(path: str) -> bool:
    last = path.rsplit(".", 1)[-1].lstrip("_")  # torch.storage._LegacyStorage
    return last[:1].isupper() or path == "torch.device"


def test_every_allowlisted_torch_class_has_facts_and_nothing_else_does() -> None:
    classes = [p for p in TORCH_ALLOWLIST if _is_class_name(p)]
    assert len(classes) > 150
    assert [p for p in classes if not is_class(p)] == []
    # rebuild helpers, dtypes and layouts are functions or values: no class facts
    assert [p for p in TORCH_ALLOWLIST if not _is_class_name(p) and is_class(p)] == []
    assert {p for p in TORCH_CLASSES if p.startswith("torch.nn.")} <= set(HAND_WRITTEN_SAFE)


def test_aliases_resolve_to_the_defining_class() -> None:
    assert facts("torch.Tensor") is facts("torch._tensor.Tensor")
    assert facts("torch.UntypedStorage").path == "torch.storage.UntypedStorage"
    assert facts("torch.TypedStorage").path == "torch.storage.TypedStorage"


@pytest.mark.parametrize(
    ("path", "name", "owner"),
    [
        (f"{NN}.linear.Linear", "__setstate__", MODULE),
        (f"{NN}.linear.Linear", "__init__", f"{NN}.linear.Linear"),
        (f"{NN}.conv.Conv2d", "__setstate__", f"{NN}.conv._ConvNd"),
        (f"{NN}.conv.ConvTranspose1d", "__setstate__", f"{NN}.conv._ConvNd"),
        (f"{NN}.conv.LazyConv3d", "__setstate__", f"{NN}.conv._ConvNd"),  # LazyModuleMixin has none
        (f"{NN}.rnn.LSTM", "__setstate__", f"{NN}.rnn.RNNBase"),
        (f"{NN}.rnn.GRU", "__setattr__", f"{NN}.rnn.RNNBase"),
        (f"{NN}.rnn.LSTMCell", "__setstate__", MODULE),  # RNNCellBase is not an RNNBase
        (f"{NN}.rnn.LSTMCell", "__setattr__", MODULE),
        (f"{NN}.batchnorm.BatchNorm2d", "__init__", f"{NN}.batchnorm._BatchNorm"),
        (f"{NN}.batchnorm.LazyBatchNorm1d", "__init__", f"{NN}.batchnorm._LazyNormBase"),
        (f"{NN}.instancenorm.InstanceNorm2d", "__init__", f"{NN}.instancenorm._InstanceNorm"),
        (f"{NN}.dropout.Dropout2d", "__init__", f"{NN}.dropout._DropoutNd"),
        (f"{NN}.pooling.MaxPool2d", "__init__", f"{NN}.pooling._MaxPoolNd"),
        (f"{NN}.activation.Sigmoid", "__init__", MODULE),
        (f"{NN}.activation.Softmax2d", "__setstate__", MODULE),
        (f"{NN}.activation.Softmax", "__setstate__", f"{NN}.activation.Softmax"),
        (f"{NN}.activation.MultiheadAttention", "__setstate__", f"{NN}.activation.MultiheadAttention"),
        (f"{NN}.pooling.AvgPool3d", "__setstate__", f"{NN}.pooling.AvgPool3d"),
        (f"{NN}.pooling.AvgPool2d", "__setstate__", MODULE),
        (
            f"{NN}.transformer.TransformerDecoderLayer",
            "__setstate__",
            f"{NN}.transformer.TransformerDecoderLayer",
        ),
        (f"{NN}.transformer.Transformer", "__setstate__", MODULE),
        (f"{NN}.upsampling.UpsamplingBilinear2d", "__setstate__", f"{NN}.upsampling.Upsample"),
        ("torch.nn.parameter.Parameter", "__setstate__", "torch._tensor.Tensor"),
        ("torch._tensor.Tensor", "__new__", "torch._C.TensorBase"),
        ("torch.FloatStorage", "__new__", "torch.storage.TypedStorage"),
    ],
)
def test_each_method_names_the_class_whose_code_runs(path: str, name: str, owner: str) -> None:
    assert method(path, name).owner == owner


def test_modules_compute_missing_attributes() -> None:
    for path in MODULE_CLASSES:
        found = facts(path)
        shape = (found.builtin_base, found.instance_dict, found.dynamic_getattr)
        assert shape == ("object", True, True), path
        assert {"__init__", "__setstate__", "__setattr__"} <= set(found.methods), path
    # no append of its own: APPEND on a ModuleDict reaches Module.__getattr__ (computed)
    assert "append" not in facts(f"{NN}.container.ModuleDict").methods


def test_module_setstate_is_reviewed_with_a_condition_the_machine_checks() -> None:
    """Module.__setstate__ assigns the missing _is_full_backward_hook = None through
    Module.__setattr__, which then calls self.register_parameter (or register_buffer) looked
    up on the instance: the state decides what that is. Safe only under STATE_CONDITIONS."""
    owners = set()
    for path in [MODULE, *MODULE_CLASSES]:
        setstate = method(path, "__setstate__")
        owners.add(setstate.owner)
        assert not setstate.safe, path
        assert setstate.why.startswith("reviewed: safe only if the instance __dict__"), path
        condition = STATE_CONDITIONS[f"{setstate.owner}.__setstate__"]
        assert condition["register_parameter"] == condition["register_buffer"] == "absent"
        assert condition["_non_persistent_buffers_set"] == "set"
    assert {key.removesuffix(".__setstate__") for key in STATE_CONDITIONS} == owners  # none stale
    assert "register_parameter" in method(MODULE, "__setstate__").why
    rnn = STATE_CONDITIONS[f"{NN}.rnn.RNNBase.__setstate__"]
    assert (rnn["_flat_weights_names"], rnn["_flat_weights"]) == ("list", "list")
    assert ".index(" in method(f"{NN}.rnn.LSTM", "__setattr__").why


def test_setattr_and_container_methods_stay_unsafe_with_the_lookup_that_makes_them_so() -> None:
    assert not method(MODULE, "__setattr__").safe
    assert "self.register_parameter" in method(MODULE, "__setattr__").why
    for name, methods in {
        "Sequential": ("append", "extend", "__setitem__"),
        "ModuleList": ("append", "extend", "__setitem__"),
        "ModuleDict": ("__setitem__", "keys"),
        "ParameterList": ("append", "extend", "__setitem__"),
        "ParameterDict": ("__setitem__", "keys"),
    }.items():
        path = f"{NN}.container.{name}"
        for name_ in methods:
            fact = method(path, name_)
            assert (fact.owner, fact.safe) == (path, False), (path, name_)


def test_constructors_are_safe_only_when_they_store_their_arguments() -> None:
    relu = method(f"{NN}.activation.ReLU", "__init__")
    assert (relu.owner, relu.safe) == (f"{NN}.activation.ReLU", True)
    assert relu.why.startswith("reviewed: stores")
    assert method(f"{NN}.padding.ZeroPad2d", "__init__").safe
    assert method(MODULE, "__init__").safe
    assert not method(f"{NN}.linear.Linear", "__init__").safe
    assert "allocates" in method(f"{NN}.conv.Conv2d", "__init__").why
    assert "deepcopy" in method(f"{NN}.transformer.TransformerEncoder", "__init__").why
    assert "_weight.shape" in method(f"{NN}.sparse.Embedding", "__init__").why
    assert "weight.dim()" in method(f"{NN}.loss.MultiMarginLoss", "__init__").why
    assert "newer than the version read" in method(f"{NN}.pixelshuffle.PixelUnshuffle", "__init__").why


def test_tensor_constructor_is_not_safe_with_keywords() -> None:
    """The legacy constructor's hidden cdata= keyword is a raw pointer (tensor_new.cpp);
    an earlier hand review had Tensor.__new__ safe."""
    new = method("torch.Tensor", "__new__")
    assert not new.safe and "cdata" in new.why and new.why.startswith("reviewed: safe only if")
    setstate = method("torch.Tensor", "__setstate__")
    assert not setstate.safe and "self.set_" in setstate.why
    for path in ("torch.nn.parameter.Parameter", "torch.nn.parameter.Buffer"):
        assert method(path, "__new__").why.startswith("reviewed: safe only if"), path
        assert facts(path).builtin_base == "other", path
    assert method("torch.nn.parameter.UninitializedParameter", "__new__").safe
    assert method("torch.Size", "__new__").safe and method("torch.device", "__new__").safe


def test_storages_are_never_proven_callable_except_as_bare_objects() -> None:
    assert not method("torch.FloatStorage", "__new__").safe
    assert not method("torch.cuda.HalfStorage", "__init__").safe
    assert method("torch.storage.TypedStorage", "__new__").safe  # object.__new__ for itself
    assert not method("torch.storage.UntypedStorage", "__new__").safe  # compiled
    assert facts("torch.UntypedStorage").builtin_base == "other"


def test_every_fact_says_which_source_it_was_read_in() -> None:
    unsourced = []
    for path in TORCH_CLASSES:
        found = facts(path)
        for name, fact in found.methods.items():
            if "PyTorch is not installed" in fact.why or fact.why == "reviewed":
                unsourced.append((path, name, fact.why))
            elif not fact.why.startswith("compiled") and not SOURCED.search(fact.why):
                unsourced.append((path, name, fact.why))
            if fact.safe and not fact.why.startswith("reviewed: "):
                unsourced.append((path, name, fact.why))
            if fact.safe and "safe only if" in fact.why:
                unsourced.append((path, name, "a conditional review must stay unsafe"))
    assert unsourced == []
