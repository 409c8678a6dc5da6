"""Keras HDF5: the superblock probe, the HDF5 reader (keras/h5_probe.py) and the parent's
reading of its summary (formats/keras_h5.py).

As in production, the reader runs in another process: here a fork per input, bounded at
4 s so that the input stays within its 5 s (production's bound is PROBE_TIMEOUT). libhdf5
is native code that loops or crashes on some malformed files; production contains that by
running it apart and reporting the file (MS-KERAS-022, fail closed). Such inputs are
recorded as ``hang`` or ``native`` findings of libhdf5. The child's Python code is not
coverage-guided (its coverage stays in the child); the superblock probe and the parent's
reading of the summary are."""

from __future__ import annotations

import json
import os
import resource
import select
import signal
import tempfile
import time
from collections.abc import Iterator
from typing import Any

# As the production probe runs: no file locks, and no filter plugins a file could name.
os.environ["HDF5_USE_FILE_LOCKING"] = "FALSE"
os.environ["HDF5_PLUGIN_PATH"] = "/nonexistent/modelsec-no-plugins"

import h5py  # noqa: E402,F401 - loaded once here, not in every child
from harness import (  # noqa: E402
    INPUT_SECONDS,
    InputTimeout,
    NativeCrash,
    OracleFailure,
    Target,
    builder_seeds,
    corpus_files,
)
from scanning import LIMITS  # noqa: E402

from modelsec.bytesource import BytesSource  # noqa: E402
from modelsec.context import ScanContext, ScanSink  # noqa: E402
from modelsec.engine import dispatch  # noqa: E402
from modelsec.formats.keras_h5 import SCANNER, find_superblock  # noqa: E402
from modelsec.interpretations import REGISTERED  # noqa: E402
from modelsec.keras.h5_probe import Probe  # noqa: E402

# The child's bound, under the input's 5 s: libFuzzer's own timeout must not fire first.
CHILD_SECONDS = INPUT_SECONDS - 1
_TMP = tempfile.mkdtemp(prefix="modelsec-fuzz-h5-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
_PATH = os.path.join(_TMP, "input.h5")
os.makedirs(os.path.join(_TMP, "blobs"), exist_ok=True)


def _probe_in_child(path: str) -> dict[str, Any]:
    """The probe's summary, computed in a forked child as production computes it in a
    separate interpreter. Raises InputTimeout past 5 s, NativeCrash on a signal."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        try:
            os.close(read_end)
            resource.setrlimit(resource.RLIMIT_CPU, (INPUT_SECONDS, INPUT_SECONDS + 1))
            try:
                out = Probe(os.path.join(_TMP, "blobs")).run(path)
            except Exception as exc:  # noqa: BLE001 - the production probe prints this too
                out = {"open_error": f"{type(exc).__name__}: {exc}"}
            payload = json.dumps(out).encode()
            view = memoryview(payload)
            while view:
                view = view[os.write(write_end, view) :]
        finally:
            os._exit(0)
    os.close(write_end)
    chunks: list[bytes] = []
    deadline = time.monotonic() + CHILD_SECONDS
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([read_end], [], [], left)[0]:
                raise InputTimeout(f"libhdf5 spent more than {CHILD_SECONDS} s on the file")
            chunk = os.read(read_end, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    except BaseException:  # our deadline, or the harness's alarm: the child must not linger
        os.kill(pid, signal.SIGKILL)
        raise
    finally:
        os.close(read_end)
        _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        raise NativeCrash(f"libhdf5 crashed ({signal.Signals(os.WTERMSIG(status)).name})")
    summary = json.loads(b"".join(chunks) or b"null")
    if not isinstance(summary, dict):
        raise OracleFailure("the probe wrote no summary")
    return summary


def run(data: bytes) -> None:
    find_superblock(data[: 64 << 10], BytesSource(data))
    with open(_PATH, "wb") as fh:
        fh.write(data)
    summary = _probe_in_child(_PATH)
    ctx = ScanContext("model.h5", ScanSink(LIMITS), dispatch, formats=REGISTERED)
    ctx.set_format(SCANNER.name, SCANNER.category)
    SCANNER._report(summary, ctx)


def _seeds() -> Iterator[bytes]:
    import h5py
    import numpy as np

    def build(userblock: int = 0, blob: bytes | None = None) -> bytes:
        path = os.path.join(_TMP, "seed.h5")
        with h5py.File(path, "w", userblock_size=userblock) as f:
            f.attrs["model_config"] = json.dumps(
                {
                    "class_name": "Sequential",
                    "config": {
                        "layers": [{"class_name": "Lambda", "config": {"function": ["4wAAAA==", None, None]}}]
                    },
                }
            )
            f.attrs["keras_version"] = "2.15.0"
            group = f.create_group("model_weights/dense")
            group.create_dataset("kernel", data=np.ones((2, 2), np.float32))
            if blob is not None:
                group.attrs["payload"] = np.void(blob)
        with open(path, "rb") as fh:
            return fh.read()

    yield from builder_seeds(lambda: build(), lambda: build(512), lambda: build(0, b"\x80\x04K\x01."))
    yield from corpus_files(lambda path, head: path.suffix in (".h5", ".hdf5", ".keras"), 64 << 10)


TARGET = Target(
    name="keras-h5",
    run=run,
    seeds=_seeds,
    max_len=16 << 10,
    tokens=(b"\x89HDF\r\n\x1a\n", b"model_config", b"training_config", b"TREE", b"HEAP", b"SNOD", b"OHDR"),
)
