"""Tar containers (ustar, GNU, pax; the oldest torch.save layout)."""

from __future__ import annotations

import io
import pickle
import tarfile
from collections.abc import Iterator

from harness import Target, corpus_files
from scanning import scan_as


def _tar(fmt: int, members: dict[str, bytes], mode: str = "w") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode, format=fmt) as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _seeds() -> Iterator[bytes]:
    payload = pickle.dumps({"w": [1.0, 2.0]}, protocol=2)
    members = {"a.pkl": payload, "b/c.bin": b"\0" * 8}
    yield _tar(tarfile.USTAR_FORMAT, members)
    long_name = {"dir/" + "n" * 120 + ".txt": b"hello", "\u00e9.pkl": payload}  # GNU longname, pax path
    for fmt in (tarfile.GNU_FORMAT, tarfile.PAX_FORMAT):
        yield _tar(fmt, {**members, **long_name})
    # the oldest torch.save layout: a tar of sys_info, pickle, tensors, storages
    yield _tar(
        tarfile.GNU_FORMAT,
        {
            "sys_info": pickle.dumps({"little_endian": True}, protocol=2),
            "pickle": payload,
            "tensors": pickle.dumps([], protocol=2),
            "storages": pickle.dumps(0, protocol=2),
        },
    )
    yield from corpus_files(lambda path, head: head[257:262] == b"ustar", 64 << 10)


TARGET = Target(
    name="tar",
    run=scan_as("fuzz.tar"),
    seeds=_seeds,
    max_len=64 << 10,
    tokens=(
        b"ustar\x0000",
        b"ustar  \x00",
        b"././@LongLink",
        b"path=",
        b"size=",
        b"GNU.sparse.",
        b"linkpath=",
        b"hdrcharset=",
        b"\x80\x00\x00\x00",
    ),
)
