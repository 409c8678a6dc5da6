"""Child-process HDF5 probe: read structure and attributes of one HDF5 file with h5py and
print a JSON summary on stdout.

libhdf5 is native code and crashes (SIGSEGV) on some malformed files, which would take
the whole scanner down; the parent (:mod:`modelsec.formats.keras_h5`) therefore runs this
file as a separate interpreter with memory, time and core-dump limits, and treats a crash
as a finding. This module imports nothing from modelsec (the child runs it as a plain
script in isolated mode) and never reads numeric datasets, follows external links or
loads filter plugins.

Usage: python -I h5_probe.py FILE BLOB_DIR MEMORY_BYTES CPU_SECONDS
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

CONFIG_ATTRS = ("model_config", "training_config")
MAX_TEXT = 100 << 20
MAX_OBJECTS = 200_000
MAX_BLOB = 64 << 20
MAX_BLOBS = 1_000
MAX_BLOB_TOTAL = 1 << 30
MAX_ATTRS = 1_000


def _text(value: Any) -> str | None:
    import numpy as np

    if isinstance(value, np.ndarray):
        if value.size != 1:
            return None
        value = value.reshape(-1)[0]
    if isinstance(value, (bytes, np.bytes_)):
        return bytes(value)[:MAX_TEXT].decode("utf-8", "replace") if len(value) <= MAX_TEXT else None
    if isinstance(value, str):
        return value if len(value) <= MAX_TEXT else None
    return None


def _blob(value: Any) -> bytes | None:
    import numpy as np

    if isinstance(value, np.void):
        data = value.tobytes()
    elif isinstance(value, np.ndarray) and value.dtype.kind == "V":
        data = value.tobytes()
    elif isinstance(value, (bytes, np.bytes_)):
        data = bytes(value)
    elif isinstance(value, np.ndarray) and value.dtype.kind == "S" and value.size == 1:
        data = bytes(value.reshape(-1)[0])
    else:
        return None
    if len(data) < 2 or len(data) > MAX_BLOB:
        return None
    return data if carries_format(data) else None


def carries_format(data: bytes) -> bool:
    """Pickles (any protocol) and zip archives: payloads another loader could execute."""
    if data[:1] == b"\x80" and data[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return True
    if data[:4] == b"PK\x03\x04":
        return True
    return data[:1] in (b"c", b"(", b"]", b"}") and data.rstrip()[-1:] == b"."


class Probe:
    def __init__(self, blob_dir: str) -> None:
        self.blob_dir = blob_dir
        self.out: dict[str, Any] = {
            "configs": {},
            "config_errors": {},
            "external_links": [],
            "external_data": [],
            "blobs": [],
            "errors": [],
            "too_many": False,
        }
        self.blob_bytes = 0

    def blob(self, value: Any, where: str) -> None:
        data = _blob(value)
        if data is None or len(self.out["blobs"]) >= MAX_BLOBS:
            return
        if self.blob_bytes + len(data) > MAX_BLOB_TOTAL:
            self.out["errors"].append("binary payloads beyond 1 GiB were not extracted")
            return
        self.blob_bytes += len(data)
        path = os.path.join(self.blob_dir, f"blob{len(self.out['blobs'])}")
        with open(path, "wb") as fh:
            fh.write(data)
        self.out["blobs"].append([where, path])

    def attrs(self, obj: Any, where: str) -> None:
        for key in list(obj.attrs.keys())[:MAX_ATTRS]:
            if where == "/" and key in CONFIG_ATTRS:
                continue
            try:
                value = obj.attrs[key]
            except Exception:
                continue
            self.blob(value, f"{where}@{key}")

    def run(self, path: str) -> dict[str, Any]:
        import h5py

        with h5py.File(path, "r") as handle:
            keys = list(handle.attrs.keys())
            for key in CONFIG_ATTRS:
                if key not in keys:
                    continue
                try:
                    text = _text(handle.attrs[key])
                except Exception as exc:
                    self.out["config_errors"][key] = f"unreadable: {type(exc).__name__}: {exc}"
                    continue
                if text is None:
                    self.out["config_errors"][key] = "not a JSON string"
                else:
                    self.out["configs"][key] = text
            self.attrs(handle, "/")
            count = 0

            def visit(name: str, link: Any) -> None:
                nonlocal count
                count += 1
                if count > MAX_OBJECTS:
                    raise OverflowError
                if isinstance(link, h5py.ExternalLink):
                    self.out["external_links"].append([name, str(link.filename), str(link.path)])
                    return
                if not isinstance(link, h5py.HardLink):
                    return
                try:
                    obj = handle.get(name)
                except Exception as exc:
                    self.out["errors"].append(f"object {name} unreadable: {type(exc).__name__}")
                    return
                if obj is None:
                    return
                try:
                    self.attrs(obj, name)
                    if isinstance(obj, h5py.Dataset):
                        self.dataset(obj, name)
                except Exception as exc:
                    self.out["errors"].append(f"object {name}: {type(exc).__name__}: {exc}")

            try:
                handle.visititems_links(visit)
            except OverflowError:
                self.out["too_many"] = True
            except Exception as exc:
                self.out["errors"].append(f"structure walk stopped: {type(exc).__name__}: {exc}")
        return self.out

    def dataset(self, dset: Any, name: str) -> None:
        external = dset.external
        if external:
            self.out["external_data"].append(
                [name, "external storage", sorted({str(e[0]) for e in external})]
            )
            return
        if dset.is_virtual:
            try:
                files = sorted({src.file_name for src in dset.virtual_sources()})
            except Exception:
                files = ["<unreadable>"]
            self.out["external_data"].append([name, "virtual dataset", files])
            return
        if dset.dtype.kind not in ("V", "S", "O") or dset.dtype.names:
            return  # numeric tensors: no code path, never read
        plist = dset.id.get_create_plist()
        if plist.get_nfilters() > 0 or dset.id.get_storage_size() > MAX_BLOB or (dset.size or 0) > 1:
            return  # filters could load plugins; big or many-element data is not a payload
        self.blob(dset[()], name)


def limit_self(memory: int, cpu_seconds: int) -> None:
    """Bound this process before libhdf5 is loaded (set here rather than through
    subprocess's preexec_fn, which is unsafe in a threaded parent)."""
    import resource

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 5))


def main() -> None:
    path, blob_dir = sys.argv[1], sys.argv[2]
    limit_self(int(sys.argv[3]), int(sys.argv[4]))
    try:
        out = Probe(blob_dir).run(path)
    except Exception as exc:
        out = {"open_error": f"{type(exc).__name__}: {exc}"}
    sys.stdout.write(json.dumps(out))


if __name__ == "__main__":
    main()
