"""External data references (MS-ONNX-010..014): checked, never read."""

from __future__ import annotations

import builtins
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx_build import T, assert_onnx_clean, codes, mlp, model, node, save, scan, scan_file, vi

import onnx
from modelsec.engine import Engine
from modelsec.onnx.external import lexical_problems, local_problems
from onnx import TensorProto as TP
from onnx import helper as h


def externalize(tensor: onnx.TensorProto, location: str, **entries: str) -> None:
    tensor.ClearField("raw_data")
    tensor.ClearField("float_data")
    tensor.data_location = TP.EXTERNAL
    del tensor.external_data[:]
    for key, value in {"location": location, **entries}.items():
        e = tensor.external_data.add()
        e.key, e.value = key, value


def model_with_external(location: str, **entries: str) -> onnx.ModelProto:
    m = mlp()
    externalize(m.graph.initializer[0], location, **entries)
    return m


@pytest.mark.parametrize(
    "location, code",
    [
        ("/etc/passwd", "MS-ONNX-010"),
        ("C:\\Windows\\win.ini", "MS-ONNX-010"),
        ("C:secrets.bin", "MS-ONNX-010"),
        ("\\\\server\\share\\w.bin", "MS-ONNX-010"),
        ("../../../../root/.ssh/id_rsa", "MS-ONNX-011"),
        ("weights/../../outside.bin", "MS-ONNX-011"),
        ("weights\\..\\..\\outside.bin", "MS-ONNX-011"),
        ("weights\\w.bin", "MS-ONNX-012"),
        ("w.bin\x00.txt", "MS-ONNX-012"),
        ("https://evil.example/w.bin", "MS-ONNX-012"),
        ("~/w.bin", "MS-ONNX-012"),
        ("", "MS-ONNX-012"),
    ],
)
def test_lexically_suspicious_locations(location: str, code: str) -> None:
    result = scan(model_with_external(location))
    assert code in codes(result)
    assert all(f.rule == "SuspiciousComponents" for f in result.findings)
    f = next(f for f in result.findings if f.threat == code)
    assert f.details["tensors"] == ["w1"]


def test_traversal_with_backslashes_is_traversal_and_ambiguous() -> None:
    assert codes(scan(model_with_external("a\\..\\..\\b"))) == ["MS-ONNX-011", "MS-ONNX-012"]


def test_the_location_that_wins_past_the_entry_cap_is_checked() -> None:
    """onnx and onnxruntime take the last "location": one after 64 harmless entries was
    dropped with the entries the reader does not keep (red team, 2026-12-07)."""
    m = model_with_external("weights.bin")
    tensor = m.graph.initializer[0]
    for _ in range(63):
        e = tensor.external_data.add()
        e.key, e.value = "checksum", "0"
    e = tensor.external_data.add()
    e.key, e.value = "location", "/etc/passwd"
    assert "MS-ONNX-010" in codes(scan(m))


def test_external_marked_without_location() -> None:
    m = mlp()
    t = m.graph.initializer[0]
    t.ClearField("raw_data")
    t.data_location = TP.EXTERNAL
    assert codes(scan(m)) == ["MS-ONNX-012"]


def test_location_entry_without_external_flag_is_still_checked() -> None:
    m = mlp()
    e = m.graph.initializer[0].external_data.add()
    e.key, e.value = "location", "/etc/shadow"
    assert codes(scan(m)) == ["MS-ONNX-010"]


def test_last_location_entry_wins_like_the_loader() -> None:
    m = model_with_external("w.bin")
    e = m.graph.initializer[0].external_data.add()
    e.key, e.value = "location", "/proc/self/environ"
    assert codes(scan(m)) == ["MS-ONNX-010"]


def test_same_location_in_many_tensors_is_one_finding() -> None:
    m = mlp()
    for t in m.graph.initializer:
        externalize(t, "/etc/passwd")
    result = scan(m)
    assert codes(result) == ["MS-ONNX-010"]
    assert result.findings[0].details["count"] == 4


def test_external_tensors_in_attributes_subgraphs_and_sparse_initializers() -> None:
    const_t = T("c", [1.0, 2.0])
    externalize(const_t, "/dev/zero")
    inner_t = T("i", [3.0])
    externalize(inner_t, "../inner.bin")
    sparse_vals = T("sv", [1.0])
    externalize(sparse_vals, "/sparse.bin")
    sparse = h.make_sparse_tensor(sparse_vals, T("si", [0], np.int64), [4])
    then_g = h.make_graph([node("Constant", [], ["t"], value=inner_t)], "then", [], [vi("t", [1])])
    m = model(
        [
            node("Constant", [], ["k"], value=const_t),
            node("If", ["cond"], ["y"], then_branch=then_g, else_branch=then_g),
        ],
        [h.make_tensor_value_info("cond", TP.BOOL, [])],
        [vi("y", [1])],
    )
    m.graph.sparse_initializer.append(sparse)
    result = scan(m)
    assert codes(result) == ["MS-ONNX-010", "MS-ONNX-010", "MS-ONNX-011"]
    assert {f.subject for f in result.findings} == {"/dev/zero", "/sparse.bin", "../inner.bin"}


def test_clean_relative_external_data(tmp_path: Path) -> None:
    m = model_with_external("weights.bin", offset="0", length="512")
    (tmp_path / "weights.bin").write_bytes(b"\0" * 512)
    assert_onnx_clean(scan_file(save(tmp_path, m)))


def test_subdirectory_is_fine(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "w.bin").write_bytes(b"\0" * 512)
    assert_onnx_clean(scan_file(save(tmp_path, model_with_external("data/w.bin"))))


def test_missing_external_file_is_not_a_finding(tmp_path: Path) -> None:
    assert_onnx_clean(scan_file(save(tmp_path, model_with_external("not_there.bin"))))


def test_symlink_leaving_the_directory(tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_text("token")
    (model_dir / "weights.bin").symlink_to(secret)
    result = scan_file(save(model_dir, model_with_external("weights.bin")))
    assert codes(result) == ["MS-ONNX-014"]
    assert str(secret) in result.findings[0].message


def test_symlinked_directory_component(tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "w.bin").write_bytes(b"x")
    (model_dir / "data").symlink_to(tmp_path / "elsewhere")
    assert codes(scan_file(save(model_dir, model_with_external("data/w.bin")))) == ["MS-ONNX-014"]


def test_symlink_inside_the_directory(tmp_path: Path) -> None:
    (tmp_path / "real.bin").write_bytes(b"\0" * 512)
    (tmp_path / "weights.bin").symlink_to(tmp_path / "real.bin")
    assert codes(scan_file(save(tmp_path, model_with_external("weights.bin")))) == ["MS-ONNX-013"]


def test_fifo_is_not_a_regular_file(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "weights.bin")
    assert codes(scan_file(save(tmp_path, model_with_external("weights.bin")))) == ["MS-ONNX-014"]


def test_local_checks_resolve_against_the_model_path_not_the_cwd(tmp_path: Path, monkeypatch) -> None:
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    path = save(model_dir, model_with_external("w.bin"))
    (tmp_path / "w.bin").symlink_to("/etc/hostname")  # in the cwd, not the model dir
    monkeypatch.chdir(tmp_path)
    assert_onnx_clean(scan_file(path))


def test_archive_member_gets_only_lexical_checks(tmp_path: Path) -> None:
    """A member has no directory on disk: a name that would be a symlink locally is not
    looked up, while traversal in the string is still found."""
    (tmp_path / "weights.bin").symlink_to("/etc/hostname")
    archive = tmp_path / "m.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("model.onnx", model_with_external("weights.bin").SerializeToString())
        z.writestr("evil.onnx", model_with_external("../x.bin").SerializeToString())
    result = Engine().scan_file(archive)
    onnx_members = [r for r in result.formats if r.format == "onnx"]
    if not onnx_members:
        pytest.skip("no zip scanner registered in this checkout")
    assert codes(result) == ["MS-ONNX-011"]
    assert result.findings[0].file.endswith("!evil.onnx")


def test_one_gigabyte_of_external_data_is_never_opened(tmp_path: Path, monkeypatch) -> None:
    big = tmp_path / "weights.bin"
    with open(big, "wb") as f:
        f.truncate(1 << 30)  # sparse: 1 GiB without using the disk
    m = model_with_external("weights.bin", offset="0", length=str(1 << 30))
    path = save(tmp_path, m)
    opened: list[str] = []
    real_os_open, real_open = os.open, builtins.open

    def spy_os_open(p, *a, **k):
        opened.append(os.fspath(p))
        return real_os_open(p, *a, **k)

    def spy_open(p, *a, **k):
        if isinstance(p, (str, bytes, os.PathLike)):
            opened.append(os.fsdecode(p))
        return real_open(p, *a, **k)

    monkeypatch.setattr(os, "open", spy_os_open)
    monkeypatch.setattr(builtins, "open", spy_open)
    result = scan_file(path)
    monkeypatch.undo()
    assert_onnx_clean(result)
    assert str(path) in opened  # the spy works
    assert not any(os.path.basename(p) == "weights.bin" for p in opened), opened


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300) | st.just("a/" * 3000))
def test_location_checks_never_raise(location: str) -> None:
    problems = lexical_problems(location)
    if not problems:
        local_problems(location, "/tmp")
