"""Class facts for PyTorch, written by hand from PyTorch's source (torch is not installed here,
so the generator cannot inspect it). Same shape as the generated ``classfacts_*.json`` entries:
for every allowlisted torch class, which class in its MRO defines each method the unpickler
calls implicitly, and whether that code is safe.

What was read (``pytorch/pytorch`` through the project's code-search tools; "@ <hash>" is the
commit the index reported, "id <n>" an index file whose commit it does not report, dated by
its content). The index holds one arbitrary version per path, so some files are older than 2.x;
the facts below hold for every 2.x version seen, and the differences are named:

* ``torch/nn/modules/module.py`` id 37839109 (2.6-era: imports ``Buffer``, builtin generics)
  and @ d4cc86dc (2.0 development). ``Module`` defines ``__init__``, ``__setstate__``,
  ``__getattr__`` and ``__setattr__``; no ``__new__``, ``__getattribute__``, ``__setitem__``,
  ``append``, ``extend`` or ``keys``. ``__setstate__`` is *not* unconditionally safe (below).
* ``rnn.py`` @ e6f551aa (2.6-era): ``RNNBase`` defines ``__setattr__`` and ``__setstate__``.
* ``conv.py`` @ ddbcf1cd (2.5-era): ``_ConvNd.__setstate__`` sets ``padding_mode``.
* ``activation.py`` @ 691d5f4b (1.13-era): ``MultiheadAttention``, ``Softmin``, ``Softmax``,
  ``LogSoftmax`` define ``__setstate__`` (unchanged in the 2.x copies seen).
* ``transformer.py`` @ 00ac522b (2.1/2.2-era): both layer classes define ``__setstate__``;
  the decoder layer's writes ``state['activation']`` before ``Module.__setstate__`` (other
  versions test ``hasattr`` afterwards, as the encoder layer does: same calls either way).
* ``pooling.py`` @ 91bfcd85 (1.0-era) and the 2.x text of ``AvgPool3d.__setstate__`` (id
  186994954): three ``self.__dict__.setdefault`` calls. ``LPPool3d`` is newer than the file read.
* ``upsampling.py`` @ dbd868bd (1.0-era, no ``__setstate__``); ``Upsample.__setstate__``
  (2.x: ``state['recompute_scale_factor'] = True`` when missing) from copies of the 2.x file
  (ids 27532105881, 69006602661), not from pytorch/pytorch itself.
* ``container.py`` @ 67de33e9 (2.1/2.2-era), ``lazy.py`` @ 6a57601b, ``batchnorm.py`` @
  5c6695ee, ``instancenorm.py`` @ b8393cca, ``normalization.py`` @ f3eef903, ``sparse.py`` @
  fc42e13b, ``dropout.py`` @ c246a23e, ``padding.py`` @ d59313b0, ``loss.py`` @ 60ceafb3,
  ``linear.py`` @ f2889c83 (1.13-era), ``flatten.py`` @ d1dc13ef, ``fold.py`` @ 03d697c5,
  ``pixelshuffle.py`` @ f69ee7e3 (1.0-era, before ``PixelUnshuffle``), ``channelshuffle.py`` @
  0f97fccb, ``distance.py`` @ b011322f: no other ``__setstate__``, ``__setattr__``,
  ``__getattr__`` or ``__new__`` in ``torch/nn/modules``.
* ``torch/nn/parameter.py`` @ 38943a19 and @ 0301bbbc (2.0-era). ``Buffer`` (2.5+) is not in
  the index's versions; its ``__new__`` was read in downstream ports of the 2.x file (ids
  20389820296, 6719602853): ``data.detach().requires_grad_(data.requires_grad)``.
* ``torch/_tensor.py`` @ 480d2efa (2.1-era) for ``Tensor.__setstate__``;
  ``torch/csrc/utils/tensor_new.cpp`` (ids 10180037456, 27278121083) for the constructor.
* ``torch/storage.py`` id 5338394 (2.6-era); ``torch/csrc/Size.cpp`` (id 25476376);
  ``torch/csrc/Device.cpp`` (id 25005848); ``torch/nn/utils/weight_norm.py`` @ 6fb41529;
  ``torch/nn/utils/spectral_norm.py`` @ f933b7ee.

What the review found, beyond "calls super and sets a default":

* ``Module.__setstate__`` updates ``__dict__`` with the state, then assigns every missing hook
  container through ``type(self).__setattr__``. For the missing ``_is_full_backward_hook`` the
  value is None, and ``Module.__setattr__`` of None calls ``self.register_parameter`` (when the
  name is a key of ``_parameters``) or ``self.register_buffer`` (2.5+; before, a dict store),
  looked up on the instance: the state just put any callable there. ``register_buffer`` then
  calls ``self._non_persistent_buffers_set.discard``. So every module ``__setstate__`` is
  reviewed *with a condition* on the instance ``__dict__``: :data:`STATE_CONDITIONS`.
* ``RNNBase.__setattr__`` runs for every attribute its ``__setstate__`` (and Module's) assigns,
  and calls ``self._flat_weights_names.index(name)`` and ``self._flat_weights[i] = value``:
  methods of values from the state.
* The legacy tensor constructor (``Tensor.__new__``) accepts a hidden keyword ``cdata=<int>``
  that it casts to a C++ tensor pointer (``at::unsafeTensorFromTH``): NEWOBJ_EX can pass it.
  The previous hand review had it safe.
* ``__init__`` runs only when a stream *calls* a class (REDUCE, INST, OBJ); torch.save builds
  modules with NEWOBJ. Constructors that only store their arguments are reviewed safe; those
  that allocate tensors sized by their arguments (on a device an argument may name), deep-copy
  or call methods of their arguments are not, with the reason.
"""

from __future__ import annotations

from modelsec.pickle.allowlist import HAND_WRITTEN_SAFE

_Fact = list[object]  # [owner, safe, why], the JSON shape classfacts._parse reads

_MODULE = "torch.nn.modules.module.Module"
_TENSOR = "torch._tensor.Tensor"
_TENSOR_BASE = "torch._C.TensorBase"  # torch._C._TensorBase up to 2.1
_TYPED = "torch.storage.TypedStorage"
_RNN_BASE = "torch.nn.modules.rnn.RNNBase"
_NN = "torch.nn.modules"

# -- conditions on a module's instance __dict__, per __setstate__ ---------------------------

# What must hold of the instance __dict__ once BUILD merged the state into it (this state over
# whatever earlier BUILDs of the same instance wrote): "absent" keys must not be there; "set" /
# "list" keys, when there, must be exactly that builtin (torch.save writes them so). Keyed by
# "<owner>.__setstate__", as the machine's method contracts are.
_MODULE_STATE = {
    "register_parameter": "absent",
    "register_buffer": "absent",
    "_non_persistent_buffers_set": "set",
}
_RNN_STATE = {**_MODULE_STATE, "_flat_weights_names": "list", "_flat_weights": "list"}

_MODULE_CONDITION = (
    "the instance __dict__ after the update holds no register_parameter or register_buffer "
    "and its _non_persistent_buffers_set is a set"
)
_MODULE_SETSTATE = (
    f"reviewed: safe only if {_MODULE_CONDITION}: self.__dict__.update(state), then each "
    "missing hook container is assigned through type(self).__setattr__; for the missing "
    "_is_full_backward_hook (None) Module.__setattr__ calls self.register_parameter or "
    "self.register_buffer (2.5+; before, _buffers[name] = None) when that name is a key of "
    "_parameters or _buffers, and Module.register_buffer calls "
    "self._non_persistent_buffers_set.discard; otherwise dict updates and membership tests on "
    "the state's _parameters/_buffers/_modules [module.py id 37839109, @ d4cc86dc]"
)


def _after_module(what: str, source: str) -> str:
    return f"reviewed: safe only if {_MODULE_CONDITION} (Module.__setstate__ and {what}) [{source}]"


# owner -> why, for every class that overrides Module.__setstate__
_SETSTATE_OVERRIDES: dict[str, str] = {
    f"{_NN}.conv._ConvNd": _after_module(
        "padding_mode = 'zeros' when hasattr says it is missing", "conv.py @ ddbcf1cd"
    ),
    _RNN_BASE: (
        f"reviewed: safe only if {_MODULE_CONDITION} and _flat_weights_names and _flat_weights "
        "are lists: every attribute Module.__setstate__ and RNNBase.__setstate__ assign goes "
        "through RNNBase.__setattr__, which for a name in self._flat_weights_names calls its "
        ".index(name) and assigns self._flat_weights[i]; it also reads _all_weights[0][0], "
        "rebuilds the weight "
        "name lists from literal formats and takes weakref.ref of each flat weight "
        "[rnn.py @ e6f551aa]"
    ),
    f"{_NN}.activation.MultiheadAttention": _after_module(
        "state['_qkv_same_embed_dim'] = True when missing, before it", "activation.py @ 691d5f4b"
    ),
    **{
        f"{_NN}.activation.{name}": _after_module(
            "dim = None when hasattr says it is missing", "activation.py @ 691d5f4b"
        )
        for name in ("Softmin", "Softmax", "LogSoftmax")
    },
    f"{_NN}.transformer.TransformerEncoderLayer": _after_module(
        "activation = F.relu when hasattr says it is missing", "transformer.py @ 00ac522b"
    ),
    f"{_NN}.transformer.TransformerDecoderLayer": _after_module(
        "state['activation'] = F.relu when missing, before it", "transformer.py @ 00ac522b"
    ),
    f"{_NN}.pooling.AvgPool3d": _after_module(
        "self.__dict__.setdefault of padding, ceil_mode, count_include_pad",
        "pooling.py @ 91bfcd85, 2.x text id 186994954",
    ),
    f"{_NN}.upsampling.Upsample": _after_module(
        "state['recompute_scale_factor'] = True when missing, before it",
        "upsampling.py 2.x copies ids 27532105881, 69006602661",
    ),
}

STATE_CONDITIONS: dict[str, dict[str, str]] = {
    f"{_MODULE}.__setstate__": _MODULE_STATE,
    **{
        f"{owner}.__setstate__": _RNN_STATE if owner == _RNN_BASE else _MODULE_STATE
        for owner in _SETSTATE_OVERRIDES
    },
}

# -- other module methods ------------------------------------------------------------------

_MODULE_SETATTR = (
    "calls self.register_parameter / self.register_buffer (instance attributes from the state "
    "can replace them), .discard of the instance's _non_persistent_buffers_set, item stores "
    "into its _modules, and the process-wide registration hooks [module.py id 37839109]"
)
_RNN_SETATTR = (
    "calls self._flat_weights_names.index(name) and assigns self._flat_weights[i] (values from "
    "the state), then Module.__setattr__ [rnn.py @ e6f551aa]"
)
_MODULE_INIT = (
    "reviewed: torch._C._log_api_usage_once (usage logging), rejects arguments unless "
    "call_super_init, object.__setattr__ of empty containers [module.py id 37839109]"
)

# Container methods the unpickler reaches (APPEND(S), SETITEM(S), dict-style constructors).
_CONTAINER = "container.py @ 67de33e9"
_ADD_MODULE = "calls self.add_module(str(len(self)), module), looked up on the instance"
_EACH_APPEND = "calls self.append for each item, looked up on the instance"
_BY_INDEX = "calls self.{helper} (looked up on the instance), then setattr: Module.__setattr__"
_KEYS = "returns self.{name}.keys(): a method of a value from the state"
_CONTAINER_METHODS: dict[str, dict[str, str]] = {
    "Sequential": {
        "append": _ADD_MODULE,
        "extend": _EACH_APPEND,
        "__setitem__": _BY_INDEX.format(helper="_get_item_by_idx"),
    },
    "ModuleList": {
        "append": _ADD_MODULE,
        "extend": "calls self.add_module for each item of its argument, looked up on the instance",
        "__setitem__": _BY_INDEX.format(helper="_get_abs_string_index"),
    },
    "ModuleDict": {
        "__setitem__": "calls self.add_module, looked up on the instance",
        "keys": _KEYS.format(name="_modules"),
    },
    "ParameterList": {
        "append": "self._size += 1, then self[len] = value: ParameterList.__setitem__",
        "extend": _EACH_APPEND,
        "__setitem__": _BY_INDEX.format(helper="_get_abs_string_index")
        + "; Parameter(tensor) calls data.detach() for a tensor subclass",
    },
    "ParameterDict": {
        "__setitem__": "self._keys[key] = None on a value from the state, "
        + _BY_INDEX.format(helper="_key_to_attr")
        + "; Parameter(tensor) as for ParameterList",
        "keys": _KEYS.format(name="_keys"),
    },
}

# -- constructors (__init__), class by class ---------------------------------------------

_STORE = (
    "reviewed: stores its arguments on the fresh instance through Module.__setattr__ (no "
    "instance attribute can shadow a method yet); validation compares or formats them"
)
_ALLOC = (
    "allocates parameters/buffers sized by its arguments (torch.empty/zeros on a device and "
    "dtype the arguments may name, which can initialise that backend) and runs reset_parameters"
)
_LAZY = (
    "builds UninitializedParameter/Buffer on a device the arguments may name and registers "
    "hooks of bound methods (LazyModuleMixin.__init__, lazy.py @ 6a57601b)"
)
_CONTAINER_INIT = (
    "iterates its argument or calls its items() (a method of an argument), then adds each item "
    "through self.add_module / self[key] = (Module.__setattr__ for parameters)"
)
_LOSS_INIT = (
    "not reviewed: _Loss.__init__ calls torch.nn._reduction.legacy_get_string when "
    "size_average or reduce is given (not read); the weighted losses register a weight buffer"
)
_NEWER = "not verified: the class is newer than the version read [{file}]"
_INIT_REASONS = {"alloc": _ALLOC, "lazy": _LAZY, "container": _CONTAINER_INIT, "loss": _LOSS_INIT}

# class -> (class defining __init__, or None for Module's; kind), kind: "store", "alloc",
# "lazy", "container", "loss", "newer" or a specific reason (unsafe).
_Init = tuple[str | None, str]
_SRC_OF_FILE = {
    "activation": "activation.py @ 691d5f4b",
    "linear": "linear.py @ f2889c83",
    "conv": "conv.py @ ddbcf1cd",
    "batchnorm": "batchnorm.py @ 5c6695ee",
    "instancenorm": "instancenorm.py @ b8393cca",
    "normalization": "normalization.py @ f3eef903",
    "sparse": "sparse.py @ fc42e13b",
    "dropout": "dropout.py @ c246a23e",
    "container": "container.py @ 67de33e9",
    "rnn": "rnn.py @ e6f551aa",
    "transformer": "transformer.py @ 00ac522b",
    "pooling": "pooling.py @ 91bfcd85",
    "flatten": "flatten.py @ d1dc13ef",
    "padding": "padding.py @ d59313b0",
    "upsampling": "upsampling.py @ dbd868bd and 2.x copies",
    "pixelshuffle": "pixelshuffle.py @ f69ee7e3",
    "channelshuffle": "channelshuffle.py @ 0f97fccb",
    "distance": "distance.py @ b011322f",
    "fold": "fold.py @ 03d697c5",
    "loss": "loss.py @ 60ceafb3",
}


def _own(*names: str, kind: str = "store") -> dict[str, _Init]:
    return {name: (name, kind) for name in names}


def _via(owner: str | None, *names: str, kind: str = "store") -> dict[str, _Init]:
    return {name: (owner, kind) for name in names}


_INITS: dict[str, dict[str, _Init]] = {
    "activation": {
        **_own(
            "Threshold",
            "ReLU",
            "RReLU",
            "Hardtanh",
            "ReLU6",
            "Hardsigmoid",
            "SiLU",
            "Mish",
            "Hardswish",
            "ELU",
            "CELU",
            "SELU",
            "GLU",
            "GELU",
            "Hardshrink",
            "LeakyReLU",
            "Softplus",
            "Softshrink",
            "Softmin",
            "Softmax",
            "LogSoftmax",
        ),  # fmt: skip
        **_via(None, "Sigmoid", "Tanh", "LogSigmoid", "Softsign", "Tanhshrink", "Softmax2d"),
        **_own("MultiheadAttention", "PReLU", kind="alloc"),
    },
    "linear": {
        **_own("Identity"),  # ignores its arguments
        **_own("Linear", "Bilinear", "NonDynamicallyQuantizableLinear", kind="alloc"),
        **_own("LazyLinear", kind="lazy"),
    },
    "conv": {
        **_own(
            "Conv1d",
            "Conv2d",
            "Conv3d",
            "ConvTranspose1d",
            "ConvTranspose2d",
            "ConvTranspose3d",
            kind="alloc",
        ),  # fmt: skip
        **_own("LazyConv1d", "LazyConv2d", "LazyConv3d", kind="lazy"),
    },
    "batchnorm": {
        **_via("_BatchNorm", "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", kind="alloc"),
        **_own("SyncBatchNorm", kind="alloc"),
        **_via("_LazyNormBase", "LazyBatchNorm1d", "LazyBatchNorm2d", "LazyBatchNorm3d", kind="lazy"),
    },
    "instancenorm": _via("_InstanceNorm", "InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d", kind="alloc"),
    "normalization": {
        **_own("LocalResponseNorm", "CrossMapLRN2d"),
        **_own("LayerNorm", "GroupNorm", "RMSNorm", kind="alloc"),
    },
    "sparse": _own(
        "Embedding",
        "EmbeddingBag",
        kind="reads _weight.shape and wraps _weight in Parameter (data.detach() for a tensor "
        "subclass): methods of an argument; otherwise allocates like the layers",
    ),
    "dropout": _via(
        "_DropoutNd",
        "Dropout",
        "Dropout1d",
        "Dropout2d",
        "Dropout3d",
        "AlphaDropout",
        "FeatureAlphaDropout",
    ),
    "container": _own(
        "Sequential", "ModuleList", "ModuleDict", "ParameterList", "ParameterDict", kind="container"
    ),
    "rnn": _own(
        "RNNBase", "RNN", "LSTM", "GRU", "RNNCellBase", "RNNCell", "LSTMCell", "GRUCell", kind="alloc"
    ),
    "transformer": {
        **_own("Transformer", "TransformerEncoderLayer", "TransformerDecoderLayer", kind="alloc"),
        **_own(
            "TransformerEncoder",
            "TransformerDecoder",
            kind="copy.deepcopy of its layer argument num_layers times: __deepcopy__ / "
            "__reduce_ex__ looked up on an argument",
        ),
    },
    "pooling": {
        **_via("_MaxPoolNd", "MaxPool1d", "MaxPool2d", "MaxPool3d"),
        **_own("AvgPool1d", "AvgPool2d", "AvgPool3d", "MaxUnpool1d", "MaxUnpool2d", "MaxUnpool3d"),
        **_own("FractionalMaxPool2d", "FractionalMaxPool3d"),  # register_buffer of an argument
        **_via("_AdaptiveMaxPoolNd", "AdaptiveMaxPool1d", "AdaptiveMaxPool2d", "AdaptiveMaxPool3d"),
        **_via("_AdaptiveAvgPoolNd", "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveAvgPool3d"),
        **_via("_LPPoolNd", "LPPool1d", "LPPool2d"),
        **_own("LPPool3d", kind="newer"),
    },
    "flatten": _own("Flatten", "Unflatten"),
    "padding": _own(
        "ZeroPad1d",
        "ZeroPad2d",
        "ZeroPad3d",
        "ConstantPad1d",
        "ConstantPad2d",
        "ConstantPad3d",
        "ReflectionPad1d",
        "ReflectionPad2d",
        "ReflectionPad3d",
        "ReplicationPad1d",
        "ReplicationPad2d",
        "ReplicationPad3d",
        "CircularPad1d",
        "CircularPad2d",
        "CircularPad3d",
    ),  # fmt: skip
    "upsampling": {**_own("Upsample"), **_own("UpsamplingNearest2d", "UpsamplingBilinear2d")},
    "pixelshuffle": {**_own("PixelShuffle"), **_own("PixelUnshuffle", kind="newer")},
    "channelshuffle": _own("ChannelShuffle"),
    "distance": _own("CosineSimilarity", "PairwiseDistance"),
    "fold": _own("Fold", "Unfold"),
    "loss": {
        **_own(
            "L1Loss",
            "MSELoss",
            "CrossEntropyLoss",
            "NLLLoss",
            "BCELoss",
            "BCEWithLogitsLoss",
            "KLDivLoss",
            "HuberLoss",
            "SmoothL1Loss",
            "SoftMarginLoss",
            "MultiLabelSoftMarginLoss",
            "MultiLabelMarginLoss",
            "MarginRankingLoss",
            "HingeEmbeddingLoss",
            "CosineEmbeddingLoss",
            "TripletMarginLoss",
            "PoissonNLLLoss",
            "GaussianNLLLoss",
            "CTCLoss",
            kind="loss",
        ),  # fmt: skip
        **_own("MultiMarginLoss", kind=f"calls weight.dim() on its weight argument; {_LOSS_INIT}"),
    },
}

# __setstate__ owner by class where it is not Module's (MRO: the LazyConv*, ConvTranspose*d
# and Conv*d classes reach _ConvNd; RNN/LSTM/GRU reach RNNBase; the Upsampling*2d classes
# reach Upsample).
_SETSTATE_OWNER: dict[str, str] = {
    **{f"{_NN}.conv.{name}": f"{_NN}.conv._ConvNd" for name in _INITS["conv"]},
    **{f"{_NN}.rnn.{name}": _RNN_BASE for name in ("RNNBase", "RNN", "LSTM", "GRU")},
    **{
        f"{_NN}.upsampling.{name}": f"{_NN}.upsampling.Upsample"
        for name in ("Upsample", "UpsamplingNearest2d", "UpsamplingBilinear2d")
    },
    **{owner: owner for owner in _SETSTATE_OVERRIDES if not owner.endswith(("._ConvNd", ".Upsample"))},
}


def _init_fact(file: str, owner: str | None, kind: str) -> _Fact:
    """The __init__ a call of the class runs: Module's (owner None) or one in ``file``."""
    if owner is None:
        return [_MODULE, True, _MODULE_INIT]
    path, source = f"{_NN}.{file}.{owner}", _SRC_OF_FILE[file]
    if kind == "store":
        return [path, True, f"{_STORE} [{source}]"]
    if kind == "newer":
        return [path, False, _NEWER.format(file=source)]
    reason = _INIT_REASONS.get(kind, kind)  # anything else is a specific reason
    return [path, False, f"{reason} [{source}]"]


def _module_class(file: str, name: str) -> dict[str, object]:
    path = f"{_NN}.{file}.{name}"
    owner, kind = _INITS[file][name]
    setstate_owner = _SETSTATE_OWNER.get(path, _MODULE)
    setstate_why = _MODULE_SETSTATE if setstate_owner == _MODULE else _SETSTATE_OVERRIDES[setstate_owner]
    rnn = setstate_owner == _RNN_BASE
    methods: dict[str, _Fact] = {
        "__init__": _init_fact(file, owner, kind),
        "__setstate__": [setstate_owner, False, setstate_why],
        "__setattr__": [_RNN_BASE, False, _RNN_SETATTR] if rnn else [_MODULE, False, _MODULE_SETATTR],
    }
    for method, why in _CONTAINER_METHODS.get(name, {}).items():
        methods[method] = [path, False, f"{why} [{_CONTAINER}]"]
    # Module.__getattr__ answers names from _parameters/_buffers/_modules: every lookup the
    # class does not answer itself is computed.
    return {"builtin_base": "object", "instance_dict": True, "dynamic_getattr": True, "methods": methods}


def _module() -> dict[str, object]:
    return {
        "builtin_base": "object",
        "instance_dict": True,
        "dynamic_getattr": True,
        "methods": {
            "__init__": [_MODULE, True, _MODULE_INIT],
            "__setstate__": [_MODULE, False, _MODULE_SETSTATE],
            "__setattr__": [_MODULE, False, _MODULE_SETATTR],
        },
    }


# -- tensors and parameters ------------------------------------------------------------------

_TENSOR_NEW = (
    "reviewed: safe only if it is given no keyword arguments: the legacy constructor "
    "(THPVariable_pynew -> legacy_tensor_generic_ctor_new) has a hidden keyword-only "
    "cdata=<int> that it reinterpret_casts to a TensorImpl pointer (at::unsafeTensorFromTH); "
    "NEWOBJ and REDUCE pass none, NEWOBJ_EX can. Positional forms: sizes (an allocation), a "
    "storage, a tensor, a sequence of numbers [tensor_new.cpp ids 10180037456, 27278121083]"
)
_TENSOR_SETSTATE = (
    "reviewed: safe only if the state is a 3- or 5-tuple whose backward-hooks item (state[2]) "
    "is empty: a 4-tuple calls self.set_(*state), looked up on the instance (an attribute set "
    "by _rebuild_from_type_v2 / _rebuild_parameter_with_state can replace it); the hooks are "
    "kept on the tensor and called at backward time; otherwise C setters of data, "
    "requires_grad [_tensor.py @ 480d2efa]"
)
_TENSOR_SETITEM = f"compiled ({_TENSOR_BASE}, THPVariable_setitem): index assignment, not reviewed"
_PARAMETER = "torch.nn.parameter.Parameter"
_PARAMETER_SRC = "parameter.py @ 38943a19, @ 0301bbbc"


def _tensor_like(new: _Fact) -> dict[str, object]:
    return {
        "builtin_base": "other",  # torch._C.TensorBase
        "instance_dict": True,  # Python subclasses of TensorBase carry a __dict__
        "dynamic_getattr": False,
        "methods": {
            "__new__": new,
            "__setstate__": [_TENSOR, False, _TENSOR_SETSTATE],
            "__setitem__": [_TENSOR_BASE, False, _TENSOR_SETITEM],
        },
    }


def _uninitialized(name: str) -> dict[str, object]:
    path = f"torch.nn.parameter.{name}"
    return _tensor_like(
        [
            path,
            True,
            "reviewed: torch.empty(0, device=, dtype=) then Tensor._make_subclass(cls, data, "
            f"requires_grad); a device argument can initialise that backend [{_PARAMETER_SRC}]",
        ]
    )


def _tensors() -> dict[str, object]:
    return {
        _TENSOR: _tensor_like([_TENSOR_BASE, False, _TENSOR_NEW]),
        "torch.Tensor": _TENSOR,
        _PARAMETER: _tensor_like(
            [
                _PARAMETER,
                False,
                "reviewed: safe only if data is None or exactly a torch.Tensor or Parameter "
                "(torch.Tensor._make_subclass, looked up on the class); anything else, tensor "
                f"subclasses included, gets data.detach().requires_grad_() called [{_PARAMETER_SRC}]",
            ]
        ),
        "torch.nn.parameter.UninitializedParameter": _uninitialized("UninitializedParameter"),
        "torch.nn.parameter.UninitializedBuffer": _uninitialized("UninitializedBuffer"),
        # Buffer.__new__ returns the detached tensor itself, never a Buffer instance.
        "torch.nn.parameter.Buffer": _tensor_like(
            [
                "torch.nn.parameter.Buffer",
                False,
                "reviewed: safe only if data is None or a torch.Tensor without detach in its "
                "instance __dict__ (torch._utils._set_obj_state, run by _rebuild_from_type_v2 and "
                "_rebuild_parameter_with_state, sets any attribute): it calls "
                "data.detach().requires_grad_(data.requires_grad) [ports of the 2.5+ file, ids "
                "20389820296, 6719602853]",
            ]
        ),
        "torch.Size": {
            "builtin_base": "tuple",
            "instance_dict": False,
            "dynamic_getattr": False,
            "methods": {
                "__new__": [
                    "torch.Size",
                    True,
                    "reviewed: tuple.__new__ of the argument, then operator.index of each item "
                    "that is not an int [Size.cpp THPSize_pynew, id 25476376]",
                ]
            },
        },
        "torch.device": {
            "builtin_base": "other",
            "instance_dict": False,
            "dynamic_getattr": False,
            "methods": {
                "__new__": [
                    "torch.device",
                    True,
                    "reviewed: parses device(Device) or device(str type, int? index) and "
                    "stores it, touching no backend; an argument type's __torch_function__ "
                    "would be dispatched (only torch's tensor classes define one) "
                    "[Device.cpp THPDevice_pynew, id 25005848]",
                ]
            },
        },
    }


# -- storages ---------------------------------------------------------------------------------

_STORAGE_SRC = "storage.py id 5338394"
_STORAGE_BASE = "torch._C.StorageBase"
_TYPED_INIT = (
    "runs the compiled torch.UntypedStorage(size * element_size) constructor or "
    f"torch.tensor(sequence) on its arguments: not reviewed [{_STORAGE_SRC}]"
)
_TYPED_SETITEM = (
    f"calls self._setitem, looked up on the instance, then tensor index assignment [{_STORAGE_SRC}]"
)
_LEGACY_NEW = (
    "for a legacy <T>Storage class it returns TypedStorage(*args, dtype=cls.dtype, device=...), "
    f"i.e. runs TypedStorage.__init__: {_TYPED_INIT} (torch/__init__.py and torch/cuda/__init__.py, "
    "which define the legacy classes, were not read)"
)


def _storage_class(path: str) -> dict[str, object]:
    """Storages are named in torch.save persistent ids and built by the loader; a pickle never
    needs to call one."""
    if path == "torch.storage.UntypedStorage":
        return {
            "builtin_base": "other",  # torch._C.StorageBase
            "instance_dict": True,
            "dynamic_getattr": False,
            "methods": {
                "__new__": [_STORAGE_BASE, False, "compiled (THPStorage_pynew), not reviewed"],
                "__setitem__": [_STORAGE_BASE, False, "compiled (THPStorage_set), not reviewed"],
            },
        }
    if path == _TYPED:
        new: _Fact = [
            _TYPED,
            True,
            "reviewed: for TypedStorage itself a deprecation warning unless _internal, then "
            f"object.__new__(cls) [{_STORAGE_SRC}]",
        ]
    elif path == "torch.storage._LegacyStorage":
        new = [_TYPED, True, f"reviewed: for _LegacyStorage itself: RuntimeError [{_STORAGE_SRC}]"]
    else:
        new = [_TYPED, False, _LEGACY_NEW]
    return {
        "builtin_base": "object",
        "instance_dict": True,
        "dynamic_getattr": False,
        "methods": {
            "__new__": new,
            "__init__": [_TYPED, False, _TYPED_INIT],
            "__setitem__": [_TYPED, False, _TYPED_SETITEM],
        },
    }


# -- weight and spectral norm hooks (kept in _forward_pre_hooks and friends) -----------------


def _plain(path: str, init_why: str) -> dict[str, object]:
    """A plain Python hook record: no __setstate__, so BUILD fills its __dict__ directly."""
    return {
        "builtin_base": "object",
        "instance_dict": True,
        "dynamic_getattr": False,
        "methods": {"__init__": [path, True, init_why]},
    }


def _norm_hooks() -> dict[str, object]:
    spectral = "torch.nn.utils.spectral_norm"
    return {
        "torch.nn.utils.weight_norm.WeightNorm": _plain(
            "torch.nn.utils.weight_norm.WeightNorm",
            "reviewed: stores name and dim (None -> -1) [weight_norm.py @ 6fb41529]",
        ),
        f"{spectral}.SpectralNorm": _plain(
            f"{spectral}.SpectralNorm",
            "reviewed: stores name, dim, n_power_iterations (ValueError unless > 0), eps "
            "[spectral_norm.py @ f933b7ee]",
        ),
        **{
            f"{spectral}.{name}": _plain(
                f"{spectral}.{name}", "reviewed: self.fn = fn [spectral_norm.py @ f933b7ee]"
            )
            for name in ("SpectralNormStateDictHook", "SpectralNormLoadStateDictPreHook")
        },
    }


# -- the table --------------------------------------------------------------------------------


def _build() -> dict[str, object]:
    classes: dict[str, object] = {_MODULE: _module(), **_tensors(), **_norm_hooks()}
    for file, inits in _INITS.items():
        for name in inits:
            classes[f"{_NN}.{file}.{name}"] = _module_class(file, name)
    for path in sorted(HAND_WRITTEN_SAFE):
        if not path.startswith("torch") or not path.endswith("Storage"):
            continue
        defining = {"torch.UntypedStorage": "torch.storage.UntypedStorage", "torch.TypedStorage": _TYPED}
        if path in defining:
            classes[path] = defining[path]  # alias of the class torch/storage.py defines
        else:
            classes[path] = _storage_class(path)
    for defining_path in ("torch.storage.UntypedStorage", _TYPED):
        classes.setdefault(defining_path, _storage_class(defining_path))
    return classes


# path -> facts (the JSON shape) or, for an alias, the defining path.
TORCH_CLASSES: dict[str, object] = _build()
