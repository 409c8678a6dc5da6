"""Legacy (non-zip) torch.save files, built pickle by pickle from opcode bytes, through the
real pickle analysis (streams are handed to it one at a time at their offsets)."""

from __future__ import annotations

import struct
import tracemalloc

import pytest
from containers_support import formats_of, malicious_pickle, scan_bytes, threats_of

from modelsec.archive.pickle_extent import PickleFramingError, pickle_extent

MAGIC = 0x1950A86A20F9469CFC6C
MAGIC_P2 = b"\x80\x02\x8a\x0a" + MAGIC.to_bytes(10, "little") + b"."
MAGIC_P4 = b"\x80\x04\x95\x0d" + b"\0" * 7 + b"\x8a\x0a" + MAGIC.to_bytes(10, "little") + b"."
MAGIC_P0 = b"L" + str(MAGIC).encode() + b"L\n."
PROTOCOL = b"\x80\x02M\xe9\x03."
SYS_INFO = (
    b"\x80\x02}q\x00(X\x10\x00\x00\x00protocol_versionq\x01M\xe9\x03X\r\x00\x00\x00little_endianq\x02\x88u."
)
# OrderedDict-free stand-in for a state dict: {'w': persistent id ('storage', 'key0')}
OBJECT = b"\x80\x02}q\x00X\x01\x00\x00\x00wq\x01(X\x07\x00\x00\x00storageq\x02X\x04\x00\x00\x00key0q\x03tQs."
KEYS = b"\x80\x02]q\x00X\x04\x00\x00\x00key0q\x01a."
STORAGE = struct.pack("<q", 4) + b"\0" * 16


def legacy(
    magic: bytes = MAGIC_P2,
    protocol: bytes = PROTOCOL,
    sys_info: bytes = SYS_INFO,
    obj: bytes = OBJECT,
    keys: bytes = KEYS,
    storage: bytes = STORAGE,
) -> bytes:
    return magic + protocol + sys_info + obj + keys + storage


@pytest.mark.parametrize("magic", [MAGIC_P2, MAGIC_P4, MAGIC_P0])
def test_benign_layout(magic: bytes) -> None:
    result = scan_bytes(legacy(magic=magic), "model.bin")
    assert formats_of(result) == {"": "pytorch-legacy"}
    assert result.findings == [] and result.incompletes == []


SLOTS = {"protocol": 0, "sys_info": 1, "obj": 2, "keys": 3}


@pytest.mark.parametrize("slot", sorted(SLOTS))
def test_malicious_pickle_in_any_slot(slot: str) -> None:
    data = legacy(**{slot: malicious_pickle()})
    result = scan_bytes(data, "model.bin")
    start = len(MAGIC_P2) + sum(len(p) for p in [PROTOCOL, SYS_INFO, OBJECT, KEYS][: SLOTS[slot]])
    hits = [f for f in result.findings if f.rule == "LoadTimeCodeExecution"]
    assert hits and all(f.file == "model.bin" for f in hits)
    assert start <= hits[0].offset < start + len(malicious_pickle())  # type: ignore[operator]


def test_broken_object_pickle_is_reported() -> None:
    broken = b"\x80\x02\xff"
    result = scan_bytes(MAGIC_P2 + PROTOCOL + SYS_INFO + broken + malicious_pickle(), "m.bin")
    assert [f.rule for f in result.findings] == ["SuspiciousComponents"]
    assert result.findings[0].offset == len(MAGIC_P2 + PROTOCOL + SYS_INFO) + 2


def test_missing_storage_data() -> None:
    result = scan_bytes(legacy(storage=b"\0\0"), "m.bin")
    assert threats_of(result) == {"MS-TORCH-001"}


def test_magic_bypass_is_not_legacy_torch() -> None:
    # the first pickle computes the magic number instead of storing it
    bypass = b"\x80\x02c__builtin__\neval\nX\x16\x00\x00\x000x1950A86A20F9469CFC6C\x85R."
    assert formats_of(scan_bytes(bypass + PROTOCOL, "m.pt"))[""] != "pytorch-legacy"


def test_huge_declared_argument_is_not_allocated() -> None:
    data = b"\x80\x04\x8e" + struct.pack("<Q", 1 << 40) + b"abc"
    tracemalloc.start()
    with pytest.raises(PickleFramingError):
        pickle_extent(_Source(data), 0, max_opcodes=100, max_line=1024)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 8 << 20


def test_extent_of_protocol0_pickle() -> None:
    data = b"(lp0\nS'abc'\np1\naI5\na." + b"trailing"
    extent = pickle_extent(_Source(data), 0, max_opcodes=100, max_line=1024)
    assert extent.end == len(data) - len(b"trailing")


class _Source:
    def __init__(self, data: bytes) -> None:
        self.data = data

    @property
    def size(self) -> int:
        return len(self.data)

    def read_at(self, offset: int, length: int) -> bytes:
        return self.data[offset : offset + length]
