"""HDF5 files written with h5py: legacy Keras models (config attributes), weight files,
and HDF5 features that reach outside the file."""

from __future__ import annotations

import io
import json
import pickle
from collections.abc import Callable
from typing import Any

import h5py
import numpy as np
from kt_builders import keras2_dense, keras2_lambda_layer, keras2_model

from modelsec.bytesource import BytesSource
from modelsec.engine import Engine, FileResult


def h5(build: Callable[[h5py.File], None], **kwargs: Any) -> bytes:
    buf = io.BytesIO()
    with h5py.File(buf, "w", **kwargs) as f:
        build(f)
    return buf.getvalue()


def scan(data: bytes, name: str = "model.h5") -> FileResult:
    return Engine().scan_source(name, BytesSource(data))


def keras_file(config: dict[str, Any], training: dict[str, Any] | None = None) -> Callable[[h5py.File], None]:
    def build(f: h5py.File) -> None:
        f.attrs["keras_version"] = "2.15.0"
        f.attrs["backend"] = "tensorflow"
        f.attrs["model_config"] = json.dumps(config)
        if training is not None:
            f.attrs["training_config"] = json.dumps(training).encode()
        w = f.create_group("model_weights/dense")
        w.attrs["weight_names"] = [b"dense/kernel:0"]
        w.create_dataset("dense/kernel:0", data=np.ones((4, 4), dtype="float32"))

    return build


def test_lambda_in_model_config() -> None:
    result = scan(
        h5(
            keras_file(
                keras2_model([keras2_dense(), keras2_lambda_layer(lambda x: __import__("os").system("id"))])
            )
        )
    )
    assert result.format == "keras-h5"
    (finding,) = result.findings
    assert finding.threat == "MS-KERAS-001" and finding.severity.name == "CRITICAL"
    assert "attribute model_config" in finding.message and "system" in finding.message


def test_clean_model_and_training_config() -> None:
    training = {
        "loss": "mse",
        "metrics": ["accuracy"],
        "optimizer_config": {"class_name": "Adam", "config": {"learning_rate": 0.001}},
    }
    result = scan(h5(keras_file(keras2_model([keras2_dense()]), training)))
    assert result.format == "keras-h5" and result.findings == [] and result.incompletes == []


def test_custom_object_in_training_config() -> None:
    training = {
        "loss": {"class_name": "FocalLossX", "config": {}},
        "optimizer_config": {"class_name": "Adam", "config": {}},
    }
    result = scan(h5(keras_file(keras2_model([keras2_dense()]), training)))
    assert [f.threat for f in result.findings] == ["MS-KERAS-002"]
    assert "training_config" in result.findings[0].message


def test_weights_only_file_is_plain_hdf5() -> None:
    result = scan(h5(lambda f: f.create_dataset("w", data=np.zeros(3))))
    assert result.format == "hdf5" and result.findings == [] and result.incompletes == []


def test_user_block_before_superblock() -> None:
    data = h5(keras_file(keras2_model([keras2_lambda_layer(lambda x: x)])), userblock_size=1024)
    assert data[:8] != b"\x89HDF\r\n\x1a\n" and data[1024:1032] == b"\x89HDF\r\n\x1a\n"
    assert [f.threat for f in scan(data).findings] == ["MS-KERAS-001"]


def test_external_link_and_external_storage() -> None:
    def build(f: h5py.File) -> None:
        f["leak"] = h5py.ExternalLink("/etc/passwd", "/data")
        f.create_dataset("ext", shape=(4,), dtype="uint8", external=[("/etc/hostname", 0, 4)])

    result = scan(h5(build))
    assert sorted(f.threat for f in result.findings) == ["MS-KERAS-020", "MS-KERAS-021"]
    assert {f.subject for f in result.findings} == {"/etc/passwd", "/etc/hostname"}


def test_pickle_blob_goes_back_to_the_engine() -> None:
    payload = pickle.dumps({"a": 1}, protocol=4)

    def build(f: h5py.File) -> None:
        f.create_dataset("blob", data=np.void(payload))
        f.attrs["extra"] = np.void(payload)

    result = scan(h5(build))
    members = {r.path for r in result.formats}
    assert "model.h5!blob" in members and "model.h5!@extra" in members


def test_config_attribute_that_is_not_json() -> None:
    def build(f: h5py.File) -> None:
        f.attrs["model_config"] = "{not json"

    result = scan(h5(build))
    assert [f.threat for f in result.findings] == ["MS-KERAS-007"] and result.incompletes


def test_truncated_file_is_incomplete_not_a_crash() -> None:
    data = h5(keras_file(keras2_model([keras2_dense()])))
    result = scan(data[: len(data) // 2])
    assert result.incompletes and result.format in ("hdf5", "keras-h5")


def _fake_probe(tmp_path: Any, body: str) -> str:
    script = tmp_path / "probe.py"
    script.write_text("import os, signal, sys, time\n" + body + "\n")
    return str(script)


def test_hdf5_library_crash_is_a_finding_not_a_dead_scanner(tmp_path: Any, monkeypatch: Any) -> None:
    from modelsec.keras import h5_probe

    monkeypatch.setattr(h5_probe, "__file__", _fake_probe(tmp_path, "os.kill(os.getpid(), signal.SIGSEGV)"))
    result = scan(h5(lambda f: f.create_dataset("w", data=np.zeros(3))))
    assert [f.threat for f in result.findings] == ["MS-KERAS-022"]
    assert "SIGSEGV" in result.findings[0].message and result.incompletes


def test_hdf5_library_hang_is_bounded(tmp_path: Any, monkeypatch: Any) -> None:
    from modelsec.formats import keras_h5
    from modelsec.keras import h5_probe

    monkeypatch.setattr(h5_probe, "__file__", _fake_probe(tmp_path, "time.sleep(60)"))
    monkeypatch.setattr(keras_h5, "PROBE_TIMEOUT", 1)
    result = scan(h5(lambda f: f.create_dataset("w", data=np.zeros(3))))
    assert [f.threat for f in result.findings] == ["MS-KERAS-022"] and "did not finish" in result.findings[
        0
    ].message
