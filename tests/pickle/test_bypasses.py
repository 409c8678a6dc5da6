"""Every bypass class the soundness campaign found (tests/soundness,
benchmarks/soundness_campaign.py, docs/soundness.md), as a regression test named after it.

Each test asserts that the built-in ``local-default`` group BLOCKS the class's minimal
program (tests/pickle/bypass_programs.py) *and* that a finding sits at the class's gap
(the opcode that makes the hidden call, or the argument a contract must reject): a file
blocked for an unrelated reason does not close a class. Classes still open are strict
xfails: once the fix lands the test XPASSes, and fails until its marker is removed.
tests/soundness/test_soundness_regressions.py checks that each program really does
something dangerous in the real loaders.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from bypass_programs import PROGRAMS, BypassProgram
from pklbuild import (
    APPEND,
    BUILD,
    EMPTY_DICT,
    EMPTY_LIST,
    EMPTY_TUPLE,
    MARK,
    NEWTRUE,
    NONE,
    POP,
    REDUCE,
    SETITEM,
    SETITEMS,
    STOP,
    TUPLE1,
    TUPLE2,
    TUPLE3,
    binget,
    binint,
    binput,
    global_,
    proto,
    sbu,
)

from modelsec.engine import Engine
from modelsec.policy import Outcome, evaluate, load_group
from modelsec.rules.base import EvaluationInput, SourceType


def open_bypass(name: str) -> pytest.MarkDecorator:
    return pytest.mark.xfail(strict=True, reason=f"open bypass: {name}")


def assert_blocked_at_its_gap(program: BypassProgram, tmp_path: Path) -> None:
    """Engine and local-default, exactly as the corpus test judges a file."""
    path = tmp_path / program.filename
    path.write_bytes(program.data)
    report = Engine().scan_path(path)
    verdict = evaluate(load_group("local-default"), EvaluationInput(report, SourceType.LOCAL))
    findings = report.all_findings()
    summary = f"{verdict.outcome.value}: " + "; ".join(
        f"{f.threat} {f.subject} @{f.offset}" for f in findings
    )
    summary += " | incomplete: " + "; ".join(i.reason for i in report.all_incompletes())
    assert verdict.outcome is Outcome.BLOCKED, summary
    if program.subject is not None:
        assert any(f.subject == program.subject for f in findings), (
            f"nothing names {program.subject}: {summary}"
        )
    elif program.sites:
        assert any(f.offset in program.sites for f in findings), (
            f"blocked, but nothing reported at {sorted(program.sites)}: {summary}"
        )


# -- calls the unpickler makes without a call opcode (issue 9, point 1) ------------------


def test_build_setstate_from_instance_dict(tmp_path: Path) -> None:
    # BUILD #1 puts __setstate__ = numpy.memmap into the namespace's __dict__; BUILD #2
    # calls numpy.memmap("weights.dat"), which opens the file for writing.
    assert_blocked_at_its_gap(PROGRAMS["build_setstate_from_instance_dict"], tmp_path)


def test_append_calls_append_from_instance_dict(tmp_path: Path) -> None:
    assert_blocked_at_its_gap(PROGRAMS["append_calls_append_from_instance_dict"], tmp_path)


def test_append_calls_extend_from_instance_dict(tmp_path: Path) -> None:
    assert_blocked_at_its_gap(PROGRAMS["append_calls_extend_from_instance_dict"], tmp_path)


def test_append_calls_append_from_bunch_getattr(tmp_path: Path) -> None:
    assert_blocked_at_its_gap(PROGRAMS["append_calls_append_from_bunch_getattr"], tmp_path)


def test_append_calls_extend_from_bunch_getattr(tmp_path: Path) -> None:
    assert_blocked_at_its_gap(PROGRAMS["append_calls_extend_from_bunch_getattr"], tmp_path)


def test_additems_calls_add_from_instance_dict(tmp_path: Path) -> None:
    assert_blocked_at_its_gap(PROGRAMS["additems_calls_add_from_instance_dict"], tmp_path)


# -- trusted helpers given computed arguments (point 2) -----------------------------------


def test_ufunc_reconstruct_imports_computed_name(tmp_path: Path) -> None:
    # _ufunc_reconstruct(str("tabnanny"), "__name__") imports a module no allowlist names.
    assert_blocked_at_its_gap(PROGRAMS["ufunc_reconstruct_imports_computed_name"], tmp_path)


def test_randomstate_ctor_calls_computed_callable(tmp_path: Path) -> None:
    # __randomstate_ctor(name, ctor) returns RandomState(ctor(name)): os.system("true").
    assert_blocked_at_its_gap(PROGRAMS["randomstate_ctor_calls_computed_callable"], tmp_path)


def test_generator_ctor_calls_computed_callable(tmp_path: Path) -> None:
    assert_blocked_at_its_gap(PROGRAMS["generator_ctor_calls_computed_callable"], tmp_path)


def test_bit_generator_ctor_instantiates_computed_class(tmp_path: Path) -> None:
    # __bit_generator_ctor(cls) returns cls() for any type: socket.socket() here.
    assert_blocked_at_its_gap(PROGRAMS["bit_generator_ctor_instantiates_computed_class"], tmp_path)


# -- caps and lost identity (point 4): joblib's file-backed array wrappers ---------------


def test_joblib_wrapper_filename_in_slotstate(tmp_path: Path) -> None:
    # BUILD with (None, {...}) sets the same attributes as a dict state, one setattr each.
    assert_blocked_at_its_gap(PROGRAMS["joblib_wrapper_filename_in_slotstate"], tmp_path)


def test_joblib_wrapper_filename_past_64_items(tmp_path: Path) -> None:
    assert_blocked_at_its_gap(PROGRAMS["joblib_wrapper_filename_past_64_items"], tmp_path)


@pytest.mark.parametrize(
    "how",
    ["reduce", "obj", "inst"],
)
def test_joblib_wrapper_built_by_calling_the_class(tmp_path: Path, how: str) -> None:
    # NDArrayWrapper(filename, subclass) through REDUCE, OBJ or INST, then an empty BUILD.
    assert_blocked_at_its_gap(PROGRAMS[f"joblib_wrapper_built_by_{how}"], tmp_path)


# -- joblib's inline arrays, read differently by joblib.load and pickle.load -------------


def test_joblib_array_elsize_larger(tmp_path: Path) -> None:
    assert_blocked_at_its_gap(PROGRAMS["joblib_array_elsize_larger"], tmp_path)


def test_joblib_array_pad_payload(tmp_path: Path) -> None:
    assert_blocked_at_its_gap(PROGRAMS["joblib_array_pad_payload"], tmp_path)


# -- found by the red team of 2026-12-07 ---------------------------------------------------


def test_joblib_array_data_pops_the_wrapper(tmp_path: Path) -> None:
    # pickle.load goes on past the wrapper's BUILD with the wrapper on its stack
    assert_blocked_at_its_gap(PROGRAMS["joblib_array_data_pops_the_wrapper"], tmp_path)


def test_joblib_array_padding_inside_a_frame(tmp_path: Path) -> None:
    # joblib reads the padding length from the file, at the end of the frame the unpickler
    # buffered, not at the byte that follows the BUILD
    assert_blocked_at_its_gap(PROGRAMS["joblib_array_padding_inside_a_frame"], tmp_path)


def test_joblib_object_array_inside_a_frame(tmp_path: Path) -> None:
    # ... and the nested object pickle from there too
    assert_blocked_at_its_gap(PROGRAMS["joblib_object_array_inside_a_frame"], tmp_path)


def test_joblib_array_data_after_a_nul_int(tmp_path: Path) -> None:
    # the C unpickler reads "I5\0" as 5; a reader that refused it stopped the view there
    assert_blocked_at_its_gap(PROGRAMS["joblib_array_data_after_a_nul_int"], tmp_path)


# -- found open by the campaign, closed since ---------------------------------------------


def test_side_effect_in_scoring_monitor_setstate(tmp_path: Path) -> None:
    # Data only: ScoringMonitor.__setstate__ connects to the listener its state names.
    assert_blocked_at_its_gap(PROGRAMS["side_effect_in_scoring_monitor_setstate"], tmp_path)


@pytest.mark.parametrize("label", ["upper", "bare", "space", "plus", "underscore", "tab"])
def test_joblib_zf_header_spelling(tmp_path: Path, label: str) -> None:
    # joblib.load reads the legacy ZF header's length with int(text, 16): every spelling
    # it accepts must reach the pickle inside.
    assert_blocked_at_its_gap(PROGRAMS[f"joblib_header_zf_{label}"], tmp_path)


# -- found by review (attacks written against the allowlist), not by the campaign ----------
# Built inline: their payloads fail in today's loaders before doing harm (the callable a
# stream can plant is an allowlisted one), so they are not oracle programs; what they prove is
# that the gap itself is closed, whatever callable a future allowlist makes reachable.

_MEMMAP = global_("numpy", "memmap")
_NAMESPACE = global_("argparse", "Namespace") + EMPTY_TUPLE + REDUCE
_ESTIMATOR = (
    global_("copyreg", "_reconstructor")
    + global_("sklearn.linear_model._base", "LinearRegression")
    + global_("builtins", "object")
    + NONE
    + TUPLE3
    + REDUCE
)


def _attr(name: str, value: bytes) -> bytes:
    return EMPTY_DICT + sbu(name) + value + SETITEM


def _judge(data: bytes, tmp_path: Path) -> tuple[str, set[str]]:
    path = tmp_path / "model.pkl"
    path.write_bytes(data)
    report = Engine().scan_path(path)
    verdict = evaluate(load_group("local-default"), EvaluationInput(report, SourceType.LOCAL))
    return verdict.outcome.value, {f.threat for f in report.all_findings()}


@pytest.mark.parametrize("builtin", ["str", "set", "frozenset", "bool", "int", "len", "bytes"])
def test_builtin_runs_methods_of_an_instance_with_a_planted_callable(builtin: str, tmp_path: Path) -> None:
    """str(estimator) runs sklearn's __repr__, which calls self.get_params(): BUILD put
    numpy.memmap there. set() hashes, int() converts, len() measures: all run the
    argument's class code, which reads names the instance __dict__ decides."""
    argument = _ESTIMATOR + _attr("get_params", _MEMMAP) + BUILD
    if builtin in ("set", "frozenset"):
        argument = EMPTY_LIST + argument + APPEND
    data = proto(2) + global_("builtins", builtin) + argument + TUPLE1 + REDUCE + STOP
    assert _judge(data, tmp_path) == ("BLOCKED", {"MS-PKL-107"})


@pytest.mark.parametrize("base", ["str", "int", "list", "set", "bytes"])
def test_reconstructor_base_runs_methods_of_its_state(base: str, tmp_path: Path) -> None:
    """copyreg._reconstructor(cls, base, state) is base.__new__(cls, state): str(estimator)
    and the rest, by another name (red team, 2026-12-07)."""
    state = _ESTIMATOR + _attr("get_params", _MEMMAP) + BUILD
    if base == "set":  # set() hashes its items; list() of a list runs nothing, of an object its __iter__
        state = EMPTY_LIST + state + APPEND
    data = proto(2) + global_("copyreg", "_reconstructor") + global_("builtins", base)
    data += global_("builtins", base) + state + TUPLE3 + REDUCE + STOP
    assert _judge(data, tmp_path) == ("BLOCKED", {"MS-PKL-107"})


@pytest.mark.parametrize("nested", [False, True], ids=["value", "inside-a-list"])
def test_planted_callable_past_the_container_cap(nested: bool, tmp_path: Path) -> None:
    """The machine keeps 64 items of a container; a dropped item that is a class or function
    reference (or a container holding one) made the dict look plain to the contracts. Found
    by the instance_rewiring family of the soundness grammar."""
    planted = EMPTY_LIST + _MEMMAP + APPEND if nested else _MEMMAP
    state = EMPTY_DICT + MARK + b"".join(sbu(f"f{i}") + binint(i) for i in range(64)) + SETITEMS
    state += sbu("get_params") + planted + SETITEM
    data = proto(2) + global_("builtins", "str") + _ESTIMATOR + state + BUILD + TUPLE1 + REDUCE + STOP
    assert _judge(data, tmp_path) == ("BLOCKED", {"MS-PKL-107"})


def test_data_helper_given_an_object_with_a_planted_callable(tmp_path: Path) -> None:
    """pandas' _unpickle_block(values, placement, ndim) reads values.dtype and calls the
    methods of what it finds: handed a namespace whose attributes the stream chose instead
    of an array, it runs them. Helpers that take data get plain data or a finding."""
    values = _NAMESPACE + _attr("reshape", _MEMMAP) + BUILD
    data = (
        proto(2)
        + global_("pandas._libs.internals", "_unpickle_block")
        + values
        + global_("builtins", "slice")
        + binint(0)
        + binint(1)
        + TUPLE2
        + REDUCE
        + binint(2)
        + TUPLE3
        + REDUCE
        + STOP
    )
    assert _judge(data, tmp_path) == ("BLOCKED", {"MS-PKL-107"})


def test_pandas_tz_string_names_a_file(tmp_path: Path) -> None:
    """pandas reads a time zone "dateutil/<name>" with dateutil.tz.gettz, which opens <name>
    when it is a path: DatetimeIndex([], None, "dateutil//etc/hostname") reads the file.
    Found from the soundness campaign's trampoline_in_datetime_index class (seed 5)."""
    data = (
        proto(2)
        + global_("pandas", "DatetimeIndex")
        + EMPTY_LIST
        + NONE
        + sbu("dateutil//etc/hostname")
        + TUPLE3
        + REDUCE
        + STOP
    )
    assert _judge(data, tmp_path) == ("BLOCKED", {"MS-PKL-107"})


def _datetime_index(tz: bytes) -> bytes:
    return proto(2) + global_("pandas", "DatetimeIndex") + EMPTY_LIST + NONE + tz + TUPLE3 + REDUCE + STOP


_HOSTNAME = "dateutil//etc/hostname"


@pytest.mark.parametrize(
    "tz",
    [
        global_("builtins", "str") + b"C\x16" + _HOSTNAME.encode() + sbu("ascii") + TUPLE2 + REDUCE,
        global_("_codecs", "encode") + sbu(_HOSTNAME) + sbu("latin1") + TUPLE2 + REDUCE,
        global_("_codecs", "encode") + sbu("qngrhgvy//rgp/ubfganzr") + sbu("rot13") + TUPLE2 + REDUCE,
        global_("numpy.core.multiarray", "scalar")
        + global_("numpy", "dtype")
        + sbu("U22")
        + b"\x89\x88"
        + TUPLE3
        + REDUCE
        + b"C\x58"
        + _HOSTNAME.encode("utf-32-le")
        + TUPLE2
        + REDUCE,
    ],
    ids=["str-of-bytes", "codec-of-str", "rot13", "numpy-str-scalar"],
)
def test_pandas_tz_string_made_at_load_time(tz: bytes, tmp_path: Path) -> None:
    """The 'dateutil/' time-zone string can be made at load time rather than written as a
    literal: str(bytes, "ascii"), a codec (rot13 hides it from a literal check) or a numpy
    <U scalar (UTF-32 bytes) reach pandas as the same file path."""
    outcome, threats = _judge(_datetime_index(tz), tmp_path)
    assert outcome == "BLOCKED" and "MS-PKL-107" in threats, (outcome, threats)


_STR = global_("builtins", "str")


@pytest.mark.parametrize(
    "args",
    [
        # a string past the 64 items the machine keeps of a list
        EMPTY_LIST + MARK + NONE * 64 + sbu(_HOSTNAME) + b"e" + NONE + NONE + TUPLE3,
        # deeper than the check reads
        EMPTY_LIST + NONE + sbu(_HOSTNAME) + TUPLE1 * 8 + TUPLE3,
        # a str built as an instance of str, not by calling str()
        EMPTY_LIST
        + NONE
        + global_("copyreg", "_reconstructor")
        + _STR
        + _STR
        + sbu(_HOSTNAME)
        + TUPLE3
        + REDUCE
        + TUPLE3,
        EMPTY_LIST + NONE + _STR + sbu(_HOSTNAME) + TUPLE1 + b"\x81" + TUPLE3,  # NEWOBJ
    ],
    ids=["past-the-container-cap", "nested-deep", "copyreg-reconstructor-of-str", "newobj-of-str"],
)
def test_pandas_tz_string_hidden_from_the_check(args: bytes, tmp_path: Path) -> None:
    """The 'dateutil/' check reads what the machine kept: a string in items it dropped, in
    tuples nested deeper than it reads, or made as an instance of str, fails closed."""
    data = proto(2) + global_("pandas", "DatetimeIndex") + args + REDUCE + STOP
    outcome, threats = _judge(data, tmp_path)
    assert outcome == "BLOCKED" and "MS-PKL-107" in threats, (outcome, threats)


_RECONSTRUCT = global_("numpy.core.multiarray", "_reconstruct") + global_("numpy", "ndarray")


@pytest.mark.parametrize(
    "shape",
    [
        binint(1 << 30) + TUPLE1,
        global_("builtins", "int") + sbu("1" * 12) + TUPLE1 + REDUCE + TUPLE1,
        binint(1 << 16) + binint(1 << 16) + TUPLE2,
    ],
    ids=["literal", "computed", "two-dimensions"],
)
def test_numpy_reconstruct_allocates_its_shape(shape: bytes, tmp_path: Path) -> None:
    """numpy's _reconstruct allocates the shape it is given (an object array is filled with
    None at once); its reduce always writes (0,)."""
    data = proto(2) + _RECONSTRUCT + shape + sbu("O") + TUPLE3 + REDUCE + STOP
    assert _judge(data, tmp_path) == ("BLOCKED", {"MS-PKL-107"})


def test_numpy_reconstruct_of_an_empty_shape_is_not_a_finding(tmp_path: Path) -> None:
    data = proto(2) + _RECONSTRUCT + binint(0) + TUPLE1 + b"C\x01b" + TUPLE3 + REDUCE + STOP
    outcome, threats = _judge(data, tmp_path)
    assert "MS-PKL-107" not in threats, threats


@pytest.mark.parametrize(
    "tz",
    [
        global_("builtins", "str") + b"C\x03UTC" + sbu("ascii") + TUPLE2 + REDUCE,
        # bytes a protocol-2 pickler writes as bytearray(_codecs.encode(str, 'latin1')):
        # the soundness campaign's seed 6 false alarms (NamedAgg, SingleBlockManager, ArrowDtype)
        global_("builtins", "bytearray")
        + global_("_codecs", "encode")
        + sbu("!Ãä\x18")
        + sbu("latin1")
        + TUPLE2
        + REDUCE
        + TUPLE1
        + REDUCE,
    ],
    ids=["str-of-bytes", "bytearray-of-encoded-str"],
)
def test_pandas_given_strings_made_from_plain_data_is_not_a_finding(tz: bytes, tmp_path: Path) -> None:
    outcome, threats = _judge(_datetime_index(tz), tmp_path)
    assert "MS-PKL-107" not in threats, threats


def test_builtin_given_plain_objects_is_not_a_finding(tmp_path: Path) -> None:
    # list() and deque() of a list leave its items alone, whatever they hold
    with_function = _ESTIMATOR + _attr("score_func", global_("sklearn.metrics", "accuracy_score")) + BUILD
    data = (
        proto(2)
        + global_("collections", "deque")
        + EMPTY_LIST
        + with_function
        + APPEND
        + TUPLE1
        + REDUCE
        + POP
        + global_("builtins", "bytes")
        + binint(16)
        + TUPLE1
        + REDUCE
        + STOP
    )
    outcome, threats = _judge(data, tmp_path)
    assert not {"MS-PKL-107", "MS-PKL-101"} & threats, threats


def test_builtin_given_any_object_runs_its_methods(tmp_path: Path) -> None:
    """str(x), int(x), set([x]) run x's own methods; a reviewed compiled class is reviewed for
    what it calls, not for the indexes it trusts: str() of a sparse matrix whose indptr the
    stream forged wrote out of bounds during the load (red team, 2026-12-07). Picklers hand
    these builtins literals, so an object is a finding even with plain attributes."""
    estimator = _ESTIMATOR + _attr("fit_intercept", NEWTRUE) + BUILD
    data = proto(2) + global_("builtins", "str") + estimator + TUPLE1 + REDUCE + STOP
    assert "MS-PKL-107" in _judge(data, tmp_path)[1]


@pytest.mark.parametrize(
    "program",
    [
        global_("builtins", "bytes") + b"\x8a\x05" + (10**11).to_bytes(5, "little") + TUPLE1 + REDUCE,
        global_("builtins", "bytearray") + binint(1 << 30) + TUPLE1 + REDUCE,
        global_("builtins", "list")
        + global_("builtins", "range")
        + b"\x8a\x08"
        + (10**18).to_bytes(8, "little")
        + TUPLE1
        + REDUCE
        + TUPLE1
        + REDUCE,
    ],
    ids=["bytes", "bytearray", "list-of-range"],
)
def test_builtin_allocation_bomb(program: bytes, tmp_path: Path) -> None:
    """bytes(10**11) is 100 GB of zeros the loader writes before returning: no pickler
    writes it, and a model server dies of it."""
    assert _judge(proto(2) + program + STOP, tmp_path) == ("BLOCKED", {"MS-PKL-107"})


_COMPUTED_INT = global_("builtins", "int") + sbu("1" * 12) + TUPLE1 + REDUCE
_NUMPY_INT64 = (
    global_("numpy.core.multiarray", "scalar")
    + global_("numpy", "dtype")
    + sbu("i8")
    + b"\x89\x88"  # NEWFALSE NEWTRUE
    + TUPLE3
    + REDUCE
    + b"C\x08"
    + (10**12).to_bytes(8, "little")
    + TUPLE2
    + REDUCE
)


@pytest.mark.parametrize(
    "program",
    [
        global_("builtins", "bytes") + _COMPUTED_INT + TUPLE1 + REDUCE,
        global_("builtins", "bytearray") + _NUMPY_INT64 + TUPLE1 + REDUCE,
        global_("builtins", "list")
        + global_("builtins", "range")
        + _COMPUTED_INT
        + TUPLE1
        + REDUCE
        + TUPLE1
        + REDUCE,
    ],
    ids=["bytes-of-int-call", "bytearray-of-numpy-scalar", "list-of-computed-range"],
)
def test_builtin_allocation_bomb_with_a_computed_size(program: bytes, tmp_path: Path) -> None:
    """The size can be computed at load time: bytes(int("1" * 12)) or bytearray of a numpy
    int64 scalar (it has __index__) allocate a terabyte as surely as bytes(10**12)."""
    assert _judge(proto(2) + program + STOP, tmp_path) == ("BLOCKED", {"MS-PKL-107"})


@pytest.mark.parametrize(
    "program",
    [
        global_("builtins", "bytes") + b"C\x03abc" + TUPLE1 + REDUCE,
        global_("builtins", "bytearray")
        + global_("_codecs", "encode")
        + sbu("abc")
        + sbu("latin1")
        + TUPLE2
        + REDUCE
        + TUPLE1
        + REDUCE,
        global_("builtins", "bytes") + EMPTY_LIST + MARK + binint(1) + binint(2) + b"e" + TUPLE1 + REDUCE,
        global_("builtins", "list")
        + global_("builtins", "range")
        + binint(10)
        + TUPLE1
        + REDUCE
        + TUPLE1
        + REDUCE,
    ],
    ids=["bytes-of-bytes", "bytearray-of-encoded-str", "bytes-of-list", "list-of-small-range"],
)
def test_builtin_given_data_allocates_nothing_unbounded(program: bytes, tmp_path: Path) -> None:
    outcome, threats = _judge(proto(2) + program + STOP, tmp_path)
    assert "MS-PKL-107" not in threats, threats


def test_simplenamespace_mapping_plants_setstate(tmp_path: Path) -> None:
    """Python 3.13's SimpleNamespace(mapping) sets attributes from the mapping: one with
    __setstate__ makes the next BUILD call numpy.memmap("weights.dat")."""
    data = (
        proto(2)
        + global_("types", "SimpleNamespace")
        + _attr("__setstate__", _MEMMAP)
        + TUPLE1
        + REDUCE
        + sbu("weights.dat")
        + BUILD
        + STOP
    )
    outcome, threats = _judge(data, tmp_path)
    assert outcome == "BLOCKED" and "MS-PKL-101" in threats


def test_slot_state_swaps_the_instance_class(tmp_path: Path) -> None:
    """setattr of a slot state's __class__ turns an argparse.Namespace whose __dict__ holds
    _build_f into an IsotonicRegression, whose __setstate__ then calls
    self._build_f(self.X_thresholds_, self.y_thresholds_): numpy.memmap("weights.dat")."""
    state = (
        EMPTY_DICT
        + MARK
        + sbu("X_thresholds_")
        + sbu("weights.dat")
        + sbu("y_thresholds_")
        + sbu("uint8")
        + SETITEMS
    )
    data = (
        proto(2)
        + _NAMESPACE
        + _attr("_build_f", _MEMMAP)
        + BUILD
        + NONE
        + _attr("__class__", global_("sklearn.isotonic", "IsotonicRegression"))
        + TUPLE2
        + BUILD
        + state
        + BUILD
        + STOP
    )
    assert _judge(data, tmp_path) == ("BLOCKED", {"MS-PKL-101"})


def test_slot_state_aliases_the_instance_dict(tmp_path: Path) -> None:
    """setattr of a slot state's __dict__ makes a memoised dict the instance's attributes;
    a SETITEM on that dict afterwards plants __setstate__ for the next BUILD."""
    data = (
        proto(2)
        + _NAMESPACE
        + binput(1)
        + NONE
        + EMPTY_DICT
        + sbu("__dict__")
        + EMPTY_DICT
        + binput(2)
        + SETITEM
        + TUPLE2
        + BUILD
        + POP
        + binget(2)
        + sbu("__setstate__")
        + _MEMMAP
        + SETITEM
        + POP
        + binget(1)
        + sbu("weights.dat")
        + BUILD
        + STOP
    )
    assert _judge(data, tmp_path) == ("BLOCKED", {"MS-PKL-101"})


def test_dict_state_keys_named_like_machinery_are_plain_attributes(tmp_path: Path) -> None:
    """A __dict__ update (the dict half of a state) stores "__class__" as a key: no finding."""
    data = proto(2) + _NAMESPACE + _attr("__class__", sbu("text")) + BUILD + STOP
    assert _judge(data, tmp_path)[1] == set()


def test_every_program_has_a_test() -> None:
    tested = {
        name for name in PROGRAMS if not name.startswith(("joblib_header_zf_", "joblib_wrapper_built_by_"))
    }
    here = {name.removeprefix("test_") for name in globals() if name.startswith("test_")}
    assert tested <= here, tested - here


def test_pure_python_build_calls_the_states_items(tmp_path: Path) -> None:
    """pickle._Unpickler (joblib's) runs ``for k, v in state.items()``: a state object whose
    ``items`` was planted calls it (red team, 2026-12-07; the C unpickler wants a dict)."""
    state = global_("types", "SimpleNamespace") + EMPTY_TUPLE + REDUCE
    state += _attr("items", global_("numpy", "memmap")) + BUILD
    data = proto(2) + _NAMESPACE + state + BUILD + STOP
    assert _judge(data, tmp_path) == ("BLOCKED", {"MS-PKL-101"})


def test_joblib_calls_read_on_its_array_wrappers(tmp_path: Path) -> None:
    """joblib.load runs ``array_wrapper.read(unpickler)``, looked up on the instance."""
    wrapper = global_("joblib.numpy_pickle_compat", "NDArrayWrapper") + EMPTY_TUPLE + b"\x81"  # NEWOBJ
    state = EMPTY_DICT + MARK + sbu("filename") + sbu("w.npy") + sbu("read") + global_("numpy", "memmap")
    data = proto(2) + wrapper + state + SETITEMS + BUILD + STOP
    outcome, threats = _judge(data, tmp_path)
    assert outcome == "BLOCKED" and "MS-PKL-101" in threats, threats
