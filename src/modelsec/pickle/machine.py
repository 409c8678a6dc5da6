"""A symbolic pickle stack machine: CPython's unpickler with imports and calls recorded
instead of performed.

It mirrors ``_pickle.c`` (a stack, a mark stack, a memo) closely enough that every way
to reach a callable is seen with its real operands: ``GLOBAL``, ``STACK_GLOBAL`` fed from
the memo or from any string opcode, ``INST``/``OBJ``/``NEWOBJ``/``NEWOBJ_EX``/``REDUCE``,
``BUILD`` and the ``APPEND``/``SETITEM`` family applied to imported objects, extension codes,
persistent ids. What it sees goes to an :class:`Observer`; what it decides is only how
values flow. Type errors CPython raises *before* anything runs (``STACK_GLOBAL`` on a
non-string, a missing memo key, stack underflow) are raised as :class:`PickleError` so the
stream ends where CPython's would.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

from modelsec.bytesource import LimitExceeded
from modelsec.context import Limits
from modelsec.pickle import calls
from modelsec.pickle import opcodes as op
from modelsec.pickle.embedded import looks_embedded
from modelsec.pickle.loaders import DECODERS, LOADERS, codec_transform
from modelsec.pickle.names import is_dotted_identifier
from modelsec.pickle.opcodes import Arg, Blob, PickleError
from modelsec.pickle.policy import Verdict, classify
from modelsec.pickle.values import (
    WEIGHT_CAP,
    Call,
    Container,
    Derived,
    Global,
    HeavyTuple,
    OutOfBand,
    Persistent,
    Unresolved,
    Value,
    describe,
    make_tuple,
    sequence_items,
    weigh,
    weigh_all,
)

KEEP_ITEMS = 64  # items a container keeps for analysis
RETAIN_BUDGET = 1_000_000  # container items kept per stream, in total
MAX_STACK = 2_000_000  # stack + mark-stack entries (a 2M-element tuple is the largest legit case)
# An object graph counts as an expansion bomb when its logical size passes both bounds: a
# floor that no small stream reaches, and a ratio to the bytes read that no pickler's output
# approaches (a pickler writes each shared object once and refers to it; a legitimate graph
# may share, but does not double itself dozens of times).
EXPANSION_FLOOR = 1 << 20
EXPANSION_RATIO = 1000
MAX_ANOMALIES = 16


class Anomaly(str):
    """Kinds of things CPython accepts but no pickler writes (see :attr:`StackMachine.anomalies`)."""


HAND_CRAFTED = Anomaly("hand-crafted")
EXPANSION = Anomaly("expansion")


class Observer(Protocol):
    """Receives what the machine sees. Offsets are those of the opcode responsible."""

    def imported(self, glob: Global) -> None: ...

    def invoked(self, callee: Value, offset: int, how: str) -> None:
        """A callable outside the allowlist (or a computed one) is called."""

    def mutated(self, target: Global, offset: int, how: str) -> None:
        """State is written into a module or class object."""

    def unresolved(self, offset: int, what: str) -> None:
        """An import that cannot be named statically."""

    def getattr_resolved(self, getattr_global: Global) -> None:
        """A ``getattr`` global was used with literal operands (its result was imported)."""

    def loader_called(self, loader: Global, payload: Value, offset: int) -> None: ...

    def literal(self, value: Value, offset: int) -> None:
        """A string or bytes literal that looks like an embedded pickle."""

    def external_file(self, wrapper: Global, filename: Value, offset: int) -> None:
        """A joblib wrapper that loads its array from a file named in the stream."""


@dataclass(frozen=True)
class RawArray:
    """joblib wrote raw array bytes right after this wrapper's BUILD."""

    wrapper: Call
    offset: int


STOP = object()  # feed() result: the stream is complete
Action = object  # None, STOP or RawArray


class StackMachine:
    def __init__(
        self,
        observer: Observer,
        limits: Limits,
        memo_parent: dict[int, Value] | None = None,
    ) -> None:
        self.observer = observer
        self.max_memo = limits.max_pickle_memo
        self.stack: list[Value] = []
        self.metastack: list[list[Value]] = []
        self.saved = 0  # entries held in metastack
        self.memo: dict[int, Value] = {}
        self.memo_parent = memo_parent
        self.proto = 0
        self.ops = 0  # opcodes executed successfully
        self.first: int | None = None  # first opcode, for detection
        # Something that can run code happened: a call, BUILD, a write into a module, a
        # dangerous or unresolvable import. Importing an unlisted name alone does not count
        # (a text file "certifi\nidna\n..." reads as GLOBAL certifi.idna, then breaks).
        self.effects = False
        self.retained = 0
        self.result: Value = None
        self.proto_seen = False
        self.expanded = False  # an expansion anomaly was recorded (once per stream)
        # (kind, offset, message): recorded here, reported by the scanner only for streams
        # that turn out to be pickles (raw tensor bytes that happen to parse are not).
        self.anomalies: list[tuple[Anomaly, int, str]] = []
        h: dict[int, Callable[[Arg, int], Action]] = {
            op.MARK: self._mark, op.STOP: self._stop, op.POP: self._pop_op,
            op.POP_MARK: self._pop_mark_op, op.DUP: self._dup, op.NONE: self._none,
            op.NEWTRUE: self._true, op.NEWFALSE: self._false, op.PERSID: self._persid,
            op.BINPERSID: self._binpersid, op.REDUCE: self._reduce, op.BUILD: self._build,
            op.GLOBAL: self._global, op.INST: self._inst, op.STACK_GLOBAL: self._stack_global,
            op.OBJ: self._obj, op.NEWOBJ: self._newobj, op.NEWOBJ_EX: self._newobj_ex,
            op.EXT1: self._ext, op.EXT2: self._ext, op.EXT4: self._ext,
            op.APPEND: self._append, op.APPENDS: self._appends, op.LIST: self._list,
            op.EMPTY_LIST: self._empty_list, op.DICT: self._dict, op.EMPTY_DICT: self._empty_dict,
            op.SETITEM: self._setitem, op.SETITEMS: self._setitems, op.TUPLE: self._tuple,
            op.EMPTY_TUPLE: self._empty_tuple, op.TUPLE1: self._tuple1, op.TUPLE2: self._tuple2,
            op.TUPLE3: self._tuple3, op.EMPTY_SET: self._empty_set, op.ADDITEMS: self._additems,
            op.FROZENSET: self._frozenset, op.GET: self._get, op.BINGET: self._get,
            op.LONG_BINGET: self._get, op.PUT: self._put, op.BINPUT: self._put,
            op.LONG_BINPUT: self._put, op.MEMOIZE: self._memoize, op.PROTO: self._proto,
            op.FRAME: self._nothing, op.NEXT_BUFFER: self._next_buffer,
            op.READONLY_BUFFER: self._readonly_buffer,
        }
        for code in (op.INT, op.BININT, op.BININT1, op.BININT2, op.LONG, op.LONG1, op.LONG4,
                     op.FLOAT, op.BINFLOAT):
            h[code] = self._push_arg
        for code in (op.STRING, op.BINSTRING, op.SHORT_BINSTRING, op.UNICODE, op.BINUNICODE,
                     op.SHORT_BINUNICODE, op.BINUNICODE8, op.BINBYTES, op.SHORT_BINBYTES,
                     op.BINBYTES8, op.BYTEARRAY8):
            h[code] = self._push_literal
        self.handlers = h

    # -- driver interface ----------------------------------------------------------------

    def feed(self, code: int, arg: Arg, offset: int) -> Action:
        if self.first is None:
            self.first = code
        action = self.handlers[code](arg, offset)
        self.ops += 1
        return action

    def check_bounds(self) -> None:
        if len(self.stack) + self.saved > MAX_STACK:
            raise LimitExceeded(f"pickle stack deeper than {MAX_STACK} entries")

    # -- stack primitives ----------------------------------------------------------------

    def _pop(self, offset: int) -> Value:
        if not self.stack:
            raise PickleError("unpickling stack underflow", offset)
        return self.stack.pop()

    def _top(self, offset: int) -> Value:
        if not self.stack:
            raise PickleError("unpickling stack underflow", offset)
        return self.stack[-1]

    def _pop_mark(self, offset: int) -> list[Value]:
        if not self.metastack:
            raise PickleError("could not find MARK", offset)
        items = self.stack
        self.stack = self.metastack.pop()
        self.saved -= len(self.stack)
        return items

    def _keep(self, items: list[Value] | tuple[Value, ...]) -> tuple[list[Value], int]:
        """The items a container keeps, and how many it drops."""
        room = min(KEEP_ITEMS, RETAIN_BUDGET - self.retained)
        if room <= 0:
            return [], len(items)
        kept = list(items[:room])
        self.retained += len(kept)
        return kept, len(items) - len(kept)

    def _tuple_of(self, items: list[Value]) -> Value:
        if len(items) <= KEEP_ITEMS:
            return make_tuple(items)
        kept, dropped = self._keep(items)
        return Container("tuple", kept, dropped, 1 + weigh_all(items))

    def _container(self, kind: str, items: list[Value], offset: int, weight: int) -> Container:
        kept, dropped = self._keep(items)
        made = Container(kind, kept, dropped, min(weight, WEIGHT_CAP))
        if made.weight > EXPANSION_FLOOR:
            self._check_expansion(made, offset)
        return made

    @staticmethod
    def _check_hashable(keys: "list[Value] | tuple[Value, ...]", offset: int, how: str) -> None:
        """Dict keys and set items are hashed: a list, dict or set there is a TypeError in
        CPython (a dict that holds itself as a key is how such streams are usually built)."""
        for key in keys:
            kind = type(key)
            if kind is Container or kind is HeavyTuple:
                if _unhashable(key, 0):
                    raise PickleError(f"{how} with an unhashable {describe(key)} as key", offset)

    # -- simple opcodes ------------------------------------------------------------------

    def _nothing(self, arg: Arg, offset: int) -> None:
        return None

    def _mark(self, arg: Arg, offset: int) -> None:
        self.metastack.append(self.stack)
        self.saved += len(self.stack)
        self.stack = []

    def _stop(self, arg: Arg, offset: int) -> object:
        self.result = self._pop(offset)
        left, marks = len(self.stack) + self.saved, len(self.metastack)
        if left or marks:
            self._anomaly(
                HAND_CRAFTED,
                offset,
                f"STOP at offset {offset} leaves {left} value(s) on the stack and {marks} MARK(s) "
                "open: something was pushed (and possibly called) whose result nobody uses",
            )
        self._check_expansion(self.result, offset)
        return STOP

    def _anomaly(self, kind: Anomaly, offset: int, message: str) -> None:
        if len(self.anomalies) < MAX_ANOMALIES:
            self.anomalies.append((kind, offset, message))

    def _check_expansion(self, value: Value, offset: int) -> None:
        size = weigh(value)
        if size > EXPANSION_FLOOR and size > EXPANSION_RATIO * (offset + 1) and not self.expanded:
            self.expanded = True
            shown = "more than 2**62" if size >= WEIGHT_CAP else f"{size:,}"
            self._anomaly(
                EXPANSION,
                offset,
                f"{describe(value)} at offset {offset} unfolds to {shown} objects from "
                f"{offset + 1} bytes of stream",
            )

    def _pop_op(self, arg: Arg, offset: int) -> None:
        if self.stack:
            self.stack.pop()
        else:
            self._pop_mark(offset)  # POP of an empty frame discards the mark, like CPython

    def _pop_mark_op(self, arg: Arg, offset: int) -> None:
        self._pop_mark(offset)

    def _dup(self, arg: Arg, offset: int) -> None:
        self.stack.append(self._top(offset))

    def _none(self, arg: Arg, offset: int) -> None:
        self.stack.append(None)

    def _true(self, arg: Arg, offset: int) -> None:
        self.stack.append(True)

    def _false(self, arg: Arg, offset: int) -> None:
        self.stack.append(False)

    def _push_arg(self, arg: Arg, offset: int) -> None:
        self.stack.append(arg)

    def _push_literal(self, arg: Arg, offset: int) -> None:
        if looks_embedded(arg):
            self.observer.literal(arg, offset)
        self.stack.append(arg)

    def _proto(self, arg: Arg, offset: int) -> None:
        if self.proto_seen or self.first != op.PROTO:
            self._anomaly(HAND_CRAFTED, offset, f"PROTO at offset {offset} in the middle of the stream")
        self.proto_seen = True
        self.proto = arg  # type: ignore[assignment]

    def _next_buffer(self, arg: Arg, offset: int) -> None:
        # The buffer comes from the caller (pickle.loads(buffers=...)), not from this file:
        # it is data, and only dangerous if handed to a loader, which is flagged itself.
        self.stack.append(OutOfBand(offset))

    def _readonly_buffer(self, arg: Arg, offset: int) -> None:
        self._top(offset)

    # -- memo ----------------------------------------------------------------------------

    def _get(self, arg: Arg, offset: int) -> None:
        value = self.memo.get(arg, self)  # type: ignore[call-overload]
        if value is self and self.memo_parent is not None:
            value = self.memo_parent.get(arg, self)  # type: ignore[call-overload]
        if value is self:
            raise PickleError(f"memo has no entry {arg}", offset)
        self.stack.append(value)

    def _put(self, arg: Arg, offset: int) -> None:
        if arg < 0:  # type: ignore[operator]
            raise PickleError("negative PUT argument", offset)
        self.memo[arg] = self._top(offset)  # type: ignore[index]
        if len(self.memo) > self.max_memo:
            raise LimitExceeded(f"pickle memo holds more than {self.max_memo} entries")

    def _memoize(self, arg: Arg, offset: int) -> None:
        self._put(len(self.memo), offset)

    # -- containers ----------------------------------------------------------------------

    def _empty_list(self, arg: Arg, offset: int) -> None:
        self.stack.append(Container("list"))

    def _empty_dict(self, arg: Arg, offset: int) -> None:
        self.stack.append(Container("dict"))

    def _empty_set(self, arg: Arg, offset: int) -> None:
        self.stack.append(Container("set"))

    def _empty_tuple(self, arg: Arg, offset: int) -> None:
        self.stack.append(())

    def _list(self, arg: Arg, offset: int) -> None:
        items = self._pop_mark(offset)
        self.stack.append(self._container("list", items, offset, 1 + weigh_all(items)))

    def _frozenset(self, arg: Arg, offset: int) -> None:
        items = self._pop_mark(offset)
        self._check_hashable(items, offset, "FROZENSET")
        self.stack.append(self._container("frozenset", items, offset, 1 + weigh_all(items)))

    def _tuple(self, arg: Arg, offset: int) -> None:
        value = self._tuple_of(self._pop_mark(offset))  # not inline: _pop_mark swaps self.stack
        self.stack.append(value)

    def _tuple1(self, arg: Arg, offset: int) -> None:
        self.stack.append(make_tuple((self._pop(offset),)))

    def _tuple2(self, arg: Arg, offset: int) -> None:
        second = self._pop(offset)
        self.stack.append(make_tuple((self._pop(offset), second)))

    def _tuple3(self, arg: Arg, offset: int) -> None:
        third = self._pop(offset)
        second = self._pop(offset)
        self.stack.append(make_tuple((self._pop(offset), second, third)))

    @staticmethod
    def _pairs(items: list[Value], offset: int) -> list[tuple[Value, Value]]:
        if len(items) % 2:
            raise PickleError("odd number of items for a dict", offset)
        return list(zip(items[::2], items[1::2], strict=True))

    def _dict(self, arg: Arg, offset: int) -> None:
        items = self._pop_mark(offset)
        pairs = self._pairs(items, offset)
        self._check_hashable(items[::2], offset, "DICT")
        self.stack.append(self._container("dict", pairs, offset, 1 + weigh_all(items)))

    def _append(self, arg: Arg, offset: int) -> None:
        value = self._pop(offset)
        self._add_to(self._top(offset), [value], offset, "APPEND")

    def _appends(self, arg: Arg, offset: int) -> None:
        items = self._pop_mark(offset)
        self._add_to(self._top(offset), items, offset, "APPENDS")

    def _additems(self, arg: Arg, offset: int) -> None:
        items = self._pop_mark(offset)
        self._add_to(self._top(offset), items, offset, "ADDITEMS")

    def _setitem(self, arg: Arg, offset: int) -> None:
        value = self._pop(offset)
        key = self._pop(offset)
        self._add_to(self._top(offset), [(key, value)], offset, "SETITEM")

    def _setitems(self, arg: Arg, offset: int) -> None:
        pairs = self._pairs(self._pop_mark(offset), offset)
        self._add_to(self._top(offset), pairs, offset, "SETITEMS")

    def _add_to(self, target: Value, items: list[Value], offset: int, how: str) -> None:
        """APPEND/SETITEM/ADDITEMS: containers grow; anything else has a method called."""
        if isinstance(target, Container):
            wanted = {"APPEND": "list", "APPENDS": "list", "ADDITEMS": "set"}.get(how, "dict")
            if target.kind == wanted:
                if wanted == "dict":
                    self._check_hashable([key for key, _ in items], offset, how)
                    added = weigh_all([part for pair in items for part in pair])
                else:
                    if wanted == "set":
                        self._check_hashable(items, offset, how)
                    added = weigh_all(items)
                kept, _ = self._keep(items[: max(0, KEEP_ITEMS - len(target.items))])
                target.items.extend(kept)
                target.dropped += len(items) - len(kept)
                target.weight = min(target.weight + added, WEIGHT_CAP)
                if target.weight > EXPANSION_FLOOR:
                    self._check_expansion(target, offset)
            elif target.kind not in ("list", "dict", "set"):
                raise PickleError(f"{how} on a {target.kind}", offset)
            return
        if isinstance(target, Global):
            # list.append/dict.__setitem__ on a module or class: os.environ[...] = ...
            self.effects = True
            self.observer.mutated(target, offset, how)
            return
        if target is None or isinstance(target, (bool, int, float, str, bytes, tuple, Blob)):
            raise PickleError(f"{how} on a {type(target).__name__}", offset)
        # An instance (its class was classified when it was built) or a computed value.

    # -- imports -------------------------------------------------------------------------

    def _import(self, module: str, name: str, offset: int, how: str) -> Global:
        glob = Global(module, name, offset, how, classify(module, name))
        if glob.classification.verdict is Verdict.DANGEROUS:
            self.effects = True
        self.observer.imported(glob)
        return glob

    def _named_import(self, names: tuple[Value, Value], offset: int, how: str) -> Value:
        module, name = names
        if isinstance(module, Blob) or isinstance(name, Blob):
            self.effects = True
            self.observer.unresolved(offset, f"{how} with a name of more than {op.LINE_LIMIT} bytes")
            return Unresolved(offset, how)
        if self.ops == 0 and not (is_dotted_identifier(module) and is_dotted_identifier(name)):
            # The first opcode naming no importable module: this is not a pickle.
            raise PickleError(f"{how} names {module!r}.{name!r}, not a module", offset)
        return self._import(module, name, offset, how)

    def _global(self, arg: Arg, offset: int) -> None:
        self.stack.append(self._named_import(arg, offset, "GLOBAL"))  # type: ignore[arg-type]

    def _stack_global(self, arg: Arg, offset: int) -> None:
        name = self._pop(offset)
        module = self._pop(offset)
        if isinstance(module, str) and isinstance(name, str):
            self.stack.append(self._import(module, name, offset, "STACK_GLOBAL"))
            return
        literal = (type(None), bool, int, float, bytes, bytearray, tuple, Container)
        if isinstance(module, literal) or isinstance(name, literal):
            raise PickleError("STACK_GLOBAL requires str operands", offset)
        # Operands computed by the stream (a call result, an attribute of a patched
        # module): nobody can tell statically what gets imported.
        self.effects = True
        self.observer.unresolved(offset, "STACK_GLOBAL with computed module or name")
        self.stack.append(Unresolved(offset, "STACK_GLOBAL"))

    def _ext(self, arg: Arg, offset: int) -> None:
        if arg <= 0:  # type: ignore[operator]
            raise PickleError("EXT code must be positive", offset)
        # copyreg's extension registry is empty unless the loading program fills it; what
        # the code names is unknowable from the file, so it fails closed. It does not count
        # as an effect by itself: in a stock interpreter an unregistered code raises before
        # anything is imported, and three of the 256 possible first bytes are EXT opcodes,
        # so raw tensor bytes would otherwise read as "a pickle that broke after an import".
        # A stream that goes on to call what EXT produced, or that loads to STOP, is
        # reported (the call is an effect; a complete stream keeps its findings).
        self.observer.unresolved(offset, f"extension code {arg} (copyreg registry)")
        self.stack.append(Unresolved(offset, f"EXT {arg}"))

    def _persid(self, arg: Arg, offset: int) -> None:
        self.stack.append(Persistent(arg, offset))

    def _binpersid(self, arg: Arg, offset: int) -> None:
        # torch: ('storage', <storage class>, key, location, numel). Globals inside were
        # classified when imported; the loader's persistent_load is trusted code.
        self.stack.append(Persistent(self._pop(offset), offset))

    # -- calls ---------------------------------------------------------------------------

    def _reduce(self, arg: Arg, offset: int) -> None:
        args = self._pop(offset)
        callee = self._pop(offset)
        self.stack.append(self._invoke(callee, args, offset, "REDUCE"))

    def _newobj(self, arg: Arg, offset: int) -> None:
        args = self._pop(offset)
        cls = self._pop(offset)
        self.stack.append(self._invoke(cls, args, offset, "NEWOBJ"))

    def _newobj_ex(self, arg: Arg, offset: int) -> None:
        self._pop(offset)  # kwargs
        args = self._pop(offset)
        cls = self._pop(offset)
        self.stack.append(self._invoke(cls, args, offset, "NEWOBJ_EX"))

    def _obj(self, arg: Arg, offset: int) -> None:
        items = self._pop_mark(offset)
        if not items:
            raise PickleError("OBJ without a class", offset)
        self.stack.append(self._invoke(items[0], tuple(items[1:]), offset, "OBJ"))

    def _inst(self, arg: Arg, offset: int) -> None:
        cls = self._named_import(arg, offset, "INST")  # type: ignore[arg-type]
        items = self._pop_mark(offset)  # CPython imports before it looks for the mark
        self.stack.append(self._invoke(cls, tuple(items), offset, "INST"))

    def _invoke(self, callee: Value, args: Value, offset: int, how: str) -> Value:
        self.effects = True
        if isinstance(callee, Global):
            return self._call_global(callee, args, offset, how)
        if isinstance(callee, Unresolved):
            return Call(callee, args, offset, how)  # reported when it was imported
        if callee is None or isinstance(callee, (bool, int, float, str, bytes, tuple, Blob, Container)):
            raise PickleError(f"{how} on a {describe(callee)}, which is not callable", offset)
        # A computed callable: a call result, a persistent object, a container method.
        self.observer.invoked(callee, offset, how)
        return Call(callee, args, offset, how)

    def _call_global(self, callee: Global, args: Value, offset: int, how: str) -> Value:
        path, verdict = callee.path, callee.classification.verdict
        items = sequence_items(args)
        if path in calls.GETATTR:
            return self._getattr(callee, items, args, offset, how)
        if path in calls.IMPORTERS and items is not None and len(items) >= 2:
            module, name = items[0], items[1]
            if isinstance(module, str) and isinstance(name, str):
                return self._import(module, name, offset, path)
        if verdict is Verdict.UNKNOWN or verdict is Verdict.DATA:
            self.observer.invoked(callee, offset, how)  # DANGEROUS was reported on import
        if path in LOADERS:
            self.observer.loader_called(callee, items[0] if items else None, offset)
        transform = DECODERS.get(path)
        if transform is not None and items:
            if transform in ("encode", "decode"):
                transform = codec_transform(transform, items[1] if len(items) > 1 else "utf-8")
            return Derived(transform, items[0], offset)
        spec = calls.higher_order(path) if verdict is Verdict.SAFE else None
        if spec is not None:
            return self._call_higher_order(callee, spec, items, args, offset, how)
        # NEWOBJ/OBJ/INST instantiate a class; REDUCE may call a function, whose result is
        # no instance of it.
        return Call(callee, args, offset, how, callee if how != "REDUCE" else None)

    def _call_higher_order(
        self,
        callee: Global,
        spec: calls.HigherOrder,
        items: tuple[Value, ...] | None,
        args: Value,
        offset: int,
        how: str,
    ) -> Value:
        """A safe helper that calls some of its arguments: those must be safe too."""
        via = f"{callee.path} argument"
        if items is None:
            self.observer.invoked(args, offset, f"{callee.path} with arguments it cannot see")
            return Call(callee, args, offset, how)
        for index in spec.invokes:
            if index < len(items) and (isinstance(items[index], Global) or not spec.globals_only):
                self._invoke_argument(items[index], spec.data_ok, offset, via)
        at = spec.instance_of
        cls = items[at] if at is not None and at < len(items) and isinstance(items[at], Global) else None
        return Call(callee, args, offset, how, cls)

    def _invoke_argument(self, value: Value, data_ok: bool, offset: int, how: str) -> None:
        """An argument a safe helper calls or instantiates must be safe to call itself."""
        if isinstance(value, Global):
            verdict = value.classification.verdict
            if verdict is Verdict.UNKNOWN or (verdict is Verdict.DATA and not data_ok):
                self.observer.invoked(value, offset, how)
        elif value is None or isinstance(value, (str, bytes, int, float, Unresolved)):
            return  # names (numpy's bit generator ctor takes one) or already reported
        else:
            self.observer.invoked(value, offset, how)

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
                return self._import(base.module, name, offset, f"getattr via {how}")
        self.observer.invoked(callee, offset, how)  # attribute access we cannot follow
        return Call(callee, args, offset, how)

    def _build(self, arg: Arg, offset: int) -> Action:
        state = self._pop(offset)
        target = self._top(offset)
        self.effects = True
        if isinstance(target, Global):
            # BUILD on a module or class: setattr on it (sys.modules / __dict__ tricks).
            self.observer.mutated(target, offset, "BUILD")
            return None
        if isinstance(target, Call):
            target.state = state
            target.weight = min(target.weight + weigh(state), WEIGHT_CAP)
            cls = target.cls
            if cls is not None and cls.classification.verdict is Verdict.SAFE:
                if cls.path in calls.JOBLIB_INLINE_ARRAY:
                    return RawArray(target, offset)
                if cls.path in calls.JOBLIB_FILE_ARRAY:
                    self._check_wrapper_file(cls, state, offset)
        return None

    def _check_wrapper_file(self, cls: Global, state: Value, offset: int) -> None:
        if isinstance(state, Container) and state.kind == "dict":
            for key, value in state.items:
                if key == "filename":
                    self.observer.external_file(cls, value, offset)


def _unhashable(value: Value, depth: int) -> bool:
    """True if hashing ``value`` raises TypeError in CPython (mutable builtin containers,
    or tuples holding one). Instances are assumed hashable: their class decides."""
    if isinstance(value, Container):
        if value.kind in ("list", "dict", "set"):
            return True
        if value.kind == "tuple":
            return depth < 32 and any(_unhashable(item, depth + 1) for item in value.items)
        return False
    if isinstance(value, HeavyTuple):
        return depth < 32 and any(_unhashable(item, depth + 1) for item in value)
    return False
