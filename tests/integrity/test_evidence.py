"""The engine keeps the bytes of signature files for the rules, within bounds: per file and
per model, so that a model full of ``*.sig`` files cannot exhaust the operator's memory."""

from __future__ import annotations

from pathlib import Path

from modelsec.engine import Engine
from modelsec.integrity.evidence import MAX_FILE_BYTES, MAX_REPORT_BYTES


def test_only_signature_files_are_kept(tmp_path: Path) -> None:
    (tmp_path / "model.sig").write_bytes(b'{"mediaType": "x"}')
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "other.SIG").write_bytes(b"sig")
    (tmp_path / "config.json").write_bytes(b"{}")
    (tmp_path / "empty.sig").write_bytes(b"")
    report = Engine().scan_path(tmp_path)
    kept = {Path(f.path).name: f.content for f in report.files}
    assert kept == {
        "model.sig": b'{"mediaType": "x"}',
        "other.SIG": b"sig",
        "config.json": None,
        "empty.sig": None,
    }
    assert report.content_bytes == len(b'{"mediaType": "x"}') + 3
    assert all(f.sha256 for f in report.files)  # keeping the bytes does not cost the digest


def test_kept_bytes_are_bounded_per_file_and_per_model(tmp_path: Path) -> None:
    count = MAX_REPORT_BYTES // MAX_FILE_BYTES + 2
    for index in range(count):
        (tmp_path / f"s{index:02d}.sig").write_bytes(bytes([index]) * MAX_FILE_BYTES)
    (tmp_path / "huge.sig").write_bytes(b"x" * (MAX_FILE_BYTES + 1))
    report = Engine().scan_path(tmp_path)
    kept = [f for f in report.files if f.content is not None]
    assert len(kept) == MAX_REPORT_BYTES // MAX_FILE_BYTES
    assert report.content_bytes == sum(len(f.content or b"") for f in kept) <= MAX_REPORT_BYTES
    assert next(f for f in report.files if f.path.endswith("huge.sig")).content is None
    assert all(f.content == bytes([int(Path(f.path).stem[1:])]) * MAX_FILE_BYTES for f in kept)
