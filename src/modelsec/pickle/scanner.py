"""Glue: run streams through the reader and machine, turn observations into findings.

One :class:`PickleScan` covers one byte source (a file, an archive member, a nested
payload): every pickle stream in it back to back, joblib's inline array data, nested
loader payloads and embedded pickles (handed to the engine as members). Findings are
reported once per (threat, subject) with the offset of the first occurrence.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from dataclasses import dataclass, field

from modelsec.bytesource import ByteSource, BytesSource, LimitExceeded, SliceSource
from modelsec.context import FormatCategory, Limits, ScanContext
from modelsec.findings import Threat
from modelsec.pickle import opcodes as op
from modelsec.pickle import threats
from modelsec.pickle.contracts import GETATTR
from modelsec.pickle.denylist import Category
from modelsec.pickle.embedded import embedded_payload
from modelsec.pickle.invoke import RawArray
from modelsec.pickle.joblib_arrays import JOBLIB_WRAPPERS, array_layout, unwritten_wrapper
from modelsec.pickle.loaders import LOADERS, PayloadTooLarge, payload_source, resolve
from modelsec.pickle.machine import (
    EXPANSION,
    HAND_CRAFTED,
    HANDLERS,
    KEY_HASH_BUDGET,
    STOP,
    TAIL_BUDGET,
    Anomaly,
    StackMachine,
)
from modelsec.pickle.nested_budget import NestedBudget
from modelsec.pickle.observer import Observer
from modelsec.pickle.opcodes import Blob, OpcodeReader, PickleError, Truncated
from modelsec.pickle.policy import Verdict
from modelsec.pickle.values import Call, Derived, Global, Value, describe, sequence_items

BOUNDS_EVERY = 0x10000  # opcodes between stack-size checks
READ_BACK_FACTOR, READ_BACK_FLOOR = 4, 64 << 20  # bytes contracts may read back: 4 x the file + 64 MiB
# Items checks may examine past the 64 a container keeps (Container.tail): 4 per byte of the
# file + 1,000,000 (every item takes at least one opcode byte to write).
EXAMINE_FACTOR, EXAMINE_FLOOR = 4, 1_000_000
PROBE_OPCODES = 200_000  # detection looks at the head only
DECIDED_AFTER_PROTO = 2  # opcodes after which a PROTO-led head is a pickle
MAX_PENDING_EMBEDDED = 64  # embedded-pickle candidates held back for a possible loader
MAX_TRACKED = 10_000  # distinct names remembered for deduplication and end-of-scan reports
MAX_DECODE_CHAIN = 16  # decoders stacked on a loader argument that are followed


@dataclass
class StreamResult:
    """How one stream went. ``end`` is the offset after its STOP, None if it broke."""

    start: int
    end: int | None = None
    error: PickleError | None = None
    limited: bool = False  # a limit or an unsizable array stopped it (reported)
    raw_array: bool = False  # (probe only) stopped at joblib array data
    ops: int = 0
    strong: bool = False  # opened with PROTO
    effects: bool = False  # something that can run code happened (see StackMachine.effects)
    # Things CPython accepts but no pickler writes; reported only for real pickles.
    frame_violations: list[tuple[int, str]] = field(default_factory=list)
    anomalies: list[tuple[Anomaly, int, str]] = field(default_factory=list)
    value: Value = None  # what STOP returned (a joblib object array's nested stream: the array)

    @property
    def noise(self) -> bool:
        """Broke before anything could run, on bytes that never proved to be a pickle:
        not a pickle at all (CPython would have loaded nothing)."""
        if self.error is None:
            return False
        return not self.effects and (not self.strong or self.ops <= 1)


def _read_on(action: RawArray, reader: OpcodeReader, machine: StackMachine) -> None:
    """pickle.load after a NumpyArrayWrapper's BUILD: nothing special, the next opcode."""


class _Halt(Exception):
    """Stop the whole source: already reported as incomplete (fail closed)."""


def _run(
    reader: OpcodeReader,
    machine: StackMachine,
    budget: int,
    on_raw_array: Callable[[RawArray, OpcodeReader, StackMachine], None] | None,
) -> StreamResult:
    """Feed one stream to ``machine`` until STOP, an error or a limit."""
    result = StreamResult(reader.offset)
    read, handlers = reader.next, HANDLERS
    count = 0  # mirrored into machine.ops at checkpoints: the hot loop keeps it local
    # The next count at which a limit is checked (the budget, or the stack every
    # BOUNDS_EVERY opcodes): one comparison per opcode instead of a test and a modulo.
    checkpoint = min(budget, BOUNDS_EVERY)
    try:
        code, arg, offset = read()
        action = machine.feed(code, arg, offset)  # the first opcode: detection rules apply
        count = 1
        while True:
            if action is not None:
                if action is STOP:
                    result.end = reader.offset
                    reader.outside_frame("the end of the stream")
                    break
                assert isinstance(action, RawArray)
                if on_raw_array is None:
                    result.raw_array = True
                    break
                on_raw_array(action, reader, machine)
            if count >= checkpoint:
                if count >= budget:
                    raise LimitExceeded(f"more than {budget} pickle opcodes")
                machine.ops = count
                machine.check_bounds()
                checkpoint = min(budget, count + BOUNDS_EVERY)
            code, arg, offset = read()
            action = handlers[code](machine, arg, offset)
            count += 1
    except PickleError as exc:
        result.error = exc
    finally:
        machine.ops = max(machine.ops, count)
        result.ops = machine.ops
        result.strong = machine.first == op.PROTO
        result.effects = machine.effects
        result.frame_violations = reader.frame_violations
        result.anomalies = machine.anomalies + [(HAND_CRAFTED, at, why) for at, why in reader.disagreements]
    return result


def probe(source: ByteSource, limits: Limits, max_ops: int = PROBE_OPCODES) -> StreamResult:
    """Parse the first stream of ``source`` without reporting anything."""
    machine = StackMachine(Observer(), limits)
    try:
        return _run(OpcodeReader(source, 0), machine, max_ops, None)
    except LimitExceeded:
        return StreamResult(
            0, limited=True, ops=machine.ops, effects=machine.effects, strong=machine.first == op.PROTO
        )


def looks_like_pickle(head: bytes, size: int, limits: Limits | None = None) -> bool:
    """Detection by content on the first bytes of a file of ``size`` bytes.

    A pickle is what CPython would start loading: the first opcode must be accepted (a
    ``GLOBAL`` must name a dotted identifier) and the stream must not break before
    something is imported or called, unless it opened with ``PROTO`` and went on.
    """
    if not head:
        return False
    return starts_a_pickle(detection_probe(head, limits or Limits()), len(head), size)


def detection_probe(head: bytes, limits: Limits) -> StreamResult:
    """The parse :func:`looks_like_pickle` judges: the head's first stream, stopped as soon
    as the answer is known. A stream that opened with ``PROTO`` and took a second opcode is
    a pickle whatever follows (an error past that point is not noise, see
    :attr:`StreamResult.noise`), so the rest waits for the scan: plain data would otherwise
    be parsed twice, once here and once there."""
    max_ops = DECIDED_AFTER_PROTO if head[:1] == bytes((op.PROTO,)) else PROBE_OPCODES
    return probe(BytesSource(head), limits, max_ops)


def starts_a_pickle(result: StreamResult, head_size: int, size: int) -> bool:
    """Whether the probe of a head of ``head_size`` bytes (of a file of ``size``) shows a
    stream CPython would start loading."""
    if result.error is None:
        return result.ops > 0
    if not result.noise:
        return True
    # The head ended mid-stream without anything decided: the full scan will tell.
    return isinstance(result.error, Truncated) and head_size < size and result.ops > 0


def trial_parse(source: ByteSource, limits: Limits, max_ops: int) -> StreamResult:
    """How the first stream of ``source`` parses (nothing reported): ``complete(result)``
    if it is a whole, valid stream."""
    return probe(source, limits, max_ops)


def complete(result: StreamResult) -> bool:
    # Reaching joblib's inline array data counts: the full scan knows how to go on.
    return result.error is None and not result.limited and result.ops > 1


class PickleScan(Observer):
    """Scans one byte source for one context; also the machine's observer."""

    def __init__(
        self,
        source: ByteSource,
        ctx: ScanContext,
        *,
        refine_format: bool = False,
        stream: ByteSource | None = None,
        holes: list[tuple[int, int]] | None = None,
    ) -> None:
        self.source = source  # what contracts and nested payloads read back
        # What the opcode readers walk: the same bytes; for a template (modelsec.pickle.
        # reuse), read directly, while reads back through ``source`` are recorded. With
        # ``holes``, the readers leave out large bytes literals and record where they are.
        self._stream = stream if stream is not None else source
        self._holes = holes
        self.ctx = ctx
        self.limits = ctx.limits
        self.refine_format = refine_format
        self.ops_left = ctx.limits.max_pickle_opcodes
        self._reported: set[tuple[str, str]] = set()
        self._pending_getattr: dict[int, Global] = {}
        self._referenced: dict[str, Global] = {}
        self._invoked: set[str] = set()
        self._joblib = False
        # Literals that look like embedded pickles, scanned at the end unless a loader
        # consumes them first (then they are scanned once, under the loader's name).
        # Keyed by id(): the values stay referenced here, so ids stay unique.
        self._embedded: dict[int, tuple[Value, int]] = {}
        # Loader payloads already scanned, by (transforms, id(root literal)); the values
        # are kept so the ids stay unique. A memoised literal loaded 1000 times is one scan.
        self._payloads: dict[tuple[object, ...], Value] = {}
        self._nested = NestedBudget(ctx)
        # Where each joblib wrapper's array bytes are (contracts read them: array_values);
        # the wrapper is kept so that its id stays unique.
        self._array_data: dict[int, tuple[Call, int, int]] = {}
        self._read_back = 0  # bytes contracts read back from the file (read_back)
        self._key_hash_room = [KEY_HASH_BUDGET]  # shared by this scan's machines (machine.py)
        self._tail_room = [TAIL_BUDGET]  # items kept aside past the cap, the same way
        self._examined = 0  # items of those checks examined (may_examine)
        self._array_objects: dict[int, tuple[Call, Value]] = {}  # joblib object arrays: the array
        # joblib arrays met: their bytes are read twice, as data and as plain pickle.load's
        # opcodes (a template must not stand for such a file: modelsec.pickle.reuse)
        self.joblib_arrays = 0

    # -- streams ---------------------------------------------------------------------------

    def run_stream(
        self,
        start: int,
        *,
        end: int | None = None,
        continuing: StackMachine | None = None,
    ) -> StreamResult:
        """One stream from ``start`` (reading no further than ``end``); findings reported,
        limits reported as incompletes (``result.limited``). A stream ``continuing`` a
        machine is how plain ``pickle.load`` reads bytes joblib treats as array data: the
        same stream going on, with its stack, MARKs and memo (a first ``POP`` takes the
        wrapper), though it may not be a pickle at all (only what could run counts), and
        it never skips anything."""
        view = self._stream if end is None else SliceSource(self._stream, 0, end)
        speculative = continuing is not None
        if continuing is not None:
            self._charge_copy(continuing, start)
        machine = (
            continuing.continuation()
            if continuing is not None
            else StackMachine(self, self.limits, key_hash_room=self._key_hash_room, tail_room=self._tail_room)
        )
        known_refs, known_embedded = len(self._referenced), set(self._embedded)
        on_raw_array = _read_on if speculative else self._raw_array
        try:
            result = _run(OpcodeReader(view, start, self._holes), machine, self.ops_left, on_raw_array)
        except LimitExceeded as exc:
            self.ctx.incomplete(
                f"{exc} in the pickle stream at offset {start}; the rest was not inspected",
                code=threats.INCOMPLETE_LIMIT,
            )
            result = StreamResult(start, limited=True, ops=machine.ops, effects=machine.effects)
        except _Halt:
            result = StreamResult(start, limited=True, ops=machine.ops, effects=machine.effects)
        finally:
            if machine.journal is not None:
                machine.journal.undo()  # joblib.load never ran the plain view's opcodes
        result.value = machine.result
        self.ops_left -= result.ops
        if result.noise or (speculative and not result.effects):
            # Not a pickle after all: names it seemed to reference were just bytes.
            for subject in list(self._referenced)[known_refs:]:
                del self._referenced[subject]
            for key in set(self._embedded) - known_embedded:
                del self._embedded[key]
        elif not speculative:
            # (Read as one stream, joblib's layout always looks irregular: a nested
            # object pickle's PROTO mid-stream, values left when it stops. What could run
            # in that view is reported by the machine as it goes.)
            self._report_irregularities(result)
        return result

    def _report_irregularities(self, result: StreamResult) -> None:
        """What the stream's shape says: frames that loaders read differently, edits no
        pickler makes, expansion bombs."""
        for at, message in result.frame_violations[:1]:
            more = len(result.frame_violations) - 1
            suffix = f" (and {more} more frame disagreement(s))" if more else ""
            self._report(threats.FRAME_MISMATCH, at, None, message + suffix, key=f"frame@{result.start}")
        for kind, at, message in result.anomalies:
            threat = threats.EXPANSION if kind == EXPANSION else threats.HAND_CRAFTED
            self._report(threat, at, None, message, key=f"{kind}@{at}")

    def scan_all(self) -> None:
        """Every stream in the source, back to back, until the data stops being pickle."""
        offset, index = 0, 0
        while offset < self.source.size:
            result = self.run_stream(offset)
            if result.limited:
                break
            if result.error is not None:
                if result.noise:
                    if index == 0 and self.refine_format:
                        self.ctx.set_format("unknown", FormatCategory.UNKNOWN)
                    break  # trailing bytes no loader would read as a pickle
                self.report_break(result, index)
                break
            assert result.end is not None
            offset, index = result.end, index + 1
        self.finish()

    def _charge_copy(self, machine: StackMachine, start: int) -> None:
        """The plain ``pickle.load`` view of joblib array data starts from a copy of the
        stream's stack and MARKs: the copy is charged to the opcode budget, so that a deep
        stack under thousands of wrappers costs what it would to push it again, not its
        depth times their number."""
        copied = len(machine.stack) + machine.saved + len(machine.metastack)
        if copied > self.ops_left:
            self.ctx.incomplete(
                f"more than {self.limits.max_pickle_opcodes} pickle opcodes (counting the stack of "
                f"{copied} entries copied for the plain pickle.load view of the data at offset "
                f"{start}); the rest was not inspected",
                code=threats.INCOMPLETE_LIMIT,
            )
            raise _Halt
        self.ops_left -= copied

    def report_break(self, result: StreamResult, index: int) -> None:
        error = result.error
        assert error is not None
        after = "; code had already run" if result.effects else ""
        self._report(
            threats.MALFORMED,
            error.offset,
            None,
            f"pickle stream {index + 1} (from offset {result.start}) breaks: {error.reason}{after}",
            key=f"@{error.offset}",
        )

    def finish(self) -> None:
        """Report what is only known at the end: embedded pickles no loader consumed,
        getattr never resolved, unknown globals that were referenced but never called."""
        while self._embedded:
            self._scan_embedded(*self._embedded.pop(next(iter(self._embedded))))
        for glob in self._pending_getattr.values():
            self._report_dangerous(glob)
        self._pending_getattr.clear()
        for subject, glob in self._referenced.items():
            if subject not in self._invoked:
                self._report(
                    threats.UNKNOWN_REFERENCE,
                    glob.offset,
                    subject,
                    f"imports {subject}, which is not on the allowlist",
                )
        self._referenced.clear()

    def _raw_array(self, action: RawArray, reader: OpcodeReader, machine: StackMachine) -> None:
        """Skip (or scan) what joblib wrote after a NumpyArrayWrapper."""
        self.joblib_arrays += 1
        reader.outside_frame("joblib array data")  # padding, raw bytes or a nested pickle
        layout = unwritten_wrapper(action.wrapper) or array_layout(action.wrapper.state)
        if isinstance(layout, str):
            self.ctx.incomplete(
                f"joblib array at offset {action.offset}: {layout}; its data cannot be located, "
                "so the rest of the stream was not inspected",
                code=threats.INCOMPLETE_UNSIZED_ARRAY,
            )
            raise _Halt
        pos = reader.offset
        # Plain pickle.load (or torch.load) does not know joblib's layout: for it, whatever
        # joblib reads as padding, array bytes or a nested object pickle is the rest of this
        # very stream, memo included. Read it that way too.
        self.run_stream(pos, continuing=machine)
        if layout.objects:
            inner = self.run_stream(pos)  # joblib pickles object arrays as a nested stream
            if inner.limited:
                raise _Halt
            if inner.end is None:
                assert inner.error is not None
                raise PickleError(f"object array pickle breaks: {inner.error.reason}", inner.error.offset)
            reader.seek(inner.end)
            self._array_objects[id(action.wrapper)] = (action.wrapper, inner.value)
            return
        if layout.padded:
            pad = self.source.read_at(pos, 1)
            if not pad:
                raise Truncated("joblib array padding runs past the end", action.offset)
            pos += 1 + pad[0]
        if pos + layout.nbytes > self.source.size:
            raise Truncated(f"joblib array data ({layout.nbytes} bytes) runs past the end", action.offset)
        reader.seek(pos)
        reader.skip_raw(layout.nbytes)
        self._array_data[id(action.wrapper)] = (action.wrapper, pos, layout.nbytes)

    # -- reporting -------------------------------------------------------------------------

    def _report(
        self,
        threat: Threat,
        offset: int | None,
        subject: str | None,
        message: str,
        *,
        key: str | None = None,
        details: dict[str, object] | None = None,
    ) -> None:
        dedupe = (threat.code, key or subject or f"@{offset}")
        if dedupe in self._reported:
            return
        if len(self._reported) < MAX_TRACKED:  # past that, ctx.report caps and counts
            self._reported.add(dedupe)
        self.ctx.report(threat.at(self.ctx.path, message, offset=offset, subject=subject, details=details))

    def _report_dangerous(self, glob: Global) -> None:
        c = glob.classification
        nested = c.category is Category.LOADER or c.path in LOADERS
        alias = f" (= {c.path})" if c.path != glob.subject else ""
        what = c.category.value if c.category else "dangerous"
        self._report(
            threats.NESTED_LOADER if nested else threats.DANGEROUS_GLOBAL,
            glob.offset,
            glob.subject,
            f"imports {glob.subject}{alias} ({what}, matched {c.reason}) via {glob.how}",
            details={"category": what, "matched": c.reason, "opcode": glob.how},
        )

    # -- Observer --------------------------------------------------------------------------

    def imported(self, glob: Global) -> None:
        c = glob.classification
        if c.path in JOBLIB_WRAPPERS and self.refine_format and not self._joblib:
            self._joblib = True
            self.ctx.set_format("joblib", FormatCategory.MODEL)
        if c.verdict is Verdict.DANGEROUS:
            if c.path in GETATTR and len(self._pending_getattr) < MAX_TRACKED:
                self._pending_getattr[id(glob)] = glob  # decided when it is called
            else:
                self._report_dangerous(glob)
        elif c.verdict is Verdict.UNKNOWN and len(self._referenced) < MAX_TRACKED:
            self._referenced.setdefault(glob.subject, glob)  # 105 unless it gets called

    def invoked(self, callee: Value, offset: int, how: str) -> None:
        if isinstance(callee, Global):
            c = callee.classification
            if c.verdict is Verdict.DANGEROUS:
                if c.path in GETATTR:
                    self._pending_getattr.pop(id(callee), None)
                    self._report_dangerous(callee)
                return  # reported when imported
            if len(self._invoked) < MAX_TRACKED:
                self._invoked.add(callee.subject)
            self._report(
                threats.UNKNOWN_CALL,
                offset,
                callee.subject,
                f"calls {callee.subject}, which is not on the allowlist ({how})",
                details={"opcode": how},
            )
            return
        subject = describe(callee)
        self._report(
            threats.UNKNOWN_CALL,
            offset,
            subject,
            f"calls a callable computed by the stream ({subject}) ({how})",
            details={"opcode": how},
        )

    def unsafe_method(self, owner: str, method: str, offset: int, how: str, why: str) -> None:
        subject = f"{owner}.{method}"
        self._report(
            threats.UNKNOWN_CALL,
            offset,
            subject,
            f"{how} calls {subject}, which is not proven safe ({why})",
            details={"opcode": how, "implicit": True},
        )

    def violated(self, callee: Global, offset: int, what: str) -> None:
        self._report(
            threats.CONTRACT_VIOLATION,
            offset,
            callee.subject,
            f"calls {callee.subject} outside its contract: {what}",
            key=f"{callee.subject}@{offset}",
        )

    def mutated(self, target: Global, offset: int, how: str) -> None:
        self._report(
            threats.GLOBAL_MUTATION,
            offset,
            target.subject,
            f"{how} writes into {target.subject}, an imported module or class",
            details={"opcode": how},
        )

    def unresolved(self, offset: int, what: str) -> None:
        self._report(threats.UNRESOLVED_IMPORT, offset, None, f"imports a global it computes: {what}")

    def getattr_resolved(self, getattr_global: Global) -> None:
        self._pending_getattr.pop(id(getattr_global), None)

    def loader_called(self, loader: Global, payload: Value, offset: int) -> None:
        root: Value = payload
        transforms: list[str] = []
        while isinstance(root, Derived) and len(transforms) <= MAX_DECODE_CHAIN:
            transforms.append(root.transform)
            root = root.source
        self._embedded.pop(id(root), None)  # scanned below as the loader's argument
        spec = LOADERS.get(loader.path)
        if spec is None or spec.expect == "" or payload is None or isinstance(root, Derived):
            return  # no scannable payload (the loader itself is reported already)
        if spec.takes == "file" and not isinstance(payload, Derived):
            return  # a file name: the file itself is scanned where it lives
        key = (spec.expect, *transforms, id(root))
        if key in self._payloads or not self._nested.may_scan():
            return
        self._payloads[key] = root
        what = f"{loader.subject} argument at offset {offset}"
        try:
            nested = payload_source(payload, self.source, self.limits.max_inline_bytes)
        except PayloadTooLarge as exc:
            self.ctx.incomplete(
                f"{what} ({exc}) is larger than {self.limits.max_inline_bytes} bytes; not inspected",
                code=threats.INCOMPLETE_PAYLOAD,
            )
            return
        if nested is not None and self._nested.charge(nested, what):
            self.ctx.scan_member(nested, f"<{loader.subject} argument @offset {offset}>", expect=spec.expect)

    def literal(self, value: Value, offset: int) -> None:
        self._embedded[id(value)] = (value, offset)
        if len(self._embedded) > MAX_PENDING_EMBEDDED:
            self._scan_embedded(*self._embedded.pop(next(iter(self._embedded))))

    def _scan_embedded(self, value: Value, offset: int) -> None:
        try:
            found = embedded_payload(value, self.source, self.limits.max_inline_bytes)
        except PayloadTooLarge as exc:
            self.ctx.incomplete(
                f"a literal at offset {offset} that may hold an embedded pickle ({exc}) is larger "
                f"than {self.limits.max_inline_bytes} bytes; not inspected",
                code=threats.INCOMPLETE_PAYLOAD,
            )
            return
        if found is None:
            return
        encoding, payload = found
        trial = trial_parse(payload, self.limits, max(1, self.ops_left))
        self.ops_left -= trial.ops  # trial parses count against the file's opcode budget
        if trial.limited:
            self.ctx.incomplete(
                f"opcode budget exhausted while checking a possible embedded pickle at offset "
                f"{offset}; not inspected",
                code=threats.INCOMPLETE_LIMIT,
            )
            return
        what = f"embedded {encoding} pickle at offset {offset}"
        if complete(trial) and self._nested.may_scan() and self._nested.charge(payload, what):
            self.ctx.scan_member(payload, f"<embedded {encoding} pickle @offset {offset}>", expect="pickle")

    def literal_bytes(self, value: Value, limit: int) -> bytes | None:
        if _empty_bytes(value):
            return b""  # protocol 2 writes b"" as bytes() (__reduce_ex__), not as a literal
        # Charged before anything is read or decoded: what the literal rests on (inline, a
        # large literal read back from the file, or the text a decoder is given). A
        # memoised array handed to a million objects is examined a million times.
        root = value
        for _ in range(MAX_DECODE_CHAIN):
            if not isinstance(root, Derived):
                break
            root = root.source
        if isinstance(root, Blob):
            weight = root.length
        else:
            weight = len(root) if isinstance(root, (str, bytes, bytearray)) else limit
        if not self._may_read_back(min(weight, limit)):
            return None
        if isinstance(value, (bytes, bytearray)):
            return bytes(value)
        try:
            resolved = resolve(value, self.source, limit)  # a Blob, or a decoded literal
        except PayloadTooLarge:
            return None
        return resolved if isinstance(resolved, bytes) else None

    def joblib_array_value(self, wrapper: Call) -> Value:
        found = self._array_objects.get(id(wrapper))
        return found[1] if found is not None and found[0] is wrapper else None

    def joblib_array_bytes(self, wrapper: Call, limit: int) -> bytes | None:
        found = self._array_data.get(id(wrapper))
        if found is None or found[0] is not wrapper or found[2] > limit or not self._may_read_back(found[2]):
            return None
        data = self.source.read_at(found[1], found[2])
        return data if len(data) == found[2] else None

    def may_examine(self, items: int) -> bool:
        if self._examined + items > EXAMINE_FACTOR * self.source.size + EXAMINE_FLOOR:
            return False
        self._examined += items
        return True

    def _may_read_back(self, length: int) -> bool:
        # What contracts examine (read back from the file or not) is bounded by a few times
        # the file; past that they fail closed (nothing is read).
        if self._read_back + length > READ_BACK_FACTOR * self.source.size + READ_BACK_FLOOR:
            return False
        self._read_back += length
        return True

    def external_file(self, wrapper: Global, filename: Value, offset: int) -> None:
        name = filename if isinstance(filename, str) else None
        if name is not None:
            normal = posixpath.normpath(name.replace("\\", "/"))
            if not (normal.startswith("/") or normal == ".." or normal.startswith("../") or ":" in name):
                # beside the pickle: scanned with it only where the scan holds that file, by
                # either reading of a backslash (a separator on Windows, a character here)
                for spelling in dict.fromkeys((normal, posixpath.normpath(name))):
                    self.ctx.needs_sibling(spelling)
                return
        self._report(
            threats.EXTERNAL_ARRAY_FILE,
            offset,
            wrapper.subject,
            f"{wrapper.subject} loads its array from {describe(filename) if name is None else name!r}",
        )


def _empty_bytes(value: Value) -> bool:
    callee = value.callee if isinstance(value, Call) else None
    return (
        isinstance(callee, Global)
        and callee.path in ("builtins.bytes", "builtins.bytearray")
        and sequence_items(value.args) == ()
    )


def scan_pickle_source(source: ByteSource, ctx: ScanContext) -> None:
    """Scan every pickle stream in ``source`` (the FormatScanner's entry point), unless a
    template of the scan's earlier files covers it (modelsec.pickle.reuse)."""
    from modelsec.pickle.reuse import StreamTemplates

    templates = ctx.session.kept(StreamTemplates)
    if templates.covers(source, ctx.limits):
        return
    mark = ctx.mark()
    PickleScan(source, ctx, refine_format=True).scan_all()
    if ctx.untouched_since(mark):
        templates.learn(source, ctx.limits)


def scan_pickle_stream(source: ByteSource, ctx: ScanContext, start_offset: int = 0) -> int | None:
    """Scan the one pickle stream at ``start_offset`` of ``source``; report into ``ctx``.

    Returns the offset just after its STOP, or None if the stream broke or a limit stopped
    the scan (already reported: the caller cannot locate what follows). For callers that
    walk files of several pickles themselves (legacy ``torch.save``: magic number,
    protocol, sys info, the object, storage keys, then raw storage bytes).
    """
    scan = PickleScan(source, ctx)
    result = scan.run_stream(start_offset)
    if result.error is not None:
        scan.report_break(result, 0)
    scan.finish()
    return result.end
