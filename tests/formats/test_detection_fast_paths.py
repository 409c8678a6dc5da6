"""What the byte tests spare: the common files of a model directory (pickles written by a
pickler, torch.save zips and their tensor members) are settled without the pickle
machine's probe or a protobuf walk (issue 14: many files). The time is measured by
benchmarks/many_files.py; these tests hold the paths that decide it, so a change that
sends such files back through the slow path fails here rather than only in a benchmark."""

from __future__ import annotations

import io
import pickle
import zipfile

import numpy as np
import pytest

from modelsec.bytesource import BytesSource
from modelsec.context import HEAD_SIZE
from modelsec.formats import onnx as onnx_format
from modelsec.formats import pickle as pickle_format
from modelsec.pickle import scanner as pickle_scanner


def _torch_like_zip() -> bytes:
    members = {
        "archive/data.pkl": pickle.dumps({"w": 1.0}, protocol=2),
        "archive/byteorder": b"little",
        "archive/data/0": np.random.default_rng(1).standard_normal(512, np.float32).tobytes(),
        "archive/version": b"3\n",
    }
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, data in members.items():
            # A fixed time: the clock's went into the local header, and at some times of
            # day its DOS time field holds a newline byte, which makes "PK..." a PERSID
            # line the fast path cannot rule out (the probe then decides, correctly).
            archive.writestr(zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0)), data)
    return out.getvalue()


@pytest.fixture
def no_slow_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the slow path ran")

    monkeypatch.setattr(pickle_scanner, "looks_like_pickle", refuse)
    monkeypatch.setattr(onnx_format, "looks_like_onnx", refuse)
    monkeypatch.setattr(onnx_format, "parses_as_model_proto", refuse)


@pytest.mark.usefixtures("no_slow_paths")
def test_pickler_output_is_a_pickle_without_the_probe() -> None:
    for protocol in (2, 3, 4, 5):
        data = pickle.dumps({"layer.weight": [0.5] * 8}, protocol=protocol)
        assert pickle_format.SCANNER.detect(data[:HEAD_SIZE], BytesSource(data), "model.pkl")


@pytest.mark.usefixtures("no_slow_paths")
def test_pickles_zips_and_tensor_members_are_no_onnx_without_a_walk() -> None:
    archive = _torch_like_zip()
    samples = [pickle.dumps({"w": list(range(50))}, protocol=p) for p in (4, 5)]
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        samples += [opened.read(name) for name in opened.namelist() if name != "archive/data.pkl"]
    for data in samples:
        assert not onnx_format.SCANNER.detect(data[:HEAD_SIZE], BytesSource(data), "member"), data[:16]


@pytest.mark.usefixtures("no_slow_paths")
def test_a_zip_is_no_pickle_without_the_probe() -> None:
    archive = _torch_like_zip()
    assert not pickle_format.SCANNER.detect(archive[:HEAD_SIZE], BytesSource(archive), "model.pt")


def test_binary_heads_are_no_template_without_the_delimiter_search(monkeypatch: pytest.MonkeyPatch) -> None:
    from modelsec.formats import jinja_template

    class Refuse:
        def search(self, head: bytes) -> None:
            raise AssertionError("the delimiter search ran")

    monkeypatch.setattr(jinja_template, "_DELIMITER", Refuse())
    archive = _torch_like_zip()
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        samples = [opened.read("archive/data/0"), opened.read("archive/data.pkl"), archive]
    samples.append(b"\x00{{ cycler.__init__.__globals__.os.popen('id').read() }}")
    for data in samples:
        assert not jinja_template.SCANNER.detect(data[:HEAD_SIZE], BytesSource(data), "member")
        # a template's name decides without any search: loaders read it as text, NUL and all
        # (red team, 2026-12-07: "Hi\0{{ ... }}" named chat_template.jinja was "unknown")
        assert jinja_template.SCANNER.detect(data[:HEAD_SIZE], BytesSource(data), "chat_template.jinja")
