"""Every call the unpickler makes, explicit or implicit, evaluated symbolically.

Explicit calls come from ``REDUCE``, ``NEWOBJ``, ``NEWOBJ_EX``, ``OBJ`` and ``INST``; implicit
ones from ``BUILD``, ``APPEND``/``APPENDS``, ``ADDITEMS`` and ``SETITEM(S)`` applied to
instances (see :mod:`~modelsec.pickle.objects` for what CPython looks up and where). All of
them go through :class:`Invoker`, and a call is clean only when the callable is proven safe:
an allowlisted class whose reachable methods the generator read (:mod:`classfacts`), an
allowlisted function called within its contract (:mod:`contracts`), or a method of an
allowlisted class that was proven pure or reviewed. Everything else reaches the observer.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from modelsec.pickle.classfacts import class_facts
from modelsec.pickle.contracts import GETATTR, contract_for, method_contract_for
from modelsec.pickle.joblib_arrays import (
    JOBLIB_FILE_ARRAY,
    JOBLIB_INLINE_ARRAY,
    JOBLIB_WRAPPERS,
    dtype_state_problem,
)
from modelsec.pickle.loaders import DECODERS, LOADERS, codec_transform
from modelsec.pickle.objects import Found, InstanceAttrs, Lookup, lookup, type_lookup
from modelsec.pickle.observer import Observer
from modelsec.pickle.opcodes import Blob, PickleError
from modelsec.pickle.policy import Verdict, classify
from modelsec.pickle.state_checks import Check as StateCheck
from modelsec.pickle.state_checks import check_for, effective_fields
from modelsec.pickle.tzpaths import TZ_FILE_PREFIX, may_name_a_tz_file
from modelsec.pickle.values import (
    Call,
    Container,
    Derived,
    Global,
    OutOfBand,
    Persistent,
    Unresolved,
    Value,
    describe,
    from_buffer,
    reachable_containers,
    sequence_items,
)

MAX_CALL_DEPTH = 16  # helpers calling helpers (_rebuild_from_type_v2(_rebuild_from_type_v2, ...))
# Opcodes that instantiate the class they are given: cls.__new__ only (NEWOBJ), or the
# whole constructor (INST/OBJ call cls(*args), like REDUCE of a class).
_NEW_ONLY = frozenset({"NEWOBJ", "NEWOBJ_EX"})
# copyreg helpers that make an instance without calling the class's __init__
_BARE_CONSTRUCTORS = frozenset({"copyreg.__newobj__", "copyreg.__newobj_ex__", "copyreg._reconstructor"})
_INSTANTIATE = frozenset({"NEWOBJ", "NEWOBJ_EX", "INST", "OBJ"})
# numpy writes the state of each of these with exactly one BUILD: another one would change
# what contracts read (an array's contents, a dtype's fields and item size) after the fact.
# So does a partial's (its function and arguments), and its keywords dict is checked as given.
_BUILT_ONCE = {
    "numpy.ndarray": "the contents of an array",
    "numpy.memmap": "the contents of an array",
    "numpy.matrix": "the contents of an array",
    "numpy.dtype": "the fields of a dtype",
    "functools.partial": "the function and arguments of a partial",
}
_NOT_CALLABLE = (bool, int, float, str, bytes, bytearray, tuple, Blob, Container)
# Attributes whose assignment (setattr, not a __dict__ update) changes what the instance is.
OBJECT_MACHINERY = {
    "__class__": "the instance's class changes, and with it every method the unpickler looks up",
    "__dict__": "the instance's attributes become a dict the stream can still change",
}
# Constructors whose __init__ sets instance attributes from a positional argument:
# SimpleNamespace(mapping_or_pairs) since Python 3.13 (earlier versions raise TypeError; the
# analysis models every supported version, so the newest behaviour counts).
ATTRIBUTES_FROM_ARGUMENTS = frozenset({"types.SimpleNamespace"})

if TYPE_CHECKING:
    from modelsec.pickle.classfacts import ClassFacts
    from modelsec.pickle.journal import Journal

Importer = Callable[[str, str, int, str], Global]


@functools.lru_cache(maxsize=4096)
def _facts(path: str) -> ClassFacts | None:
    """The class facts of ``path`` (None: not a known class)."""
    return class_facts(path)


@functools.lru_cache(maxsize=4096)
def _unsafe_methods(path: str, methods: tuple[str, ...]) -> tuple[tuple[str, Lookup], ...]:
    """Which of ``methods`` of the class at ``path`` are not proven safe (usually none)."""
    facts = _facts(path)
    if facts is None:
        return ()
    found = ((method, type_lookup(facts, path, method)) for method in methods)
    return tuple((method, hit) for method, hit in found if hit.found is Found.METHOD and not hit.safe)


_NEW = ("__new__",)
_TENSOR_SETSTATE = frozenset({"torch._tensor.Tensor", "torch.Tensor"})
_NEW_AND_INIT = ("__new__", "__init__")


def _global_for(path: str, offset: int, how: str) -> Global:
    module, _, name = path.rpartition(".")
    return Global(module, name, offset, how, classify(module, name))


class RawArray:
    """joblib wrote raw array bytes right after this wrapper's BUILD."""

    __slots__ = ("wrapper", "offset")

    def __init__(self, wrapper: Call, offset: int) -> None:
        self.wrapper = wrapper
        self.offset = offset


def _note_dtypes_read(given: Value) -> None:
    """Mark the dtypes among the arguments (or state items, or a state dict's values) as
    read: numpy decodes with a dtype when it is handed one, so a later BUILD of it would
    make contracts read other values than numpy did (red team, session 22)."""
    # (every call and BUILD comes here: type tests, no helper calls). Every item a
    # container keeps (64 at most) is looked at: a dict's repeated keys put its dtype past
    # any shorter window (red team, session 22); a tuple's first 16 (the consumers that
    # decode, scalar, _reconstruct's BUILD, _frombuffer, take it among their first 4).
    values: Sequence[Value]
    if isinstance(given, tuple):
        values = given[:16]
    elif isinstance(given, Container):
        values = [item[1] for item in given.items] if given.kind == "dict" else given.items
    else:
        return
    for value in values:
        if type(value) is Call and value.cls is not None and value.cls.path == "numpy.dtype":
            value.used = True


class Invoker:
    """Evaluates calls for one stack machine. Where CPython would raise (a missing method, a
    state that is not a dict) the invoker goes on as if the call had happened: being more
    permissive than the loader can only add findings, never hide one."""

    def __init__(self, observer: Observer, importer: Importer) -> None:
        self.observer = observer
        self.importer = importer
        self.journal: Journal | None = None  # a continuation's (machine.StackMachine.journal)

    # -- explicit calls ---------------------------------------------------------------------

    def call(
        self, callee: Value, args: Value, offset: int, how: str, depth: int = 0, kwargs: Value = None
    ) -> Value:
        """``callee(*args, **kwargs)`` (``cls.__new__(cls, *args, **kwargs)`` for NEWOBJ_EX)."""
        _note_dtypes_read(args)
        if isinstance(callee, Global):
            return self._call_global(callee, args, offset, how, depth, kwargs)
        if isinstance(callee, Unresolved):
            return Call(callee, args, offset, how)  # reported when it was imported
        if callee is None or isinstance(callee, _NOT_CALLABLE):
            raise PickleError(f"{how} on a {describe(callee)}, which is not callable", offset)
        # A computed callable: a call result, a persistent object, an instance attribute.
        self.observer.invoked(callee, offset, how)
        return Call(callee, args, offset, how)

    def _call_global(
        self, callee: Global, args: Value, offset: int, how: str, depth: int, kwargs: Value = None
    ) -> Value:
        path, verdict = callee.path, callee.classification.verdict
        items = sequence_items(args)
        if path in GETATTR:
            return self._getattr(callee, items, args, offset, how)
        if verdict is Verdict.UNKNOWN or verdict is Verdict.DATA:
            self.observer.invoked(callee, offset, how)  # DANGEROUS was reported on import
        if path in LOADERS:
            self.observer.loader_called(callee, items[0] if items else None, offset)
        transform = DECODERS.get(path)
        if transform is not None and items:
            if transform in ("encode", "decode"):
                # an errors handler other than strict changes the bytes (surrogateescape,
                # replace): what the stream meant is then not followed (red team, session 22)
                strict = len(items) < 3 or items[2] == "strict"
                transform = (
                    codec_transform(transform, items[1] if len(items) > 1 else "utf-8")
                    if strict
                    else "opaque"
                )
            if verdict is not Verdict.SAFE:
                return Derived(transform, items[0], offset)
        if verdict is not Verdict.SAFE:
            return Call(callee, args, offset, how, callee if how in _INSTANTIATE else None)
        if depth > MAX_CALL_DEPTH:
            self.observer.violated(callee, offset, f"helpers nested more than {MAX_CALL_DEPTH} deep")
            return Call(callee, args, offset, how)
        if path.startswith("pandas.") and may_name_a_tz_file((args, kwargs)):
            self.observer.violated(
                callee, offset, f"a time-zone string that {TZ_FILE_PREFIX!r} makes a file path"
            )
        contract = contract_for(path)
        if contract is not None:
            result = contract(CallSite(self, callee, args, items, offset, how, depth, kwargs=kwargs))
            if transform is not None and items:
                return Derived(transform, items[0], offset)  # _codecs.encode: follow the bytes
            return result
        facts = _facts(path)
        if facts is not None:
            methods = _NEW if how in _NEW_ONLY else _NEW_AND_INIT
            return self.construct(callee, facts, args, offset, how, methods, kwargs)
        # An allowlisted constant (a dtype object, a singleton): calling it raises in CPython.
        return Call(callee, args, offset, how)

    def construct(
        self,
        cls: Global,
        facts: ClassFacts,
        args: Value,
        offset: int,
        how: str,
        methods: tuple[str, ...],
        kwargs: Value = None,
    ) -> Call:
        """Instantiate an allowlisted class: ``methods`` (``__new__``, ``__init__``) run."""
        for method, found in _unsafe_methods(cls.path, methods):
            self._class_method(found, method, offset, f"{how} of {cls.subject}", args, kwargs=kwargs)
        if facts.builtin_base == "dict":
            for item in sequence_items(args) or ():
                self.consume_mapping(item, offset, f"{how} of {cls.subject}")
        return self.instance(cls, args, offset, how, facts)

    def instance(
        self, cls: Global, args: Value, offset: int, how: str, facts: ClassFacts | None = None
    ) -> Call:
        _note_dtypes_read(args)
        facts = facts if facts is not None else _facts(cls.path)
        attrs = InstanceAttrs({}) if facts is not None and facts.instance_dict else None
        if attrs is not None and cls.path in ATTRIBUTES_FROM_ARGUMENTS and how not in _NEW_ONLY:
            for item in (sequence_items(args) if args is not None else None) or ():
                attrs.merge(item)  # a dict is read key by key; anything else makes it unknown
            if args is not None and sequence_items(args) is None:
                attrs.unknown = "its attributes were set from arguments the stream computed"
        return Call(cls, args, offset, how, cls, attrs=attrs, bare=how in _NEW_ONLY)

    def _getattr(
        self, callee: Global, items: tuple[Value, ...] | None, args: Value, offset: int, how: str
    ) -> Value:
        """getattr(obj, "name"): with literal operands, the global it reaches."""
        if items is not None and len(items) in (2, 3) and isinstance(items[1], str):
            target, attr = items[0], items[1]
            base = target if isinstance(target, Global) else None
            if base is None and isinstance(target, Call) and target.cls is not None:
                base = target.cls  # a method of an instance of a known class
            if base is not None and attr:
                self.observer.getattr_resolved(callee)
                name = f"{base.name}.{attr}" if base.name else attr
                return self.importer(base.module, name, offset, f"getattr via {how}")
        self.observer.invoked(callee, offset, how)  # attribute access we cannot follow
        return Call(callee, args, offset, how)

    # -- implicit calls -----------------------------------------------------------------------

    def _class_method(
        self,
        found: Lookup,
        method: str,
        offset: int,
        how: str,
        args: Value = None,
        receiver: Value = None,
        kwargs: Value = None,
    ) -> None:
        """A method of an allowlisted class runs: fine if proven safe, checked against its
        condition if it was reviewed with one, a finding otherwise."""
        if found.found is not Found.METHOD or found.safe:
            return
        path = f"{found.owner}.{method}"
        contract = method_contract_for(path)
        if contract is None or args is None:
            self.observer.unsafe_method(found.owner, method, offset, how, found.why)
            return
        site = CallSite(
            self, _global_for(path, offset, how), args, sequence_items(args), offset, how, 0, receiver, kwargs
        )
        contract(site)

    def _use(self, found: Lookup, target: Call, method: str, args: Value, offset: int, how: str) -> None:
        """Whatever a lookup found is called with ``args``."""
        assert target.cls is not None
        if found.found is Found.OVERRIDE:
            stored = f"{how} calls {method} stored in the instance's __dict__"
            if isinstance(found.value, Unresolved):
                self.observer.invoked(found.value, offset, stored)  # a name nobody can read
            self.call(found.value, args, offset, stored)
        elif found.found is Found.METHOD:
            self._class_method(found, method, offset, how, args, target)
        elif found.found is Found.COMPUTED:
            self.observer.invoked(
                target, offset, f"{how} calls {method} of an instance of {target.cls.subject}: {found.owner}"
            )

    def _known_instance(self, target: Value, offset: int, what: str) -> tuple[Call, ClassFacts | None] | None:
        """(instance, facts) when ``target`` is an instance of an allowlisted class; None
        when there is nothing to check (already reported) or it was reported here."""
        if not isinstance(target, Call):
            return None
        cls = target.cls
        if cls is None:
            origin = target.origin
            if isinstance(origin, Global) and origin.classification.verdict is Verdict.SAFE:
                # A safe function returned something whose methods nobody can know.
                self.observer.invoked(
                    target, offset, f"{what} on {describe(target)}, whose methods cannot be known"
                )
            return None
        if cls.classification.verdict not in (Verdict.SAFE, Verdict.DATA):
            return None  # the class itself is reported: importing or calling it
        return target, _facts(cls.path)

    def apply_state(self, target: Value, state: Value, offset: int, how: str = "BUILD") -> RawArray | None:
        """``BUILD``: ``inst.__setstate__(state)``, or the default: ``state`` into
        ``inst.__dict__`` and the slot state through ``setattr``."""
        if self.journal is not None:
            self.journal.record(target)
        if isinstance(target, Global):
            # BUILD on a module or class: setattr on it (sys.modules / __dict__ tricks).
            self.observer.mutated(target, offset, how)
            return None
        if isinstance(target, (Persistent, OutOfBand)):
            self.observer.invoked(target, offset, f"{how} on a {describe(target)}")
            return None
        if not isinstance(target, Call):
            # A builtin value or an unresolved import: CPython would fail or do something
            # already reported. The machine stays as permissive as the loader or more: it
            # goes on reading, so nothing after this point escapes analysis.
            return None
        if (
            target.cls is not None
            and target.cls.path in _BUILT_ONCE
            and (target.state is not None or from_buffer(target))
        ):
            # (and no BUILD at all after _frombuffer: the contents came with the call)
            self.observer.violated(
                target.cls, offset, f"a second {how} replaces {_BUILT_ONCE[target.cls.path]}"
            )
        elif target.used and target.cls is not None:
            # numpy decoded a scalar (or an array keeps this object) with the dtype as it was:
            # setting its byte order now makes contracts read other values than numpy did
            self.observer.violated(target.cls, offset, f"{how} changes a dtype after something read it")
        _note_dtypes_read(state)
        target.state = state
        known = self._known_instance(target, offset, how)
        if known is None:
            return None
        instance, facts = known
        cls = instance.cls
        assert cls is not None
        found = lookup(instance.attrs, facts, cls.path, "__setstate__")
        if found.found is Found.ABSENT:
            self._default_state(instance, facts, state, offset, how)
        else:
            self._use(found, instance, "__setstate__", (state,), offset, how)
            if found.found is Found.METHOD:
                if isinstance(state, Call) and found.why != "builtin":
                    # Reviewed code reads its state as the dict or tuple its class pickles:
                    # handed an object, it calls that object's methods (state.pop, .keys).
                    self.observer.invoked(
                        state,
                        offset,
                        f"{found.owner}.__setstate__ calls methods of its state, an object the stream built",
                    )
                self._merge_parts(instance, state)
        if cls.path == "numpy.dtype" and (problem := dtype_state_problem(instance)) is not None:
            self.observer.violated(cls, offset, f"{how} gives numpy a {problem}")
        if (check := check_for(cls.path)) is not None:
            self._check_state(instance, *check, offset, how)
        if cls.path in JOBLIB_WRAPPERS:  # joblib.load: array_wrapper.read(unpickler)
            self.call_method(instance, "read", (), offset, f"{how} of a joblib array wrapper (joblib.load)")
        if cls.classification.verdict is Verdict.SAFE:
            if cls.path in JOBLIB_INLINE_ARRAY:
                return RawArray(instance, offset)
            if cls.path in JOBLIB_FILE_ARRAY:
                self._check_wrapper_file(instance, state, offset)
        return None

    def _check_state(self, instance: Call, what: str, problem_of: StateCheck, offset: int, how: str) -> None:
        """A class whose compiled code indexes with its attributes: the ``__dict__`` all
        merged states leave must pass its check (modelsec.pickle.state_checks)."""
        if instance.width is not None and instance.cls is not None:
            # its containers' owners read the width it had: it may not change afterwards
            self.observer.violated(instance.cls, offset, f"a second {how} changes a model already checked")
        attrs = instance.attrs
        fields = effective_fields(attrs.merged) if attrs is not None and not attrs.unknown else None
        problem = "attributes that cannot be read" if fields is None else problem_of(fields, self.observer)
        if problem is not None and instance.cls is not None:
            self.observer.violated(instance.cls, offset, f"{how} gives {what} {problem}")
        for name, value in (fields or {}).items():
            # what was checked must stay as it was: the containers the fields hold, at any
            # depth (a lil matrix's rows are lists an object array holds)
            watched = reachable_containers(value, self.observer)
            if watched is None and instance.cls is not None:
                self.observer.violated(
                    instance.cls, offset, f"{how} gives {what} a {name} larger than the scan may examine"
                )
            for container in watched or ():
                container.watched_by = instance.cls
        width = (fields or {}).get("n_features_in_", (fields or {}).get("n_features_"))
        if problem is None and isinstance(width, int) and not isinstance(width, bool):
            instance.width = width  # a model's containers remember their widest member

    def _default_state(
        self, instance: Call, facts: ClassFacts | None, state: Value, offset: int, how: str
    ) -> None:
        slotstate: Value = None
        if isinstance(state, tuple) and len(state) == 2:  # (state, slotstate), protocol 2+
            state, slotstate = state
        for part in (state, slotstate):  # pickle._Unpickler: ``for k, v in state.items()``
            self.call_method(part, "items", (), offset, f"{how} (pickle._Unpickler) reads its state")
        # A state CPython refuses ("state is not a dictionary") ends its load there; going on
        # is the permissive (safe) direction, so it is merged like any other.
        self._merge(instance, state)
        if slotstate is not None:
            assert instance.cls is not None
            setattr_ = type_lookup(facts, instance.cls.path, "__setattr__")
            self._class_method(
                setattr_, "__setattr__", offset, f"{how} (slot state) of {instance.cls.subject}"
            )
            self.assign(instance, slotstate, offset, f"{how} (slot state)")

    def assign(self, instance: Call, state: Value, offset: int, how: str) -> None:
        """``setattr(inst, key, value)`` for every item of ``state``. Unlike a ``__dict__``
        update, setattr reaches the object's machinery: ``__class__`` swaps the class whose
        methods every later lookup finds, ``__dict__`` makes a dict the stream still holds
        (and can go on changing through the memo) the instance's attributes. No pickler
        writes either name, and names the stream computes could be either: a finding."""
        if isinstance(state, Container) and state.kind == "dict":
            if state.opaque_keys:
                self.observer.invoked(
                    instance, offset, f"{how} sets attributes whose names the stream computes"
                )
            for key, _ in state.items:
                if isinstance(key, str) and key in OBJECT_MACHINERY:
                    self.observer.invoked(instance, offset, f"{how} sets {key}: {OBJECT_MACHINERY[key]}")
        self._merge(instance, state)

    @staticmethod
    def _merge(instance: Call, state: Value) -> None:
        if instance.attrs is not None:
            instance.attrs.merge(state)

    @classmethod
    def _merge_parts(cls, instance: Call, state: Value) -> None:
        """A class's own ``__setstate__`` given a tuple reads its fields into slots and the
        dicts among them into ``__dict__`` (NumPy, pandas and Cython classes do): only those
        dicts become attributes. Any other state is merged as a whole (unknown if not a dict)."""
        if isinstance(state, tuple):
            for part in state:
                if isinstance(part, Container) and part.kind == "dict":
                    cls._merge(instance, part)
            return
        cls._merge(instance, state)

    def consume_mapping(self, value: Value, offset: int, how: str) -> None:
        """``dict.update(value)``, ``dict(value)``: a non-dict mapping has ``keys()`` called."""
        self.call_method(value, "keys", (), offset, f"{how} reads a mapping")

    def call_method(self, value: Value, method: str, args: Value, offset: int, how: str) -> None:
        """``value.method(*args)`` where ``value`` is an instance the stream built: what an
        attribute it was given, or a computed one, would run."""
        if isinstance(value, Call) and value.cls is not None and value.attrs is not None:
            found = lookup(value.attrs, _facts(value.cls.path), value.cls.path, method)
            if found.found in (Found.OVERRIDE, Found.COMPUTED):
                self._use(found, value, method, args, offset, how)

    def extend(self, target: Value, items: list[Value], offset: int, how: str) -> None:
        """APPEND/APPENDS on anything but an exact list: ``extend`` (the C unpickler, when the
        object has one) or ``append`` (pickle.py, and the C fallback) of the instance."""
        known = self._known_instance(target, offset, how)
        if known is None:
            return
        instance, facts = known
        cls = instance.cls
        assert cls is not None
        if cls.path in _BUILT_ONCE:
            self.observer.violated(cls, offset, f"{how} writes into {_BUILT_ONCE[cls.path]}")
            return
        found_extend = lookup(instance.attrs, facts, cls.path, "extend")
        found_append = lookup(instance.attrs, facts, cls.path, "append")
        self._use(found_extend, instance, "extend", (Container("list", list(items)),), offset, how)
        self._use(found_append, instance, "append", tuple(items[:1]), offset, how)

    def add(self, target: Value, items: list[Value], offset: int) -> None:
        """ADDITEMS on anything but a set: ``add`` of the instance, once per item."""
        known = self._known_instance(target, offset, "ADDITEMS")
        if known is None:
            return
        instance, facts = known
        cls = instance.cls
        assert cls is not None
        if facts is not None and facts.builtin_base == "set":
            return  # set.update, in C, whatever the subclass defines
        found = lookup(instance.attrs, facts, cls.path, "add")
        self._use(found, instance, "add", tuple(items[:1]), offset, "ADDITEMS")

    def setitems(self, target: Value, offset: int, how: str) -> None:
        """SETITEM(S) on anything but an exact dict: ``type(obj).__setitem__``."""
        known = self._known_instance(target, offset, how)
        if known is None:
            return
        instance, facts = known
        cls = instance.cls
        assert cls is not None
        if cls.path in _BUILT_ONCE:
            # ndarray.__setitem__ writes into the contents contracts read (red team, session
            # 22: a csr matrix's indices set past its shape after its check); no pickler
            # writes this
            self.observer.violated(cls, offset, f"{how} writes into {_BUILT_ONCE[cls.path]}")
            return
        found = type_lookup(facts, cls.path, "__setitem__")
        self._use(found, instance, "__setitem__", (), offset, how)

    def _check_wrapper_file(self, wrapper: Call, state: Value, offset: int) -> None:
        """Old joblib wrappers load ``filename``: given to ``__init__`` (a REDUCE of the
        class), or set by the state or slot state of their BUILD."""
        cls = wrapper.cls
        assert cls is not None
        if wrapper.how not in _NEW_ONLY:
            given = sequence_items(wrapper.args)
            if given is None:
                self.observer.external_file(cls, Unresolved(offset, "computed arguments"), offset)
            elif given:
                self.observer.external_file(cls, given[0], offset)
        parts = [state]
        pair = sequence_items(state) if isinstance(state, tuple) else None
        if pair is not None and len(pair) == 2:
            parts = list(pair)
        for part in parts:
            if isinstance(part, Container) and part.kind == "dict":
                if part.opaque_keys:
                    self.observer.external_file(cls, Unresolved(offset, "computed state"), offset)
                for key, value in part.items:
                    if key == "filename":
                        self.observer.external_file(cls, value, offset)
            elif part is not None and not isinstance(part, (tuple, Container)):
                self.observer.external_file(cls, Unresolved(offset, "computed state"), offset)


class CallSite:
    """A call of an allowlisted function, as its contract sees it (implements
    :class:`~modelsec.pickle.contracts.Site`)."""

    def __init__(
        self,
        invoker: Invoker,
        callee: Global,
        args: Value,
        items: tuple[Value, ...] | None,
        offset: int,
        how: str,
        depth: int,
        receiver: Value = None,
        kwargs: Value = None,
    ) -> None:
        self.invoker = invoker
        self.receiver = receiver
        self.kwargs = kwargs  # NEWOBJ_EX's keyword arguments (None: there were none)
        self.callee = callee
        self.args = args
        self.items = items
        self.offset = offset
        self.how = how
        self.depth = depth
        self._unseen_reported = False

    def count(self) -> int | None:
        return None if self.items is None else len(self.items)

    @property
    def observer(self) -> Observer:
        return self.invoker.observer

    def arg(self, index: int) -> Value:
        if self.items is None:
            if not self._unseen_reported:
                self._unseen_reported = True
                self.violation("its arguments are computed by the stream and cannot be checked")
            return None
        return self.items[index] if index < len(self.items) else None

    def _absent(self, index: int) -> bool:
        return self.items is not None and index >= len(self.items)

    def violation(self, what: str) -> None:
        self.invoker.observer.violated(self.callee, self.offset, what)

    def data(self, *indexes: int) -> None:
        for index in indexes:
            if not self._absent(index):
                self.invoker.consume_mapping(self.arg(index), self.offset, self.callee.path)

    def klass(
        self, index: int, *, data_ok: bool = False, calls: tuple[str, ...] = _NEW, args: Value = ()
    ) -> Global | None:
        """The class at ``index``, which the helper instantiates: it must be allowlisted, and
        its methods the helper runs (``calls``, given ``args``) safe."""
        value = self.arg(index)
        if self.items is None:
            return None
        if isinstance(value, Global):
            verdict = value.classification.verdict
            facts = _facts(value.path)
            if verdict is Verdict.SAFE and facts is not None:
                for method, found in _unsafe_methods(value.path, calls):
                    self.invoker._class_method(
                        found, method, self.offset, f"{self.callee.path} instantiates {value.subject}", args
                    )
                return value
            if verdict is Verdict.DATA and data_ok:
                return value
            if verdict in (Verdict.UNKNOWN, Verdict.DATA):
                self.invoker.observer.invoked(value, self.offset, f"{self.callee.path} instantiates it")
                return value
            if verdict is Verdict.DANGEROUS:
                return value  # reported on import
            self.violation(f"argument {index + 1} ({value.subject}) is not a class it may build")
            return None
        if isinstance(value, Unresolved):
            return None
        self.invoker.observer.invoked(value, self.offset, f"{self.callee.path} instantiates it")
        return None

    def exact(self, index: int, allowed: frozenset[str], *, optional: bool = False) -> Global | None:
        if optional and self._absent(index):
            return None
        value = self.arg(index)
        if self.items is None:
            return None
        if isinstance(value, Global) and value.path in allowed:
            return value
        self.violation(f"argument {index + 1} is {describe(value)}, not one of {', '.join(sorted(allowed))}")
        return None

    def name(self, index: int, allowed: frozenset[str], *, optional: bool = False) -> str | None:
        if optional and self._absent(index):
            return None
        value = self.arg(index)
        if self.items is None:
            return None
        if isinstance(value, str) and value in allowed:
            return value
        shown = repr(value) if isinstance(value, str) else f"a {describe(value)} computed by the stream"
        self.violation(f"argument {index + 1} is {shown}, not a literal one of {', '.join(sorted(allowed))}")
        return None

    def called_now(self, func_index: int, args_index: int) -> Value:
        func = self.arg(func_index)
        if self.items is None:
            return None
        return self.invoker.call(
            func, self.arg(args_index), self.offset, f"{self.callee.path} calls its argument", self.depth + 1
        )

    def called_later(self, index: int) -> None:
        if self._absent(index):
            return
        value = self.arg(index)
        if value is None or isinstance(value, Unresolved):
            return
        if isinstance(value, Global):
            if value.classification.verdict in (Verdict.UNKNOWN, Verdict.DATA):
                self.invoker.observer.invoked(
                    value, self.offset, f"kept by {self.callee.path}, which calls it later"
                )
            return
        self.invoker.observer.invoked(value, self.offset, f"kept by {self.callee.path}, which calls it later")

    def instance(self, cls: Global | str | None, *, state: Value = None) -> Value:
        if cls is None:
            return self.result()
        if isinstance(cls, str):
            cls = _global_for(cls, self.offset, self.callee.path)
        made = self.invoker.instance(cls, self.args, self.offset, self.how)
        made.bare = self.callee.path in _BARE_CONSTRUCTORS
        if state is not None and made.attrs is not None:
            parts = sequence_items(state) if isinstance(state, tuple) else None
            for part in parts if parts is not None else (state,):
                if not (isinstance(part, (int, float, bool, str, bytes)) or part is None):
                    made.attrs.merge(part)
        return made

    def setstate(self, instance: Value, state: Value) -> Value:
        """torch's ``_rebuild_from_type_v2`` tail: ``new_type.__setstate__(state)`` when the
        class has its own, else ``_set_obj_state`` (``setattr`` of every item of the dict and
        slot-state halves, through ``type(obj).__setattr__``)."""
        if not isinstance(instance, Call) or instance.cls is None or state is None:
            return instance
        cls = instance.cls
        facts = _facts(cls.path)
        how = f"{self.callee.path} restores the state of {cls.subject}"
        found = type_lookup(facts, cls.path, "__setstate__")
        if found.found is Found.METHOD and found.owner not in _TENSOR_SETSTATE:
            self.invoker._class_method(found, "__setstate__", self.offset, how, (state,), instance)
            self.invoker._merge_parts(instance, state)
            return instance
        halves = state if isinstance(state, tuple) and len(state) == 2 else (state,)
        setattr_ = type_lookup(facts, cls.path, "__setattr__")
        for half in halves:
            if half is not None:
                self.invoker._class_method(setattr_, "__setattr__", self.offset, how, (half,), instance)
                self.invoker.assign(instance, half, self.offset, how)
        return instance

    def construct(self) -> Value:
        facts = _facts(self.callee.path)
        if facts is None:
            return self.result()
        methods = _NEW if self.how in _NEW_ONLY else _NEW_AND_INIT
        return self.invoker.construct(
            self.callee, facts, self.args, self.offset, self.how, methods, self.kwargs
        )

    def resolve(self, module_index: int, name_index: int) -> Value:
        module, name = self.arg(module_index), self.arg(name_index)
        if isinstance(module, str) and isinstance(name, str):
            return self.invoker.importer(module, name, self.offset, self.callee.path)
        self.invoker.observer.unresolved(
            self.offset, f"{self.callee.path} with a module or name computed by the stream"
        )
        return Unresolved(self.offset, self.callee.path)

    def result(self) -> Value:
        return Call(self.callee, self.args, self.offset, self.how)
