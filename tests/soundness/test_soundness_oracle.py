"""The oracle sees each kind of dangerous event, in each loader, and survives hostile input.

Every candidate here is a generated pickle built from bytes; the oracle (and only the
oracle, in its confined children) loads them. Payloads are harmless (``true``, a closed
port, ``/etc/hostname``) and the hook stops each child before the operation runs.
"""

from __future__ import annotations

import io
import pickle

import joblib
import numpy as np
import pytest
from pklbuild import (
    BUILD,
    EMPTY_DICT,
    EMPTY_TUPLE,
    REDUCE,
    SETITEM,
    STOP,
    TUPLE1,
    TUPLE2,
    binint,
    call,
    global_,
    proto,
    sbu,
    v4,
)
from soundness_oracle import Oracle, OracleResult


@pytest.fixture(scope="module")
def oracle() -> Oracle:
    with Oracle(timeout=2.0) as instance:
        yield instance


def loaded_everywhere(result: OracleResult, oracle: Oracle) -> bool:
    return result.event is None and set(result.loaded) == set(oracle.loaders)


def test_the_zygote_runs_without_network_where_unshare_works(oracle: Oracle) -> None:
    if oracle.isolation.startswith("unshare"):
        assert oracle.info["network_isolated"], oracle.info
    else:  # say so: only the audit hook keeps candidates off the network
        assert "audit hook only" in oracle.isolation
    assert {"pickle", "pypickle", "joblib", "numpy"} <= set(oracle.loaders)


def test_os_system_is_caught_before_it_runs(oracle: Oracle) -> None:
    result = oracle.run(v4(call("os", "system", "true")))
    assert result.event is not None
    assert (result.event.kind, result.event.event, result.event.loader) == ("command", "os.system", "pickle")


def test_socket_is_caught(oracle: Oracle) -> None:
    address = sbu("127.0.0.1") + binint(9) + TUPLE2
    result = oracle.run(v4(global_("socket", "create_connection") + address + TUPLE1 + REDUCE))
    assert result.event is not None and result.event.kind == "network", result
    assert result.event.event.startswith("socket.")


def test_open_for_writing_is_caught(oracle: Oracle) -> None:
    result = oracle.run(v4(call("builtins", "open", "written.txt", "w")))
    assert result.event is not None and result.event.kind == "file-write", result


def test_reading_outside_the_working_directory_is_caught(oracle: Oracle) -> None:
    result = oracle.run(v4(call("builtins", "open", "/etc/hostname")))
    assert result.event is not None and result.event.kind == "file-read", result


def test_import_of_an_unlisted_module_is_caught(oracle: Oracle) -> None:
    result = oracle.run(v4(global_("tabnanny", "rgb_to_hsv")))
    assert result.event is not None
    assert (result.event.kind, result.event.detail) == ("import", "tabnanny")


def test_import_through_importlib_is_caught_although_it_raises_no_import_event(oracle: Oracle) -> None:
    # importlib.import_module runs no "import" audit event: the loading itself is seen.
    resolver = (
        global_("numpy.core", "_ufunc_reconstruct")
        + sbu("importlib")
        + sbu("import_module")
        + TUPLE2
        + REDUCE
    )
    result = oracle.run(proto(2) + resolver + sbu("wave") + TUPLE1 + REDUCE + STOP)
    assert result.event is not None and result.event.kind == "import", result
    assert "wave" in result.event.detail


def test_exec_is_caught(oracle: Oracle) -> None:
    result = oracle.run(v4(call("builtins", "exec", "x = 1")))
    assert result.event is not None and result.event.kind == "code", result


def test_calls_without_a_call_opcode_are_caught(oracle: Oracle) -> None:
    # BUILD puts __setstate__ into the namespace's __dict__; the second BUILD calls it.
    resolver = (
        global_("numpy.core", "_ufunc_reconstruct") + global_("builtins", "str") + sbu("os") + TUPLE1 + REDUCE
    )
    system = resolver + sbu("system") + TUPLE2 + REDUCE
    namespace = global_("types", "SimpleNamespace") + EMPTY_TUPLE + REDUCE
    data = (
        proto(2)
        + namespace
        + EMPTY_DICT
        + sbu("__setstate__")
        + system
        + SETITEM
        + BUILD
        + sbu("true")
        + BUILD
        + STOP
    )
    result = oracle.run(data)
    assert result.event is not None and result.event.event == "os.system", result


def test_each_loader_is_watched(oracle: Oracle) -> None:
    # joblib alone reads the file an old NDArrayWrapper names: the event is joblib's.
    wrapper = global_("joblib.numpy_pickle", "NDArrayWrapper") + EMPTY_TUPLE + b"\x81"
    state = EMPTY_DICT + sbu("filename") + sbu("/etc/hostname") + SETITEM
    result = oracle.run(
        proto(2) + wrapper + state + BUILD + STOP, "model.joblib", loaders=("pickle", "joblib")
    )
    assert result.outcome("pickle") == "ok"
    assert result.event is not None and result.event.loader == "joblib", result
    result = oracle.run(v4(call("os", "system", "true")), "model.npy", loaders=("numpy",))
    assert result.event is not None and result.event.loader == "numpy", result


def test_benign_real_files_load_quietly_in_every_loader(oracle: Oracle) -> None:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression().fit(np.random.default_rng(0).random((10, 2)), np.arange(10) % 2)
    for data in (pickle.dumps(model, protocol=p) for p in (2, 4, 5)):
        result = oracle.run(data)
        assert loaded_everywhere(result, oracle), result
    handle = io.BytesIO()
    joblib.dump({"w": np.arange(4.0), "m": model}, handle, compress=3)
    result = oracle.run(handle.getvalue(), "model.joblib", loaders=("joblib",))
    assert result.event is None and result.loaded == ("joblib",), result
    handle = io.BytesIO()
    np.save(handle, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    result = oracle.run(handle.getvalue(), "weights.npy", loaders=("numpy",))
    assert result.event is None and result.loaded == ("numpy",), result


def test_a_hang_is_cut_and_the_oracle_goes_on(oracle: Oracle) -> None:
    hang = proto(2) + global_("time", "sleep") + binint(3600) + TUPLE1 + REDUCE + STOP
    result = oracle.run(hang, loaders=("pickle", "pypickle"))
    assert [run.outcome for run in result.runs] == ["timeout", "timeout"]
    assert loaded_everywhere(oracle.run(pickle.dumps([1, 2])), oracle)


def test_a_crash_is_classified_and_the_oracle_goes_on(oracle: Oracle) -> None:
    crash = proto(2) + global_("faulthandler", "_sigsegv") + EMPTY_TUPLE + REDUCE + STOP
    result = oracle.run(crash, loaders=("pickle",))
    assert result.runs[0].outcome == "crash" and "SIGSEGV" in result.runs[0].detail
    assert loaded_everywhere(oracle.run(pickle.dumps({"a": 1})), oracle)


def test_a_memory_bomb_hits_the_limit_and_the_oracle_goes_on(oracle: Oracle) -> None:
    huge = b"\x8a\x06" + (1 << 42).to_bytes(6, "little")  # LONG1: 4 TiB
    bomb = proto(2) + global_("builtins", "bytearray") + huge + TUPLE1 + REDUCE + STOP
    result = oracle.run(bomb, loaders=("pickle", "pypickle"))
    assert [run.outcome for run in result.runs] == ["memory", "memory"]
    assert loaded_everywhere(oracle.run(pickle.dumps([[0] * 10] * 10)), oracle)


def test_a_dead_fork_server_is_restarted(oracle: Oracle) -> None:
    assert oracle._proc is not None
    oracle._proc.kill()
    oracle._proc.wait()
    result = oracle.run(v4(call("os", "system", "true")))
    assert result.event is not None and oracle.restarts >= 1
