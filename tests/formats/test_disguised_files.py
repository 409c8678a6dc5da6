"""Unknown or corrupt content under a model's name or place blocks (issue 9, point 8).

A file whose name (``.pkl``, ``.safetensors``, ``pytorch_model-00001-of-00002.bin`` ...) or
place (the pickle of a PyTorch archive) says a loader will read it as a model, but whose
content no format accepts, used to pass as "unknown" with a non-blocking format warning.
It is a blocking finding now (MS-FMT-002) that names the file, the claim and the content.
Data files that are not models stay clean.
"""

from __future__ import annotations

import io
import struct
import zipfile
from pathlib import Path

import msgpack
import numpy as np
import pytest
from containers_support import readings_of, scan_bytes, threats_of

from modelsec.engine import Engine
from modelsec.policy import Outcome, evaluate, load_group
from modelsec.rules.base import EvaluationInput, SourceType

DISGUISED = "MS-FMT-002"
# Bytes no format claims: no signature, not text, not a pickle (0x01 is no opcode).
NOISE = bytes([0x01, 0xF3, 0x00, 0x9C]) + bytes((i * 37 + 11) % 256 for i in range(4092))


def verdict(path: Path, group: str = "local-default") -> Outcome:
    report = Engine().scan_path(path)
    return evaluate(load_group(group), EvaluationInput(report, SourceType.LOCAL)).outcome


def disguised(result) -> list:  # type: ignore[no-untyped-def]
    return [f for f in result.findings if f.threat == DISGUISED]


# --- the examples of the issue -------------------------------------------------------------------


def test_disguised_pickle_without_mark_is_blocked(tmp_path: Path) -> None:
    """fickling's missing_mark_before_tuple.pkl: PROTO 4, TUPLE without a MARK, STOP."""
    path = tmp_path / "missing_mark_before_tuple.pkl"
    path.write_bytes(b"\x80\x04t.")
    assert verdict(path) == Outcome.BLOCKED
    [finding] = disguised(Engine().scan_path(path).files[0])
    assert finding.file == str(path)
    assert "'missing_mark_before_tuple.pkl'" in finding.message and "a pickle" in finding.message
    assert "protocol 4" in finding.message and "MARK" in finding.message


def test_corrupt_safetensors_header_length_of_one_tebibyte_is_blocked(tmp_path: Path) -> None:
    header = b'{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'
    path = tmp_path / "model.safetensors"
    path.write_bytes(struct.pack("<Q", 1 << 40) + header + bytes(4))
    assert verdict(path) == Outcome.BLOCKED
    [finding] = disguised(Engine().scan_path(path).files[0])
    assert "safetensors" in finding.message and str(1 << 40) in finding.message


@pytest.mark.parametrize("data", [b"\x93NUM", b"\x93NU"])
def test_corrupt_truncated_npy_is_blocked(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "embeddings.npy"
    path.write_bytes(data)
    assert verdict(path) == Outcome.BLOCKED


# --- every model name ----------------------------------------------------------------------------

MODEL_NAMES = [
    "model.pkl",
    "model.pickle",
    "model.dill",
    "model.pt",
    "model.pth",
    "last.ckpt",
    "model.joblib",
    "x.npy",
    "x.npz",
    "model.h5",
    "model.hdf5",
    "model.keras",
    "model.onnx",
    "model.tflite",
    "model.safetensors",
    "model.gguf",
    "saved_model.pb",
    "weights.msgpack",
    "handler.mar",
    "pytorch_model.bin",
    "pytorch_model-00001-of-00002.bin",
    "diffusion_pytorch_model.fp16.bin",
    "adapter_model.bin",
    "training_args.bin",
    "model-00001-of-00002.safetensors",
    "tf_model.h5",
    "flax_model.msgpack",
]


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_disguised_unknown_content_under_a_model_name_is_blocked(name: str) -> None:
    result = scan_bytes(NOISE, name)
    assert readings_of(result)[""] == ["unknown"]
    [finding] = disguised(result)
    assert f"'{name}'" in finding.message and "01 f3 00 9c" in finding.message
    assert finding.severity.name == "MEDIUM"


@pytest.mark.parametrize("group", ["local-default", "strict"])
def test_disguised_model_file_blocks_under_the_built_in_groups(tmp_path: Path, group: str) -> None:
    """SuspiciousComponents itself fails, whatever ApprovedFormats makes of 'unknown'."""
    path = tmp_path / "pytorch_model-00001-of-00002.bin"
    path.write_bytes(NOISE)
    report = Engine().scan_path(path)
    judged = evaluate(load_group(group), EvaluationInput(report, SourceType.LOCAL))
    assert judged.outcome == Outcome.BLOCKED
    assert "SuspiciousComponents" in {r.name for r in judged.blocking_failures}


def test_disguised_executable_named_weights_is_blocked_high() -> None:
    elf = b"\x7fELF\x02\x01\x01" + bytes(57) + NOISE
    [finding] = disguised(scan_bytes(elf, "openvino_model.bin"))
    assert "ELF" in finding.message and finding.severity.name == "HIGH"


def test_disguised_broken_pickle_under_a_raw_weights_name_is_blocked() -> None:
    """.bin also holds raw tensors, but not ones that open with a pickle PROTO header."""
    assert DISGUISED in threats_of(scan_bytes(b"\x80\x02\x01garbage", "model.bin"))


def test_corrupt_pickle_member_of_a_torch_archive_is_blocked() -> None:
    """torch.load unpickles archive/data.pkl whatever it holds: its place claims a pickle."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("archive/data.pkl", NOISE)
        z.writestr("archive/version", b"3\n")
    result = scan_bytes(buffer.getvalue(), "weights.pt")
    [finding] = disguised(result)
    assert finding.file == "weights.pt!archive/data.pkl" and "a loader reads it as pickle" in finding.message


def test_corrupt_empty_model_file_is_blocked() -> None:
    assert DISGUISED in threats_of(scan_bytes(b"", "model.safetensors"))


# --- what stays clean ----------------------------------------------------------------------------


def png() -> bytes:
    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + b"\0\0\0\0"
    return b"\x89PNG\r\n\x1a\n" + chunk + b"\0\0\0\0IEND\xaeB`\x82"


def sentencepiece_model(tmp_path: Path) -> bytes:
    import sentencepiece

    tmp_path.mkdir(exist_ok=True)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(f"the quick brown fox jumps over the lazy dog {i}" for i in range(200)))
    prefix = tmp_path / "sp"
    sentencepiece.SentencePieceTrainer.train(
        input=str(corpus),
        model_prefix=str(prefix),
        vocab_size=60,
        model_type="bpe",
        minloglevel=2,
    )
    return (tmp_path / "sp.model").read_bytes()


def flax_weights() -> bytes:
    """What flax.serialization.msgpack_serialize writes: a map of maps, arrays as ext 1."""

    def array(a: np.ndarray) -> msgpack.ExtType:
        return msgpack.ExtType(1, msgpack.packb((a.shape, a.dtype.name, a.tobytes()), use_bin_type=True))

    tree = {
        "params": {
            "dense": {"kernel": array(np.ones((4, 3), np.float32)), "bias": array(np.zeros(3, np.float32))},
            "step": 3,
        }
    }
    return msgpack.packb(tree, strict_types=True)


def test_data_files_stay_clean(tmp_path: Path) -> None:
    files = {
        "README.md": b"# a model\n\nweights in model.safetensors\n",
        "LICENSE": b"Apache License\nVersion 2.0, January 2004\n",
        "vocab.txt": b"[PAD]\n[UNK]\nthe\nof\n",
        "merges.txt": b"#version: 0.2\nt h\nth e\n",
        "tokenizer.json": b'{"version": "1.0", "model": {"type": "BPE"}}',
        "config.json": b'{"architectures": ["BertModel"]}',
        "figure.png": png(),
        "photo.jpg": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(64),
        "tokenizer.model": sentencepiece_model(tmp_path / "sp"),
        "flax_model.msgpack": flax_weights(),
        "openvino_model.bin": np.linspace(-1, 1, 4096, dtype=np.float32).tobytes(),
        "data.bin": b"cmod\n\xf8\n",  # picklescan's not_a_pickle.bin: GLOBAL with a bad name
        "samples.dat": NOISE,  # no name claim at all
        "bad_pytorch.pt": b"\x89PNG\r\n\x1a\n",  # an image misnamed, not a disguise
    }
    model = tmp_path / "model"
    model.mkdir()
    for name, data in files.items():
        (model / name).write_bytes(data)
    report = Engine().scan_path(model)
    assert not [f for f in report.all_findings() if f.threat == DISGUISED], report.all_findings()
    formats = {Path(r.path).name: r.format for r in report.all_formats()}
    assert formats["tokenizer.model"] == "sentencepiece"
    assert formats["flax_model.msgpack"] == "flax-msgpack"
    assert formats["figure.png"] == formats["photo.jpg"] == formats["bad_pytorch.pt"] == "image"
    assert verdict(model) == Outcome.ALLOWED


# --- the Flax msgpack reader -------------------------------------------------------------------------


def test_flax_msgpack_truncated_is_malformed() -> None:
    data = flax_weights()
    result = scan_bytes(data[: len(data) - 5], "flax_model.msgpack")
    assert readings_of(result)[""] == ["flax-msgpack"]
    assert "MS-FLAX-001" in threats_of(result)


def test_flax_msgpack_with_trailing_pickle_is_malformed_and_scanned() -> None:
    evil = b"\x80\x04\x8c\x02os\x8c\x06system\x93\x8c\x02id\x85R."
    result = scan_bytes(flax_weights() + evil, "flax_model.msgpack")
    assert "MS-FLAX-001" in threats_of(result)
    assert any(f.rule == "LoadTimeCodeExecution" and f.file.endswith("!<trailing>") for f in result.findings)


def test_msgpack_without_array_leaves_is_not_claimed_as_flax() -> None:
    plain = msgpack.packb({"a": 1, "b": [1, 2, 3], "c": "text"})
    assert readings_of(scan_bytes(plain, "x.dat"))[""] != ["flax-msgpack"]
