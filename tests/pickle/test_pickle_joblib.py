"""joblib's inline array data: sized from the wrapper, skipped, and never a hiding place."""

from __future__ import annotations

import io
import pickle
from typing import Any

import joblib
import numpy as np
import pytest
from pklbuild import (
    BUILD,
    EMPTY_DICT,
    EMPTY_TUPLE,
    MARK,
    NEWFALSE,
    NEWOBJ,
    NEWTRUE,
    NONE,
    REDUCE,
    SETITEMS,
    STOP,
    TUPLE,
    TUPLE3,
    binint,
    binint1,
    call,
    codes,
    global_,
    old_joblib_wrapper,
    proto,
    sbu,
    scan,
    stack_global,
    subjects,
    summary,
    v4,
)

WRAPPER = ("joblib.numpy_pickle", "NumpyArrayWrapper")


class _Unseekable(io.RawIOBase):
    def __init__(self) -> None:
        self.data = io.BytesIO()

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        return self.data.write(b)

    def tell(self) -> int:
        raise io.UnsupportedOperation("not seekable")


def unaligned_dump(value: Any) -> bytes:
    sink = _Unseekable()
    joblib.dump(value, sink)
    return sink.data.getvalue()


def wrapper(dtype: bytes, shape: bytes, alignment: bytes | None = binint1(16)) -> bytes:
    """A NumpyArrayWrapper with the given dtype/shape opcodes, up to its BUILD."""
    items = [
        sbu("subclass") + stack_global("numpy", "ndarray"),
        sbu("shape") + shape,
        sbu("order") + sbu("C"),
        sbu("dtype") + dtype,
        sbu("allow_mmap") + NEWTRUE,
    ]
    if alignment is not None:
        items.append(sbu("numpy_array_alignment_bytes") + alignment)
    return (
        stack_global(*WRAPPER) + EMPTY_TUPLE + NEWOBJ + EMPTY_DICT + MARK + b"".join(items) + SETITEMS + BUILD
    )


def f8() -> bytes:
    state = MARK + binint1(3) + sbu("<") + NONE + NONE + NONE + b"J\xff\xff\xff\xff" * 2 + binint1(0) + TUPLE
    return stack_global("numpy", "dtype") + sbu("f8") + NEWFALSE + NEWTRUE + TUPLE3 + REDUCE + state + BUILD


def test_hand_built_wrapper_is_sized_and_skipped() -> None:
    data = proto(4) + wrapper(f8(), binint1(3) + b"\x85") + b"\x05" + b"\xff" * 5 + bytes(24) + b"0N" + STOP
    result = scan(data, name="m.joblib")
    assert not result.findings and not result.incompletes, summary(result)
    assert result.format == "joblib"


def test_payload_after_the_array_data_is_found() -> None:
    data = (
        proto(4)
        + wrapper(f8(), binint1(3) + b"\x85")
        + b"\x05"
        + b"\xff" * 5
        + bytes(24)
        + b"0"
        + call("os", "system", "id")
        + STOP
    )
    assert subjects(scan(data), "MS-PKL-100") == {"os.system"}


def test_unsizable_wrapper_fails_closed() -> None:
    data = proto(4) + wrapper(sbu("float64"), binint1(3) + b"\x85") + bytes(24) + b"0N" + STOP
    result = scan(data, name="m.joblib")
    assert [i.code for i in result.incompletes] == ["MS-PKL-121"], summary(result)


# joblib finds the array bytes from the wrapper object: attributes from every BUILD, the
# defaults __init__ sets, and methods looked up on the instance that a state can shadow.
# Only the shape joblib writes is sized; anything else fails closed (red team, 2026-12-07).
_DATA = b"\x05" + b"\xff" * 5 + bytes(24) + b"0N" + STOP


def _with_state_item(key: str, value: bytes) -> bytes:
    """The usual wrapper with one more item in its BUILD state."""
    built = wrapper(f8(), binint1(3) + b"\x85")
    return built[: -len(SETITEMS + BUILD)] + sbu(key) + value + SETITEMS + BUILD


@pytest.mark.parametrize(
    "body",
    [
        # a method joblib calls, shadowed by the state
        _with_state_item("safe_get_numpy_array_alignment_bytes", stack_global("builtins", "int")),
        _with_state_item("read", stack_global("builtins", "slice")),
        # the memoised wrapper built again: joblib reads another array, sized from both
        # states' attributes
        wrapper(f8(), binint1(3) + b"\x85").replace(NEWOBJ, NEWOBJ + b"q\x00", 1)
        + b"\x05"
        + b"\xff" * 5
        + bytes(24)
        + b"0h\x00"
        + wrapper(f8(), binint1(3) + b"\x85", alignment=None)[
            len(stack_global(*WRAPPER) + EMPTY_TUPLE + NEWOBJ) :
        ],
        # the class called: __init__ sets its defaults (alignment 16) before the state
        wrapper(f8(), binint1(3) + b"\x85").replace(
            stack_global(*WRAPPER) + EMPTY_TUPLE + NEWOBJ,
            stack_global(*WRAPPER) + sbu("x") + b"\x85" + REDUCE,
        ),
    ],
    ids=["planted-alignment-getter", "planted-read", "second-build", "init-called"],
)
def test_a_wrapper_joblib_never_writes_fails_closed(body: bytes) -> None:
    result = scan(proto(4) + body + _DATA, name="m.joblib")
    assert "MS-PKL-121" in {i.code for i in result.incompletes}, summary(result)


@pytest.mark.parametrize(
    "made",
    [
        stack_global("copyreg", "__newobj__") + stack_global(*WRAPPER) + b"\x85" + REDUCE,
        stack_global("copyreg", "_reconstructor")
        + stack_global(*WRAPPER)
        + stack_global("builtins", "object")
        + NONE
        + TUPLE3
        + REDUCE,
        stack_global(*WRAPPER) + EMPTY_TUPLE + EMPTY_DICT + b"\x92",  # NEWOBJ_EX
    ],
    ids=["copyreg-newobj", "copyreg-reconstructor", "newobj-ex"],
)
def test_other_spellings_of_a_bare_wrapper_are_sized(made: bytes) -> None:
    body = wrapper(f8(), binint1(3) + b"\x85").replace(stack_global(*WRAPPER) + EMPTY_TUPLE + NEWOBJ, made)
    result = scan(proto(4) + body + _DATA, name="m.joblib")
    assert not result.findings and not result.incompletes, summary(result)


def test_object_dtype_whose_flags_disown_objects_is_a_finding() -> None:
    """numpy takes a dtype's flags from its state: 'O8' rebuilt with flags 0 has hasobject
    False, so its arrays are raw bytes read as object pointers, and joblib reads raw items
    where an object array's nested pickle would be (red team, 2026-12-07)."""
    o8 = f8().replace(sbu("f8"), sbu("O8"))
    data = proto(4) + wrapper(o8, binint1(3) + b"\x85") + b"\x05" + b"\xff" * 5 + bytes(24) + b"0N" + STOP
    result = scan(data, name="m.joblib")
    assert "MS-PKL-107" in codes(result), summary(result)
    assert subjects(result, "MS-PKL-107") == {"numpy.dtype"}


def _dtype(typestr: str, state: bytes | None) -> bytes:
    made = stack_global("numpy", "dtype") + sbu(typestr) + NEWFALSE + NEWTRUE + TUPLE3 + REDUCE
    return made if state is None else made + MARK + state + TUPLE + BUILD


def test_unicode_items_are_four_bytes_a_character() -> None:
    """dtype('U4') is 16 bytes an item: joblib skips 48 bytes for three, and runs what
    follows (red team, 2026-12-07: the type string's digits alone skipped 12)."""
    data = proto(4) + wrapper(_dtype("U4", None), binint1(3) + b"\x85", alignment=None)
    data += bytes(48) + b"0" + call("os", "system", "id") + STOP
    assert subjects(scan(data, name="m.joblib"), "MS-PKL-100") == {"os.system"}


def test_a_dtype_state_in_an_older_layout_fails_closed() -> None:
    """numpy reads a 6-item state (version, endian, subarray, fields, elsize, alignment)
    with the item size at index 4, not 5."""
    legacy = binint1(0) + sbu("<") + NONE + NONE + binint1(64) + binint1(4)
    data = proto(4) + wrapper(_dtype("U4", legacy), binint1(3) + b"\x85", alignment=None) + bytes(192) + STOP
    assert "MS-PKL-121" in {i.code for i in scan(data, name="m.joblib").incompletes}


def test_object_subarray_whose_flags_disown_objects_is_a_finding() -> None:
    """A void dtype whose subarray is 'O8', rebuilt with flags 0: numpy's hasobject is
    False, and joblib copies raw bytes into object slots (a forged pointer crashes it)."""
    sub = _dtype("O8", binint1(3) + sbu("|") + NONE + NONE + NONE + binint(-1) + binint(-1) + binint1(63))
    state = (
        binint1(3)
        + sbu("|")
        + sub
        + binint1(2)
        + b"\x85"
        + b"\x86"
        + NONE
        + NONE
        + binint1(16)
        + binint1(8)
        + binint1(0)
    )
    data = proto(4) + wrapper(_dtype("V16", state), binint1(1) + b"\x85", alignment=None) + bytes(16) + STOP
    assert "MS-PKL-107" in codes(scan(data, name="m.joblib"))


@pytest.mark.parametrize(
    ("typestr", "state"),
    [
        # 'O8' keeping NPY_ITEM_REFCOUNT but dropping NPY_LIST_PICKLE: raw bytes as pointers
        ("O8", binint1(3) + sbu("|") + NONE + NONE + NONE + binint(-1) + binint(-1) + binint1(61)),
        # a field past the end of its item: numpy writes object pointers out of bounds
        (
            "V8",
            binint1(3)
            + sbu("|")
            + NONE
            + sbu("a")
            + b"\x85"
            + b"}"
            + sbu("a")
            + _dtype("O8", binint1(3) + sbu("|") + NONE + NONE + NONE + binint(-1) + binint(-1) + binint1(63))
            + binint1(24)
            + b"\x86"
            + b"s"
            + binint1(8)
            + binint1(1)
            + binint1(27),
        ),
        # a subarray larger than its item
        (
            "V8",
            binint1(3)
            + sbu("|")
            + _dtype("f8", None)
            + binint1(4)
            + b"\x85"
            + b"\x86"
            + NONE
            + NONE
            + binint1(8)
            + binint1(8)
            + binint1(0),
        ),
    ],
    ids=["list-pickle-dropped", "field-outside-item", "subarray-larger-than-item"],
)
def test_dtype_states_numpy_does_not_write_are_violations(typestr: str, state: bytes) -> None:
    """numpy's dtype.__setstate__ trusts the flags and geometry it is given: what it does
    not write itself corrupts memory (SIGSEGV in every loader: red team, 2026-12-07)."""
    data = proto(2) + _dtype(typestr, state) + b"0" + NONE + STOP
    assert "MS-PKL-107" in codes(scan(data)), summary(scan(data))


def test_array_data_running_past_the_end_is_malformed() -> None:
    data = proto(4) + wrapper(f8(), binint1(200) + b"\x85") + b"\x05" + b"\xff" * 5 + bytes(24)
    assert codes(scan(data)) == {"MS-PKL-110"}


def test_payload_hidden_in_unaligned_array_data_is_seen_as_plain_pickle_would() -> None:
    # Without alignment padding, pickle.load (unlike joblib.load) reads the array bytes as
    # opcodes: an "array" whose bytes are a payload runs under pickle.load.
    payload = pickle.dumps(1, protocol=0)[:0] + b"cos\nsystem\n(S'id'\ntR."
    data = unaligned_dump({"w": np.frombuffer(payload, dtype="u1").copy()})
    assert b"numpy_array_alignment_bytes" in data
    result = scan(data, name="m.joblib")
    assert subjects(result, "MS-PKL-100") == {"os.system"}, summary(result)


def test_payload_in_aligned_array_data_cannot_run() -> None:
    # The padding-length byte (1..16) is no opcode: pickle.load stops there, joblib skips it.
    payload = b"cos\nsystem\n(S'id'\ntR."
    buffer = io.BytesIO()
    joblib.dump({"w": np.frombuffer(payload, dtype="u1").copy()}, buffer)
    result = scan(buffer.getvalue(), name="m.joblib")
    assert not result.findings and not result.incompletes, summary(result)


def test_object_array_nested_stream_is_scanned() -> None:
    value = {"o": np.array([1, "x"], dtype=object)}
    buffer = io.BytesIO()
    joblib.dump(value, buffer)
    data = buffer.getvalue()
    clean = scan(data, name="m.joblib")
    assert not clean.findings and not clean.incompletes, summary(clean)
    # Replace the object array's nested pickle by a payload of the same shape
    start = data.index(b"\x80", data.index(b"O8") + 1)
    end = data.index(b".", start) + 1
    evil = data[:start] + v4(call("os", "system", "id")) + data[end:]
    result = scan(evil, name="m.joblib")
    assert "os.system" in subjects(result, "MS-PKL-100"), summary(result)


def test_old_wrapper_with_a_file_outside_the_model() -> None:
    nd = old_joblib_wrapper
    assert not scan(nd("model.pkl_01.npy")).findings
    for name in ("../../etc/evil.npy", "/tmp/evil.npy", "C:\\evil.npy"):
        result = scan(nd(name))
        assert subjects(result, "MS-PKL-106") == {"joblib.numpy_pickle_compat.NDArrayWrapper"}, name


def test_a_deep_stack_under_many_wrappers_costs_its_copies() -> None:
    # The plain pickle.load view of each wrapper's data starts from a copy of the stack:
    # 4,000 entries under 300 wrappers were 1.2 million copies the opcode budget never saw.
    from modelsec.context import Limits

    array = wrapper(f8(), binint1(3) + b"\x85") + b"\x05" + b"\xff" * 5 + bytes(24)
    data = proto(4) + NONE * 4000 + array * 300 + STOP
    result = scan(data, name="m.joblib", limits=Limits(max_pickle_opcodes=400_000))
    assert any("copied for the plain pickle.load view" in i.reason for i in result.incompletes), summary(
        result
    )
    assert not scan(proto(4) + NONE * 4000 + array * 3 + STOP, name="m.joblib").incompletes


def _wrapper_state(shape: bytes, typestr: str, order: str) -> bytes:
    """A NumpyArrayWrapper's state dict as joblib writes it (protocol 2 opcodes)."""
    dtype = global_("numpy", "dtype") + sbu(typestr) + b"\x89\x88\x87R"  # dtype(typestr, False, True)
    dtype += b"(K\x03" + sbu(order) + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
    return (
        b"}(" + sbu("subclass") + global_("numpy", "ndarray") + sbu("shape") + shape
        + sbu("order") + sbu("C") + sbu("dtype") + dtype + sbu("allow_mmap") + b"\x89u"
    )  # fmt: skip


def test_the_plain_view_cannot_change_what_joblib_reads() -> None:
    """Array A's 32 bytes are, to plain pickle.load, ``memo[10]['shape'] = (1000,)``: the
    state dict array B is built with later. The scanner read B as 8,000 bytes and skipped
    an os.system call that joblib.load, reading B's real 8 bytes, runs next (red team,
    session 23). The plain view's writes into values both views hold are undone when it
    ends; its own findings stay."""
    wrapper = global_("joblib.numpy_pickle", "NumpyArrayWrapper") + b")\x81"
    b_state = _wrapper_state(b"K\x01\x85", "i8", "<")
    data = proto(2) + b_state[:1] + b"q\x0a" + b_state[1:] + b"0"  # memo[10], popped
    data += b"]q\x01("  # a list of the two arrays
    plain = b"h\x0a" + sbu("shape") + b"M\xe8\x03\x85s."  # memo[10]['shape'] = (1000,); STOP
    data += wrapper + _wrapper_state(b"K\x20\x85", "u1", "|") + b"b" + plain + b"\xff" * (32 - len(plain))
    data += wrapper + b"h\x0ab"  # B, built with memo[10]
    b_data = len(data)
    data += (
        b"T" + (8 * 1000 - 5).to_bytes(4, "little") + b"\x00\x00\x00"
    )  # B's 8 bytes (a BINSTRING to pickle.load)
    data += global_("os", "system") + b"(S'true'\ntR0"  # where joblib.load goes on
    data += bytes(b_data + 8 * 1000 - len(data)) + b"e."
    result = scan(data, "model.joblib")
    assert "MS-PKL-100" in codes(result), summary(result)


def test_the_journal_puts_back_what_the_plain_view_changed() -> None:
    """Every field of a container and of an instance (and what the stream wrote into it),
    as it was before the plain view's first change, however many changes followed."""
    from modelsec.pickle.journal import Journal
    from modelsec.pickle.objects import InstanceAttrs
    from modelsec.pickle.values import Call, Container

    state = Container("dict", [("shape", (1,))])
    instance = Call(None, (), 0, "NEWOBJ", attrs=InstanceAttrs({}))
    journal = Journal()
    for value in (state, instance, state):
        journal.record(value)
    state.items.append(("shape", (1000,)))
    state.dropped, state.opaque_keys = 3, True
    instance.state, instance.width, instance.used = state, 7, True
    assert instance.attrs is not None
    instance.attrs.tracked["read"] = state
    instance.attrs.merged.append(state)
    journal.undo()
    assert state.items == [("shape", (1,))] and state.dropped == 0 and not state.opaque_keys
    assert instance.state is None and instance.width is None and not instance.used
    assert instance.attrs.tracked == {} and instance.attrs.merged == []
