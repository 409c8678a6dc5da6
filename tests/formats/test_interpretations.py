"""Every interpretation of a file is scanned (issue 9, point 6).

``pickle.load``, legacy ``torch.load``, ``joblib.load`` and ``numpy.load(allow_pickle)``
run a pickle at offset 0 whatever else the bytes are; ``h5py`` finds an HDF5 superblock
after a user block, ``zipfile`` a zip directory at the end, ``tarfile`` a header at 0,
``import`` runs Python source. Each polyglot below is built from bytes, checked to be
readable both ways with the real parsers (``pickletools.genops`` and friends parse, never
run), and must be scanned both ways. Benign files written by the real libraries are one
format and must not be called polyglots.
"""

from __future__ import annotations

import io
import pickletools
import struct
import tarfile
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from containers_support import readings_of, scan_bytes, threats_of

from modelsec.engine import Engine
from modelsec.policy import Outcome, evaluate, load_group
from modelsec.rules.base import EvaluationInput, SourceType

POLYGLOT = "MS-FMT-001"
COMMAND = b"touch /tmp/modelsec-polyglot-pwned"


def system_call_tail() -> bytes:
    """Protocol 4 opcodes that import os.system by STACK_GLOBAL and call it (no PROTO)."""
    return (
        b"\x8c\x02os\x8c\x06system\x93"  # SHORT_BINUNICODE x2, STACK_GLOBAL
        + b"\x8c"
        + bytes([len(COMMAND)])
        + COMMAND
        + b"\x85R."  # TUPLE1, REDUCE, STOP
    )


def system_pickle() -> bytes:
    return b"\x80\x04" + system_call_tail()


def code_findings(result, path: str) -> list:  # type: ignore[no-untyped-def]
    """LoadTimeCodeExecution findings on exactly ``path`` (not on a member of it)."""
    return [f for f in result.findings if f.rule == "LoadTimeCodeExecution" and f.file == path]


def runs_as_pickle(data: bytes) -> bool:
    """The stream at offset 0 parses to STOP and reaches a REDUCE (parsed, never run)."""
    ops = [op.name for op, _, _ in pickletools.genops(io.BytesIO(data))]
    return "REDUCE" in ops and ops[-1] == "STOP"


# --- HDF5 with a pickle in its user block -----------------------------------------------------


def hdf5_with_user_block(size: int) -> bytes:
    buffer = io.BytesIO()
    with h5py.File(buffer, "w", userblock_size=size) as f:
        f["weights"] = np.arange(16, dtype=np.float32)
    return buffer.getvalue()


@pytest.mark.parametrize("block", [512, 1024, 2048, 4096])
def test_polyglot_hdf5_user_block_with_pickle_prefix_is_scanned_as_pickle(block: int) -> None:
    hdf5 = hdf5_with_user_block(block)
    payload = system_pickle()
    data = payload + hdf5[len(payload) :]
    assert runs_as_pickle(data)
    with h5py.File(io.BytesIO(data), "r") as f:  # h5py finds the superblock after the block
        assert f["weights"].shape == (16,)
    result = scan_bytes(data, "model.h5")
    assert code_findings(result, "model.h5"), result.findings
    assert {"keras-h5", "hdf5"} & set(readings_of(result)[""]) and "pickle" in readings_of(result)[""]
    assert POLYGLOT in threats_of(result)


def test_benign_hdf5_with_empty_user_block_is_one_format() -> None:
    result = scan_bytes(hdf5_with_user_block(1024), "weights.h5")
    assert readings_of(result)[""] == ["hdf5"]
    assert POLYGLOT not in threats_of(result)


# --- a tar header whose name field is a pickle ------------------------------------------------


def tar_with_pickle_header(payload: bytes) -> bytes:
    """A tar archive whose first header's 100-byte name field starts with ``payload``."""
    assert len(payload) <= 100
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        info = tarfile.TarInfo("placeholder")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"hello"))
    data = bytearray(buffer.getvalue())
    data[0:100] = payload.ljust(100, b"\0")
    data[148:156] = b" " * 8
    data[148:156] = b"%06o\0 " % sum(data[0:512])
    return bytes(data)


def test_polyglot_tar_header_with_pickle_name_is_scanned_as_pickle() -> None:
    payload = b"cos\nsystem\n(S'" + COMMAND + b"'\ntR."  # protocol 0: fits the name field
    data = tar_with_pickle_header(payload)
    assert runs_as_pickle(data)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert tar.getmembers()[0].name.startswith("cos\nsystem")
    result = scan_bytes(data, "model.tar")
    assert code_findings(result, "model.tar"), result.findings
    assert readings_of(result)[""][:1] == ["tar"] and "pickle" in readings_of(result)[""]
    assert POLYGLOT in threats_of(result)


# --- a zip that is the body of a pickle literal -------------------------------------------------


def zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
        z.writestr("archive/version", b"3\n")
    return buffer.getvalue()


def test_polyglot_zip_with_pickle_prefix_is_scanned_as_pickle() -> None:
    """PROTO, BINBYTES holding the whole zip, POP, then the call: the zip's own view sees a
    prefix that is a truncated pickle and a tail that is none; pickle.load (and torch.load,
    which only takes the zip path for 'PK' at offset 0) runs the call."""
    archive = zip_bytes()
    data = b"\x80\x04B" + struct.pack("<I", len(archive)) + archive + b"0" + system_call_tail()
    assert runs_as_pickle(data)
    assert zipfile.ZipFile(io.BytesIO(data)).read("archive/version") == b"3\n"
    result = scan_bytes(data, "pytorch_model.bin")
    assert code_findings(result, "pytorch_model.bin"), result.findings
    assert POLYGLOT in threats_of(result)


# --- TFLite: root offset at 0, 'TFL3' at 4 ------------------------------------------------------


def test_polyglot_tflite_identifier_inside_pickle_is_scanned_as_pickle() -> None:
    """EMPTY_LIST and BININT2 0 make bytes 0-3 a small little-endian root offset; BINSTRING
    at offset 4 takes 'FL3\\0' as its length and swallows the flatbuffer; three POPs and
    the call follow."""
    data = b"]M\x00\x00" + b"T" + b"FL3\x00"
    data += bytes(int.from_bytes(b"FL3\x00", "little")) + b"000" + system_call_tail()
    assert data[4:8] == b"TFL3" and 8 <= int.from_bytes(data[:4], "little") < len(data)
    assert runs_as_pickle(data)
    result = scan_bytes(data, "model.tflite")
    assert readings_of(result)[""][:1] == ["tflite"]
    assert code_findings(result, "model.tflite"), result.findings
    assert POLYGLOT in threats_of(result)


# --- Python source that is also a pickle --------------------------------------------------------


def test_polyglot_python_source_with_pickle_prefix_is_scanned_as_python(tmp_path: Path) -> None:
    """'Vx = 1' is an assignment to Python and a UNICODE push to pickle; '...' is Ellipsis to
    Python and STOP to pickle. The import that trust_remote_code runs comes after."""
    source = b"Vx = 1\n...\nimport os\nos.system('" + COMMAND + b"')\n"
    compile(source, "modeling_evil.py", "exec")  # valid Python (compiled, not run)
    assert [op.name for op, _, _ in pickletools.genops(io.BytesIO(source))] == ["UNICODE", "STOP"]
    path = tmp_path / "modeling_evil.py"
    path.write_bytes(source)
    report = Engine().scan_path(path)
    assert any(f.rule == "RuntimeCodeExecution" and "os.system" in f.message for f in report.all_findings())
    verdict = evaluate(load_group("local-default"), EvaluationInput(report, SourceType.LOCAL))
    assert verdict.outcome == Outcome.BLOCKED


# --- benign files of the real libraries are one format --------------------------------------------


def benign_files() -> dict[str, bytes]:
    import pickle

    import joblib
    from safetensors.numpy import save as st_save

    rng = np.random.default_rng(0)
    arrays = {"w": rng.standard_normal((8, 8)).astype(np.float32), "b": np.arange(5)}
    files: dict[str, bytes] = {}
    for protocol in range(6):
        files[f"p{protocol}.pkl"] = pickle.dumps({"a": [1, 2.5, "x"], "b": arrays["b"]}, protocol=protocol)
    for compress in (0, ("zlib", 3), ("gzip", 3), ("bz2", 3), ("lzma", 3), ("xz", 3), ("lz4", 3)):
        buffer = io.BytesIO()
        joblib.dump(arrays, buffer, compress=compress)
        files[f"j{compress}.joblib"] = buffer.getvalue()
    for name, save in (
        ("a.npy", lambda b: np.save(b, arrays["w"])),
        ("o.npy", lambda b: np.save(b, np.array([{"k": 1}], dtype=object))),
        ("a.npz", lambda b: np.savez(b, **arrays)),
        ("c.npz", lambda b: np.savez_compressed(b, **arrays)),
    ):
        buffer = io.BytesIO()
        save(buffer)
        files[name] = buffer.getvalue()
    # safetensors headers of every length modulo 256: the first byte is an arbitrary opcode
    for pad in range(0, 256, 3):
        files[f"m{pad}.safetensors"] = st_save({"w": arrays["w"]}, metadata={"p": "x" * pad})
    files["u.h5"] = hdf5_with_user_block(512)
    files["z.zip"] = zip_bytes()
    return files


def test_benign_files_of_the_real_libraries_are_not_polyglots() -> None:
    for name, data in benign_files().items():
        result = scan_bytes(data, name)
        assert POLYGLOT not in threats_of(result), (name, readings_of(result))
        assert len(readings_of(result)[""]) == 1, (name, readings_of(result))
