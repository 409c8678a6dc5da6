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

import weakref
from collections.abc import Callable

from modelsec.bytesource import LimitExceeded
from modelsec.context import Limits
from modelsec.pickle import opcodes as op
from modelsec.pickle.embedded import looks_embedded
from modelsec.pickle.invoke import Importer, Invoker
from modelsec.pickle.journal import Journal
from modelsec.pickle.names import is_dotted_identifier
from modelsec.pickle.objects import TRACKED_KEYS
from modelsec.pickle.observer import Observer
from modelsec.pickle.opcodes import Arg, BigInt, Blob, PickleError
from modelsec.pickle.policy import Verdict, classify
from modelsec.pickle.state_checks import note_models
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
    note_dropped_items,
    weigh,
    weigh_all,
)

KEEP_ITEMS = 64  # items a container keeps for analysis (contracts read no more)
RETAIN_BUDGET = 1_000_000  # container items kept per stream, in total
# Dict items under a tracked key (objects.TRACKED_KEYS) are kept past KEEP_ITEMS, up to this
# many per stream; past it, dicts are marked opaque and whoever reads them fails closed.
TRACKED_BUDGET = 100_000
# Keys that may compute to a str at load time: a dict with one of these may hold any
# attribute name (objects.InstanceAttrs), so its keys count as unreadable.
_COMPUTED = (Call, Derived, Unresolved, Persistent, OutOfBand)
MAX_STACK = 2_000_000  # stack + mark-stack entries (a 2M-element tuple is the largest legit case)
# An object graph counts as an expansion bomb when its logical size passes both bounds: a
# floor that no small stream reaches, and a ratio to the bytes read that no pickler's output
# approaches (a pickler writes each shared object once and refers to it; a legitimate graph
# may share, but does not double itself dozens of times).
EXPANSION_FLOOR = 1 << 20
EXPANSION_RATIO = 1000
MAX_ANOMALIES = 16
# Keys whose hashes the dicts of one scan remember after dropping items (about 60 bytes
# each): past this, those dicts' sizes are unknown and checks that need them fail closed.
KEY_HASH_BUDGET = 2_000_000
# List and tuple items past KEEP_ITEMS kept aside for the checks that need every item
# (values.Container.tail), per scan: about as many references as the memo may hold.
TAIL_BUDGET = 1_000_000
# What may be kept aside: what those checks read (counts, indexes, arrays, None, and the
# lists an object array holds: a lil matrix's rows). A list kept aside holds no more than
# the machine kept of it anyway (RETAIN_BUDGET).
_TAILED = (int, Call, Container)


class Anomaly(str):
    """Kinds of things CPython accepts but no pickler writes (see :attr:`StackMachine.anomalies`)."""


HAND_CRAFTED = Anomaly("hand-crafted")
EXPANSION = Anomaly("expansion")


STOP = object()  # feed() result: the stream is complete
Action = object  # None, STOP or RawArray


class StackMachine:
    def __init__(
        self,
        observer: Observer,
        limits: Limits,
        memo_parent: dict[int, Value] | None = None,
        key_hash_room: list[int] | None = None,
        tail_room: list[int] | None = None,
    ) -> None:
        self.observer = observer
        # Hashes the dicts of a scan may still remember of their keys after dropping items
        # (values.note_dropped_items): one budget shared by all the machines of a scan.
        self.key_hash_room = key_hash_room if key_hash_room is not None else [KEY_HASH_BUDGET]
        self.tail_room = tail_room if tail_room is not None else [TAIL_BUDGET]  # (the same way)
        self.limits = limits
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
        self.tracked = 0
        self.invoker = Invoker(observer, _weak_importer(self))
        # A continuation (joblib's plain-pickle view) records the values it changes, which
        # the scanner puts back when it ends (modelsec.pickle.journal)
        self.journal: Journal | None = None

    def continuation(self) -> StackMachine:
        """A machine that goes on from this one's state (stack, MARKs, memo, protocol):
        how plain ``pickle.load`` reads on past a point where joblib leaves the stream.
        Its own memo writes stay its own; values are shared, as they would be."""
        machine = StackMachine(
            self.observer, self.limits, key_hash_room=self.key_hash_room, tail_room=self.tail_room
        )
        machine.stack = list(self.stack)
        machine.metastack = [list(saved) for saved in self.metastack]
        machine.saved = self.saved
        machine.memo_parent = {**self.memo_parent, **self.memo} if self.memo_parent else self.memo
        machine.proto = self.proto
        machine.proto_seen = self.proto_seen
        machine.journal = machine.invoker.journal = Journal()
        return machine

    # -- driver interface ----------------------------------------------------------------

    def feed(self, code: int, arg: Arg, offset: int) -> Action:
        if self.first is None:
            self.first = code
        action = HANDLERS[code](self, arg, offset)
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

    def _keep_aside(self, container: Container, dropped: list[Value] | tuple[Value, ...]) -> None:
        """Keep the items a list or tuple dropped (in order, after the kept ones) for the
        checks that need every item, while the scan's budget lasts and they are what those
        checks read; otherwise give up on them, and return what they held to the budget."""
        if container.tail_lost or not dropped:
            return
        tail = container.tail if container.tail is not None else []
        if len(dropped) > self.tail_room[0] or not all(
            item is None or (type(item) in _TAILED and item is not True and item is not False)
            for item in dropped
        ):
            self.tail_room[0] += len(tail)
            container.tail, container.tail_lost = None, True
            return
        tail.extend(dropped)
        self.tail_room[0] -= len(dropped)
        container.tail = tail

    def _keep_pairs(
        self, pairs: list[tuple[Value, Value]], room: int | None = None
    ) -> tuple[list[Value], int, bool]:
        """Dict items a container keeps, how many it drops, and whether its keys are opaque.

        Caps fail closed: items under a tracked key are kept whatever the cap (an instance's
        ``__setstate__`` may sit 65th in its state), and a key the stream computed makes the
        whole dict opaque to its readers.
        """
        if room is None:
            kept, dropped = self._keep(pairs)
        else:
            kept, dropped = self._keep(pairs[: max(0, room)])
            dropped += len(pairs) - len(kept) - dropped
        opaque = False
        for index, (key, _) in enumerate(pairs):
            if type(key) is str:
                if index >= len(kept) and key in TRACKED_KEYS:
                    if self.tracked >= TRACKED_BUDGET:
                        opaque = True
                    else:
                        self.tracked += 1
                        kept.append(pairs[index])
            elif isinstance(key, _COMPUTED):
                opaque = True
        return kept, dropped, opaque

    def _tuple_of(self, items: list[Value]) -> Value:
        if len(items) <= KEEP_ITEMS:
            return make_tuple(items)
        kept, dropped = self._keep(items)
        made = Container("tuple", kept, dropped, 1 + weigh_all(items))
        made.objects = dropped > 0 and _holds_objects(items)
        note_models(made, items)
        self._keep_aside(made, items[len(kept) :])
        return made

    def _container(self, kind: str, items: list[Value], offset: int, weight: int) -> Container:
        kept, dropped = self._keep(items)
        made = Container(kind, kept, dropped, min(weight, WEIGHT_CAP))
        note_models(made, items)
        made.objects = dropped > 0 and _holds_objects(items)
        if kind == "list":
            self._keep_aside(made, items[len(kept) :])
        if made.weight > EXPANSION_FLOOR:
            self._check_expansion(made, offset)
        return made

    @staticmethod
    def _check_hashable(keys: list[Value] | tuple[Value, ...], offset: int, how: str) -> None:
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
        if isinstance(arg, int):  # always: the reader decodes PROTO's byte as an int
            self.proto = arg

    def _next_buffer(self, arg: Arg, offset: int) -> None:
        # The buffer comes from the caller (pickle.loads(buffers=...)), not from this file:
        # it is data, and only dangerous if handed to a loader, which is flagged itself.
        self.stack.append(OutOfBand(offset))

    def _readonly_buffer(self, arg: Arg, offset: int) -> None:
        self._top(offset)

    # -- memo ----------------------------------------------------------------------------

    def _get(self, arg: Arg, offset: int) -> None:
        if not isinstance(arg, int):  # never: the reader decodes memo keys as ints
            raise PickleError(f"GET with a non-integer key at offset {offset}", offset)
        value = self.memo.get(arg, self)
        if value is self and self.memo_parent is not None:
            value = self.memo_parent.get(arg, self)
        if value is self:
            raise PickleError(f"memo has no entry {arg}", offset)
        self.stack.append(value)

    def _put(self, arg: Arg, offset: int) -> None:
        if not isinstance(arg, int):  # never: the reader decodes memo keys as ints
            raise PickleError(f"PUT with a non-integer key at offset {offset}", offset)
        if arg < 0:
            raise PickleError("negative PUT argument", offset)
        self.memo[arg] = self._top(offset)
        if len(self.memo) > self.max_memo:
            raise LimitExceeded(f"pickle memo holds more than {self.max_memo} entries")

    def _memoize(self, arg: Arg, offset: int) -> None:
        # _put(len(memo)) inlined: MEMOIZE is about a third of the opcodes of plain data.
        stack, memo = self.stack, self.memo
        if not stack:
            raise PickleError("unpickling stack underflow", offset)
        memo[len(memo)] = stack[-1]
        if len(memo) > self.max_memo:
            raise LimitExceeded(f"pickle memo holds more than {self.max_memo} entries")

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

    # TUPLE1-3 pop inline: they build most argument tuples. Too short a stack raises before
    # anything is popped (the stream ends there either way).

    def _tuple1(self, arg: Arg, offset: int) -> None:
        stack = self.stack
        if not stack:
            raise PickleError("unpickling stack underflow", offset)
        stack.append(make_tuple((stack.pop(),)))

    def _tuple2(self, arg: Arg, offset: int) -> None:
        stack = self.stack
        if len(stack) < 2:
            raise PickleError("unpickling stack underflow", offset)
        second = stack.pop()
        stack.append(make_tuple((stack.pop(), second)))

    def _tuple3(self, arg: Arg, offset: int) -> None:
        stack = self.stack
        if len(stack) < 3:
            raise PickleError("unpickling stack underflow", offset)
        third = stack.pop()
        second = stack.pop()
        stack.append(make_tuple((stack.pop(), second, third)))

    @staticmethod
    def _pairs(items: list[Value], offset: int) -> list[tuple[Value, Value]]:
        if len(items) % 2:
            raise PickleError("odd number of items for a dict", offset)
        return list(zip(items[::2], items[1::2], strict=True))

    def _dict(self, arg: Arg, offset: int) -> None:
        items = self._pop_mark(offset)
        pairs = self._pairs(items, offset)
        self._check_hashable(items[::2], offset, "DICT")
        kept, dropped, opaque = self._keep_pairs(pairs)
        made = Container("dict", kept, dropped, min(1 + weigh_all(items), WEIGHT_CAP), opaque)
        made.objects = dropped > 0 and _holds_objects(items)
        if dropped:
            self.key_hash_room[0] -= note_dropped_items(made, pairs, self.key_hash_room[0])
        if made.weight > EXPANSION_FLOOR:
            self._check_expansion(made, offset)
        self.stack.append(made)

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
        """APPEND/SETITEM/ADDITEMS: exact containers grow; anything else has a method called."""
        if self.journal is not None:
            self.journal.record(target)
        if isinstance(target, Container):
            if target.watched_by is not None:
                self.observer.violated(
                    target.watched_by, offset, f"{how} grows its {target.kind} after its state was checked"
                )
            wanted = {"APPEND": "list", "APPENDS": "list", "ADDITEMS": "set"}.get(how, "dict")
            if target.kind != wanted:
                raise PickleError(f"{how} on a {target.kind}", offset)
            # Kept items come before dropped ones (the tail, every_item): once a container
            # dropped one, it keeps no more, even where a machine with budget left goes on
            # from one without (joblib's plain-pickle view, continuation)
            room = KEEP_ITEMS - len(target.items) if not target.dropped else 0
            if wanted == "dict":
                added = 0
                for key, value in items:  # one pass: hashability and weight
                    kind = type(key)
                    if (kind is Container or kind is HeavyTuple) and _unhashable(key, 0):
                        raise PickleError(f"{how} with an unhashable {describe(key)} as key", offset)
                    added += weigh(key) + weigh(value)
                kept, dropped, opaque = self._keep_pairs(items, room)
                target.opaque_keys = target.opaque_keys or opaque
                if dropped:
                    self.key_hash_room[0] -= note_dropped_items(target, items, self.key_hash_room[0])
            else:
                if wanted == "set":
                    self._check_hashable(items, offset, how)
                added = weigh_all(items)
                note_models(target, items)
                kept, _ = self._keep(items[: max(0, room)])
                dropped = len(items) - len(kept)
                if wanted == "list":
                    self._keep_aside(target, items[len(kept) :])
            target.items.extend(kept)
            target.dropped += dropped
            if dropped and not target.objects:
                flat = [part for pair in items for part in pair] if wanted == "dict" else items
                target.objects = _holds_objects(flat)
            target.weight = min(target.weight + added, WEIGHT_CAP)
            if target.weight > EXPANSION_FLOOR:
                self._check_expansion(target, offset)
            return
        if isinstance(target, Global):
            # list.append/dict.__setitem__ on a module or class: os.environ[...] = ...
            self.effects = True
            self.observer.mutated(target, offset, how)
            return
        if target is None or isinstance(target, (bool, int, float, str, bytes, tuple, Blob)):
            raise PickleError(f"{how} on a {describe(target)}", offset)
        if isinstance(target, bytearray):
            # bytearray.__setitem__/append/extend write in place: into the bytes an array
            # was built from (protocol 5's BYTEARRAY8), after the checks read them (red
            # team, session 22). No pickler writes this.
            self.effects = True
            self.observer.invoked(target, offset, f"{how} writes into a bytearray in place")
            return
        # An instance or a computed value: the unpickler looks a method up and calls it.
        self.effects = True
        if isinstance(target, Call):
            target.grown = True
        if how in ("APPEND", "APPENDS"):
            self.invoker.extend(target, items, offset, how)
        elif how == "ADDITEMS":
            self.invoker.add(target, items, offset)
        else:
            self.invoker.setitems(target, offset, how)

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
        if not isinstance(arg, tuple):  # never: the reader decodes GLOBAL's two lines as a pair
            raise PickleError(f"GLOBAL without its module and name at offset {offset}", offset)
        self.stack.append(self._named_import(arg, offset, "GLOBAL"))

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
        if not isinstance(arg, int) or arg <= 0:
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
        self.effects = True
        self.stack.append(self.invoker.call(callee, args, offset, "REDUCE"))

    def _newobj(self, arg: Arg, offset: int) -> None:
        args = self._pop(offset)
        cls = self._pop(offset)
        self.effects = True
        self.stack.append(self.invoker.call(cls, args, offset, "NEWOBJ"))

    def _newobj_ex(self, arg: Arg, offset: int) -> None:
        kwargs = self._pop(offset)
        args = self._pop(offset)
        cls = self._pop(offset)
        self.effects = True
        if (
            isinstance(kwargs, Container)
            and kwargs.kind == "dict"
            and not kwargs.items
            and not kwargs.dropped
        ):
            kwargs = None  # what copyreg.__reduce_ex__ writes: no keyword arguments at all
        self.stack.append(self.invoker.call(cls, args, offset, "NEWOBJ_EX", kwargs=kwargs))

    def _obj(self, arg: Arg, offset: int) -> None:
        items = self._pop_mark(offset)
        if not items:
            raise PickleError("OBJ without a class", offset)
        self.effects = True
        self.stack.append(self.invoker.call(items[0], make_tuple(items[1:]), offset, "OBJ"))

    def _inst(self, arg: Arg, offset: int) -> None:
        if not isinstance(arg, tuple):  # never: the reader decodes INST's two lines as a pair
            raise PickleError(f"INST without its module and name at offset {offset}", offset)
        cls = self._named_import(arg, offset, "INST")
        items = self._pop_mark(offset)  # CPython imports before it looks for the mark
        self.effects = True
        self.stack.append(self.invoker.call(cls, make_tuple(items), offset, "INST"))

    def _build(self, arg: Arg, offset: int) -> Action:
        state = self._pop(offset)
        target = self._top(offset)
        self.effects = True
        return self.invoker.apply_state(target, state, offset)


_OBJECTS = (Call, Persistent, Unresolved, OutOfBand)


_SCALARS = (bool, int, float, complex, str, bytes, bytearray, Blob, BigInt, Derived)  # Derived: decoded bytes


def _holds_objects(items: list[Value] | tuple[Value, ...], depth: int = 0) -> bool:
    """True unless every item is plain literal data, looking into tuples and containers
    (checked only when a container drops items, so that readers know whether what they
    cannot see was plain: contracts.is_plain). A class or function reference counts: as an
    attribute value it is a callable the stream chose, and one past the cap is as planted as
    one before it."""
    for item in items:
        if item is None or isinstance(item, _SCALARS):
            continue
        if depth < 4 and isinstance(item, tuple) and not _holds_objects(item, depth + 1):
            continue
        if (
            depth < 4
            and isinstance(item, Container)
            and not (item.dropped or item.opaque_keys)
            and not _holds_objects(
                [part for pair in item.items for part in pair] if item.kind == "dict" else item.items,
                depth + 1,
            )
        ):
            continue
        return True
    return False


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


def _weak_importer(machine: StackMachine) -> Importer:
    """``machine._import`` without a reference to the machine. Its invoker holds the
    importer: a bound method would make a cycle, and every stream's values (the machine, its
    stack and memo, the observer and the scan context behind it) would wait for the cycle
    collector instead of being freed when the stream ends (~60 objects per small file)."""
    ref = weakref.ref(machine)

    def importer(module: str, name: str, offset: int, how: str) -> Global:
        alive = ref()
        assert alive is not None  # the invoker is used only while its machine runs
        return alive._import(module, name, offset, how)

    return importer


Handler = Callable[[StackMachine, Arg, int], Action]


def _handler_table() -> dict[int, Handler]:
    """Opcode -> the StackMachine function that executes it (called with the machine)."""
    m = StackMachine
    h: dict[int, Handler] = {
        op.MARK: m._mark,
        op.STOP: m._stop,
        op.POP: m._pop_op,
        op.POP_MARK: m._pop_mark_op,
        op.DUP: m._dup,
        op.NONE: m._none,
        op.NEWTRUE: m._true,
        op.NEWFALSE: m._false,
        op.PERSID: m._persid,
        op.BINPERSID: m._binpersid,
        op.REDUCE: m._reduce,
        op.BUILD: m._build,
        op.GLOBAL: m._global,
        op.INST: m._inst,
        op.STACK_GLOBAL: m._stack_global,
        op.OBJ: m._obj,
        op.NEWOBJ: m._newobj,
        op.NEWOBJ_EX: m._newobj_ex,
        op.EXT1: m._ext,
        op.EXT2: m._ext,
        op.EXT4: m._ext,
        op.APPEND: m._append,
        op.APPENDS: m._appends,
        op.LIST: m._list,
        op.EMPTY_LIST: m._empty_list,
        op.DICT: m._dict,
        op.EMPTY_DICT: m._empty_dict,
        op.SETITEM: m._setitem,
        op.SETITEMS: m._setitems,
        op.TUPLE: m._tuple,
        op.EMPTY_TUPLE: m._empty_tuple,
        op.TUPLE1: m._tuple1,
        op.TUPLE2: m._tuple2,
        op.TUPLE3: m._tuple3,
        op.EMPTY_SET: m._empty_set,
        op.ADDITEMS: m._additems,
        op.FROZENSET: m._frozenset,
        op.GET: m._get,
        op.BINGET: m._get,
        op.LONG_BINGET: m._get,
        op.PUT: m._put,
        op.BINPUT: m._put,
        op.LONG_BINPUT: m._put,
        op.MEMOIZE: m._memoize,
        op.PROTO: m._proto,
        op.FRAME: m._nothing,
        op.NEXT_BUFFER: m._next_buffer,
        op.READONLY_BUFFER: m._readonly_buffer,
    }
    for code in (
        op.INT,
        op.BININT,
        op.BININT1,
        op.BININT2,
        op.LONG,
        op.LONG1,
        op.LONG4,
        op.FLOAT,
        op.BINFLOAT,
    ):
        h[code] = m._push_arg
    for code in (
        op.STRING,
        op.BINSTRING,
        op.SHORT_BINSTRING,
        op.UNICODE,
        op.BINUNICODE,
        op.SHORT_BINUNICODE,
        op.BINUNICODE8,
        op.BINBYTES,
        op.SHORT_BINBYTES,
        op.BINBYTES8,
        op.BYTEARRAY8,
    ):
        h[code] = m._push_literal
    return h


# Built once per process: binding ~70 methods per stream was a tenth of a small file's scan.
HANDLERS = _handler_table()
