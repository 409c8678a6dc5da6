"""A conservative purity check of one Python function, from its source.

"Pure" here means: the function's own code stores only into ``self``, ``self.__dict__``
and containers it built itself, reads what it likes, and calls nothing but a closed set
of builtins, dict/list/set methods of those containers, builtin-type methods on ``self``
(``object.__setattr__(self, ...)``) and ``super().<the same method>`` (which is then
checked in turn). Anything else -- any call of a parameter or of a method looked up on
``self`` (an instance attribute can replace it), any call of a module-level function, an
import, a ``with`` block, a nested function, a property getter or setter of the class --
makes it "not proven", with the first reason found.

What "pure" does not cover, by design (docs/pickle-allowlist.md): builtins and operators
dispatch to their operands' protocol methods (``len(x)`` -> ``x.__len__``,
``d.update(state)`` -> ``state.keys()``), so a pure method is only as safe as the values
the unpickler hands it. The machine keeps that side of the contract: arguments and
states must be built from known types.
"""

from __future__ import annotations

import ast
import builtins
import inspect
import sys
import textwrap
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass

# Builtins whose own code has no effect beyond building or inspecting values.
PURE_BUILTINS = frozenset(
    {
        "isinstance", "issubclass", "len", "type", "callable", "id", "hasattr", "getattr",
        "setattr", "vars", "dict", "list", "tuple", "set", "frozenset", "bool", "int",
        "float", "complex", "str", "bytes", "range", "enumerate", "zip", "min", "max",
        "abs", "round", "any", "all", "reversed", "repr", "hash", "object",
    }
)  # fmt: skip
# Builtins that take an attribute name: only on self, only with a literal name.
NAMED_ATTRIBUTE_BUILTINS = frozenset({"hasattr", "getattr", "setattr"})
# Builtin types whose methods may be called unbound on self (object.__setattr__(self, ...)).
BUILTIN_TYPES: tuple[type, ...] = (
    object, dict, list, set, frozenset, tuple, int, float, complex, str, bytes, bytearray,
)  # fmt: skip
# Methods of dict/list/set a function may call on a container it built (or self.__dict__).
CONTAINER_METHODS = frozenset(
    {
        "get", "setdefault", "pop", "popitem", "update", "items", "keys", "values", "copy",
        "clear", "append", "extend", "insert", "remove", "index", "count", "add", "discard",
        "union", "intersection", "difference",
    }
)  # fmt: skip
_FRESH_CONTAINER_CALLS = frozenset({"dict", "list", "set", "tuple", "frozenset"})
_STATEMENT_NAMES = {
    "With": "a with block", "AsyncWith": "a with block", "Import": "an import",
    "ImportFrom": "an import", "Global": "a global statement", "Nonlocal": "a nonlocal statement",
    "FunctionDef": "a nested function", "AsyncFunctionDef": "a nested function",
    "ClassDef": "a nested class", "Match": "a match statement",
}  # fmt: skip
_HEAPTYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: a class defined in Python


class NotProven(Exception):
    """The function is not proven pure; the message says why."""


@dataclass(frozen=True)
class Scope:
    """What ``self`` is for the function under analysis (a method of ``cls``).

    The callbacks answer "why is that code unsafe?" (None: it is safe) for the code a
    method reaches without an instance lookup, so that no instance attribute can stand in
    for it: ``super().<m>(...)`` and ``Base.<m>(self, ...)`` for a base in the MRO, the
    special methods of ``type(self)``, and the property accessors of the class.
    """

    cls: type
    method: str  # the method's own name
    super_reason: Callable[[str], str | None]  # super().<name>(...) from this method
    base_reason: Callable[[type, str], str | None]  # Base.<name>(self, ...), Base in cls.__mro__
    special_reason: Callable[[str], str | None]  # type(self).<special>
    accessor_reason: Callable[[types.FunctionType, str], str | None]  # property fget/fset/fdel


Construct = Callable[[type], str | None]  # why calling this class is unsafe, or None


def analyse(fn: types.FunctionType, scope: Scope | None, construct: Construct | None = None) -> str | None:
    """None if ``fn`` is proven pure (as a method of ``scope.cls``), else the reason it is not.

    ``construct`` judges calls of classes (``DecisionTreeClassifier()`` in a default):
    safe when the class's own construction is.
    """
    try:
        _Checker(fn, scope, construct).run()
    except NotProven as reason:
        return str(reason)
    return None


def executed_sources(fn: types.FunctionType) -> list[str]:
    """Source text of the code that runs when ``fn`` is called, then of what it wraps.

    ``inspect.getsource(fn)`` follows ``__wrapped__`` to the decorated function; the code
    that actually runs is the wrapper's, so read the code objects along the chain.
    """
    sources: list[str] = []
    current: object = fn
    seen: set[int] = set()
    while isinstance(current, types.FunctionType) and id(current) not in seen:
        seen.add(id(current))
        try:
            sources.append("".join(_source_lines(current)))
        except (OSError, TypeError) as error:
            raise NotProven(f"source not available ({type(error).__name__})") from error
        current = getattr(current, "__wrapped__", None)
    return sources


def _source_lines(fn: types.FunctionType) -> list[str]:
    """The lines of the code that runs: ask ``inspect`` about the code object, not the
    function (which it unwraps). Frozen standard-library modules (``<frozen
    _collections_abc>``) name no file in their code objects; their module does."""
    code = fn.__code__
    if not code.co_filename.startswith("<frozen "):
        return inspect.getsourcelines(code)[0]
    module = sys.modules.get(fn.__module__)
    filename = getattr(module, "__file__", None)
    if not filename:
        raise OSError(f"no file for frozen module {fn.__module__}")
    with open(filename, encoding="utf-8") as handle:
        lines = handle.readlines()
    return inspect.getblock(lines[code.co_firstlineno - 1 :])


def class_attribute(cls: type, name: str) -> object | None:
    """The attribute ``name`` as the first class of the MRO defines it (no descriptor call)."""
    for klass in cls.__mro__:
        if name in klass.__dict__:
            return klass.__dict__[name]
    return None


def _is_python_descriptor(obj: object, protocol: str) -> bool:
    kind = type(obj)
    if isinstance(obj, (types.FunctionType, staticmethod, classmethod)):
        return False
    return hasattr(kind, protocol) and bool(kind.__flags__ & _HEAPTYPE)


Accessor = Callable[[types.FunctionType, str], str | None]


def _property_reason(obj: property, protocol: str, name: str, accessor: Accessor | None) -> str | None:
    function = {"__get__": obj.fget, "__set__": obj.fset, "__delete__": obj.fdel}[protocol]
    if function is None:
        return None  # AttributeError at run time
    verb = {"__get__": "reads", "__set__": "sets", "__delete__": "deletes"}[protocol]
    if not isinstance(function, types.FunctionType) or accessor is None:
        return f"{verb} property {name}"
    reason = accessor(function, name)
    return None if reason is None else f"{verb} property {name} ({reason})"


def read_reason(cls: type, name: str, accessor: Accessor | None = None) -> str | None:
    """Why reading ``self.<name>`` may run code of the class that is not proven safe, or None."""
    obj = class_attribute(cls, name)
    if isinstance(obj, property):
        return _property_reason(obj, "__get__", name, accessor)
    if _is_python_descriptor(obj, "__get__"):
        return f"reads {type(obj).__name__} {name}"
    return None


def write_reason(
    cls: type, name: str, protocol: str = "__set__", accessor: Accessor | None = None
) -> str | None:
    """Why setting (or deleting) ``self.<name>`` may run code of the class that is not proven safe."""
    obj = class_attribute(cls, name)
    if isinstance(obj, property):
        return _property_reason(obj, protocol, name, accessor)
    if _is_python_descriptor(obj, protocol):
        return f"sets {type(obj).__name__} {name}"
    return None


def any_setter_reason(cls: type, accessor: Accessor | None = None) -> str | None:
    """For a computed attribute name: the first unproven setter any name could reach."""
    for klass in cls.__mro__:
        for name in klass.__dict__:
            if reason := write_reason(cls, name, accessor=accessor):
                return reason
    return None


class _Checker:
    def __init__(self, fn: types.FunctionType, scope: Scope | None, construct: Construct | None) -> None:
        self.fn = fn
        self.scope = scope
        self.construct = construct
        self.globals = fn.__globals__
        self.node = self._parse()
        arguments = self.node.args
        positional = [a.arg for a in (*arguments.posonlyargs, *arguments.args)]
        self.params = set(positional) | {a.arg for a in arguments.kwonlyargs}
        self.params |= {a.arg for a in (arguments.vararg, arguments.kwarg) if a is not None}
        # The instance: the first positional parameter of a method, or in __new__ whatever
        # super().__new__(cls) / object.__new__(cls) returned.
        self.self_names: set[str] = set()
        self.cls_names: set[str] = set()
        if scope is not None and positional:
            if scope.method == "__new__":
                self.cls_names.add(positional[0])
            else:
                self.self_names.add(positional[0])
        self.params -= self.self_names | self.cls_names
        self.locals = self._bound_names()
        self.owned = self._owned_containers()

    # -- source --------------------------------------------------------------------------

    def _parse(self) -> ast.FunctionDef:
        if hasattr(self.fn, "__wrapped__"):
            raise NotProven("decorated: the wrapper's code calls the wrapped function")
        code = self.fn.__code__
        if not code.co_filename.endswith(".py") and not code.co_filename.startswith("<frozen "):
            raise NotProven(f"generated code without a source file ({code.co_filename})")
        for name in code.co_freevars:
            if name != "__class__":  # the cell zero-argument super() uses
                raise NotProven(f"closure over {name}")
        source = executed_sources(self.fn)[0]
        tree = ast.parse(textwrap.dedent(source))
        node = tree.body[0] if tree.body else None
        if not isinstance(node, ast.FunctionDef) or node.name != code.co_name:
            raise NotProven("the source found does not define this function")
        return node

    def _bound_names(self) -> set[str]:
        bound: set[str] = set()
        for node in ast.walk(self.node):
            if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
                bound.add(node.id)
            elif isinstance(node, ast.ExceptHandler) and node.name:
                bound.add(node.name)
        return bound - self.self_names

    def _bindings(self) -> Iterator[tuple[str, ast.expr | None]]:
        """(name, value) for every binding of a local; value None when not a plain assign."""
        for node in ast.walk(self.node):
            if isinstance(node, (ast.Assign, ast.AnnAssign, ast.NamedExpr)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if isinstance(target, ast.Name):
                        yield target.id, node.value
                    else:
                        for sub in ast.walk(target):
                            if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
                                yield sub.id, None
            elif isinstance(node, (ast.For, ast.comprehension, ast.With)):
                targets = (
                    [node.target]
                    if not isinstance(node, ast.With)
                    else [item.optional_vars for item in node.items if item.optional_vars]
                )
                for target in targets:
                    for sub in ast.walk(target):
                        if isinstance(sub, ast.Name):
                            yield sub.id, None
            elif isinstance(node, ast.ExceptHandler) and node.name:
                yield node.name, None

    def _owned_containers(self) -> set[str]:
        """Locals only ever bound to a container this function built (or to the instance)."""
        values: dict[str, list[ast.expr | None]] = {}
        for name, value in self._bindings():
            values.setdefault(name, []).append(value)
        owned: set[str] = set()
        changed = True
        while changed:  # x = {}; y = x.copy(): ownership flows through copies
            changed = False
            for name, bound in values.items():
                if name in owned or name in self.self_names:
                    continue
                if self.scope is not None and all(self._is_new_instance(v) for v in bound):
                    self.self_names.add(name)
                    changed = True
                elif all(self._is_fresh_container(v, owned) for v in bound):
                    owned.add(name)
                    changed = True
        self.locals -= self.self_names
        return owned

    def _is_new_instance(self, value: ast.expr | None) -> bool:
        """``super().__new__(cls, ...)`` or ``object.__new__(cls)`` inside ``__new__``."""
        if self.scope is None or self.scope.method != "__new__" or not isinstance(value, ast.Call):
            return False
        func = value.func
        if not (isinstance(func, ast.Attribute) and func.attr == "__new__"):
            return False
        return self._is_super(func.value) or self._builtin_type(func.value) is not None

    def _is_fresh_container(self, value: ast.expr | None, owned: set[str]) -> bool:
        if isinstance(
            value, (ast.Dict, ast.List, ast.Set, ast.Tuple, ast.ListComp, ast.SetComp, ast.DictComp)
        ):
            return True
        if not isinstance(value, ast.Call):
            return False
        func = value.func
        if isinstance(func, ast.Name) and func.id in _FRESH_CONTAINER_CALLS:
            return self._global(func.id) is getattr(builtins, func.id)
        if isinstance(func, ast.Attribute) and func.attr == "copy":
            base = func.value
            return (isinstance(base, ast.Name) and base.id in owned) or self._is_self_dict(base)
        return False

    # -- names ---------------------------------------------------------------------------

    def _global(self, name: str) -> object:
        if name in self.globals:
            return self.globals[name]
        space = self.globals.get("__builtins__", builtins)
        space = space if isinstance(space, dict) else vars(space)
        return space.get(name, _MISSING)

    def _builtin_type(self, node: ast.expr) -> type | None:
        if isinstance(node, ast.Name) and node.id not in self.locals | self.params:
            value = self._global(node.id)
            if isinstance(value, type) and value in BUILTIN_TYPES:
                return value
        return None

    def _base_class(self, node: ast.expr) -> type | None:
        """A global naming a (non-builtin) class in type(self).__mro__: ``_Base.__init__(self)``."""
        if self.scope is None or not isinstance(node, ast.Name) or node.id in self.locals | self.params:
            return None
        value = self._global(node.id)
        if isinstance(value, type) and value not in BUILTIN_TYPES and value in self.scope.cls.__mro__:
            return value
        return None

    def _is_self(self, node: ast.expr) -> bool:
        return isinstance(node, ast.Name) and node.id in self.self_names

    def _is_self_dict(self, node: ast.expr) -> bool:
        if isinstance(node, ast.Attribute) and node.attr == "__dict__" and self._is_self(node.value):
            return True
        return (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "vars"
            and len(node.args) == 1
            and self._is_self(node.args[0])
            and self._global("vars") is vars
        )

    def _is_super(self, node: ast.expr) -> bool:
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "super"):
            return False
        if self._global("super") is not super:
            return False
        if not node.args:
            return True
        return len(node.args) == 2 and (self._is_self(node.args[1]) or self._is_cls(node.args[1]))

    def _is_cls(self, node: ast.expr) -> bool:
        return isinstance(node, ast.Name) and node.id in self.cls_names

    # -- walking -------------------------------------------------------------------------

    def run(self) -> None:
        for statement in self.node.body:
            self.statement(statement)

    def statement(self, node: ast.stmt) -> None:
        match node:
            case ast.Expr(value=value):
                self.expr(value)
            case ast.Assign(targets=targets, value=value):
                self.expr(value)
                for target in targets:
                    self.store(target)
            case ast.AnnAssign(target=target, value=value):
                if value is not None:
                    self.expr(value)
                    self.store(target)
            case ast.AugAssign(target=target, value=value):
                self.expr(value)
                self.load_target(target)
                self.store(target)
            case ast.Delete(targets=targets):
                for target in targets:
                    self.delete(target)
            case ast.Return(value=value):
                if value is not None:
                    self.expr(value)
            case ast.If(test=test, body=body, orelse=orelse) | ast.While(test=test, body=body, orelse=orelse):
                self.expr(test)
                self.block(body)
                self.block(orelse)
            case ast.For(target=target, iter=iterable, body=body, orelse=orelse):
                self.expr(iterable)
                self.store(target)
                self.block(body)
                self.block(orelse)
            case ast.Try(body=body, handlers=handlers, orelse=orelse, finalbody=final):
                self.block(body)
                for handler in handlers:
                    if handler.type is not None:
                        self.expr(handler.type)
                    self.block(handler.body)
                self.block(orelse)
                self.block(final)
            case ast.Raise(exc=exc, cause=cause):
                for part in (exc, cause):
                    if part is not None:
                        self.expr(part)
            case ast.Assert(test=test, msg=msg):
                self.expr(test)
                if msg is not None:
                    self.expr(msg)
            case ast.Pass() | ast.Break() | ast.Continue():
                pass
            case _:
                kind = _STATEMENT_NAMES.get(type(node).__name__, type(node).__name__)
                raise NotProven(f"uses {kind} (line {self._line(node)})")

    def block(self, statements: list[ast.stmt]) -> None:
        for statement in statements:
            self.statement(statement)

    def _line(self, node: ast.AST) -> int:
        return self.fn.__code__.co_firstlineno + getattr(node, "lineno", 1) - 1

    def store(self, target: ast.expr) -> None:
        match target:
            case ast.Name():
                return
            case ast.Tuple(elts=elts) | ast.List(elts=elts):
                for element in elts:
                    self.store(element)
            case ast.Starred(value=value):
                self.store(value)
            case ast.Attribute(value=base, attr=attr) if self._is_self(base):
                self._require(write_reason(self._cls(), attr, accessor=self._accessor()))
                self._special("__setattr__")
            case ast.Subscript(value=base, slice=index):
                self.expr(index)
                if self._is_self_dict(base) or (isinstance(base, ast.Name) and base.id in self.owned):
                    return
                if self._is_self(base):
                    self._special("__setitem__")
                    return
                raise NotProven(f"assigns an item of {ast.unparse(base)}")
            case _:
                raise NotProven(f"assigns to {ast.unparse(target)}")

    def load_target(self, target: ast.expr) -> None:
        if not isinstance(target, ast.Name):
            self.expr(target)

    def delete(self, target: ast.expr) -> None:
        match target:
            case ast.Name():
                return
            case ast.Attribute(value=base, attr=attr) if self._is_self(base):
                self._require(write_reason(self._cls(), attr, "__delete__", self._accessor()))
                self._special("__delattr__")
            case ast.Subscript(value=base, slice=index) if self._is_self_dict(base) or (
                isinstance(base, ast.Name) and base.id in self.owned
            ):
                self.expr(index)
            case _:
                raise NotProven(f"deletes {ast.unparse(target)}")

    def expr(self, node: ast.expr) -> None:
        match node:
            case ast.Call():
                self.call(node)
            case ast.Attribute(value=base, attr=attr):
                if self._is_self(base):
                    self._require(read_reason(self._cls(), attr, self._accessor()))
                else:
                    self.expr(base)
            case ast.Subscript(value=base, slice=index):
                if self._is_self(base):
                    self._special("__getitem__")
                else:
                    self.expr(base)
                self.expr(index)
            case ast.Lambda() | ast.Yield() | ast.YieldFrom() | ast.Await():
                raise NotProven(f"uses {type(node).__name__.lower()} (line {self._line(node)})")
            case ast.ListComp() | ast.SetComp() | ast.GeneratorExp() | ast.DictComp():
                for generator in node.generators:
                    self.expr(generator.iter)
                    for condition in generator.ifs:
                        self.expr(condition)
                for child in ast.iter_child_nodes(node):
                    if isinstance(child, ast.expr):
                        self.expr(child)
            case _:
                for child in ast.iter_child_nodes(node):
                    if isinstance(child, ast.expr):
                        self.expr(child)

    # -- calls ---------------------------------------------------------------------------

    def call(self, node: ast.Call) -> None:
        for argument in node.args:
            self.expr(argument)
        for keyword in node.keywords:
            self.expr(keyword.value)
        func = node.func
        if isinstance(func, ast.Name):
            self._call_name(func.id, node)
        elif isinstance(func, ast.Attribute):
            self._call_attribute(func, node)
        else:
            raise NotProven(f"calls a computed callable {ast.unparse(func)}")

    def _call_name(self, name: str, node: ast.Call) -> None:
        if name in self.params:
            raise NotProven(f"calls its parameter {name}")
        if name in self.locals or name in self.self_names or name in self.cls_names:
            raise NotProven(f"calls {name}")
        value = self._global(name)
        if isinstance(value, type) and issubclass(value, BaseException) and value.__module__ == "builtins":
            return  # raise ValueError(...)
        if name in PURE_BUILTINS and value is getattr(builtins, name):
            self._pure_builtin(name, node)
            return
        if isinstance(value, type) and self.construct is not None:
            if reason := self.construct(value):
                raise NotProven(f"calls {name}: {reason}")
            return
        raise NotProven(f"calls {name}")

    def _pure_builtin(self, name: str, node: ast.Call) -> None:
        if name == "type" and len(node.args) != 1:
            raise NotProven("creates a class with type()")
        if name == "vars" and not self._is_self_dict(node):
            raise NotProven("calls vars() on something other than self")
        if name in NAMED_ATTRIBUTE_BUILTINS:
            self._named_attribute(name, node)

    def _named_attribute(self, name: str, node: ast.Call) -> None:
        if len(node.args) < 2 or not self._is_self(node.args[0]):
            raise NotProven(f"calls {name}() on something other than self")
        attribute = node.args[1]
        if not (isinstance(attribute, ast.Constant) and isinstance(attribute.value, str)):
            raise NotProven(f"calls {name}(self, <computed name>)")
        if name == "setattr":
            self._require(write_reason(self._cls(), attribute.value, accessor=self._accessor()))
            self._special("__setattr__")
        else:
            self._require(read_reason(self._cls(), attribute.value, self._accessor()))

    def _call_attribute(self, func: ast.Attribute, node: ast.Call) -> None:
        base, method = func.value, func.attr
        if self._is_super(base):
            if self.scope is None:
                raise NotProven(f"calls super().{method}")
            if reason := self.scope.super_reason(method):
                raise NotProven(f"super().{method}: {reason}")
            return
        if isinstance(base, ast.Constant) and isinstance(base.value, str) and hasattr(str, method):
            return  # "...".format(...), ", ".join(...)
        base_class = self._base_class(base)
        if base_class is not None and node.args and self._is_self(node.args[0]):
            assert self.scope is not None
            if reason := self.scope.base_reason(base_class, method):
                raise NotProven(f"{base_class.__name__}.{method}: {reason}")
            return
        if self._is_self_dict(base) or (isinstance(base, ast.Name) and base.id in self.owned):
            if method in CONTAINER_METHODS:
                return
            raise NotProven(f"calls {method}() of a container")
        builtin_type = self._builtin_type(base)
        if (
            builtin_type is not None
            and node.args
            and (self._is_self(node.args[0]) or self._is_cls(node.args[0]))
        ):
            self._builtin_type_method(builtin_type, method, node)
            return
        if self._is_self(base):
            raise NotProven(f"calls self.{method} (an instance attribute from the state can replace it)")
        if isinstance(base, ast.Name) and base.id in self.params:
            raise NotProven(f"calls {base.id}.{method} of its parameter")
        raise NotProven(f"calls {ast.unparse(func)}")

    def _builtin_type_method(self, builtin_type: type, method: str, node: ast.Call) -> None:
        """``object.__setattr__(self, name, value)`` and friends: builtin code on self."""
        if method in ("__setattr__", "__delattr__") and self.scope is not None:
            name = node.args[1] if len(node.args) > 1 else None
            if isinstance(name, ast.Constant) and isinstance(name.value, str):
                protocol = "__set__" if method == "__setattr__" else "__delete__"
                self._require(write_reason(self._cls(), name.value, protocol, self._accessor()))
            else:  # a computed name can reach any data descriptor of the class
                self._require(any_setter_reason(self._cls(), self._accessor()))
        elif method == "__getattribute__" and self.scope is not None:
            raise NotProven(f"calls {builtin_type.__name__}.__getattribute__(self, ...)")
        if not hasattr(builtin_type, method):
            raise NotProven(f"calls {builtin_type.__name__}.{method}")

    # -- helpers -------------------------------------------------------------------------

    def _accessor(self) -> Accessor | None:
        return self.scope.accessor_reason if self.scope is not None else None

    def _cls(self) -> type:
        assert self.scope is not None  # self names exist only in a method scope
        return self.scope.cls

    def _special(self, name: str) -> None:
        if self.scope is not None and (reason := self.scope.special_reason(name)):
            raise NotProven(f"type(self).{name}: {reason}")

    @staticmethod
    def _require(reason: str | None) -> None:
        if reason:
            raise NotProven(reason)


_MISSING = object()
