"""Red-team bypass: an old joblib dump loads its arrays from sibling files.

A joblib < 0.10 ``NDArrayWrapper`` names a ``.npy`` beside the pickle, which
``joblib.load`` opens with ``numpy.load(allow_pickle=True)``: an object array there is a
pickle that runs when the model loads. A directory scan scanned the sibling as its own file,
but ``modelsec scan model.pkl`` judged the pickle alone and said ALLOWED. Now a file's
scan records what its loader also opens, and a model whose scan does not hold that file is
incomplete (``MS-GEN-005``, ERROR). Built from bytes; nothing is loaded.
"""

from __future__ import annotations

import struct
from pathlib import Path

from pklbuild import REDUCE, TUPLE1, old_joblib_wrapper, sbu, stack_global, v4

from modelsec.engine import UNSCANNED_SIBLING, Engine, ScanReport


def object_npy(payload: bytes) -> bytes:
    """A .npy of one object: numpy.load(allow_pickle=True) unpickles ``payload``."""
    header = b"{'descr': '|O', 'fortran_order': False, 'shape': (1,), }"
    header += b" " * (63 - (10 + len(header)) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + payload


MALICIOUS = v4(stack_global("os", "system") + sbu("id") + TUPLE1 + REDUCE)


def needs(report: ScanReport) -> list[str]:
    return [i.reason for i in report.all_incompletes() if i.code == UNSCANNED_SIBLING]


def model(tmp_path: Path, with_sibling: bool = True) -> Path:
    (tmp_path / "model.pkl").write_bytes(old_joblib_wrapper("model.pkl_01.npy"))
    if with_sibling:
        (tmp_path / "model.pkl_01.npy").write_bytes(object_npy(MALICIOUS))
    return tmp_path


def test_a_single_file_scan_does_not_hold_the_sibling(tmp_path: Path) -> None:
    report = Engine().scan_path(model(tmp_path) / "model.pkl")
    (reason,) = needs(report)
    assert "model.pkl_01.npy" in reason and "scan the directory" in reason


def test_a_directory_scan_holds_and_scans_the_sibling(tmp_path: Path) -> None:
    report = Engine().scan_path(model(tmp_path))
    assert needs(report) == []
    assert any(f.threat.startswith("MS-PKL-1") for f in report.all_findings())  # the sibling's pickle


def test_a_missing_sibling_is_incomplete(tmp_path: Path) -> None:
    report = Engine().scan_path(model(tmp_path, with_sibling=False))
    assert len(needs(report)) == 1


def test_a_sibling_in_a_subdirectory_is_matched(tmp_path: Path) -> None:
    (tmp_path / "arrays").mkdir()
    (tmp_path / "model.pkl").write_bytes(old_joblib_wrapper("arrays/./x.npy"))
    (tmp_path / "arrays" / "x.npy").write_bytes(object_npy(MALICIOUS))
    assert needs(Engine().scan_path(tmp_path)) == []


def test_the_cli_fails_closed_on_the_single_file(tmp_path: Path) -> None:
    from modelsec.cli.main import main

    path = str(model(tmp_path) / "model.pkl")
    assert main(["scan", "-q", "--no-progress", path]) == 2  # ERROR, not ALLOWED
    assert main(["scan", "-q", "--no-progress", str(tmp_path)]) == 1  # BLOCKED: the sibling's pickle


def test_a_bang_in_the_file_name_is_no_archive(tmp_path: Path) -> None:
    # Red team, session 22: "model!x.pkl" naming "x.pkl" made the needed file "model!x.pkl",
    # the pickle itself, as if "!" separated an archive's member: held, and ALLOWED
    (tmp_path / "model!x.pkl").write_bytes(old_joblib_wrapper("x.pkl"))
    (tmp_path / "x.pkl").write_bytes(object_npy(MALICIOUS))
    (reason,) = needs(Engine().scan_path(tmp_path / "model!x.pkl"))
    assert str(tmp_path / "x.pkl") in reason


def test_a_file_is_not_its_own_sibling(tmp_path: Path) -> None:
    (tmp_path / "model.pkl").write_bytes(old_joblib_wrapper("model.pkl"))
    assert len(needs(Engine().scan_path(tmp_path))) == 1


def test_a_backslash_must_be_held_by_both_readings(tmp_path: Path) -> None:
    # joblib on Linux opens "a\\b.npy" literally; on Windows, a/b.npy
    (tmp_path / "a").mkdir()
    (tmp_path / "model.pkl").write_bytes(old_joblib_wrapper("a\\b.npy"))
    (tmp_path / "a" / "b.npy").write_bytes(object_npy(MALICIOUS))
    (reason,) = needs(Engine().scan_path(tmp_path))
    assert "a\\\\b.npy" in reason
    (tmp_path / "a\\b.npy").write_bytes(object_npy(MALICIOUS))
    assert needs(Engine().scan_path(tmp_path)) == []


def test_a_wrapper_inside_an_archive_is_incomplete(tmp_path: Path) -> None:
    import zipfile

    with zipfile.ZipFile(tmp_path / "model.zip", "w") as archive:
        archive.writestr("model.pkl", old_joblib_wrapper("x.npy"))
        archive.writestr("x.npy", object_npy(MALICIOUS))
    (reason,) = needs(Engine().scan_path(tmp_path / "model.zip"))
    assert "extract the archive" in reason
