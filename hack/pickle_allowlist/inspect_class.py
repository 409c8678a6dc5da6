"""What the unpickler can run on a class, resolved through the MRO and judged method by method.

For each method the unpickler reaches without a call opcode (``IMPLICIT_METHODS``), plus
the attribute-lookup hooks that make those lookups computed and ``__del__`` (it runs when
the unpickler drops an object), find the class whose ``__dict__`` defines it first in the
MRO and decide:

* defined by ``object``: the default, left out of the facts;
* defined by a builtin container/scalar type: safe ("builtin");
* Python code: safe if :mod:`purity` proves it pure ("pure") or its source hash matches a
  review ("reviewed");
* compiled code (C, Cython): safe only if reviewed by qualified name ("reviewed").
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Iterator
from dataclasses import dataclass, field

from pickle_allowlist import purity
from pickle_allowlist.imports import dotted
from pickle_allowlist.reviews import Review, source_digest

IMPLICIT_METHODS = (
    "__new__", "__init__", "__setstate__", "__setattr__", "__setitem__",
    "append", "extend", "add", "keys",
)  # fmt: skip
LOOKUP_HOOKS = ("__getattr__", "__getattribute__")
DROP_HOOKS = ("__del__",)
METACLASS_CALL = "type(cls).__call__"
# Builtin bases that change the unpickler's fast paths (and "object"); anything else
# compiled is "other".
FAST_PATH_BASES: dict[type, str] = {
    list: "list", dict: "dict", set: "set", frozenset: "frozenset", tuple: "tuple",
    int: "int", float: "float", str: "str", bytes: "bytes", bytearray: "bytearray",
}  # fmt: skip
BUILTIN_OWNERS = frozenset({*FAST_PATH_BASES, complex, bool, range, slice, type})
_SAFE_FACTORIES = (list, dict, set, tuple, frozenset)


def owner_of(cls: type, name: str) -> type | None:
    for klass in cls.__mro__:
        if name in klass.__dict__:
            return klass
    return None


@dataclass(frozen=True)
class Fact:
    owner: str  # dotted path of the class whose __dict__ defines the method
    safe: bool
    why: str  # "builtin", "pure", "reviewed", or why it is not safe

    def as_json(self) -> list[object]:
        return [self.owner, self.safe, self.why]


@dataclass
class ClassReport:
    path: str
    builtin_base: str
    instance_dict: bool
    dynamic_getattr: bool
    methods: dict[str, Fact]  # IMPLICIT_METHODS other than object's defaults
    hooks: dict[str, Fact] = field(default_factory=dict)  # lookup hooks and __del__

    def unsafe(self) -> Iterator[tuple[str, Fact]]:
        for name, fact in (*self.methods.items(), *self.hooks.items()):
            if not fact.safe:
                yield name, fact

    def as_json(self) -> dict[str, object]:
        methods = dict(self.methods)
        call = self.hooks.get(METACLASS_CALL)
        if call is not None and not call.safe:
            # cls(*args) runs the metaclass __call__ instead of __new__ + __init__: the
            # machine sees it where it looks for "what calling the class runs".
            methods["__init__"] = Fact(call.owner, False, f"type(cls).__call__: {call.why}")
        return {
            "builtin_base": self.builtin_base,
            "instance_dict": self.instance_dict,
            "dynamic_getattr": self.dynamic_getattr,
            "methods": {name: fact.as_json() for name, fact in methods.items()},
        }


class Inspector:
    """Judges methods and functions against the purity analysis and the reviews."""

    def __init__(self, reviews: dict[str, Review]) -> None:
        self.reviews = reviews
        self.used_reviews: set[str] = set()
        self.stale_reviews: dict[str, str] = {}  # qualname -> current digest
        self._verdicts: dict[tuple[type, type, str], tuple[bool, str]] = {}
        self._in_progress: set[tuple[type, type, str]] = set()
        self._accessors: dict[tuple[type, types.FunctionType], str | None] = {}
        self._accessors_in_progress: set[tuple[type, types.FunctionType]] = set()
        self._assumptions = 0  # how many times a cycle was cut by assuming "safe"

    # -- classes -------------------------------------------------------------------------

    def report(self, cls: type) -> ClassReport:
        methods = {name: fact for name in IMPLICIT_METHODS if (fact := self.fact(cls, name))}
        hooks = {name: fact for name in (*LOOKUP_HOOKS, *DROP_HOOKS) if (fact := self.fact(cls, name))}
        if (metaclass_call := self._metaclass_call(cls)) is not None:
            hooks[METACLASS_CALL] = metaclass_call
        return ClassReport(
            path=dotted(cls),
            builtin_base=builtin_base(cls),
            instance_dict=cls.__dictoffset__ != 0,
            dynamic_getattr=self._dynamic_getattr(cls),
            methods=methods,
            hooks=hooks,
        )

    def fact(self, cls: type, name: str) -> Fact | None:
        owner = owner_of(cls, name)
        if owner is None or owner is object:
            return None
        safe, why = self.verdict(cls, owner, name)
        return Fact(dotted(owner), safe, why)

    def _dynamic_getattr(self, cls: type) -> bool:
        if owner_of(cls, "__getattr__") not in (None, object):
            return True
        owner = owner_of(cls, "__getattribute__")
        if owner in (None, object) or owner in BUILTIN_OWNERS:
            return False
        raw = owner.__dict__["__getattribute__"]
        # A compiled __getattribute__ reviewed as the generic lookup is not computed.
        return isinstance(raw, types.FunctionType) or not self.verdict(cls, owner, "__getattribute__")[0]

    def _metaclass_call(self, cls: type) -> Fact | None:
        """A metaclass ``__call__`` runs instead of type.__call__ when the class is called."""
        metaclass = type(cls)
        owner = owner_of(metaclass, "__call__")
        if owner in (None, type, object):
            return None
        safe, why = self.verdict(metaclass, owner, "__call__")  # type: ignore[arg-type]
        return Fact(dotted(owner), safe, why)

    # -- methods -------------------------------------------------------------------------

    def verdict(self, cls: type, owner: type, name: str) -> tuple[bool, str]:
        key = (cls, owner, name)
        if key in self._verdicts:
            return self._verdicts[key]
        if key in self._in_progress:
            # A cycle adds no effect of its own: assume safe while the outer judgement runs.
            self._assumptions += 1
            return True, "pure"
        assumptions = self._assumptions
        self._in_progress.add(key)
        try:
            result = self._judge(cls, owner, name)
        finally:
            self._in_progress.discard(key)
        # A result that leaned on an assumption about a method still being judged is only
        # valid inside that judgement: keep it only when it did not (or the cycle closed).
        if self._assumptions == assumptions or not self._in_progress:
            self._verdicts[key] = result
        return result

    def _judge(self, cls: type, owner: type, name: str) -> tuple[bool, str]:
        if owner in BUILTIN_OWNERS:
            return True, "builtin"
        raw = owner.__dict__[name]
        fn = raw.__func__ if isinstance(raw, (staticmethod, classmethod)) else raw
        qualname = f"{dotted(owner)}.{name}"
        if isinstance(fn, types.FunctionType):
            generated = self._generated(cls, owner, name, fn)
            if generated is not None:
                return generated
            return self._python_method(cls, owner, name, fn, qualname)
        if callable(fn):
            return self._reviewed_compiled(qualname)
        return False, f"a {type(raw).__name__} object, not a function"

    def _python_method(
        self, cls: type, owner: type, name: str, fn: types.FunctionType, qualname: str
    ) -> tuple[bool, str]:
        scope = purity.Scope(
            cls=cls,
            method=name,
            super_reason=lambda other: self.super_reason(cls, owner, other),
            base_reason=lambda base, other: self.base_reason(cls, base, other),
            special_reason=lambda special: self.special_reason(cls, special),
            accessor_reason=lambda accessor, attribute: self.accessor_reason(cls, accessor),
        )
        reason = purity.analyse(fn, scope, self.construction_reason)
        if reason is None:
            return True, "pure"
        return self._reviewed_python(qualname, fn, reason, lambda: self.super_reason(cls, owner, name))

    def function(self, fn: object, path: str) -> tuple[bool, str]:
        """A function the unpickler calls directly (REDUCE of a global)."""
        if isinstance(fn, types.FunctionType):
            reason = purity.analyse(fn, None, self.construction_reason)
            if reason is None:
                return True, "pure"
            return self._reviewed_python(path, fn, reason, lambda: None)
        if callable(fn):
            return self._reviewed_compiled(path)
        return False, f"a {type(fn).__name__} object, not a function"

    def construction_reason(self, cls: type) -> str | None:
        """Why calling ``cls(...)`` may run unsafe code (its __new__, __init__, metaclass), or None."""
        for name in ("__new__", "__init__"):
            fact = self.fact(cls, name)
            if fact is not None and not fact.safe:
                return f"{fact.owner}.{name} ({fact.why})"
        call = self._metaclass_call(cls)
        if call is not None and not call.safe:
            return f"{call.owner}.__call__ ({call.why})"
        return None

    def base_reason(self, cls: type, base: type, name: str) -> str | None:
        """Why ``Base.<name>(self, ...)`` is unsafe on a ``cls`` instance, or None."""
        owner = owner_of(base, name)
        if owner is None or owner is object:
            return None
        safe, why = self.verdict(cls, owner, name)
        return None if safe else f"{dotted(owner)}.{name} ({why})"

    def accessor_reason(self, cls: type, fn: types.FunctionType) -> str | None:
        """Why a property getter/setter of ``cls`` is unsafe, or None."""
        key = (cls, fn)
        if key in self._accessors:
            return self._accessors[key]
        if key in self._accessors_in_progress:
            self._assumptions += 1  # a cycle adds no effect of its own (see verdict)
            return None
        assumptions = self._assumptions
        self._accessors_in_progress.add(key)
        try:
            owner = next((k for k in cls.__mro__ if fn.__qualname__.startswith(k.__qualname__ + ".")), cls)
            qualname = f"{fn.__module__}.{fn.__qualname__}"
            safe, why = self._python_method(cls, owner, fn.__name__, fn, qualname)
        finally:
            self._accessors_in_progress.discard(key)
        reason = None if safe else why
        if self._assumptions == assumptions or not (self._in_progress or self._accessors_in_progress):
            self._accessors[key] = reason
        return reason

    def _reviewed_python(
        self, qualname: str, fn: types.FunctionType, reason: str, super_reason: object
    ) -> tuple[bool, str]:
        review = self.reviews.get(qualname)
        if review is None:
            return False, reason
        self.used_reviews.add(qualname)
        if review.digest is None:
            return False, f"{reason}; reviewed as compiled code, but it is Python"
        try:
            digest = source_digest(fn)
        except purity.NotProven as error:
            return False, f"{reason}; cannot hash its source ({error})"
        if digest != review.digest:
            self.stale_reviews[qualname] = digest
            return False, f"{reason}; its review is stale (the source changed)"
        # The review covers this code; a super() call lands on a method of the subclass's
        # MRO that the review could not see.
        assert callable(super_reason)
        calls_super = any("super(" in source for source in purity.executed_sources(fn))
        if calls_super and (inherited := super_reason()) is not None:
            return False, f"reviewed, but super() reaches {inherited}"
        return _reviewed(review)

    def _reviewed_compiled(self, qualname: str) -> tuple[bool, str]:
        review = self.reviews.get(qualname)
        if review is None:
            return False, "compiled code, not reviewed"
        self.used_reviews.add(qualname)
        if review.digest is not None:
            return False, "compiled code, but the review expects Python source"
        return _reviewed(review)

    def super_reason(self, cls: type, owner: type, name: str) -> str | None:
        """Why super().<name> called from ``owner``'s method on a ``cls`` is unsafe, or None."""
        mro = cls.__mro__
        start = mro.index(owner) + 1 if owner in mro else len(mro)
        for klass in mro[start:]:
            if name in klass.__dict__:
                if klass is object:
                    return None
                safe, why = self.verdict(cls, klass, name)
                return None if safe else f"{dotted(klass)}.{name} ({why})"
        return None  # AttributeError at run time: no code runs

    def special_reason(self, cls: type, special: str) -> str | None:
        owner = owner_of(cls, special)
        if owner in (None, object):
            return None
        safe, why = self.verdict(cls, owner, special)  # type: ignore[arg-type]
        return None if safe else f"{dotted(owner)}.{special} ({why})"

    # -- code generated by dataclasses and namedtuple (exec'd, no source file) --------------

    def _generated(
        self, cls: type, owner: type, name: str, fn: types.FunctionType
    ) -> tuple[bool, str] | None:
        if not fn.__code__.co_filename.startswith("<"):
            return None
        if name == "__new__" and fn.__globals__.get("_tuple_new") is tuple.__new__:
            return True, "pure"  # namedtuple: tuple.__new__(cls, (a, b, ...))
        if "__dataclass_fields__" not in owner.__dict__:
            return None
        params = owner.__dict__.get("__dataclass_params__")
        if name in ("__setattr__", "__delattr__") and params is not None and params.frozen:
            # raises FrozenInstanceError for fields, else super(cls, self).__setattr__(...)
            inherited = self.super_reason(cls, owner, name)
            return (True, "pure") if inherited is None else (False, f"super() reaches {inherited}")
        if name != "__init__":
            return None
        for item in dataclasses.fields(owner):
            factory = item.default_factory
            if factory is not dataclasses.MISSING and factory not in _SAFE_FACTORIES:
                return (
                    False,
                    f"dataclass field {item.name} calls its default_factory {getattr(factory, '__qualname__', factory)}",
                )
            frozen = params is not None and params.frozen
            if reason := purity.write_reason(cls, item.name):
                return False, reason
            if not frozen and (reason := self.special_reason(cls, "__setattr__")):
                return False, f"type(self).__setattr__: {reason}"
        if owner_of(cls, "__post_init__") is not None:
            post = self.fact(cls, "__post_init__")
            if post is not None and not post.safe:
                return False, f"calls __post_init__ ({post.why})"
        return True, "pure"


def _reviewed(review: Review) -> tuple[bool, str]:
    """A review's verdict: safe, or (conditional review) unsafe with its condition as the reason."""
    if review.condition is not None:
        return False, f"reviewed: safe {review.condition}"
    return True, "reviewed"


_C_ATTRIBUTES = (
    types.WrapperDescriptorType,
    types.MethodDescriptorType,
    types.BuiltinFunctionType,
    types.ClassMethodDescriptorType,
)


def is_compiled(klass: type) -> bool:
    """A type defined in C or Cython: its own namespace holds slot wrappers or C methods
    *of its own* (a Python class may store another type's, e.g. ``_new_member_ =
    object.__new__``).

    (The heap-type flag does not tell: modules using PyType_FromSpec, such as ``array``,
    make heap types too.)
    """
    for value in vars(klass).values():
        if isinstance(value, _C_ATTRIBUTES):
            home = getattr(value, "__objclass__", None) or getattr(value, "__self__", None)
            if home is klass:
                return True
    return False


def builtin_base(cls: type) -> str:
    """The nearest builtin base that changes the unpickler's fast paths, or "other" for a
    class laid out by another compiled type (ndarray, deque, a Cython class)."""
    compiled_base = False
    for klass in cls.__mro__:
        if klass in FAST_PATH_BASES:
            return FAST_PATH_BASES[klass]
        if klass is not object and is_compiled(klass):
            compiled_base = True
    return "other" if compiled_base else "object"
