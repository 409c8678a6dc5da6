"""Every way a pickle reaches a callable, built from raw opcodes (never loaded)."""

from __future__ import annotations

import pytest
from pklbuild import (
    BINPERSID,
    BUILD,
    DICT,
    DUP,
    EMPTY_DICT,
    EMPTY_TUPLE,
    MARK,
    MEMOIZE,
    NEWOBJ,
    NEWOBJ_EX,
    NONE,
    OBJ,
    POP,
    REDUCE,
    SETITEM,
    STACK_GLOBAL,
    STOP,
    TUPLE,
    TUPLE1,
    TUPLE2,
    binget,
    binint1,
    binput,
    binstring,
    binunicode,
    binunicode8,
    call,
    codes,
    ext1,
    ext2,
    ext4,
    get,
    global_,
    inst,
    long_binget,
    long_binput,
    proto,
    put,
    sbu,
    scan,
    short_binstring,
    stack_global,
    string,
    subjects,
    summary,
    unicode_line,
    v4,
    with_code,
)

from modelsec.findings import Severity

DANGEROUS, UNKNOWN_CALL, NESTED, UNRESOLVED, MUTATION, UNKNOWN_REF, MALFORMED = (
    "MS-PKL-100",
    "MS-PKL-101",
    "MS-PKL-102",
    "MS-PKL-103",
    "MS-PKL-104",
    "MS-PKL-105",
    "MS-PKL-110",
)


def assert_dangerous(data: bytes, subject: str) -> None:
    result = scan(data)
    assert subject in subjects(result, DANGEROUS), summary(result)
    finding = next(f for f in with_code(result, DANGEROUS) if f.subject == subject)
    assert finding.rule == "LoadTimeCodeExecution"
    assert finding.severity is Severity.CRITICAL
    assert finding.file == "model.pkl" and finding.offset is not None
    assert finding.remediation


def test_global_reduce_protocol0() -> None:
    data = global_("os", "system") + MARK + string("id") + TUPLE + REDUCE + STOP
    result = scan(data)
    assert subjects(result, DANGEROUS) == {"os.system"}, summary(result)
    assert with_code(result, DANGEROUS)[0].offset == 0
    assert result.format == "pickle"


@pytest.mark.parametrize(
    "operands",
    [
        pytest.param(sbu("os") + sbu("system"), id="short-binunicode"),
        pytest.param(binunicode("os") + binunicode("system"), id="binunicode"),
        pytest.param(binunicode8("os") + binunicode8("system"), id="binunicode8"),
        pytest.param(unicode_line("os") + unicode_line("system"), id="unicode-line"),
        pytest.param(string("os") + string("system"), id="string"),
        pytest.param(binstring("os") + binstring("system"), id="binstring"),
        pytest.param(short_binstring("os") + short_binstring("system"), id="short-binstring"),
    ],
)
def test_stack_global_operands_from_any_string_opcode(operands: bytes) -> None:
    assert_dangerous(proto(4) + operands + STACK_GLOBAL + sbu("id") + TUPLE1 + REDUCE + STOP, "os.system")


@pytest.mark.parametrize(
    "store, load",
    [
        pytest.param(lambda i: MEMOIZE, binget, id="memoize-binget"),
        pytest.param(binput, binget, id="binput-binget"),
        pytest.param(long_binput, long_binget, id="long-binput-long-binget"),
        pytest.param(put, get, id="put-get"),
    ],
)
def test_stack_global_operands_from_the_memo_placed_earlier(store, load) -> None:  # type: ignore[no-untyped-def]
    # Strings stored long before, popped, then fetched back for STACK_GLOBAL: the
    # malicious11 / keyerror shape.
    data = (
        proto(4)
        + sbu("harmless")
        + POP
        + sbu("posix")
        + store(0)
        + POP
        + binint1(7)
        + POP
        + sbu("system")
        + store(1)
        + POP
        + load(0)
        + load(1)
        + STACK_GLOBAL
        + sbu("id")
        + TUPLE1
        + REDUCE
        + STOP
    )
    assert_dangerous(data, "posix.system")


def test_inst() -> None:
    data = MARK + string("id") + inst("os", "system") + STOP
    assert_dangerous(data, "os.system")


def test_obj() -> None:
    data = proto(2) + MARK + global_("subprocess", "Popen") + string("id") + OBJ + STOP
    assert_dangerous(data, "subprocess.Popen")


def test_newobj() -> None:
    data = proto(2) + global_("subprocess", "Popen") + sbu("id") + TUPLE1 + NEWOBJ + STOP
    assert_dangerous(data, "subprocess.Popen")


def test_newobj_ex() -> None:
    data = v4(stack_global("subprocess", "Popen") + sbu("id") + TUPLE1 + EMPTY_DICT + NEWOBJ_EX)
    assert_dangerous(data, "subprocess.Popen")


def test_build_on_a_global_is_a_write_into_the_module() -> None:
    # BUILD applied to the imported module object itself: setattr(torch._utils, ...).
    data = v4(
        stack_global("torch", "_utils")
        + EMPTY_DICT
        + sbu("_rebuild_tensor")
        + sbu("builtins")
        + SETITEM
        + BUILD
    )
    result = scan(data)
    assert subjects(result, MUTATION) == {"torch._utils"}, summary(result)
    assert with_code(result, MUTATION)[0].severity is Severity.CRITICAL


def test_setitem_on_a_global() -> None:
    data = v4(stack_global("mypkg", "REGISTRY") + sbu("key") + sbu("value") + SETITEM)
    assert subjects(scan(data), MUTATION) == {"mypkg.REGISTRY"}


def test_sys_modules_override_shape_fails_closed() -> None:
    # STACK_GLOBAL whose module operand is an attribute of a patched module.
    data = v4(
        stack_global("torch._utils", "_rebuild_tensor")
        + POP
        + stack_global("torch", "_utils")
        + MEMOIZE
        + EMPTY_DICT
        + sbu("_rebuild_tensor")
        + sbu("builtins")
        + SETITEM
        + BUILD
        + POP
        + stack_global("torch._utils", "_rebuild_tensor")
        + sbu("eval")
        + STACK_GLOBAL
        + sbu("1")
        + TUPLE1
        + REDUCE
    )
    result = scan(data)
    assert {MUTATION, UNRESOLVED} <= codes(result), summary(result)


@pytest.mark.parametrize("opcode", [ext1(1), ext2(300), ext4(70000)], ids=["EXT1", "EXT2", "EXT4"])
def test_extension_codes_fail_closed(opcode: bytes) -> None:
    result = scan(proto(2) + opcode + sbu("id") + TUPLE1 + REDUCE + STOP)
    assert codes(result) == {UNRESOLVED}, summary(result)
    assert with_code(result, UNRESOLVED)[0].rule == "LoadTimeCodeExecution"


def test_stack_global_with_computed_operands_is_unresolvable() -> None:
    # module name computed by a (safe-looking) call: nobody knows the string statically
    data = v4(call("builtins", "str", "os") + sbu("system") + STACK_GLOBAL + sbu("id") + TUPLE1 + REDUCE)
    result = scan(data)
    assert UNRESOLVED in codes(result), summary(result)


def test_stack_global_with_non_string_operands_breaks_before_anything_runs() -> None:
    data = v4(binint1(1) + sbu("system") + STACK_GLOBAL)
    result = scan(data)
    assert codes(result) == {MALFORMED}, summary(result)


@pytest.mark.parametrize(
    "module, name, subject",
    [
        ("pathlib", "os.system", "pathlib.os.system"),  # reached through a re-exported module
        ("builtins", "getattr", "builtins.getattr"),
        ("some.package", "helpers.subprocess.run", "some.package.helpers.subprocess.run"),
        (
            "collections",
            "OrderedDict.__init__.__globals__",
            "collections.OrderedDict.__init__.__globals__",
        ),
        ("json", "__main__", "json.__main__"),
    ],
)
def test_dotted_names_classify_every_component(module: str, name: str, subject: str) -> None:
    data = v4(stack_global(module, name) + sbu("x") + TUPLE1 + REDUCE)
    assert_dangerous(data, subject)


@pytest.mark.parametrize(
    "module, name",
    [
        ("__builtin__", "eval"),
        ("__builtin__", "getattr"),
        ("posix", "system"),
        ("nt", "system"),
        ("commands", "getoutput"),
        ("copy_reg", "add_extension"),
        ("cPickle", "loads"),
    ],
)
def test_python2_and_platform_aliases(module: str, name: str) -> None:
    data = global_(module, name) + MARK + string("x") + TUPLE + REDUCE + STOP
    result = scan(data)
    assert f"{module}.{name}" in subjects(result, DANGEROUS) | subjects(result, NESTED), summary(result)


def test_getattr_chain_reaches_a_dangerous_function() -> None:
    # getattr(getattr(builtins-module-object, "__dict__"), ...) and getattr(os, "system")
    data = v4(
        stack_global("builtins", "getattr")
        + MEMOIZE
        + stack_global("importlib", "import_module")
        + sbu("os")
        + TUPLE1
        + REDUCE
        + sbu("system")
        + TUPLE2
        + REDUCE
        + sbu("id")
        + TUPLE1
        + REDUCE
    )
    result = scan(data)
    assert {"builtins.getattr", "importlib.import_module"} <= subjects(result, DANGEROUS), summary(result)


def test_getattr_with_literal_operands_resolves_to_the_attribute() -> None:
    # getattr(<module os.path? no: builtins>, "eval") is builtins.eval, reported as such
    data = v4(stack_global("builtins", "getattr") + stack_global("builtins", "__builtins__"))
    result = scan(data)
    assert DANGEROUS in codes(result)
    data = v4(
        stack_global("builtins", "getattr")
        + stack_global("collections", "OrderedDict")
        + sbu("fromkeys")
        + TUPLE2
        + REDUCE
        + sbu("ab")
        + TUPLE1
        + REDUCE
    )
    result = scan(data)
    # getattr itself is not reported (operands known); the method it reaches is unlisted
    assert "builtins.getattr" not in subjects(result, DANGEROUS), summary(result)
    assert subjects(result, UNKNOWN_CALL) == {"collections.OrderedDict.fromkeys"}, summary(result)
    data = v4(
        stack_global("builtins", "getattr")
        + stack_global("builtins", "__import__")
        + POP
        + stack_global("builtins", "dict")
        + sbu("get")
        + TUPLE2
        + REDUCE
    )
    assert subjects(scan(data), DANGEROUS) == {"builtins.__import__"}


def test_getattr_to_a_safe_method_passes() -> None:
    # How zoneinfo.ZoneInfo pickles itself: getattr(ZoneInfo, "_unpickle")(key, 1)
    data = v4(
        stack_global("builtins", "getattr")
        + stack_global("zoneinfo", "ZoneInfo")
        + sbu("_unpickle")
        + TUPLE2
        + REDUCE
        + sbu("Europe/Paris")
        + binint1(1)
        + TUPLE2
        + REDUCE
    )
    result = scan(data)
    assert not result.findings, summary(result)


def test_getattr_with_computed_operands_is_dangerous() -> None:
    data = v4(
        stack_global("builtins", "getattr")
        + call("collections", "OrderedDict")
        + call("builtins", "str", "x")
        + TUPLE2
        + REDUCE
    )
    assert subjects(scan(data), DANGEROUS) == {"builtins.getattr"}


def test_getattr_referenced_but_never_called_is_dangerous() -> None:
    data = v4(stack_global("builtins", "getattr"))
    assert subjects(scan(data), DANGEROUS) == {"builtins.getattr"}


def test_unknown_gadget_called_is_high() -> None:
    data = v4(call("acme.tools", "Runner", "rm -rf /"))
    result = scan(data)
    assert subjects(result, UNKNOWN_CALL) == {"acme.tools.Runner"}, summary(result)
    finding = with_code(result, UNKNOWN_CALL)[0]
    assert finding.severity is Severity.HIGH and finding.rule == "SuspiciousComponents"
    assert UNKNOWN_REF not in codes(result)


@pytest.mark.parametrize(
    "opcodes",
    [
        pytest.param(lambda g: g + sbu("x") + TUPLE1 + NEWOBJ, id="NEWOBJ"),
        pytest.param(lambda g: MARK + g + sbu("x") + OBJ, id="OBJ"),
        pytest.param(
            lambda g: (
                stack_global("copyreg", "_reconstructor")
                + g
                + stack_global("builtins", "object")
                + NONE
                + (b"\x87")
                + REDUCE
            ),
            id="copyreg._reconstructor",
        ),
        pytest.param(
            lambda g: stack_global("copyreg", "__newobj__") + g + TUPLE1 + REDUCE,
            id="copyreg.__newobj__",
        ),
        pytest.param(
            lambda g: stack_global("collections", "defaultdict") + g + TUPLE1 + REDUCE,
            id="defaultdict factory",
        ),
        pytest.param(
            lambda g: (
                stack_global("numpy._core.multiarray", "_reconstruct")
                + g
                + MARK
                + binint1(0)
                + TUPLE
                + sbu("b")
                + b"\x87"
                + REDUCE
            ),
            id="numpy _reconstruct subtype",
        ),
        pytest.param(
            lambda g: (
                stack_global("pandas._libs.arrays", "__pyx_unpickle_NDArrayBacked")
                + g
                + binint1(0)
                + NONE
                + b"\x87"
                + REDUCE
            ),
            id="cython unpickle class",
        ),
    ],
)
def test_unknown_class_invoked_through_any_path(opcodes) -> None:  # type: ignore[no-untyped-def]
    data = v4(opcodes(stack_global("acme.models", "Gadget")))
    result = scan(data)
    assert subjects(result, UNKNOWN_CALL) == {"acme.models.Gadget"}, summary(result)


def test_unknown_global_only_referenced_blocks() -> None:
    # Importing runs the module, and the unpickler calls methods without call opcodes:
    # an unlisted global fails SuspiciousComponents (HIGH) even when nothing calls it.
    data = v4(EMPTY_DICT + sbu("fn") + stack_global("acme.metrics", "score") + SETITEM)
    result = scan(data)
    assert codes(result) == {UNKNOWN_REF}, summary(result)
    assert with_code(result, UNKNOWN_REF)[0].severity is Severity.HIGH


def test_calling_a_computed_callable() -> None:
    # REDUCE on the result of a safe call: whatever it returns is being called
    data = v4(call("collections", "OrderedDict") + sbu("x") + TUPLE1 + REDUCE)
    result = scan(data)
    assert subjects(result, UNKNOWN_CALL) == {"result of collections.OrderedDict"}, summary(result)


def test_data_only_global_called_directly() -> None:
    data = v4(call("numpy", "memmap", "/etc/passwd"))
    assert subjects(scan(data), UNKNOWN_CALL) == {"numpy.memmap"}


def test_persistent_id_globals_are_classified() -> None:
    data = (
        proto(2) + MARK + string("storage") + global_("os", "system") + string("0") + TUPLE + BINPERSID + STOP
    )
    assert subjects(scan(data), DANGEROUS) == {"os.system"}


def test_nested_loader_is_its_own_threat() -> None:
    data = v4(stack_global("pickle", "loads") + b"C\x00" + TUPLE1 + REDUCE)
    result = scan(data)
    assert subjects(result, NESTED) == {"pickle.loads"}, summary(result)
    assert with_code(result, NESTED)[0].severity is Severity.CRITICAL


def test_marshal_loads_is_a_nested_loader_without_a_scan() -> None:
    result = scan(v4(stack_global("marshal", "loads") + b"C\x03abc" + TUPLE1 + REDUCE))
    assert subjects(result, NESTED) == {"marshal.loads"}
    assert all("!" not in f.file for f in result.findings)


def test_each_dangerous_subject_reported_once_with_first_offset() -> None:
    one = stack_global("os", "system") + sbu("a") + TUPLE1 + REDUCE + POP
    data = proto(4) + one + one + NONE + STOP
    found = with_code(scan(data), DANGEROUS)
    first_stack_global = data.index(STACK_GLOBAL)  # the import happens there
    assert len(found) == 1 and found[0].offset == first_stack_global


def test_dup_and_dict_build_paths() -> None:
    data = (
        proto(2)
        + global_("os", "system")
        + DUP
        + POP
        + MARK
        + sbu("k")
        + sbu("v")
        + DICT
        + POP
        + EMPTY_TUPLE
        + REDUCE
        + STOP
    )
    assert subjects(scan(data), DANGEROUS) == {"os.system"}


@pytest.mark.parametrize(
    "module, name, code",
    [
        ("subprocess", "check_output", DANGEROUS),  # command runner
        ("builtins", "exec", DANGEROUS),  # code runner
        ("runpy", "run_path", DANGEROUS),
        ("importlib", "import_module", DANGEROUS),  # import resolver
        ("operator", "methodcaller", DANGEROUS),  # attribute reacher
        ("functools", "reduce", DANGEROUS),  # trampoline
        ("shutil", "rmtree", DANGEROUS),  # file writer
        ("io", "FileIO", DANGEROUS),
        ("tempfile", "NamedTemporaryFile", DANGEROUS),
        ("urllib.request", "urlretrieve", DANGEROUS),  # network
        ("smtplib", "SMTP", DANGEROUS),
        ("webbrowser", "open", DANGEROUS),
        ("sys", "exit", DANGEROUS),  # interpreter internals
        ("signal", "signal", DANGEROUS),
        ("ctypes", "CDLL", DANGEROUS),
        ("_osx_support", "_read_output", DANGEROUS),  # picklescan GHSA set
        ("torch.hub", "load", DANGEROUS),
        ("numpy.f2py", "compile", DANGEROUS),
        ("joblib", "load", NESTED),  # nested loaders
        ("numpy", "load", NESTED),
        ("shelve", "open", NESTED),
    ],
)
def test_one_gadget_per_threat_class(module: str, name: str, code: str) -> None:
    data = global_(module, name) + MARK + string("arg") + TUPLE + REDUCE + STOP
    result = scan(data)
    assert subjects(result, code) == {f"{module}.{name}"}, summary(result)
