"""Write the small example models under examples/ (rerun after changing this script).

Malicious examples are built from raw pickle opcodes: nothing here imports or runs a
loader, and the payload only echoes a message.
"""

from __future__ import annotations

import io
import struct
import zipfile
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

ROOT = Path(__file__).resolve().parent.parent / "examples"


def malicious_pickle() -> bytes:
    """protocol 2: os.system("echo pwned-by-pickle") via GLOBAL + REDUCE."""
    command = b"echo pwned-by-pickle"
    return (
        b"\x80\x02"  # PROTO 2
        + b"cos\nsystem\n"  # GLOBAL os.system
        + b"X"
        + struct.pack("<I", len(command))
        + command  # BINUNICODE
        + b"\x85"  # TUPLE1
        + b"R"  # REDUCE
        + b"."  # STOP
    )


def torch_zip_with(pickle_bytes: bytes) -> bytes:
    """A PyTorch-style zip archive (archive/data.pkl, archive/version) around a pickle."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("archive/data.pkl", pickle_bytes)
        zf.writestr("archive/byteorder", b"little")
        zf.writestr("archive/version", b"3\n")
    return out.getvalue()


def main() -> None:
    clean = ROOT / "clean"
    bad = ROOT / "malicious"
    clean.mkdir(parents=True, exist_ok=True)
    bad.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    save_file(
        {
            "dense.weight": rng.standard_normal((16, 8)).astype(np.float32),
            "dense.bias": np.zeros(16, dtype=np.float32),
        },
        str(clean / "tiny-mlp.safetensors"),
        metadata={"format": "np"},
    )
    np.save(clean / "embeddings.npy", rng.standard_normal((4, 4)).astype(np.float16))
    (bad / "os-system.pkl").write_bytes(malicious_pickle())
    (bad / "pytorch_model.bin").write_bytes(torch_zip_with(malicious_pickle()))
    print(f"wrote examples under {ROOT}")


if __name__ == "__main__":
    main()
