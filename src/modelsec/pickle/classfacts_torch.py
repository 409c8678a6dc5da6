"""Class facts for PyTorch, written by hand: torch is not installed here, so the generator
cannot inspect it. Same shape as the generated ``classfacts_*.json`` entries.

Sources, read through the project's code-search tools (PyTorch 2.x):

* ``torch/nn/modules/module.py``: ``Module.__init__`` (API-usage telemetry through
  ``torch._C._log_api_usage_once``, argument checks, ``object.__setattr__`` of empty
  parameter/buffer/module/hook containers, ``super().__init__`` only when a subclass sets
  ``call_super_init``), ``__setstate__`` (``self.__dict__.update(state)``, then hook
  containers missing from old checkpoints assigned through ``Module.__setattr__``: for such
  values it only tests membership in ``_parameters``/``_modules``/``_buffers`` before
  ``object.__setattr__``), ``__getattr__`` (looks names up in ``_parameters``, ``_buffers``,
  ``_modules``: computed), and ``__setattr__`` (for a Parameter, Module or Buffer value it
  calls ``self.register_parameter``/``self.register_buffer``, which instance attributes can
  replace, ``.discard`` of containers read from the instance ``__dict__``, and the
  process-wide module registration hooks).
* ``torch/nn/parameter.py``: ``Parameter.__new__(data, requires_grad)``: for an exact
  Tensor/Parameter ``torch.Tensor._make_subclass``; otherwise ``data.detach()
  .requires_grad_()`` (a method of the argument). ``Buffer.__new__`` always calls
  ``data.detach()``. The metaclasses define ``__instancecheck__`` only.
* ``torch/_tensor.py``: ``Tensor.__setstate__`` (legacy states: ``self.set_(*state)``,
  looked up on the instance, or ``self.data``/``requires_grad``/``_backward_hooks``);
  ``torch.save`` never uses it (tensors come from ``torch._utils._rebuild_tensor_v2``), but
  ``_rebuild_parameter_with_state`` sets arbitrary attributes on a parameter, so an
  instance attribute can stand in for ``set_``.
* ``torch/nn/modules/container.py``: ``Sequential``/``ModuleList`` ``append``/``extend``/
  ``__setitem__`` go through ``self.add_module`` or ``setattr(self, ...)``;
  ``ParameterList``/``ParameterDict`` through ``setattr`` and ``Parameter(...)``;
  ``ModuleDict.keys``/``ParameterDict.keys`` return ``keys()`` of a container read from the
  instance ``__dict__``. All of these can reach instance attributes set by a previous BUILD.

Fail closed where the sources were not read: whether each nn subclass overrides
``Module.__setstate__`` or defines its own ``__init__`` was not checked line by line against
an installed torch (``_ConvNd``, ``RNNBase``, ``MultiheadAttention``, ``Softmax``/
``Softmin``/``LogSoftmax`` and the transformer layers are known to override it), so every
subclass's ``__setstate__`` and ``__init__`` are marked not safe with that reason. Only
``Module`` itself is reviewed.
"""

from __future__ import annotations

from modelsec.pickle.allowlist import HAND_WRITTEN_SAFE

_MODULE = "torch.nn.modules.module.Module"
_TENSOR = "torch._tensor.Tensor"
_NOT_INSTALLED = "not verified: PyTorch is not installed here"

_SUBCLASS_SETSTATE = (
    f"{_NOT_INSTALLED}; this class may override Module.__setstate__ "
    "(Module.__setstate__ itself is reviewed safe)"
)
_SUBCLASS_INIT = f"{_NOT_INSTALLED}; builds parameters with torch factory functions"
_MODULE_SETATTR = (
    "calls self.register_parameter/self.register_buffer (instance attributes from the state "
    "can replace them), .discard() of containers read from the instance __dict__, and the "
    "global module registration hooks"
)
_TENSOR_SETSTATE = (
    "legacy states call self.set_(*state), looked up on the instance (an attribute set by "
    "torch._utils._set_obj_state can replace it); else sets data/requires_grad/_backward_hooks"
)

# Container methods the unpickler reaches (APPEND(S), SETITEM(S), dict-style constructors).
_CONTAINER_METHODS: dict[str, dict[str, str]] = {
    "torch.nn.modules.container.Sequential": {
        "append": "calls self.add_module (an instance attribute from the state can replace it)",
        "extend": "calls self.append for each item (an instance attribute can replace it)",
        "__setitem__": "setattr(self, key, module): Module.__setattr__ with a Module value",
    },
    "torch.nn.modules.container.ModuleList": {
        "append": "calls self.add_module (an instance attribute from the state can replace it)",
        "extend": "calls self.add_module for each item (an instance attribute can replace it)",
        "__setitem__": "setattr(self, str(idx), module): Module.__setattr__ with a Module value",
    },
    "torch.nn.modules.container.ModuleDict": {
        "__setitem__": "calls self.add_module (an instance attribute from the state can replace it)",
        "keys": "returns self._modules.keys(): keys() of a container from the instance __dict__",
    },
    "torch.nn.modules.container.ParameterList": {
        "append": "self[len] = value through ParameterList.__setitem__ (Parameter(...) and setattr)",
        "extend": "calls self.append for each item (an instance attribute can replace it)",
        "__setitem__": "wraps tensors in Parameter(...), then setattr(self, str(idx), param)",
    },
    "torch.nn.modules.container.ParameterDict": {
        "__setitem__": "wraps tensors in Parameter(...), then setattr(self, key, value)",
        "keys": "returns self._keys.keys(): keys() of a container from the instance __dict__",
    },
}


def _fact(owner: str, safe: bool, why: str) -> list[object]:
    return [owner, safe, why]


def _module_facts() -> dict[str, object]:
    return {
        "builtin_base": "object",
        "instance_dict": True,
        "dynamic_getattr": True,  # Module.__getattr__: parameters, buffers, submodules
        "methods": {
            "__init__": _fact(_MODULE, True, "reviewed"),
            "__setstate__": _fact(_MODULE, True, "reviewed"),
            "__setattr__": _fact(_MODULE, False, _MODULE_SETATTR),
        },
    }


def _subclass_facts(path: str) -> dict[str, object]:
    methods = {
        "__init__": _fact(path, False, _SUBCLASS_INIT),
        "__setstate__": _fact(path, False, _SUBCLASS_SETSTATE),
        "__setattr__": _fact(_MODULE, False, _MODULE_SETATTR),
    }
    for name, why in _CONTAINER_METHODS.get(path, {}).items():
        methods[name] = _fact(path, False, why)
    return {"builtin_base": "object", "instance_dict": True, "dynamic_getattr": True, "methods": methods}


def _tensor_like(new: list[object]) -> dict[str, object]:
    return {
        "builtin_base": "other",  # torch._C.TensorBase
        "instance_dict": True,  # Python subclasses of TensorBase carry a __dict__
        "dynamic_getattr": False,
        "methods": {
            "__new__": new,
            "__setstate__": _fact(_TENSOR, False, _TENSOR_SETSTATE),
            "__setitem__": _fact(_TENSOR, False, f"{_NOT_INSTALLED}; tensor index assignment (C++)"),
        },
    }


def _plain(path: str, init_why: str) -> dict[str, object]:
    """A plain Python helper class (hooks records): __init__ only stores its arguments."""
    return {
        "builtin_base": "object",
        "instance_dict": True,
        "dynamic_getattr": False,
        "methods": {"__init__": _fact(path, False, init_why)},
    }


_STORAGE_NEW = (
    f"{_NOT_INSTALLED}; storages are named in torch.save persistent ids and built by the "
    "loader, never called by the pickle itself"
)


def _storage(path: str) -> dict[str, object]:
    return {
        "builtin_base": "other" if path.endswith("UntypedStorage") else "object",
        "instance_dict": True,
        "dynamic_getattr": False,
        "methods": {"__new__": _fact(path, False, _STORAGE_NEW)},
    }


def _build() -> dict[str, object]:
    classes: dict[str, object] = {
        _MODULE: _module_facts(),
        _TENSOR: _tensor_like(
            _fact(_TENSOR, True, "reviewed")  # legacy constructor: sizes, numbers, a storage
        ),
        "torch.Tensor": _TENSOR,
        "torch.nn.parameter.Parameter": _tensor_like(
            _fact(
                "torch.nn.parameter.Parameter",
                False,
                "reviewed: safe only if data is a torch.Tensor or Parameter (else data.detach())",
            )
        ),
        "torch.nn.parameter.UninitializedParameter": _tensor_like(
            _fact("torch.nn.parameter.UninitializedParameter", True, "reviewed")  # torch.empty(0)
        ),
        "torch.nn.parameter.UninitializedBuffer": _tensor_like(
            _fact("torch.nn.parameter.UninitializedBuffer", True, "reviewed")  # torch.empty(0)
        ),
        "torch.nn.parameter.Buffer": {
            "builtin_base": "object",
            "instance_dict": True,
            "dynamic_getattr": False,
            "methods": {
                "__new__": _fact(
                    "torch.nn.parameter.Buffer",
                    False,
                    "reviewed: safe only if data is a torch.Tensor (calls data.detach())",
                )
            },
        },
        "torch.Size": {
            "builtin_base": "tuple",
            "instance_dict": False,
            "dynamic_getattr": False,
            "methods": {"__new__": _fact("torch.Size", True, "reviewed")},  # C: a tuple of ints
        },
        "torch.device": {
            "builtin_base": "other",
            "instance_dict": False,
            "dynamic_getattr": False,
            "methods": {"__new__": _fact("torch.device", True, "reviewed")},  # parses "cuda:0"
        },
        "torch.nn.utils.weight_norm.WeightNorm": _plain(
            "torch.nn.utils.weight_norm.WeightNorm", f"{_NOT_INSTALLED}; stores name and dim"
        ),
    }
    for name in ("SpectralNorm", "SpectralNormStateDictHook", "SpectralNormLoadStateDictPreHook"):
        path = f"torch.nn.utils.spectral_norm.{name}"
        classes[path] = _plain(path, f"{_NOT_INSTALLED}; stores its arguments")
    for path in sorted(HAND_WRITTEN_SAFE):
        if path.startswith("torch.nn.modules.") and path != _MODULE:
            classes[path] = _subclass_facts(path)
        elif path.endswith("Storage") and path.startswith("torch"):
            classes[path] = _storage(path)
    return classes


# path -> facts (the JSON shape) or, for an alias, the defining path.
TORCH_CLASSES: dict[str, object] = _build()
