"""Our parsers accept at least what the real loaders accept (issue 9, point 7).

Each test generates *benign* variants of a format (our own data, so running them through
the real loader is allowed), asks the real library whether it loads them, and checks that
every variant the library loads is recognised and read the same way here. A parser
stricter than its loader turns a loadable file into "unknown", which is how a malicious
one used to pass. numpy, joblib, safetensors, h5py and onnx are test dependencies; torch
is not installed (its reading rules are in docs/formats/loaders.md, from its source).
"""

from __future__ import annotations

import io
import itertools
import json
import pickle
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from containers_support import readings_of, scan_bytes, threats_of

from modelsec.bytesource import BytesSource
from modelsec.formats import by_name
from modelsec.formats.compressed import identify
from modelsec.formats.keras_h5 import find_superblock
from modelsec.formats.numpy_npy import HeaderError, parse_header
from modelsec.formats.tar import is_tar_header

# --- numpy: .npy headers ---------------------------------------------------------------------


def npy(header: str, data: bytes, version: tuple[int, int] = (1, 0)) -> bytes:
    raw = header.encode("utf8" if version == (3, 0) else "latin1")
    width = "<H" if version == (1, 0) else "<I"
    return b"\x93NUMPY" + bytes(version) + struct.pack(width, len(raw)) + raw + data


def header_variants() -> list[tuple[str, tuple[int, int]]]:
    """Spellings numpy may or may not accept: quoting, order, spacing, comments, Python 2
    longs, trailing commas, booleans and odd numbers in the shape, versions 1, 2 and 3."""
    descrs = ["'<f4'", '"<f4"', "'<i8'", "[('a', '<i4'), ('b', '<f8')]", "'<U3'"]
    shapes = ["(2,)", "(2, )", "(2L,)", "(1, 2)", "()", "(True,)", "(0x2,)", "(+2,)"]
    layouts = [
        "{{'descr': {d}, 'fortran_order': False, 'shape': {s}, }}",
        "{{'shape': {s}, 'fortran_order': False, 'descr': {d}}}",
        "{{ 'descr' : {d} ,\t'fortran_order':False,'shape':{s} }}   \n",
        "{{'descr': {d}, # a comment\n 'fortran_order': False, 'shape': {s}}}",
        "  {{'descr': {d}, 'fortran_order': False, 'shape': {s}}}",
        "{{'descr': {d}, 'fortran_order': 0 == 1, 'shape': {s}}}",
        "{{'descr': '<f8', 'descr': {d}, 'fortran_order': False, 'shape': {s}}}",
    ]
    out = []
    for layout, descr, shape, version in itertools.product(layouts, descrs, shapes, [(1, 0), (2, 0), (3, 0)]):
        out.append((layout.format(d=descr, s=shape), version))
    return out


def numpy_reads(data: bytes) -> tuple | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            array = np.load(io.BytesIO(data), allow_pickle=False)
        except Exception:
            return None
    return array.shape, bool(np.isfortran(array)) if array.ndim > 1 else None, array.dtype


def test_npy_headers_numpy_loads_are_read_the_same_way() -> None:
    loaded = 0
    for header, version in header_variants():
        data = npy(header, bytes(64), version)
        if numpy_reads(data) is None:
            continue
        loaded += 1
        try:
            parsed = parse_header(BytesSource(data))
        except HeaderError as exc:
            pytest.fail(f"numpy loads {header!r} (v{version}) but we reject it: {exc}")
        import numpy.lib.format as npformat

        assert npformat.descr_to_dtype(parsed.descr) == numpy_reads(data)[2], header
        assert tuple(int(d) for d in parsed.shape) == numpy_reads(data)[0], header
        assert readings_of(scan_bytes(data, "a.npy"))[""] == ["numpy-npy"]
    assert loaded > 100  # the variants do exercise what numpy accepts


def test_npy_object_array_numpy_would_unpickle_is_scanned_as_pickle() -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"k": 1}, None], dtype=object), allow_pickle=True)
    result = scan_bytes(buffer.getvalue(), "o.npy")
    assert "pickle" in readings_of(result).get("<object data>", []), readings_of(result)


# --- joblib: compressed files, including the old "ZF" zfile header ------------------------------


def zfile_fields(length: int) -> list[bytes]:
    """Ways to write the 19-character length field that int(field, 16) accepts or not."""
    spellings = [
        f"{length:#x}",
        f"{length:#X}",
        f"{length:x}",
        f"   {length:#x}",
        f"\t{length:#x}\t",
        "_".join(f"{length:x}"),
        f"+{length:#x}",
        f"{length:019x}",
        f"{length:#x}\n",
        f"{length:#x}\x0b",
        f"{length:#x}\0",
        f"-{length:#x}",
        "zz",
        f"0x_{length:x}",
    ]
    return [s.encode().ljust(19)[:19] for s in spellings]


def joblib_loads(path: Path) -> bool:
    import joblib

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return joblib.load(path) == {"a": 1}
        except Exception:
            return False


def test_joblib_zfile_headers_joblib_loads_are_recognised(tmp_path: Path) -> None:
    payload = pickle.dumps({"a": 1}, protocol=2)
    compressed = zlib.compress(payload)
    path = tmp_path / "old.pkl"
    loaded = 0
    for field, extra in itertools.product(zfile_fields(len(payload)), [b"", b" "]):
        data = b"ZF" + field + extra + compressed
        path.write_bytes(data)
        if not joblib_loads(path):
            continue
        loaded += 1
        found = identify(data[:65536])
        assert found is not None and found[0] == "zlib", (field, extra)
        assert found[2] == len(payload), (field, extra)
        result = scan_bytes(data, "old.pkl")
        assert "pickle" in readings_of(result).get("old.pkl", []), (field, extra, readings_of(result))
        assert not threats_of(result), (field, extra, result.findings)
    assert loaded >= 20


@pytest.mark.parametrize("compress", ["zlib", "gzip", "bz2", "lzma", "xz", "lz4"])
@pytest.mark.parametrize("level", [1, 9])
def test_joblib_compressors_are_recognised(tmp_path: Path, compress: str, level: int) -> None:
    import joblib

    path = tmp_path / "m.joblib"
    joblib.dump({"w": np.arange(100)}, path, compress=(compress, level))
    result = scan_bytes(path.read_bytes(), "m.joblib")
    assert readings_of(result)[""][0] in {"zlib", "gzip", "bz2", "lzma", "xz", "lz4"}, readings_of(result)
    assert not threats_of(result), result.findings


def test_lzma_with_a_dictionary_beyond_our_memory_limit_is_recognised_and_scanned() -> None:
    """liblzma (so joblib) takes any dictionary size. We decode with the dictionary cut to
    the most output the stream may produce (a dictionary never holds more than the
    output), so a 3 GiB declared dictionary costs tens of MiB and the content is scanned."""
    import lzma

    payload = b"cos\nsystem\n(S'id'\ntR."
    stream = bytearray(lzma.compress(payload, format=lzma.FORMAT_ALONE))
    stream[1:5] = struct.pack("<I", 3 << 30)
    assert lzma.decompress(bytes(stream), format=lzma.FORMAT_ALONE) == payload
    result = scan_bytes(bytes(stream), "m.joblib")
    assert readings_of(result)[""] == ["lzma"]
    assert "MS-PKL-100" in threats_of(result) and not result.incompletes


# --- tarfile: the first header --------------------------------------------------------------------


def tar_header_variants() -> list[bytes]:
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo("weights.bin")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"abcd"))
    block = bytearray(buffer.getvalue()[:512])
    variants = []
    for name, magic, checksum in itertools.product(
        [b"weights.bin", b"\0hidden", b"cos\nsystem\n"],
        [b"ustar\x0000", b"ustar  \0", b"\0" * 8],
        ["{:06o}\0 ", "{:07o}\0", "{:o}\0 junk", " {:o} \0", "0o{:o}\0", "{:06o}  "],
    ):
        header = bytearray(block)
        header[0:100] = name.ljust(100, b"\0")
        header[257:265] = magic
        header[148:156] = b" " * 8
        total = sum(header)
        header[148:156] = checksum.format(total).encode().ljust(8, b"\0")[:8]
        variants.append(bytes(header) + b"abcd".ljust(512, b"\0") + bytes(1024))
    return variants


def test_tar_headers_tarfile_opens_are_recognised() -> None:
    import tarfile

    opened = 0
    for data in tar_header_variants():
        try:
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
                tar.getmembers()
        except tarfile.TarError:
            continue  # tarfile refuses it: recognising it anyway costs nothing
        opened += 1
        assert is_tar_header(data[:512]), data[:160]
        assert by_name("tar").detect(data, BytesSource(data), "x.tar")
    assert opened >= 20


# --- safetensors: headers the Rust reader accepts --------------------------------------------------


def safetensors_variants() -> list[bytes]:
    tensor = np.arange(6, dtype=np.float32).tobytes()
    entries = {"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, len(tensor)]}}
    metadata = {"__metadata__": {"format": "pt"}}
    texts = [
        json.dumps(entries),
        json.dumps({**metadata, **entries}),
        json.dumps({**entries, **metadata}),
        " " + json.dumps(entries),
        "\n\t" + json.dumps(entries),
        json.dumps(entries) + "    ",
        json.dumps(entries, indent=2),
        json.dumps(entries, ensure_ascii=True).replace("w", "\\u0077"),
        json.dumps({"w": {"shape": [2, 3], "data_offsets": [0, len(tensor)], "dtype": "F32"}}),
    ]
    out = []
    for text in texts:
        raw = text.encode()
        out.append(struct.pack("<Q", len(raw)) + raw + tensor)
    empty = b"{}"
    out.append(struct.pack("<Q", len(empty)) + empty)
    return out


def test_safetensors_headers_the_reader_accepts_are_recognised() -> None:
    from safetensors.numpy import load

    accepted = 0
    for data in safetensors_variants():
        try:
            load(data)
        except Exception:
            continue
        accepted += 1
        result = scan_bytes(data, "m.safetensors")
        assert readings_of(result)[""] == ["safetensors"], (data[:40], readings_of(result))
        assert not threats_of(result), (data[:40], result.findings)
    assert accepted >= 8


# --- h5py: the superblock after a user block ---------------------------------------------------------


@pytest.mark.parametrize("block", [0, 512, 1024, 2048, 8192, 65536])
@pytest.mark.parametrize("libver", ["earliest", "latest"])
def test_hdf5_superblocks_h5py_finds_are_found(block: int, libver: str) -> None:
    import h5py

    buffer = io.BytesIO()
    with h5py.File(buffer, "w", userblock_size=block, libver=libver) as f:
        f["w"] = np.arange(4)
    data = buffer.getvalue()
    with h5py.File(io.BytesIO(data), "r") as f:
        assert f["w"].shape == (4,)
    assert find_superblock(data[:65536], BytesSource(data)) == block


# --- onnx: models onnx.load accepts -------------------------------------------------------------------


def onnx_variants() -> list[bytes]:
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node("Relu", ["x"], ["y"])
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    out = []
    for ir_version, producer in itertools.product([3, 7, 10], ["", "pytorch", "x" * 300]):
        model = helper.make_model(graph, producer_name=producer, opset_imports=[helper.make_opsetid("", 13)])
        model.ir_version = ir_version
        out.append(model.SerializeToString())
    # protobuf parsers take fields in any order: the same model with the graph first
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    fields = {f.name: f for f in model.DESCRIPTOR.fields}
    graph_only = onnx.ModelProto()
    graph_only.graph.CopyFrom(model.graph)
    rest = onnx.ModelProto()
    rest.CopyFrom(model)
    rest.ClearField("graph")
    assert "graph" in fields
    out.append(graph_only.SerializeToString() + rest.SerializeToString())
    # unknown fields, any number of them, before or after (protobuf keeps and ignores them)
    unknown = b"".join(bytes([0xA0, 0x06 + i]) + b"\x01" for i in range(8))
    out += [unknown + model.SerializeToString(), model.SerializeToString() + unknown]
    # onnx.load checks no ir_version (runtimes do, each its own way)
    for ir_version in (None, 99):
        variant = onnx.ModelProto()
        variant.CopyFrom(model)
        if ir_version is None:
            variant.ClearField("ir_version")
        else:
            variant.ir_version = ir_version
        out.append(variant.SerializeToString())
    return out


def test_onnx_models_onnx_loads_are_recognised() -> None:
    import onnx

    for data in onnx_variants():
        onnx.load_model_from_string(data)  # the real parser accepts each one
        result = scan_bytes(data, "model.onnx")
        assert readings_of(result)[""] == ["onnx"], readings_of(result)


def test_lenient_protobuf_onnx_with_unknown_fields_is_scanned_as_onnx() -> None:
    """onnxruntime ignores unknown fields: padding a model with a few used to make it
    "unknown" here, and under a name like weights.bin nothing blocked its Python op."""
    from onnx import TensorProto, helper

    node = helper.make_node("PyOp", ["x"], ["y"], domain="ai.onnx.contrib")
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("ai.onnx.contrib", 1)]
    )
    unknown = b"".join(bytes([0xA0, 0x06 + i]) + b"\x01" for i in range(8))
    result = scan_bytes(unknown + model.SerializeToString(), "weights.bin")
    assert readings_of(result)[""] == ["onnx"]
    assert "MS-ONNX-003" in threats_of(result), result.findings
