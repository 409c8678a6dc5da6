"""HDF5 files: legacy Keras ``.h5`` models and plain HDF5 weight files.

h5py reads the file structure and attributes only: the ``model_config`` and
``training_config`` attributes that Keras writes are analysed as Keras configs (Lambda
layers, custom objects), links and datasets are checked for references to other files,
and binary blobs that carry another format (a pickle) go back to the engine. Keras is
never imported and no dataset is read except small opaque/byte blobs without filters (a
filter could make libhdf5 load a plugin).
"""

from __future__ import annotations

from typing import Any

from modelsec.bytesource import ByteSource, BytesSource, as_stream
from modelsec.context import ScanContext
from modelsec.findings import Severity, threat
from modelsec.formats.base import FormatCategory, FormatScanner
from modelsec.formats.keras_config import KERAS_MALFORMED, analyze_json_text

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
MAX_OBJECTS = 200_000  # links visited per file
MAX_BLOB = 64 << 20  # opaque/bytes values handed back to the engine
MAX_BLOBS = 1_000
CONFIG_ATTRS = ("model_config", "training_config")

HDF5_EXTERNAL_LINK = threat(
    "MS-KERAS-020",
    "SuspiciousComponents",
    Severity.HIGH,
    "HDF5 link to another file",
    "Remove the external link; a model file should be self-contained.",
    "An external link makes HDF5 readers open another file (any path) when the link is "
    "followed.",
)
HDF5_EXTERNAL_DATA = threat(
    "MS-KERAS-021",
    "SuspiciousComponents",
    Severity.HIGH,
    "HDF5 dataset stored in other files",
    "Re-save the weights with contiguous or chunked storage inside the file.",
    "External raw storage and virtual datasets read their bytes from other files at any "
    "path, which can leak local data into the model or depend on files outside the model.",
)


def find_superblock(head: bytes, source: ByteSource) -> int | None:
    """Offset of the HDF5 signature: 0, 512, 1024, 2048, ... (a user block precedes it)."""
    offset = 0
    while offset + 8 <= source.size:
        if offset + 8 <= len(head):
            chunk = head[offset : offset + 8]
        else:
            chunk = source.read_at(offset, 8)
        if chunk == HDF5_MAGIC:
            return offset
        offset = 512 if offset == 0 else offset * 2
    return None


def _text(value: Any, limit: int) -> str | None:
    """An attribute value as text (str, bytes, or a one-element array of either)."""
    try:
        import numpy as np

        if isinstance(value, np.ndarray):
            if value.size != 1:
                return None
            value = value.reshape(-1)[0]
        if isinstance(value, (bytes, np.bytes_)):
            if len(value) > limit:
                return None
            return bytes(value).decode("utf-8", "replace")
        if isinstance(value, str):
            return value if len(value) <= limit else None
    except Exception:
        return None
    return None


def _blob(value: Any) -> bytes | None:
    """Binary payloads worth handing to the engine (opaque data or non-text bytes)."""
    import numpy as np

    if isinstance(value, np.void):
        data = bytes(value)
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
    if _carries_format(data):
        return data
    return None


def _carries_format(data: bytes) -> bool:
    """Pickles (any protocol), zip archives: what could run code through another loader."""
    if data[:1] == b"\x80" and data[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return True
    if data[:4] == b"PK\x03\x04":
        return True
    return data[:1] in (b"c", b"(", b"]", b"}") and data.rstrip()[-1:] == b"."


class KerasH5Scanner(FormatScanner):
    name = "keras-h5"
    category = FormatCategory.MODEL
    priority = 20

    def detect(self, head: bytes, source: ByteSource, filename: str) -> bool:
        return find_superblock(head, source) is not None

    def scan(self, source: ByteSource, ctx: ScanContext) -> None:
        import h5py

        try:
            handle = h5py.File(as_stream(source), "r")
        except Exception as exc:  # libhdf5 rejects malformed files with assorted errors
            ctx.set_format("hdf5", FormatCategory.MODEL)
            ctx.incomplete(f"HDF5 file could not be opened: {type(exc).__name__}: {exc}")
            return
        with handle:
            self._scan_open(handle, ctx)

    def _scan_open(self, handle: Any, ctx: ScanContext) -> None:
        limit = ctx.limits.max_header_bytes
        found_config = False
        try:
            names = list(handle.attrs.keys())
        except Exception as exc:
            ctx.set_format("hdf5", FormatCategory.MODEL)
            ctx.incomplete(f"HDF5 root attributes unreadable: {type(exc).__name__}: {exc}")
            return
        for key in CONFIG_ATTRS:
            if key not in names:
                continue
            try:
                raw = handle.attrs[key]
            except Exception as exc:
                ctx.incomplete(f"HDF5 attribute {key} unreadable: {type(exc).__name__}: {exc}")
                continue
            text = _text(raw, limit)
            if text is None:
                ctx.report(KERAS_MALFORMED.at(ctx.path, f"attribute {key} is not a JSON string"))
                ctx.incomplete(f"attribute {key} could not be read as text; not inspected")
                continue
            found_config = found_config or key == "model_config"
            analyze_json_text(ctx, text, f"attribute {key}")
        ctx.set_format("keras-h5" if found_config else "hdf5", FormatCategory.MODEL)
        self._walk(handle, ctx)

    def _walk(self, handle: Any, ctx: ScanContext) -> None:
        import h5py

        state = {"objects": 0, "blobs": 0}

        def check_attrs(obj: Any, where: str) -> None:
            for key in list(obj.attrs.keys())[:1000]:
                if where == "/" and key in CONFIG_ATTRS:
                    continue
                try:
                    value = obj.attrs[key]
                except Exception:
                    continue  # unreadable non-config attributes carry no code path
                self._maybe_blob(value, f"{where}@{key}", ctx, state)

        def visit(name: str, link: Any) -> None:
            state["objects"] += 1
            if state["objects"] > MAX_OBJECTS:
                raise _TooMany()
            if isinstance(link, h5py.ExternalLink):
                ctx.report(
                    HDF5_EXTERNAL_LINK.at(
                        ctx.path,
                        f"{name} links to {link.path} in file {link.filename}",
                        subject=link.filename,
                    )
                )
                return
            if not isinstance(link, h5py.HardLink):
                return  # soft links name objects already visited through hard links
            try:
                obj = handle.get(name)
            except Exception as exc:
                ctx.incomplete(f"HDF5 object {name} unreadable: {type(exc).__name__}")
                return
            if obj is None:
                return
            check_attrs(obj, name)
            if isinstance(obj, h5py.Dataset):
                self._check_dataset(obj, name, ctx, state)

        try:
            check_attrs(handle, "/")
            handle.visititems_links(visit)
        except _TooMany:
            ctx.incomplete(f"more than {MAX_OBJECTS} HDF5 objects; the rest were not inspected")
        except Exception as exc:
            ctx.incomplete(f"HDF5 structure could not be walked: {type(exc).__name__}: {exc}")

    def _check_dataset(self, dset: Any, name: str, ctx: ScanContext, state: dict[str, int]) -> None:
        try:
            external = dset.external
            virtual = dset.is_virtual
        except Exception:
            external, virtual = None, False
        if external:
            files = sorted({str(entry[0]) for entry in external})
            ctx.report(
                HDF5_EXTERNAL_DATA.at(
                    ctx.path,
                    f"dataset {name} stores its data in external file(s): {', '.join(files[:5])}",
                    subject=files[0] if files else None,
                )
            )
            return
        if virtual:
            try:
                files = sorted({src.file_name for src in dset.virtual_sources()})
            except Exception:
                files = ["<unreadable>"]
            ctx.report(
                HDF5_EXTERNAL_DATA.at(
                    ctx.path,
                    f"dataset {name} is a virtual dataset reading from: {', '.join(files[:5])}",
                    subject=files[0] if files else None,
                )
            )
            return
        kind = dset.dtype.kind
        if kind not in ("V", "S", "O") or dset.dtype.names:
            return  # numeric tensors: no code path
        try:
            filtered = dset.id.get_create_plist().get_nfilters() > 0
            nbytes = dset.id.get_storage_size()
        except Exception:
            return
        if filtered or nbytes > MAX_BLOB or (dset.size or 0) > 1:
            return
        try:
            value = dset[()]
        except Exception:
            return
        self._maybe_blob(value, name, ctx, state)

    def _maybe_blob(self, value: Any, where: str, ctx: ScanContext, state: dict[str, int]) -> None:
        data = _blob(value)
        if data is None or state["blobs"] >= MAX_BLOBS:
            return
        state["blobs"] += 1
        ctx.scan_member(BytesSource(data), where.lstrip("/") or "root")


class _TooMany(Exception):
    pass


SCANNER = KerasH5Scanner()
