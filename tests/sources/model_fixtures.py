"""Model files built from bytes for the remote-source tests and the benchmark.

Nothing here imports torch or unpickles anything: pickles are written opcode by opcode, the
PyTorch archive layout (``archive/data.pkl``, ``archive/data/<n>``, ``archive/version``) is
written with :mod:`zipfile` or, for the benchmark, by :func:`write_sparse_torch_zip` which
leaves tensor storage as holes so multi-gigabyte archives cost no disk or RAM.
"""

from __future__ import annotations

import io
import json
import os
import struct
import zipfile
import zlib

PROTO2 = b"\x80\x02"


def _unicode(text: str) -> bytes:
    raw = text.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def _int(value: int) -> bytes:
    return b"J" + struct.pack("<i", value)  # BININT


def malicious_pickle(command: str = "id") -> bytes:
    """``os.system(command)`` on load: GLOBAL 'os system', an argument tuple, REDUCE."""
    return PROTO2 + b"cos\nsystem\n" + _unicode(command) + b"\x85R."


def torch_state_pickle(tensors: list[tuple[str, str, tuple[int, ...]]]) -> bytes:
    """A state dict as torch.save writes it: OrderedDict of _rebuild_tensor_v2 calls whose
    storages are persistent ids ('storage', torch.FloatStorage, key, 'cpu', numel)."""
    out = bytearray(PROTO2)
    out += b"ccollections\nOrderedDict\n)R("
    for name, key, shape in tensors:
        numel = 1
        for dim in shape:
            numel *= dim
        strides = []
        acc = 1
        for dim in reversed(shape):
            strides.insert(0, acc)
            acc *= dim
        out += _unicode(name)
        out += b"ctorch._utils\n_rebuild_tensor_v2\n("
        out += b"(" + _unicode("storage") + b"ctorch\nFloatStorage\n" + _unicode(key)
        out += _unicode("cpu") + _int(numel) + b"tQ"
        out += _int(0)
        out += b"(" + b"".join(_int(d) for d in shape) + b"t"
        out += b"(" + b"".join(_int(s) for s in strides) + b"t"
        out += b"\x89ccollections\nOrderedDict\n)RtR"
    out += b"u."
    return bytes(out)


def torch_zip(storages: dict[str, bytes], pickle_bytes: bytes | None = None, name: str = "archive") -> bytes:
    """A PyTorch-style zip in memory (stored members, as torch.save writes them)."""
    tensors = [(f"layer{k}.weight", k, (len(v) // 4,)) for k, v in storages.items()]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr(
            f"{name}/data.pkl", pickle_bytes if pickle_bytes is not None else torch_state_pickle(tensors)
        )
        zf.writestr(f"{name}/byteorder", b"little")
        for key, data in storages.items():
            zf.writestr(f"{name}/data/{key}", data)
        zf.writestr(f"{name}/version", b"3\n")
    return buf.getvalue()


# --- sparse files for the benchmark --------------------------------------------------------


def _zero_crc(size: int) -> int:
    crc = 0
    block = bytes(1 << 20)
    left = size
    while left:
        n = min(left, len(block))
        crc = zlib.crc32(block[:n] if n < len(block) else block, crc)
        left -= n
    return crc


def write_sparse_safetensors(path: str, tensors: dict[str, tuple[int, ...]]) -> int:
    """A float32 safetensors file whose data section is a hole; returns its size."""
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, shape in tensors.items():
        n = 4
        for dim in shape:
            n *= dim
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        f.truncate(8 + len(raw) + offset)
    return os.path.getsize(path)


def write_sparse_torch_zip(path: str, storage_sizes: list[int], name: str = "archive") -> int:
    """A PyTorch-style zip (zip64 where needed) whose storages are zero-filled holes.
    CRCs are real (computed over zeros), so the archive is valid for any zip reader."""
    tensors = [(f"layer{i}.weight", str(i), (size // 4,)) for i, size in enumerate(storage_sizes)]
    members: list[tuple[str, bytes | int]] = [
        (f"{name}/data.pkl", torch_state_pickle(tensors)),
        (f"{name}/byteorder", b"little"),
    ]
    members += [(f"{name}/data/{i}", size) for i, size in enumerate(storage_sizes)]
    members.append((f"{name}/version", b"3\n"))
    central = bytearray()
    crc_cache: dict[int, int] = {}
    with open(path, "wb") as f:
        for member, content in members:
            offset = f.tell()
            size = content if isinstance(content, int) else len(content)
            if isinstance(content, int):
                crc = crc_cache.setdefault(size, _zero_crc(size))
            else:
                crc = zlib.crc32(content)
            fname = member.encode()
            big = size >= 0xFFFFFFFF or offset >= 0xFFFFFFFF
            local_extra = struct.pack("<HHQQ", 1, 16, size, size) if big else b""
            # Pad so the data starts 64-byte aligned, like torch.save.
            header_len = 30 + len(fname) + len(local_extra)
            pad = -(offset + header_len + 4) % 64
            local_extra += struct.pack("<HH", 0xCAFE, pad) + b"Z" * pad
            f.write(
                struct.pack(
                    "<IHHHHHIIIHH",
                    0x04034B50,
                    45 if big else 20,
                    0,
                    0,
                    0,
                    0x21,
                    crc,
                    0xFFFFFFFF if big else size,
                    0xFFFFFFFF if big else size,
                    len(fname),
                    len(local_extra),
                )
            )
            f.write(fname + local_extra)
            if isinstance(content, int):
                f.seek(size, os.SEEK_CUR)
            else:
                f.write(content)
            cextra = b""
            fields = []
            if big:
                fields = [size, size]
            if offset >= 0xFFFFFFFF:
                fields.append(offset)
            if fields:
                cextra = struct.pack("<HH", 1, 8 * len(fields)) + b"".join(
                    struct.pack("<Q", v) for v in fields
                )
            central += (
                struct.pack(
                    "<IHHHHHHIIIHHHHHII",
                    0x02014B50,
                    45,
                    45 if cextra else 20,
                    0,
                    0,
                    0,
                    0x21,
                    crc,
                    0xFFFFFFFF if big else size,
                    0xFFFFFFFF if big else size,
                    len(fname),
                    len(cextra),
                    0,
                    0,
                    0,
                    0,
                    0xFFFFFFFF if offset >= 0xFFFFFFFF else offset,
                )
                + fname
                + cextra
            )
        cd_offset = f.tell()
        f.write(central)
        cd_end = f.tell()
        count = len(members)
        # zip64 end of central directory record + locator, then the classic record.
        f.write(
            struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, count, count, len(central), cd_offset)
        )
        f.write(struct.pack("<IIQI", 0x07064B50, 0, cd_end, 1))
        f.write(
            struct.pack(
                "<IHHHHIIH",
                0x06054B50,
                0,
                0,
                min(count, 0xFFFF),
                min(count, 0xFFFF),
                min(len(central), 0xFFFFFFFF),
                min(cd_offset, 0xFFFFFFFF),
                0,
            )
        )
    return os.path.getsize(path)
