"""The symbolic values the stack machine pushes instead of real objects.

Literals (``int``, ``float``, ``str``, ``bytes``, ``bool``, ``None``) are themselves; large
ones are :class:`~modelsec.pickle.opcodes.Blob` references. Everything an unpickler would
*compute* is a record of how it was computed: an imported :class:`Global`, the
:class:`Call` that invoking something produced, bytes a decoder would :class:`Derived`
from another value. Containers keep a bounded number of items: enough to read call
arguments and small states (a joblib wrapper's shape and dtype), never a whole dataset.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelsec.pickle.objects import InstanceAttrs
    from modelsec.pickle.observer import Observer
    from modelsec.pickle.policy import Classification

Value = Any  # literal | Blob | BigInt | Global | Unresolved | Call | Derived | Container | ...

# Logical size ("weight"): how many nodes the loaded object would have if every shared
# reference were copied. Memo GETs and DUP share objects, so a few bytes can describe a
# graph of 2**60 nodes; weights make that visible without building anything. Saturating.
WEIGHT_CAP = 1 << 62


@dataclass(eq=False, slots=True)
class Global:
    """An object the stream imports: ``module`` + attribute path ``name`` as written."""

    module: str
    name: str
    offset: int
    how: str  # GLOBAL, STACK_GLOBAL, INST, or the helper that resolved it (getattr)
    classification: Classification

    @property
    def subject(self) -> str:
        return f"{self.module}.{self.name}" if self.name else self.module

    @property
    def path(self) -> str:
        """The path CPython 3 imports (Python 2 names mapped)."""
        return self.classification.path


@dataclass(eq=False, slots=True)
class Unresolved:
    """An import nobody can name statically (computed operands, extension codes); it was
    reported when it happened."""

    offset: int
    what: str


@dataclass(eq=False, slots=True)
class Call:
    """What invoking ``callee`` with ``args`` returned. ``cls`` is the class of the
    instance when the call constructs one (``NEWOBJ``, ``copyreg._reconstructor``)."""

    callee: Value
    args: Value
    offset: int
    how: str
    cls: Global | None = None
    state: Value = None  # set by BUILD
    attrs: InstanceAttrs | None = None  # what the stream wrote into the instance (objects.py)
    grown: bool = False  # APPEND/SETITEM/ADDITEMS added items to it (a mapping or list subclass)
    # made by cls.__new__ without cls.__init__ (NEWOBJ, copyreg.__newobj__ or
    # copyreg._reconstructor): only what the stream sets is in it
    bare: bool = False
    # The input width a fitted model declares, once a state check has read it (trees,
    # forests, boosting predictors): containers of models remember their widest member.
    width: int | None = None
    # A numpy.dtype handed to a call or a state (a scalar's bytes are decoded, an array keeps
    # the very object, joblib reads with it): its BUILD must come before (invoke.apply_state)
    used: bool = False
    origin: Value = field(init=False)  # the first non-call callee of f()()()...: O(1) to name
    weight: int = field(init=False)

    def __post_init__(self) -> None:
        self.origin = self.callee.origin if isinstance(self.callee, Call) else self.callee
        self.weight = min(1 + weigh(self.args), WEIGHT_CAP)


@dataclass(eq=False, slots=True)
class Derived:
    """Bytes a decoder (``base64.b64decode``, ``_codecs.encode(s, 'latin1')``,
    ``bytes.fromhex``, ``io.BytesIO``) produces from ``source``; decoded only when a
    nested loader consumes them."""

    transform: str
    source: Value
    offset: int


@dataclass(eq=False, slots=True)
class Persistent:
    """What the loader's ``persistent_load`` returns for ``pid`` (torch storages)."""

    pid: Value
    offset: int


@dataclass(eq=False, slots=True)
class OutOfBand:
    """A protocol 5 out-of-band buffer: bytes the caller passes to ``pickle.loads(buffers=)``,
    not part of this stream."""

    offset: int


@dataclass(eq=False, slots=True)
class Container:
    """A list, dict (``items`` are key/value pairs), set, frozenset or long tuple; only
    the first items are kept, ``dropped`` counts the rest."""

    kind: str
    items: list[Value] = field(default_factory=list)
    dropped: int = 0
    weight: int = 1  # see WEIGHT_CAP; kept up to date as items are added
    # A dict whose keys cannot all be read: a key computed by the stream, or tracked keys
    # (objects.TRACKED_KEYS) past what the machine could retain. Readers fail closed.
    opaque_keys: bool = False
    # An item was an object (a call result, a persistent or unresolved value) rather than a
    # literal or a container: readers that need plain data cannot trust dropped items.
    objects: bool = False
    # For a dict that dropped items: the range of the int values among them, and whether
    # any other value was among them (contracts that need every value's range, such as a
    # vectorizer's vocabulary of column indexes, read these: dict_value_range).
    dropped_ints: tuple[int, int] | None = None
    dropped_others: bool = False
    # ...and the hashes of every key it was given since it first dropped one (a dict's
    # size is its distinct keys: a stream can repeat a key); keys_unknown once they could
    # not be told (other key types, or more than MAX_KEY_HASHES).
    key_hashes: set[int] | None = None
    keys_unknown: bool = False
    # The class whose state check read this container (state_checks): the container is
    # shared with the instance's __dict__, so growing it afterwards is a finding.
    watched_by: Global | None = None
    # The models among its items, kept or dropped (state_checks.note_models): a forest's
    # members are judged against the forest when it is built, however many there are.
    models: list[Value] | None = None
    # For a list or tuple that dropped items: the dropped ones, in order, kept aside for
    # the checks that need every item (a one-hot encoder's categories, one per feature;
    # every_item). Only ints, None, objects and containers (machine._TAILED) are kept
    # aside, up to the scan's budget
    # (machine.TAIL_BUDGET); past it, or given anything else, tail_lost and the checks
    # that need them fail closed. Nothing else reads the tail.
    tail: list[Value] | None = None
    tail_lost: bool = False


def every_item(value: Value, observer: Observer) -> list[Value] | None:
    """Every item of a list or tuple the stream built, those past the kept ones included
    when the machine kept them aside (Container.tail) and the scan may still examine them
    (Observer.may_examine); None otherwise."""
    if isinstance(value, Container):
        if value.kind not in ("list", "tuple"):
            return None
        if not value.dropped:
            return list(value.items)
        tail = value.tail
        if value.tail_lost or tail is None or len(tail) != value.dropped:
            return None
        return [*value.items, *tail] if observer.may_examine(len(tail)) else None
    items = sequence_items(value)
    return list(items) if items is not None else None


SHARED_DEPTH = 8  # how deep reachable_containers looks (deeper ones are not read by checks)


def reachable_containers(value: Value, observer: Observer) -> list[Container] | None:
    """The containers reachable from ``value`` through containers, tuples and the lists an
    object array holds (numpy keeps the very lists the stream built), within
    :data:`SHARED_DEPTH`: what a check that read ``value`` relies on staying as it was,
    since the stream can still grow any of them through the memo. Every item visited is
    charged to the scan (``observer.may_examine``: one structure shared by many checked
    objects is walked once each); None past that budget."""
    found: list[Container] = []
    seen: set[int] = set()
    pending: list[tuple[Value, int]] = [(value, 0)]
    while pending:
        current, depth = pending.pop()
        children: Sequence[Value]
        if type(current) is Container:
            if id(current) in seen:
                continue
            seen.add(id(current))
            found.append(current)
            children = [*current.items, *(current.tail or ())]
        elif isinstance(current, tuple):
            children = current
        elif isinstance(current, Call) and current.cls is not None and current.cls.path == "numpy.ndarray":
            state = sequence_items(current.state)
            children = state[4:5] if state is not None and len(state) == 5 else ()
        else:
            continue
        if depth >= SHARED_DEPTH or not children:
            continue
        if not observer.may_examine(len(children)):
            return None
        pending.extend((child, depth + 1) for child in children)
    return found


def is_count(value: Value) -> bool:
    """A literal non-negative int (not a bool)."""
    return type(value) is int and value >= 0


def note_dropped_items(container: Container, pairs: Iterable[tuple[Value, Value]], room: int) -> int:
    """Remember, for a dict that could not keep all its items, the range of the int
    values (and whether there were others) and the hashes of all keys seen so far, at
    most ``room`` new ones (the stream's budget: then its keys are unknown). Returns how
    many hashes it added."""
    from modelsec.pickle.array_values import scalar_int  # (array_values builds on this module)

    hashes = container.key_hashes
    before = len(hashes) if hashes is not None else 0
    if hashes is None and not container.keys_unknown:  # the first drop: the kept keys too
        hashes = set()
        for key, _ in container.items:
            hashes = _note_key(hashes, key, room)
    low, high = container.dropped_ints or (None, None)
    for key, value in pairs:
        hashes = _note_key(hashes, key, room + before)
        number = value if type(value) is int else scalar_int(value)
        if number is None:
            container.dropped_others = True
            continue
        low = number if low is None or number < low else low
        high = number if high is None or number > high else high
    container.key_hashes = hashes
    container.keys_unknown = hashes is None
    if low is not None and high is not None:
        container.dropped_ints = (low, high)
    return len(hashes) - before if hashes is not None else 0


def _note_key(hashes: set[int] | None, key: Value, most: int) -> set[int] | None:
    if hashes is None or type(key) not in (str, int, bytes) or len(hashes) >= most:
        return None
    hashes.add(hash((type(key).__name__, key)))
    return hashes


def dict_value_range(value: Value) -> tuple[int, int, int] | None:
    """(lowest, highest, count) of a dict's values when every value is an int (or a NumPy
    integer scalar), kept or dropped; None for anything else (or an empty dict)."""
    from modelsec.pickle.array_values import scalar_int

    if not isinstance(value, Container) or value.kind != "dict" or value.opaque_keys:
        return None
    kept = [scalar_int(item) for _, item in value.items]
    if any(number is None for number in kept) or (value.dropped and value.dropped_others):
        return None
    bounds = [number for number in kept if number is not None] + list(value.dropped_ints or ())
    if not bounds or (value.dropped and value.dropped_ints is None):
        return None
    if not value.dropped:
        keys = {(type(key).__name__, key) for key, _ in value.items if type(key) in (str, int, bytes)}
        return (min(bounds), max(bounds), len(keys)) if len(keys) == len(value.items) else None
    if value.key_hashes is None or value.keys_unknown:
        return None
    return min(bounds), max(bounds), len(value.key_hashes)  # distinct keys (a repeat counts once)


class HeavyTuple(tuple[Value, ...]):
    """A tuple holding containers, calls or other tuples, with its logical weight.

    Tuples of plain literals are plain tuples (weight: their length + 1); only tuples that
    nest something heavier pay for remembering what they weigh.
    """

    weight: int


def weigh(value: Value) -> int:
    """The logical size of ``value`` (1 for a literal)."""
    kind = type(value)
    if kind is Container or kind is Call or kind is HeavyTuple:
        weight: int = value.weight  # each of the three keeps its weight as an int
        return weight
    if kind is tuple:
        return len(value) + 1
    return 1


def weigh_all(items: list[Value] | tuple[Value, ...]) -> int:
    total = 0
    for item in items:
        total += weigh(item)
    return min(total, WEIGHT_CAP)


_NESTING = frozenset({Container, Call, HeavyTuple, tuple})


def make_tuple(items: list[Value] | tuple[Value, ...]) -> tuple[Value, ...]:
    """A tuple of ``items``; a :class:`HeavyTuple` when an item is more than a literal."""
    nesting = _NESTING
    for item in items:
        if type(item) in nesting:
            break
    else:
        return tuple(items)
    # weigh_all, inlined: tuples are the machine's most frequent container
    total = 1
    for item in items:
        kind = type(item)
        if kind is Container or kind is Call or kind is HeavyTuple:
            total += item.weight
        elif kind is tuple:
            total += len(item) + 1
        else:
            total += 1
    heavy = HeavyTuple(items)
    heavy.weight = min(total, WEIGHT_CAP)
    return heavy


def sequence_items(value: Value) -> tuple[Value, ...] | None:
    """Items of a tuple or list value, None if unknown or truncated."""
    if isinstance(value, tuple):
        return value
    if isinstance(value, Container) and value.kind in ("tuple", "list") and not value.dropped:
        return tuple(value.items)
    return None


def dict_items(value: Value) -> dict[str, Value] | None:
    """The entries of a dict value whose keys are all str literals, None if it is not a
    (complete) dict or a key is anything else. A key left out would be an entry nobody
    checked: numpy keeps a dtype field under a 9,000-character key (a Blob), and a key the
    stream computes may be a checked name at load time and replace its value (red team,
    session 23)."""
    if not isinstance(value, Container) or value.kind != "dict" or value.dropped or value.opaque_keys:
        return None
    items = value.items
    if not all(type(key) is str for key, _ in items):
        return None
    return dict(items)


def describe(value: Value) -> str:
    """A short human name for a value, for finding subjects and messages.

    Calls of calls collapse to the innermost callee (``f()()()`` is "result of f"): one
    subject per origin, and no recursion a crafted chain could exhaust.
    """
    if isinstance(value, Call):
        return f"result of {describe(value.origin)}"
    if isinstance(value, Global):
        return value.subject
    if isinstance(value, Derived):
        return f"bytes decoded by {value.transform}"
    if isinstance(value, Persistent):
        return "persistent object"
    if isinstance(value, Unresolved):
        return f"unresolved import ({value.what})"
    if isinstance(value, Container):
        return value.kind
    if isinstance(value, tuple):
        return "tuple"
    return type(value).__name__


# The _frombuffer contract makes its array with the ndarray class as callee and itself as
# the way the array was made (contracts.Site.instance): protocol 5's arrays.
FROMBUFFER = frozenset({"numpy._core.numeric._frombuffer", "numpy.core.numeric._frombuffer"})


def from_buffer(array: Call) -> bool:
    """An array made by protocol 5's ``_frombuffer``: its contents came with the call."""
    return isinstance(array.callee, Global) and array.callee.how in FROMBUFFER
