"""HDF5 files: legacy Keras ``.h5`` models and plain HDF5 weight files.

The ``model_config`` / ``training_config`` attributes Keras writes are analysed as Keras
configs (Lambda layers, custom objects); links and datasets are checked for references to
other files; binary blobs that carry another format (a pickle) go back to the engine.
Keras is never imported.

libhdf5 is native code that crashes on some malformed files, so h5py runs in a child
interpreter (:mod:`modelsec.keras.h5_probe`) with memory, CPU-time and wall-clock limits;
a crash or timeout there is a finding and an incomplete, never a dead scanner.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import tempfile
import time
from typing import Any

from modelsec.bytesource import ByteSource, FileSource, LimitExceeded, iter_chunks
from modelsec.context import ScanContext
from modelsec.findings import Severity, threat
from modelsec.formats.base import FormatCategory, FormatScanner, Reader
from modelsec.formats.keras_config import KERAS_MALFORMED
from modelsec.keras import h5_probe

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
PROBE_TIMEOUT = 300  # seconds for one file's structure walk
MIN_PROBE_SECONDS = 1.0  # below this, the probe interpreter would not even start in time
PROBE_MEMORY = 4 << 30  # address space of the probe process
PROBE_OUTPUT = 256 << 20  # JSON summary (configs are at most 100 MiB each)

HDF5_EXTERNAL_LINK = threat(
    "MS-KERAS-020",
    "SuspiciousComponents",
    Severity.HIGH,
    "HDF5 link to another file",
    "Remove the external link; a model file should be self-contained.",
    "An external link makes HDF5 readers open another file (any path) when the link is followed.",
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
HDF5_CRASH = threat(
    "MS-KERAS-022",
    "SuspiciousComponents",
    Severity.HIGH,
    "HDF5 file crashes or hangs the HDF5 library",
    "Do not load this file: the HDF5 library itself fails on it, as an exploit would make it do.",
)


def find_superblock(head: bytes, source: ByteSource) -> int | None:
    """Offset of the HDF5 signature: 0, 512, 1024, 2048, ... (a user block precedes it)."""
    offset = 0
    while offset + 8 <= source.size:
        chunk = head[offset : offset + 8] if offset + 8 <= len(head) else source.read_at(offset, 8)
        if chunk == HDF5_MAGIC:
            return offset
        offset = 512 if offset == 0 else offset * 2
    return None


def run_probe(path: str, blob_dir: str, timeout: float = PROBE_TIMEOUT) -> tuple[dict[str, Any] | None, str]:
    """The probe's summary, or None and why it failed (``timeout`` seconds at most)."""
    import subprocess  # (3 ms of start-up that only HDF5 files need)

    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        # No filter plugins: a file must not make libhdf5 dlopen anything.
        "HDF5_PLUGIN_PATH": os.path.join(blob_dir, "no-plugins"),
        "HDF5_USE_FILE_LOCKING": "FALSE",
    }
    try:
        proc = subprocess.run(
            [
                sys.executable,
                "-I",
                h5_probe.__file__,
                path,
                blob_dir,
                str(PROBE_MEMORY),
                str(math.ceil(timeout)),
            ],
            capture_output=True,
            timeout=timeout,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return None, f"the HDF5 library did not finish within {timeout:g} s"
    if proc.returncode == -signal.SIGXCPU:
        # The probe's CPU-time limit (the same bound) usually fires before the wall clock.
        return None, f"the HDF5 library did not finish within {math.ceil(timeout)} s of CPU time"
    if proc.returncode < 0:
        try:
            name = signal.Signals(-proc.returncode).name
        except ValueError:
            name = str(-proc.returncode)
        return None, f"the HDF5 library crashed ({name})"
    if proc.returncode != 0 or len(proc.stdout) > PROBE_OUTPUT:
        tail = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
        return None, f"the HDF5 reader failed (exit {proc.returncode}: {tail[0][:200]})"
    try:
        out = json.loads(proc.stdout)
    except ValueError:
        return None, "the HDF5 reader returned no readable summary"
    return (out, "") if isinstance(out, dict) else (None, "the HDF5 reader returned no summary")


class KerasH5Scanner(FormatScanner):
    name = "keras-h5"
    category = FormatCategory.MODEL
    priority = 20
    readers = (
        Reader("h5py.File, keras (HDF5)", "superblock at 0, 512, 1024, 2048 ... (a user block before it)"),
    )

    def detect(self, head: bytes, source: ByteSource, filename: str) -> bool:
        return find_superblock(head, source) is not None

    def scan(self, source: ByteSource, ctx: ScanContext) -> None:
        with tempfile.TemporaryDirectory(prefix="modelsec-h5-") as tmp:
            if isinstance(source, FileSource):
                path = source.path
            else:
                # Archive members and remote files: copy (bounded) for the child to open.
                if source.size > ctx.limits.max_spool_bytes:
                    raise LimitExceeded(
                        f"HDF5 member of {source.size} bytes exceeds the spool limit; not inspected"
                    )
                path = os.path.join(tmp, "member.h5")
                with open(path, "wb") as fh:
                    for chunk in iter_chunks(source):
                        fh.write(chunk)
            # One budget for the whole top-level file (Limits.max_probe_seconds): a zip of
            # many members that make libhdf5 loop would otherwise hold the scan for
            # PROBE_TIMEOUT each. Past it, a member is not inspected (fail closed).
            left = ctx.probe_seconds_left()
            if left < MIN_PROBE_SECONDS:  # too little to start the reader: a certain timeout
                raise LimitExceeded(
                    f"the HDF5 reads of this file used its {ctx.limits.max_probe_seconds:g} s budget "
                    "(Limits.max_probe_seconds); this HDF5 file was not inspected"
                )
            started = time.monotonic()
            try:
                summary, failure = run_probe(path, tmp, min(PROBE_TIMEOUT, left))
            finally:
                ctx.account_probe(time.monotonic() - started)
            if summary is None:
                ctx.set_format("hdf5", FormatCategory.MODEL)
                ctx.report(HDF5_CRASH.at(ctx.path, f"{failure}; the file was not inspected"))
                ctx.incomplete(f"HDF5 structure not inspected: {failure}")
                return
            self._report(summary, ctx)

    def _report(self, summary: dict[str, Any], ctx: ScanContext) -> None:
        from modelsec.formats.keras_config_scan import analyze_json_text

        if "open_error" in summary:
            ctx.set_format("hdf5", FormatCategory.MODEL)
            ctx.incomplete(f"HDF5 file could not be opened: {summary['open_error']}")
            return
        configs = summary.get("configs") or {}
        ctx.set_format("keras-h5" if "model_config" in configs else "hdf5", FormatCategory.MODEL)
        for key, text in configs.items():
            analyze_json_text(ctx, str(text), f"attribute {key}")
        for key, reason in (summary.get("config_errors") or {}).items():
            ctx.report(KERAS_MALFORMED.at(ctx.path, f"attribute {key} is {reason}"))
            ctx.incomplete(f"attribute {key} could not be read as text; not inspected")
        for name, filename, target in summary.get("external_links") or []:
            ctx.report(
                HDF5_EXTERNAL_LINK.at(
                    ctx.path, f"{name} links to {target} in file {filename}", subject=filename
                )
            )
        for name, kind, files in summary.get("external_data") or []:
            ctx.report(
                HDF5_EXTERNAL_DATA.at(
                    ctx.path,
                    f"dataset {name} ({kind}) reads its data from: {', '.join(files[:5])}",
                    subject=files[0] if files else None,
                )
            )
        for where, blob_path in summary.get("blobs") or []:
            with FileSource(blob_path) as blob:
                ctx.scan_member(blob, str(where).lstrip("/") or "root")
        for error in (summary.get("errors") or [])[:20]:
            ctx.incomplete(f"HDF5 {error}")
        if summary.get("too_many"):
            ctx.incomplete("more than 200000 HDF5 objects; the rest were not inspected")


SCANNER = KerasH5Scanner()
