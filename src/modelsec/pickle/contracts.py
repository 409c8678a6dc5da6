"""Argument contracts of the allowlisted functions: what each one does with what it is given.

Most allowlisted callables are classes, and calling a class runs methods the allowlist
generator has read (:mod:`~modelsec.pickle.classfacts`). The hand-written *functions* are
rebuild helpers, and some of them are trampolines or resolvers: ``copyreg._reconstructor``
instantiates the class it is given, ``torch._utils._rebuild_from_type_v2`` calls the function
it is given with arguments it is given, NumPy's ``_ufunc_reconstruct(module, name)`` imports a
module and reads an attribute, NumPy's random-state constructors call a bit-generator
constructor passed as an argument. A helper is only as safe as what it is handed.

So every allowlisted function has a contract here, written as a small function over a
:class:`Site`: which arguments must be literal names from a closed set, which are classes it
instantiates (they must be allowlisted classes), which are callables it calls now (the call is
evaluated like any other) or later (they must be allowlisted), which are plain data. A call
outside its contract, or with arguments the machine cannot see, is a finding: the analysis
never guesses in favour of a trampoline. ``tests/pickle/test_contracts.py`` checks that every
allowlisted global is a known class, has a contract, or is a constant nobody calls.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Protocol

from modelsec.pickle.classfacts_torch import STATE_CONDITIONS
from modelsec.pickle.joblib_arrays import is_array_wrapper
from modelsec.pickle.observer import Observer
from modelsec.pickle.opcodes import BigInt, Blob
from modelsec.pickle.policy import Verdict
from modelsec.pickle.values import (
    Call,
    Container,
    Derived,
    Global,
    Value,
    describe,
    dict_items,
    reachable_containers,
    sequence_items,
)

# copyreg._reconstructor(cls, base, state) runs base.__new__(cls, state) and base.__init__:
# only bases whose constructors merely store or copy data.
BUILTIN_BASES = frozenset(
    f"builtins.{name}"
    for name in "object list dict set frozenset tuple int float complex str bytes bytearray".split()
)
# Bit generators numpy's pickles name (numpy.random._pickle.BitGenerators).
BIT_GENERATORS = {
    "MT19937": "numpy.random._mt19937.MT19937",
    "PCG64": "numpy.random._pcg64.PCG64",
    "PCG64DXSM": "numpy.random._pcg64.PCG64DXSM",
    "Philox": "numpy.random._philox.Philox",
    "SFC64": "numpy.random._sfc64.SFC64",
}
_BIT_GENERATOR_CTORS = frozenset({"numpy.random._pickle.__bit_generator_ctor"})
# Text codecs _codecs.encode(str, codec) is given by pickles of bytes (protocol 0-2): a codec
# name is a module lookup in the encodings package, so only these literal names pass.
TEXT_CODECS = frozenset({"latin1", "latin-1", "latin_1", "iso-8859-1", "iso8859-1", "utf-8", "utf8", "ascii"})


class Site(Protocol):
    """One call of an allowlisted function, as its contract sees it (see invoke.CallSite)."""

    callee: Global
    offset: int
    receiver: Value  # the instance a method is called on (method contracts), else None

    @property
    def observer(self) -> Observer: ...  # what the machine reports to; reads array bytes back

    def arg(self, index: int) -> Value: ...
    def count(self) -> int | None: ...
    def data(self, *indexes: int) -> None: ...

    kwargs: Value  # NEWOBJ_EX's keyword arguments, None when there were none

    def klass(
        self, index: int, *, data_ok: bool = False, calls: tuple[str, ...] = ("__new__",), args: Value = ()
    ) -> Global | None: ...
    def exact(self, index: int, allowed: frozenset[str], *, optional: bool = False) -> Global | None: ...
    def name(self, index: int, allowed: frozenset[str], *, optional: bool = False) -> str | None: ...
    def called_now(self, func_index: int, args_index: int) -> Value: ...
    def called_later(self, index: int) -> None: ...
    def instance(self, cls: Global | str | None, *, state: Value = None) -> Value: ...
    def construct(self) -> Value: ...
    def setstate(self, instance: Value, state: Value) -> Value: ...
    def resolve(self, module_index: int, name_index: int) -> Value: ...
    def result(self) -> Value: ...
    def violation(self, what: str) -> None: ...


Contract = Callable[[Site], Value]


# -- the standard library ---------------------------------------------------------------------


def _reconstructor(site: Site) -> Value:
    # copyreg._reconstructor(cls, base, state): base.__new__(cls, state), then base.__init__:
    # the builtin base's methods run, not the class's own, on the state as on the argument
    # of base(state) (str() calls its __str__, list() its __iter__, int() its __index__)
    cls = site.klass(0, calls=())
    site.exact(1, BUILTIN_BASES)
    site.data(2)
    base, state = site.arg(1), site.arg(2)
    if isinstance(base, Global) and base.path != "builtins.object" and state is not None:
        _check_builtin_argument(site, base.path, 0, state)
    return site.instance(cls)


def _newobj(site: Site) -> Value:
    # copyreg.__newobj__(cls, *args): cls.__new__(cls, *args)
    count = site.count() or 0
    cls = site.klass(0, args=tuple(site.arg(i) for i in range(1, count)))
    return site.instance(cls)


def _newobj_ex(site: Site) -> Value:
    # copyreg.__newobj_ex__(cls, args, kwargs): cls.__new__(cls, *args, **kwargs)
    kwargs = site.arg(2)
    if not (
        isinstance(kwargs, Container) and kwargs.kind == "dict" and not kwargs.items and not kwargs.dropped
    ):
        site.violation("keyword arguments reach the class's __new__")
    cls = site.klass(0, args=site.arg(1))
    return site.instance(cls)


def _codecs_encode(site: Site) -> Value:
    site.data(0)
    site.name(1, TEXT_CODECS, optional=True)
    return site.result()


def _plain(site: Site) -> Value:
    """Takes data, calls and resolves nothing (read from the function's code): given
    anything but plain data (an object whose attributes hold a callable or a class), its
    code would read those attributes (pandas' new_block reads values.dtype and calls
    methods of what it finds), so the arguments must be plain."""
    return _plain_arguments(site) or site.result()


# Builtins that run their arguments' own methods: str() and repr() of an object run its
# class's __str__/__repr__ (for a container, every element's), set() and frozenset() hash and
# compare every element, int(), float(), complex(), bool(), len(), bytes() and bytearray()
# call __int__/__index__/__float__/__bool__/__len__/__bytes__ or iterate. Those methods are
# library code nobody reviewed for a pickle (sklearn's __repr__ calls self.get_params(),
# Counter's self.most_common(): names an instance __dict__ decides). So their arguments must
# be plain data (is_plain): no object the stream gave a callable or a class to.
ARGUMENT_METHODS = frozenset(
    f"builtins.{name}" for name in "str int float complex bool bytes bytearray set frozenset len".split()
)
# list(x), tuple(x) and deque(x) only iterate x: a list or tuple built by the stream leaves
# its items untouched, anything else runs its class's iteration.
ITERATE_ONLY = frozenset({"builtins.list", "builtins.tuple", "collections.deque"})
# dict(x) copies a dict or a sequence of pairs; any other object has its keys() (and
# __getitem__) or its iteration run: library methods nobody reviewed for a pickle.
COPIES_MAPPING = frozenset({"builtins.dict"})
# No pickler writes bytes(n), bytearray(n) or list(range(n)): the loader allocates what the
# stream asks for (bytes(10**11) is 100 GB of zeros). Past this, a memory-exhaustion finding.
ALLOCATION_FLOOR = 1 << 20
UNBOUNDED = 1 << 62
# bytes(x) and bytearray(x) allocate x zero bytes when x is an integer (anything with
# __index__: int('10' * 6), a numpy integer scalar). Picklers hand them bytes, a str and
# its encoding, or a list of ints, so any other first argument is a size the machine cannot
# read: unbounded.
SIZED_BY_INTEGER = frozenset({"builtins.bytes", "builtins.bytearray"})
_UNSIZED_DATA = (str, bytes, bytearray, float, complex, Blob, Derived, Container, tuple)


def _bound(value: Value) -> int:
    """An integer the stream wrote, or UNBOUNDED for one it computes (or a huge one)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return UNBOUNDED


def _allocated(path: str, value: Value) -> int:
    """Elements ``path(value, ...)`` allocates: bytes(n), or any iterating builtin of a range."""
    if isinstance(value, Call) and isinstance(value.origin, Global) and value.origin.path == "builtins.range":
        bounds = [_bound(b) for b in sequence_items(value.args) or ()]
        if not 1 <= len(bounds) <= 3 or UNBOUNDED in bounds:
            return UNBOUNDED  # range(int('10' * 9)): a length the machine cannot read
        try:
            return len(range(*bounds))
        except (ValueError, OverflowError):
            return UNBOUNDED  # a zero step raises; a length past sys.maxsize overflows
    if path not in SIZED_BY_INTEGER or value is None or isinstance(value, (bool, *_UNSIZED_DATA)):
        return 0
    return max(_bound(value), 0)


def _builtin_constructor(site: Site) -> Value:
    """A builtin class or function that runs methods of (or allocates from) its arguments."""
    path = site.callee.path
    for index in range(site.count() or 0):
        _check_builtin_argument(site, path, index, site.arg(index))
    return site.construct()


def _check_builtin_argument(site: Site, path: str, index: int, value: Value) -> None:
    """What the builtin ``path`` does with its argument ``index``: allocate from it, or run
    its methods (then it must be plain data)."""
    size = _allocated(path, value) if index == 0 else 0
    if size > ALLOCATION_FLOOR:
        shown = "a count computed at load time (or past 2**62)" if size >= UNBOUNDED else f"{size:,}"
        site.violation(f"allocates {shown} elements at load time (memory exhaustion)")
    if path in COPIES_MAPPING and index == 0 and isinstance(value, Call):
        site.violation(
            f"argument 1 ({describe(value)}) is an object, and {path} runs its keys() or iteration"
        )
        return
    if (
        path in ITERATE_ONLY
        and index == 0
        and (isinstance(value, tuple) or (isinstance(value, Container) and value.kind in ("list", "tuple")))
    ):
        return
    if (path in ARGUMENT_METHODS or path in ITERATE_ONLY) and not is_plain(value):
        site.violation(
            f"argument {index + 1} ({describe(value)}) is not plain data, and {path} runs its methods"
        )
    elif path in ARGUMENT_METHODS and _holds_instances(value):
        # str(), int(), set() ... run the object's own methods (__str__, __index__, __hash__),
        # and reviewed compiled classes are reviewed for what they call, not for the indexes
        # they trust: str() of a sparse matrix whose indptr was forged wrote out of bounds.
        # Picklers hand these builtins literals.
        site.violation(
            f"argument {index + 1} holds an object ({describe(value)}), and {path} runs its methods"
        )


def _holds_instances(value: Value, depth: int = 0) -> bool:
    """Whether a value is or contains an object the stream built (not literals alone)."""
    if depth > 32:
        return True
    if isinstance(value, tuple):
        return any(_holds_instances(item, depth + 1) for item in value)
    if isinstance(value, Container):
        return any(
            _holds_instances(item, depth + 1)
            for entry in value.items
            for item in (entry if value.kind == "dict" else (entry,))
        )
    return isinstance(value, Call)


def _defaultdict(site: Site) -> Value:
    # defaultdict(default_factory, ...): the factory is called later, on every missing key
    site.called_later(0)
    return site.construct()


def _zoneinfo_unpickle(site: Site) -> Value:
    # ZoneInfo._unpickle(key, from_cache): reads the system's tz data for a validated key
    site.data(0, 1)
    return site.instance("zoneinfo.ZoneInfo")


def _array_reconstructor(site: Site) -> Value:
    # array._array_reconstructor(arraytype, typecode, mformat_code, items)
    cls = site.klass(0)
    return site.instance(cls)


# -- NumPy ---------------------------------------------------------------------------------


def _empty_array_shape(site: Site, index: int) -> None:
    """numpy allocates an array of the shape it is given (an object array is filled with
    None at once); its reduce always writes (0,) and sets the real shape with the state.
    A shape of more than ALLOCATION_FLOOR elements, or one the machine cannot read, is a
    memory-exhaustion finding."""
    shape = sequence_items(site.arg(index)) if index < (site.count() or 0) else ()
    size = 1
    for extent in shape if shape is not None else (UNBOUNDED,):
        size = min(size * max(_bound(extent), 0), UNBOUNDED)
    if size > ALLOCATION_FLOOR:
        shown = "a count computed at load time (or past 2**62)" if size >= UNBOUNDED else f"{size:,}"
        site.violation(f"allocates an array of {shown} elements at load time (memory exhaustion)")


def _numpy_reconstruct(site: Site) -> Value:
    # _reconstruct(subtype, shape, dtype): ndarray.__new__(subtype, shape, dtype); memmap is
    # fine here
    cls = site.klass(0, data_ok=True, calls=())
    _empty_array_shape(site, 1)
    return site.instance(cls)


def _mareconstruct(site: Site) -> Value:
    # numpy.ma.core._mareconstruct(subtype, baseclass, baseshape, basetype): ndarray.__new__
    # of baseshape, twice (the data and the mask)
    cls = site.klass(0, data_ok=True, calls=())
    site.klass(1, data_ok=True, calls=())
    _empty_array_shape(site, 2)
    return site.instance(cls)


def _ndarray(site: Site) -> Value:
    # _frombuffer(buf, dtype, shape, order): an ndarray over the bytes
    return site.instance("numpy.ndarray")


def _ufunc_reconstruct(site: Site) -> Value:
    # _ufunc_reconstruct(module, name): import module, getattr(module, name). A resolver:
    # literal names only, and what they name is classified like any import.
    return site.resolve(0, 1)


def _bit_generator(site: Site, index: int) -> Global | str | None:
    """A bit generator given by name (numpy 1.x) or by class (numpy 2.x), or an instance."""
    count = site.count()
    if count is not None and index >= count:
        return BIT_GENERATORS["MT19937"]  # the default argument
    value = site.arg(index)
    if isinstance(value, str):
        name = site.name(index, frozenset(BIT_GENERATORS))
        return BIT_GENERATORS.get(name or "")
    if isinstance(value, Call) and value.cls is not None and value.cls.path in BIT_GENERATORS.values():
        return value.cls
    return site.exact(index, frozenset(BIT_GENERATORS.values()))


def _bit_generator_ctor(site: Site) -> Value:
    # __bit_generator_ctor(bit_generator_name='MT19937'): BitGenerators[name]() or the class
    return site.instance(_bit_generator(site, 0))


def _state_ctor(result_class: str) -> Contract:
    def contract(site: Site) -> Value:
        # __randomstate_ctor / __generator_ctor(bit_generator_name, bit_generator_ctor):
        # calls bit_generator_ctor(bit_generator_name); only numpy's own ctor may be passed
        _bit_generator(site, 0)
        site.exact(1, _BIT_GENERATOR_CTORS, optional=True)
        return site.instance(result_class)

    return contract


def _cython_unpickle(site: Site) -> Value:
    # Cython's generated __pyx_unpickle_X(cls, checksum, state): cls.__new__(cls), then
    # __pyx_unpickle_X__set_state, which may update the instance __dict__ from the state.
    cls = site.klass(0)
    return site.instance(cls, state=site.arg(2))


# -- scikit-learn ---------------------------------------------------------------------------


def _sklearn_new_obj(site: Site) -> Value:
    # newObj(obj): return obj.__new__(obj) (Cython __reduce__ of DistanceMetric, KD/BallTree)
    cls = site.klass(0)
    return site.instance(cls)


# -- pandas --------------------------------------------------------------------------------


def _new_index(site: Site) -> Value:
    # _new_Index(cls, d): cls.__new__(cls, **d) (or cls._simple_new for periods)
    cls = site.klass(0, args=(site.arg(1),))
    site.data(1)
    return site.instance(cls)


# -- PyTorch (torch/_utils.py, torch/_tensor.py) ---------------------------------------------


def _tensor(site: Site) -> Value:
    # _rebuild_tensor*(storage, offset, size, stride, requires_grad, backward_hooks, ...):
    # backward_hooks are kept on the tensor (called at backward time, i.e. by the program
    # that trains it); their entries were classified when the stream imported them.
    return site.instance("torch.Tensor")


def _parameter(site: Site) -> Value:
    return site.instance("torch.nn.parameter.Parameter")


def _parameter_with_state(site: Site) -> Value:
    # _rebuild_parameter_with_state(data, requires_grad, backward_hooks, state):
    # _set_obj_state(param, state) sets every attribute of the state on the parameter
    return site.instance("torch.nn.parameter.Parameter", state=site.arg(3))


def _rebuild_from_type(site: Site) -> Value:
    # _rebuild_from_type(func, type, args, dict): ret = func(*args); ret.as_subclass(type);
    # ret.__dict__ = dict. func is called now, with arguments from the stream.
    site.called_now(0, 2)
    cls = site.klass(1, calls=())  # ret.as_subclass(type): no constructor runs
    return site.instance(cls, state=site.arg(3))


def _rebuild_from_type_v2(site: Site) -> Value:
    # _rebuild_from_type_v2(func, new_type, args, state): ret = func(*args), as new_type,
    # then new_type.__setstate__(state) or _set_obj_state (setattr of each item).
    site.called_now(0, 2)
    cls = site.klass(1, calls=())  # ret.as_subclass(new_type): no constructor runs
    return site.setstate(site.instance(cls), site.arg(3))


def _wrapper_subclass(site: Site) -> Value:
    # _rebuild_wrapper_subclass(cls, dtype, size, stride, storage_offset, layout, device, ...):
    # Tensor._make_wrapper_subclass(cls, ...) allocates the instance in C
    cls = site.klass(0, calls=())
    return site.instance(cls)


# -- the table -----------------------------------------------------------------------------

_TORCH_TENSOR_REBUILDERS = (
    "_rebuild_tensor _rebuild_tensor_v2 _rebuild_tensor_v3 _rebuild_qtensor _rebuild_sparse_tensor "
    "_rebuild_sparse_csr_tensor _rebuild_nested_tensor _rebuild_device_tensor_from_numpy "
    "_rebuild_device_tensor_from_cpu_tensor _rebuild_meta_tensor_no_storage _rebuild_xla_tensor "
    "_rebuild_mps_tensor _rebuild_mkldnn_tensor"
).split()

CONTRACTS: dict[str, Contract] = {
    "copyreg._reconstructor": _reconstructor,
    "copyreg.__newobj__": _newobj,
    "copyreg.__newobj_ex__": _newobj_ex,
    "_codecs.encode": _codecs_encode,
    "codecs.encode": _codecs_encode,
    **{path: _builtin_constructor for path in ARGUMENT_METHODS | ITERATE_ONLY | COPIES_MAPPING},
    "collections.defaultdict": _defaultdict,
    "re._compile": _plain,
    "zoneinfo.ZoneInfo._unpickle": _zoneinfo_unpickle,
    "pytz._p": _plain,
    "pytz._UTC": _plain,  # returns the utc singleton
    "array._array_reconstructor": _array_reconstructor,
    **{f"numpy.{core}.multiarray._reconstruct": _numpy_reconstruct for core in ("core", "_core")},
    **{f"numpy.{core}.multiarray.scalar": _plain for core in ("core", "_core")},
    **{f"numpy.{core}.numeric._frombuffer": _ndarray for core in ("core", "_core")},
    **{f"numpy.{core}._ufunc_reconstruct": _ufunc_reconstruct for core in ("core", "_core")},
    "numpy.ma.core._mareconstruct": _mareconstruct,
    "numpy.random.__RandomState_ctor": _state_ctor("numpy.random.mtrand.RandomState"),
    "numpy.random._pickle.__randomstate_ctor": _state_ctor("numpy.random.mtrand.RandomState"),
    "numpy.random._pickle.__generator_ctor": _state_ctor("numpy.random._generator.Generator"),
    "numpy.random._pickle.__bit_generator_ctor": _bit_generator_ctor,
    **{
        f"sklearn.{module}.newObj": _sklearn_new_obj
        for module in ("metrics._dist_metrics", "neighbors._kd_tree", "neighbors._ball_tree")
    },
    "pandas._libs.internals._unpickle_block": _plain,
    "pandas._libs.tslibs.timestamps._unpickle_timestamp": _plain,
    "pandas._libs.tslibs.timedeltas._timedelta_unpickle": _plain,
    "pandas._libs.tslibs.nattype._nat_unpickle": _plain,
    "pandas.core.internals.blocks.new_block": _plain,
    "pandas.core.indexes.base._new_Index": _new_index,
    "pandas.core.indexes.datetimes._new_DatetimeIndex": _new_index,
    "pandas.core.indexes.period._new_PeriodIndex": _new_index,
    **{f"torch._utils.{name}": _tensor for name in _TORCH_TENSOR_REBUILDERS},
    "torch._utils._rebuild_parameter": _parameter,
    "torch._utils._rebuild_parameter_with_state": _parameter_with_state,
    "torch._utils._rebuild_wrapper_subclass": _wrapper_subclass,
    "torch._utils._rebuild_from_type": _rebuild_from_type,
    "torch._tensor._rebuild_from_type": _rebuild_from_type,
    "torch._utils._rebuild_from_type_v2": _rebuild_from_type_v2,
    "torch._tensor._rebuild_from_type_v2": _rebuild_from_type_v2,
    "torch.serialization._get_layout": _plain,  # returns one of torch's layouts, by name
}


@functools.lru_cache(maxsize=4096)
def contract_for(path: str) -> Contract | None:
    contract = CONTRACTS.get(path)
    if contract is None and path.rsplit(".", 1)[-1].startswith("__pyx_unpickle_"):
        return _cython_unpickle
    return contract


# -- methods reviewed with a condition ----------------------------------------------------
#
# Some methods the unpickler calls implicitly (a class's __setstate__, __new__, __init__)
# were reviewed as safe *only if* what they are handed has a given type: Cython code that
# memcpys from PyArray_DATA of whatever it is given, a constructor that calls .copy() on an
# argument. classfacts marks them unsafe, with the condition as the reason; these contracts
# check the condition at the call site instead. Keyed by "<defining class>.<method>".

ARRAYS = frozenset(
    {
        "numpy.ndarray",
        "numpy.memmap",
        "numpy.matrix",
        "numpy.core.memmap.memmap",
        "numpy._core.memmap.memmap",
        "joblib.numpy_pickle.NumpyArrayWrapper",  # joblib.load puts the array in its place
        "sklearn.externals.joblib.numpy_pickle.NumpyArrayWrapper",
    }
)
TENSORS = frozenset({"torch.Tensor", "torch._tensor.Tensor", "torch.nn.parameter.Parameter"})


def is_instance_of(value: Value, classes: frozenset[str]) -> bool:
    """True if ``value`` is an object the machine knows to be of one of ``classes``."""
    return isinstance(value, Call) and value.cls is not None and value.cls.path in classes


def _state_fields_are(
    keys: tuple[str, ...], classes: frozenset[str], what: str, *, optional: bool = False
) -> Contract:
    def contract(site: Site) -> Value:
        state = site.arg(0)
        fields = dict_items(state)
        if fields is None:
            site.violation(f"its state is a {describe(state)}, not a dict whose fields can be read")
            return None
        for key in keys:
            if optional and key not in fields:
                continue
            if not is_instance_of(fields.get(key), classes):
                site.violation(f"state[{key!r}] is {describe(fields.get(key))}, not {what}")
        return None

    return contract


def _all(*contracts: Contract) -> Contract:
    def contract(site: Site) -> Value:
        for each in contracts:
            each(site)
        return None

    return contract


def _argument_is(
    index: int, classes: frozenset[str], what: str, *, literal: tuple[type, ...] = ()
) -> Contract:
    def contract(site: Site) -> Value:
        if site.count() is not None and index >= (site.count() or 0):
            return None
        value = site.arg(index)
        if literal and isinstance(value, literal) and not isinstance(value, bool):
            return None
        if not is_instance_of(value, classes):
            site.violation(f"argument {index + 1} is {describe(value)}, not {what}")
        return None

    return contract


_LITERALS = (bool, int, float, complex, str, bytes, bytearray)


def is_plain(value: Value, depth: int = 0, *, attribute: bool = False) -> bool:
    """Plain data: literals, containers of plain data, class references, and objects built
    by an allowlisted constructor or helper whose attributes from the stream are plain data
    too, with no callable among them. Reviewed library code handed only plain data calls
    library methods on library objects, never a callable the stream chose: an attribute can
    shadow a method (``__array__``, ``copy``), so inside an object's attributes a reference
    to a class or function is not plain."""
    if value is None or isinstance(value, _LITERALS) or isinstance(value, (Blob, BigInt, Derived)):
        return True
    if isinstance(value, Global):
        return not attribute
    if depth > 6:
        return False
    if isinstance(value, tuple):
        return all(is_plain(item, depth + 1, attribute=attribute) for item in value)
    if isinstance(value, Container):
        if value.dropped and (value.objects or value.opaque_keys):
            return False
        if value.kind == "dict":
            return all(
                is_plain(key, depth + 1, attribute=attribute)
                and is_plain(item, depth + 1, attribute=attribute)
                for key, item in value.items
            )
        return all(is_plain(item, depth + 1, attribute=attribute) for item in value.items)
    if isinstance(value, Call):
        if is_array_wrapper(value):
            return True
        if value.cls is not None and value.cls.path in CALLABLE_INSTANCES:
            return False  # a callable the stream chose, whatever it binds
        origin = value.cls if value.cls is not None else value.origin
        if not (isinstance(origin, Global) and origin.classification.verdict is Verdict.SAFE):
            return False
        attrs = value.attrs
        if attrs is None:
            return True
        if attrs.unknown or attrs.tracked:
            return False
        return all(is_plain(state, depth + 1, attribute=True) for state in attrs.merged)
    return False


def _plain_arguments(site: Site) -> Value:
    """Reviewed "only if every argument is plain data" (see is_plain)."""
    for index in range(site.count() or 0):
        value = site.arg(index)
        if not is_plain(value):
            site.violation(f"argument {index + 1} ({describe(value)}) is not plain data")
    return None


def _first_state_without(*keys: str) -> Contract:
    """Reviewed "only if the state is the instance's first and sets none of ``keys``": the
    method calls self.<key>(), which the instance __dict__ would otherwise decide."""

    def contract(site: Site) -> Value:
        receiver = site.receiver
        if (
            isinstance(receiver, Call)
            and receiver.attrs is not None
            and (receiver.attrs.written or receiver.attrs.unknown)
        ):
            site.violation("the instance already has attributes from the stream, which its methods may read")
        fields = dict_items(site.arg(0))
        if fields is None:
            site.violation(f"its state is a {describe(site.arg(0))}, not a dict whose keys can be read")
            return None
        for key in keys:
            if key in fields:
                site.violation(f"its state sets {key!r}, which the method then calls")
        return None

    return contract


def _single_value(site: Site) -> Value:
    # EnumType.__call__(cls, value): a member lookup; with names= it builds a new Enum class
    if site.count() != 1 or not isinstance(site.arg(0), _LITERALS):
        site.violation("an Enum class is called with something other than one literal value")
    return None


def _block_manager_new(site: Site) -> Value:
    # BlockManager(blocks, axes, ...): __cinit__ stores tuple(blocks) and calls axes.copy();
    # its first use writes at every block placement within len(axes[0]), unchecked
    axes = site.arg(1)
    if not (isinstance(axes, Container) and axes.kind == "list") and not is_instance_of(
        axes, frozenset({"builtins.list"})
    ):
        site.violation(f"its axes are {describe(axes)}, not a list")
    placements = _pandas().unpickled_blocks(site.arg(0))
    if placements is None:
        site.violation("its blocks are not _unpickle_block(values, placement, ndim)")
    elif (problem := _pandas().placement_problem(placements, site.observer)) is not None:
        site.violation(f"{problem} (pandas writes there with bounds checks off)")
    return None


def _pandas() -> ModuleType:
    """The block placement checks (and the array reader): loaded with the first pandas
    block manager, not with every worker."""
    from modelsec.pickle import pandas_blocks

    return pandas_blocks


def _trees() -> ModuleType:
    """The tree checks, imported (with NumPy) when a stream first builds a tree, not with
    every worker."""
    from modelsec.pickle import sklearn_trees

    return sklearn_trees


def _tree_nodes(site: Site) -> Value:
    # Tree.__setstate__ copies the node array as is; prediction follows its child and
    # feature indexes with bounds checks off
    if (problem := _trees().tree_problem(site.receiver, site.arg(0), site.observer)) is not None:
        site.violation(problem)
    return None


def _predictor_nodes(site: Site) -> Value:
    # TreePredictor: prediction follows the node children and bitset indexes unchecked
    if (problem := _trees().predictor_problem(site.receiver, site.arg(0), site.observer)) is not None:
        site.violation(problem)
    return None


def _binary_tree(site: Site) -> Value:
    # BinaryTree.__setstate__ (KDTree, BallTree) assigns the arrays unchecked; queries read
    # by their indexes with bounds checks off
    owner = site.callee.path.removesuffix(".__setstate__")
    if (problem := _trees().binary_tree_problem(owner, site.arg(0), site.observer)) is not None:
        site.violation(problem)
    return None


def _random_state(site: Site) -> Value:
    # BitGenerator/Generator/RandomState.__setstate__: the state setters copy the cursor
    # into the C state unchecked; draws then read past it
    from modelsec.pickle import numpy_random

    if (problem := numpy_random.state_problem(site.arg(0))) is not None:
        site.violation(problem)
    return None


def _block_manager_state(site: Site) -> Value:
    # BlockManager.__setstate__: the "0.14.1" state's blocks and axes, written as above
    found = _pandas().legacy_state_blocks(site.arg(0))
    if found is None:
        site.violation("its state is not the '0.14.1' layout pandas reads")
    elif (problem := _pandas().placement_problem(found[0], site.observer, found[1])) is not None:
        site.violation(f"{problem} (pandas writes there with bounds checks off)")
    return None


def _instance_dict_holds(conditions: Mapping[str, str]) -> Contract:
    """Reviewed "only if, once the state is merged into the instance __dict__, these keys are
    absent, or hold exactly a builtin set/list" (classfacts_torch.STATE_CONDITIONS)."""

    def contract(site: Site) -> Value:
        receiver = site.receiver
        if not isinstance(receiver, Call) or receiver.attrs is None or receiver.attrs.unknown:
            site.violation("the instance __dict__ it reads cannot be known")
            return None
        state = dict_items(site.arg(0))
        if state is None:
            site.violation(f"its state is a {describe(site.arg(0))}, not a dict whose keys can be read")
            return None
        layers = [state, *(dict_items(merged) or {} for merged in reversed(receiver.attrs.merged))]
        for key, need in conditions.items():
            holder = next((layer for layer in layers if key in layer), None)
            if holder is None:
                continue
            value = holder[key]
            if need == "absent":
                site.violation(f"the instance __dict__ gets {key!r}, which the method then calls")
            elif not _is_builtin(value, need):
                site.violation(f"{key} is {describe(value)}, not a {need}")
        return None

    return contract


def _is_builtin(value: Value, kind: str) -> bool:
    """``value`` is exactly a builtin list/set/dict (a literal, or builtins.<kind>() that
    nothing added to or gave attributes)."""
    if isinstance(value, Container):
        return value.kind == kind
    return (
        isinstance(value, Call)
        and value.cls is not None
        and value.cls.path == f"builtins.{kind}"
        and value.state is None
    )


def _is_empty_mapping(value: Value) -> bool:
    if isinstance(value, Container):
        return value.kind == "dict" and not value.items and not value.dropped
    return (
        isinstance(value, Call)
        and value.cls is not None
        and value.cls.path in ("collections.OrderedDict", "builtins.dict")
        and not value.grown
        and value.state is None
        and sequence_items(value.args) == ()
    )


def _tensor_state(site: Site) -> Value:
    # Tensor.__setstate__: a 4-tuple calls self.set_(*state), looked up on the instance
    state = sequence_items(site.arg(0))
    if state is None or len(state) not in (3, 5):
        site.violation("its state is not the 3- or 5-tuple torch writes")
    elif not _is_empty_mapping(state[2]):
        site.violation(f"its backward hooks are {describe(state[2])}, not empty")
    return None


def _no_keywords(site: Site) -> Value:
    if site.kwargs is not None:
        site.violation("it is given keyword arguments (NEWOBJ_EX)")
    return None


# -- functools.partial ---------------------------------------------------------------------
#
# A partial is a call trampoline: whoever calls it calls its function with the arguments the
# stream bound. Calling it at load time is a computed call (a finding, like any callable the
# stream builds); library code calls it at use time with its input (scikit-learn's
# FunctionTransformer calls its func(X)). So a partial may bind only a function that library
# code may call with its input anyway, and only literal data: then the partial is no worse than
# the function kept as the attribute itself.

# Functions real pickles bind in a partial: scikit-learn's HistGradientBoosting with
# categorical features keeps partial(check_array, dtype=[float64], ensure_all_finite=False) as
# its preprocessor's func. Each is reference-only (the generator found it takes no callable
# and no benign pickle calls it at load time; tests/pickle/test_partial.py checks both). A
# helper the stream may call itself is not enough: its contract judges the calls the stream
# makes, not the call library code makes later with an input the stream did not see
# (partial(_ufunc_reconstruct, "os") called with "system" resolves os.system).
PARTIAL_FUNCTIONS = frozenset({"sklearn.utils.validation.check_array"})
# Instances that are callables the stream chose: never plain data (is_plain).
CALLABLE_INSTANCES = frozenset({"functools.partial"})


def _bound_function(site: Site, value: Value, what: str) -> None:
    if (
        isinstance(value, Global)
        and value.path in PARTIAL_FUNCTIONS
        and value.classification.verdict in (Verdict.DATA, Verdict.SAFE)
    ):
        return
    allowed = ", ".join(sorted(PARTIAL_FUNCTIONS))
    site.violation(f"{what} is {describe(value)}, not a function a partial may bind ({allowed})")


def is_literal_data(value: Value) -> bool:
    """Literals, class references and containers of them: no object the stream built."""
    return is_plain(value) and not _holds_instances(value)


def _bound_keywords(site: Site, keywords: Value) -> None:
    """A literal dict of str keys to literal data."""
    if not (
        isinstance(keywords, Container)
        and keywords.kind == "dict"
        and not keywords.dropped
        and not keywords.opaque_keys
        and all(isinstance(key, str) for key, _ in keywords.items)
        and is_literal_data(keywords)
    ):
        site.violation(f"its keywords are {describe(keywords)}, not a literal dict of literal data")


def _partial_new(site: Site) -> Value:
    # partial(func, *args, **keywords): partial_new stores them (a partial given as func is
    # unwrapped into its own func, args and keywords); nothing is called
    count = site.count()
    if count is None:
        site.arg(0)  # arguments the stream computes: reported
        return None
    _bound_function(site, site.arg(0), "its function")
    for index in range(1, count):
        if not is_literal_data(site.arg(index)):
            site.violation(f"bound argument {index} ({describe(site.arg(index))}) is not literal data")
    if site.kwargs is not None:
        _bound_keywords(site, site.kwargs)  # (copied into a new dict)
    # the arguments tuple and keywords dict are new, what they hold is the stream's
    _keep_as_checked(site, *(site.arg(index) for index in range(1, count)), site.kwargs)
    return None


def _keep_as_checked(site: Site, *values: Value) -> None:
    """What a partial binds stays the stream's objects (``partial.__setstate__`` keeps an
    exact tuple and dict as they are, ``partial_new`` copies only the top level): every
    container in it, at any depth, may not grow after the check (red team, session 22: a
    list bound empty, then given an object with an ``__array_interface__``)."""
    receiver = site.receiver
    owner = receiver.cls if isinstance(receiver, Call) and receiver.cls is not None else site.callee
    for value in values:
        found = reachable_containers(value, site.observer)
        if found is None:
            site.violation("what it binds is larger than the scan may examine")
        for container in found or ():
            container.watched_by = owner
            if container.dropped:
                # items the machine did not keep (a list, or a dict's values, past 64)
                # are neither judged nor watched: the callee gets them all
                site.violation(f"it binds a {container.kind} of more items than modelsec keeps")


def _partial_state(site: Site) -> Value:
    # partial.__setstate__((func, args, keywords, dict)): stores func and args, keeps the
    # keywords dict itself (an exact dict is not copied: the stream still holds it), and
    # makes the fourth item the instance __dict__ as it is
    state = site.arg(0)
    parts = sequence_items(state) if isinstance(state, tuple) else None
    if parts is None or len(parts) != 4:
        site.violation(
            f"its state is {describe(state)}, not the (func, args, keywords, dict) tuple partial writes"
        )
        return None
    func, args, keywords, namespace = parts
    _bound_function(site, func, "its function")
    if not isinstance(args, tuple) or not is_literal_data(args):
        site.violation(f"its bound arguments are {describe(args)}, not a literal tuple of literal data")
    if keywords is not None:
        _bound_keywords(site, keywords)
    _keep_as_checked(site, args, keywords)  # a later APPEND or SETITEM would bind what nobody checked
    if namespace is not None:
        site.violation(
            f"its state sets its __dict__ to {describe(namespace)} (partial.__reduce__ writes None)"
        )
    return None


METHOD_CONTRACTS: dict[str, Contract] = {
    "functools.partial.__new__": _partial_new,
    "functools.partial.__setstate__": _partial_state,
    **{path: _instance_dict_holds(conditions) for path, conditions in STATE_CONDITIONS.items()},
    "torch._C.TensorBase.__new__": _no_keywords,
    "torch._tensor.Tensor.__setstate__": _tensor_state,
    "sklearn.tree._tree.Tree.__setstate__": _all(
        _state_fields_are(("nodes", "values"), ARRAYS, "a numpy array"), _tree_nodes
    ),
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor.__setstate__": _all(
        _state_fields_are(("nodes",), ARRAYS, "a numpy array"), _predictor_nodes
    ),
    # (the 32-bit trees are not on the allowlist; binary_tree_problem reads them too)
    "sklearn.neighbors._kd_tree.BinaryTree64.__setstate__": _binary_tree,
    "sklearn.neighbors._ball_tree.BinaryTree64.__setstate__": _binary_tree,
    "numpy.random.bit_generator.BitGenerator.__setstate__": _random_state,
    "numpy.random._generator.Generator.__setstate__": _random_state,
    "numpy.random.mtrand.RandomState.__setstate__": _random_state,
    "pandas._libs.internals.BlockManager.__new__": _block_manager_new,
    "pandas._libs.internals.BlockManager.__setstate__": _block_manager_state,
    # a metaclass __call__ shows as the class's __init__ (classfacts)
    "dateutil.tz._factories._TzOffsetFactory.__init__": _argument_is(
        1, frozenset({"datetime.timedelta"}), "a number or a datetime.timedelta", literal=(int, float)
    ),
    "enum.EnumType.__init__": _single_value,
    "sklearn.isotonic.IsotonicRegression.__setstate__": _all(
        _first_state_without("_build_f"),
        _state_fields_are(("X_thresholds_", "y_thresholds_"), ARRAYS, "a numpy array", optional=True),
    ),
    **{
        f"pandas.{name}.__new__": _plain_arguments
        for name in (
            "Index",
            "RangeIndex",
            "MultiIndex",
            "DatetimeIndex",
            "PeriodIndex",
            "TimedeltaIndex",
            "CategoricalIndex",
            "arrays.IntervalArray",
        )
    },
    "torch.nn.parameter.Parameter.__new__": _argument_is(0, TENSORS, "a torch.Tensor"),
    "torch.nn.parameter.Buffer.__new__": _argument_is(0, TENSORS, "a torch.Tensor"),
}


def method_contract_for(method_path: str) -> Contract | None:
    return METHOD_CONTRACTS.get(method_path)


# getattr(obj, "name"[, default]): resolved statically when obj and name are known.
GETATTR = frozenset({"builtins.getattr"})
