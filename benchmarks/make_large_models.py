"""Write the multi-GB benchmark models (cached under .cache/bench/data/):

- state_dict_1g.pt       a PyTorch zip state dict (torch's layout: archive/data.pkl with
                         _rebuild_tensor_v2 + persistent storages, archive/data/<n>, stored)
- weights_1g.safetensors one safetensors file
- arrays_1g.pkl          a plain protocol-4 pickle of a dict of NumPy arrays

torch is not installed here (it is a multi-GB GPU build), so the state dict is written the
way torch writes it: the pickler below emits the same globals and persistent ids. The data
is random: compressors and page-cache tricks do not flatter anyone.
"""

from __future__ import annotations

import argparse
import io
import pickle
import sys
import types
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

from tools import BENCH_ENVS

DATA = BENCH_ENVS / "data"
CHUNK_ELEMS = 32 << 20  # 128 MiB of float32 per tensor


def _fake_torch() -> types.SimpleNamespace:
    """Module objects named like torch's, so that pickle records torch's global names."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args: object) -> None: ...

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2  # type: ignore[attr-defined]

    class FloatStorage:
        pass

    FloatStorage.__module__ = "torch"
    FloatStorage.__qualname__ = "FloatStorage"
    torch.FloatStorage = FloatStorage  # type: ignore[attr-defined]
    torch._utils = utils  # type: ignore[attr-defined]
    sys.modules.setdefault("torch", torch)
    sys.modules.setdefault("torch._utils", utils)
    return types.SimpleNamespace(rebuild=_rebuild_tensor_v2, storage=FloatStorage)


class _Tensor:
    def __init__(self, key: str, numel: int, shape: tuple[int, ...]) -> None:
        self.key, self.numel, self.shape = key, numel, shape


class _TorchPickler(pickle.Pickler):
    def __init__(self, file: io.BytesIO, fake: types.SimpleNamespace) -> None:
        super().__init__(file, protocol=2)
        self.fake = fake

    def persistent_id(self, obj: object) -> object:
        if isinstance(obj, tuple) and obj and obj[0] == "__storage__":
            _, key, numel = obj
            return ("storage", self.fake.storage, key, "cpu", numel)
        return None

    def reducer_override(self, obj: object) -> object:
        if isinstance(obj, _Tensor):
            stride = tuple(int(np.prod(obj.shape[i + 1 :])) for i in range(len(obj.shape)))
            return self.fake.rebuild, (
                ("__storage__", obj.key, obj.numel),
                0,
                obj.shape,
                stride,
                False,
                OrderedDict(),
            )
        return NotImplemented


def write_state_dict(path: Path, total_bytes: int) -> None:
    fake = _fake_torch()
    rng = np.random.default_rng(1)
    n_tensors = max(1, total_bytes // (CHUNK_ELEMS * 4))
    state = OrderedDict(
        (f"layers.{i}.weight", _Tensor(str(i), CHUNK_ELEMS, (CHUNK_ELEMS // 4096, 4096)))
        for i in range(n_tensors)
    )
    buf = io.BytesIO()
    _TorchPickler(buf, fake).dump(state)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        zf.writestr("archive/data.pkl", buf.getvalue())
        zf.writestr("archive/byteorder", "little")
        for i in range(n_tensors):
            with zf.open(f"archive/data/{i}", "w", force_zip64=True) as member:
                for _ in range(4):
                    member.write(rng.standard_normal(CHUNK_ELEMS // 4, dtype=np.float32).tobytes())
        zf.writestr("archive/version", "3\n")


def write_safetensors(path: Path, total_bytes: int) -> None:
    rng = np.random.default_rng(2)
    n = max(1, total_bytes // (CHUNK_ELEMS * 4))
    tensors = {
        f"layers.{i}.weight": rng.standard_normal(CHUNK_ELEMS, dtype=np.float32).reshape(-1, 4096)
        for i in range(n)
    }
    save_file(tensors, str(path))


def write_numpy_pickle(path: Path, total_bytes: int) -> None:
    rng = np.random.default_rng(3)
    n = max(1, total_bytes // (CHUNK_ELEMS * 4))
    with open(path, "wb") as out:
        pickle.dump(
            {f"w{i}": rng.standard_normal(CHUNK_ELEMS, dtype=np.float32) for i in range(n)}, out, protocol=4
        )


def write_gguf(path: Path, total_bytes: int) -> None:
    """A GGUF v3 file with a chat template and F32 tensors; the tensor data is a sparse
    region (zeros), which every scanner still has to read to hash."""
    import struct

    def string(text: str) -> bytes:
        raw = text.encode()
        return struct.pack("<Q", len(raw)) + raw

    template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
        "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    kvs = [
        ("general.architecture", 8, string("llama")),
        ("general.alignment", 4, struct.pack("<I", 32)),
        ("tokenizer.chat_template", 8, string(template)),
    ]
    n = max(1, total_bytes // (CHUNK_ELEMS * 4))
    header = b"GGUF" + struct.pack("<IQQ", 3, n, len(kvs))
    for key, kind, value in kvs:
        header += string(key) + struct.pack("<I", kind) + value
    for i in range(n):
        header += (
            string(f"blk.{i}.weight") + struct.pack("<I", 2) + struct.pack("<QQ", 4096, CHUNK_ELEMS // 4096)
        )
        header += struct.pack("<IQ", 0, i * CHUNK_ELEMS * 4)
    header += b"\0" * (-len(header) % 32)
    with open(path, "wb") as out:
        out.write(header)
        out.truncate(len(header) + n * CHUNK_ELEMS * 4)


def write_onnx_external(path: Path, total_bytes: int) -> None:
    """A directory: model.onnx (a MatMul + Add MLP) whose 1 GiB weight lives in weights.bin."""
    from onnx import TensorProto, helper

    path.mkdir()
    rows = max(1, total_bytes // (4096 * 4))
    weight = TensorProto(name="W", data_type=TensorProto.FLOAT, dims=[4096, rows])
    weight.data_location = TensorProto.EXTERNAL
    for key, value in (("location", "weights.bin"), ("offset", "0"), ("length", str(rows * 4096 * 4))):
        weight.external_data.add(key=key, value=value)
    bias = helper.make_tensor("B", TensorProto.FLOAT, [1], [0.0])
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W"], ["h"], name="matmul"),
            helper.make_node("Add", ["h", "B"], ["y"], name="bias"),
            helper.make_node("Relu", ["y"], ["out"], name="relu"),
        ],
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4096])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, rows])],
        initializer=[weight, bias],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    (path / "model.onnx").write_bytes(model.SerializeToString())
    rng = np.random.default_rng(4)
    with open(path / "weights.bin", "wb") as out:
        written = 0
        while written < rows * 4096 * 4:
            block = rng.standard_normal(min(CHUNK_ELEMS, (rows * 4096 * 4 - written) // 4), dtype=np.float32)
            out.write(block.tobytes())
            written += block.nbytes


MODELS = {
    "state_dict_1g.pt": write_state_dict,
    "weights_1g.safetensors": write_safetensors,
    "arrays_1g.pkl": write_numpy_pickle,
    "llm_2g.gguf": lambda path, size: write_gguf(path, 2 * size),
    "onnx_external_1g": write_onnx_external,
}


def ensure(size_gib: float = 1.0) -> dict[str, Path]:
    DATA.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, writer in MODELS.items():
        path = DATA / name
        if not path.exists():
            print(f"writing {path} ...", file=sys.stderr)
            tmp = path.with_name(path.name + ".tmp")
            writer(tmp, int(size_gib * (1 << 30)))
            tmp.rename(path)
        paths[name] = path
    return paths


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-gib", type=float, default=1.0)
    for path in ensure(parser.parse_args().size_gib).values():
        files = list(path.rglob("*")) if path.is_dir() else [path]
        print(f"{path}  {sum(f.stat().st_size for f in files) / (1 << 30):.2f} GiB")
