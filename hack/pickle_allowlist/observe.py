"""What real pickles of real objects do with their globals: call, instantiate, build, or only name.

The generator pickles objects it builds itself (fitted estimators, frames, arrays, random
states, sparse matrices, standard-library values) in several protocols and follows each
stream with a small stack simulation over ``pickletools.genops``. Nothing is unpickled:
this is trusted data we just produced, and the opcodes say enough.

The result tells the generator which functions benign pickles *call* at load time (they
need a review and, in the machine, an argument contract) as opposed to merely reference
(``SelectKBest.score_func``), and which classes benign pickles need.
"""

from __future__ import annotations

import inspect
import io
import pickle
import pickletools
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from modelsec.pickle.names import GlobalName
from pickle_allowlist.imports import resolve

PROTOCOLS = (0, 2, 5)
_MAX_SHAPES = 4  # argument shapes kept per called global (enough to describe the roles)


@dataclass
class Usage:
    referenced: set[str] = field(default_factory=set)  # every global a stream names
    called: dict[str, set[str]] = field(default_factory=dict)  # REDUCE/INST/OBJ -> arg shapes
    instantiated: set[str] = field(default_factory=set)  # NEWOBJ / NEWOBJ_EX classes
    class_arguments: set[str] = field(default_factory=set)  # classes handed to a called helper
    built: set[str] = field(default_factory=set)  # classes whose instances get a BUILD
    filled: dict[str, set[str]] = field(default_factory=dict)  # class -> APPEND/SETITEM/... used
    unreadable: list[str] = field(default_factory=list)  # objects we could not pickle or follow

    def classes(self) -> set[str]:
        """Every global used as a class: called, instantiated, built, filled or rebuilt by a helper."""
        return self.instantiated | self.built | set(self.filled) | set(self.called) | self.class_arguments

    def record_call(self, path: str, shape: str) -> None:
        shapes = self.called.setdefault(path, set())
        if len(shapes) < _MAX_SHAPES:
            shapes.add(shape)


# -- the stack simulation -------------------------------------------------------------------


@dataclass(frozen=True)
class _Global:
    path: str


@dataclass(frozen=True)
class _Instance:
    cls: str | None  # the class, when the stream says it


@dataclass(frozen=True)
class _Value:
    kind: str  # "str", "bytes", "int", "list", ...
    text: str | None = None  # the value of a short string (module/attribute names)


@dataclass(frozen=True)
class _Tuple:
    items: tuple[object, ...]


_MARK = object()
_GETATTR = {"builtins.getattr", "__builtin__.getattr"}
_CONSTANTS = {
    "INT": "int", "BININT": "int", "BININT1": "int", "BININT2": "int", "LONG": "int",
    "LONG1": "int", "LONG4": "int", "FLOAT": "float", "BINFLOAT": "float", "NONE": "None",
    "NEWTRUE": "bool", "NEWFALSE": "bool", "BINBYTES": "bytes", "SHORT_BINBYTES": "bytes",
    "BINBYTES8": "bytes", "BYTEARRAY8": "bytearray", "NEXT_BUFFER": "buffer",
    "EMPTY_LIST": "list", "EMPTY_DICT": "dict", "EMPTY_SET": "set", "PERSID": "persistent",
    "EXT1": "extension", "EXT2": "extension", "EXT4": "extension",
}  # fmt: skip
_STRINGS = {
    "STRING",
    "BINSTRING",
    "SHORT_BINSTRING",
    "UNICODE",
    "SHORT_BINUNICODE",
    "BINUNICODE",
    "BINUNICODE8",
}
_FROM_MARK = {"LIST": "list", "DICT": "dict", "FROZENSET": "frozenset"}
_FILL = {"APPEND": 1, "SETITEM": 2}  # items popped; the *S forms pop to the mark
_FILL_TO_MARK = {"APPENDS", "SETITEMS", "ADDITEMS"}


def shape(value: object) -> str:
    """A short description of an argument, for the report."""
    match value:
        case _Global(path=path):
            return f"global {path}"
        case _Instance(cls=cls):
            return f"instance of {cls}" if cls else "instance"
        case _Tuple(items=items):
            return "(" + ", ".join(shape(item) for item in items) + ")"
        case _Value(kind="str", text=text) if text is not None and len(text) <= 40:
            return repr(text)
        case _Value(kind=kind):
            return kind
    return "?"


class _Follower:
    def __init__(self, usage: Usage) -> None:
        self.usage = usage
        self.stack: list[object] = []
        self.memo: dict[int, object] = {}

    def pop_mark(self) -> list[object]:
        items: list[object] = []
        while self.stack:
            item = self.stack.pop()
            if item is _MARK:
                break
            items.append(item)
        items.reverse()
        return items

    def global_(self, module: str, name: str) -> _Global:
        path = GlobalName(module, name).py3().path  # __builtin__.set -> builtins.set
        self.usage.referenced.add(path)
        return _Global(path)

    def result_of_call(self, callee: object, args: object) -> _Instance | _Global:
        if not isinstance(callee, _Global):
            return _Instance(None)
        self.usage.record_call(callee.path, shape(args))
        items = args.items if isinstance(args, _Tuple) else ()
        for item in items:
            if isinstance(item, _Global) and inspect.isclass(resolve(item.path)):
                self.usage.class_arguments.add(item.path)
        if callee.path in _GETATTR and len(items) == 2:
            owner, attribute = items
            if isinstance(owner, _Global) and isinstance(attribute, _Value) and attribute.text:
                return self.global_(owner.path, attribute.text)  # ZoneInfo._unpickle
        if inspect.isclass(resolve(callee.path)):
            return _Instance(callee.path)
        # Rebuild helpers take the class first: copyreg._reconstructor(cls, base, state),
        # newObj(cls), numpy's _reconstruct(cls, shape, dtype), __pyx_unpickle_X(cls, ...).
        first = items[0] if items else None
        if isinstance(first, _Global) and inspect.isclass(resolve(first.path)):
            return _Instance(first.path)
        return _Instance(None)

    def step(self, name: str, arg: Any) -> None:
        stack = self.stack
        if name in _CONSTANTS:
            stack.append(_Value(_CONSTANTS[name]))
        elif name in _STRINGS:
            stack.append(_Value("str", arg if isinstance(arg, str) else None))
        elif name == "MARK":
            stack.append(_MARK)
        elif name == "POP":
            stack.pop()
        elif name == "POP_MARK":
            self.pop_mark()
        elif name == "DUP":
            stack.append(stack[-1])
        elif name == "EMPTY_TUPLE":
            stack.append(_Tuple(()))
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            count = int(name[-1])
            items = tuple(stack[-count:])
            del stack[-count:]
            stack.append(_Tuple(items))
        elif name == "TUPLE":
            stack.append(_Tuple(tuple(self.pop_mark())))
        elif name in _FROM_MARK:
            self.pop_mark()
            stack.append(_Value(_FROM_MARK[name]))
        elif name in _FILL or name in _FILL_TO_MARK:
            if name in _FILL:
                del stack[-_FILL[name] :]
            else:
                self.pop_mark()
            target = stack[-1]
            if isinstance(target, _Instance) and target.cls:
                self.usage.filled.setdefault(target.cls, set()).add(name)
        elif name == "GLOBAL":
            module, _, attr = str(arg).partition(" ")
            stack.append(self.global_(module, attr))
        elif name == "STACK_GLOBAL":
            attr, module = stack.pop(), stack.pop()
            if isinstance(module, _Value) and isinstance(attr, _Value) and module.text and attr.text:
                stack.append(self.global_(module.text, attr.text))
            else:
                stack.append(_Instance(None))
        elif name == "REDUCE":
            args, callee = stack.pop(), stack.pop()
            stack.append(self.result_of_call(callee, args))
        elif name in ("NEWOBJ", "NEWOBJ_EX"):
            if name == "NEWOBJ_EX":
                stack.pop()
            stack.pop()
            cls = stack.pop()
            if isinstance(cls, _Global):
                self.usage.instantiated.add(cls.path)
                stack.append(_Instance(cls.path))
            else:
                stack.append(_Instance(None))
        elif name == "INST":
            module, _, attr = str(arg).partition(" ")
            callee = self.global_(module, attr)
            stack.append(self.result_of_call(callee, _Tuple(tuple(self.pop_mark()))))
        elif name == "OBJ":
            items = self.pop_mark()
            stack.append(self.result_of_call(items[0], _Tuple(tuple(items[1:]))))
        elif name == "BUILD":
            stack.pop()
            target = stack[-1]
            if isinstance(target, _Instance) and target.cls:
                self.usage.built.add(target.cls)
        elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
            self.memo[int(arg)] = stack[-1]
        elif name == "MEMOIZE":
            self.memo[len(self.memo)] = stack[-1]
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            stack.append(self.memo[int(arg)])
        elif name == "BINPERSID":
            stack.pop()
            stack.append(_Value("persistent"))
        elif name in ("PROTO", "FRAME", "STOP", "READONLY_BUFFER"):
            pass
        else:  # a new opcode: fail loudly rather than mis-simulate
            raise ValueError(f"observe: no stack effect known for {name}")


def follow(data: bytes, usage: Usage) -> None:
    follower = _Follower(usage)
    for opcode, arg, _ in pickletools.genops(io.BytesIO(data)):
        follower.step(opcode.name, arg)


def observe_objects(objects: Iterator[tuple[str, Callable[[], object]]]) -> Usage:
    usage = Usage()
    for label, make in objects:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                obj = make()
            except Exception as error:  # an estimator that does not fit this data
                usage.unreadable.append(f"{label}: {type(error).__name__}")
                continue
            for protocol in PROTOCOLS:
                try:
                    follow(pickle.dumps(obj, protocol=protocol), usage)
                except Exception as error:
                    usage.unreadable.append(f"{label} (protocol {protocol}): {type(error).__name__}: {error}")
    return usage
