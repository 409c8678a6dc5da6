"""Keras HDF5: the superblock probe, the HDF5 reader (keras/h5_probe.py) and the parent's
reading of its summary (formats/keras_h5.py).

As in production, the reader runs in another process: here one forked child that probes
input after input (a fork per input was most of an input's cost: 19 inputs/s), recycled
every RECYCLE_AFTER inputs and after every hang or crash, so that state libhdf5 carries
from file to file stays short-lived. Each probe is bounded at CHILD_SECONDS (0.25 s: a
file of the fuzzer's 16 KiB takes about 1 ms; production's bound is the per-file budget
PROBE_TIMEOUT). libhdf5 is native code that loops or crashes on some
malformed files; production contains that by running it apart and reporting the file
(MS-KERAS-022, fail closed). Such inputs are recorded as ``hang`` or ``native`` findings
of libhdf5 and rechecked alone by the campaign. The child's Python code is not
coverage-guided (its coverage stays in the child); the superblock probe and the parent's
reading of the summary are."""

from __future__ import annotations

import json
import os
import select
import signal
import struct
import tempfile
import time
from collections.abc import Iterator
from typing import Any

# As the production probe runs: no file locks, and no filter plugins a file could name.
os.environ["HDF5_USE_FILE_LOCKING"] = "FALSE"
os.environ["HDF5_PLUGIN_PATH"] = "/nonexistent/modelsec-no-plugins"

import h5py  # noqa: E402,F401 - loaded once here, not in every child
from harness import (  # noqa: E402
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

# Each probe's bound: libhdf5 takes about 1 ms on the fuzzer's inputs (40 ms at most on
# the corpus); past this it is looping, and waiting longer only slows the campaign (about
# one input in a hundred makes it loop). The input is kept as a hang finding either way.
CHILD_SECONDS = 0.25
RECYCLE_AFTER = 500  # inputs one child probes before a fresh one takes over
_TMP = tempfile.mkdtemp(prefix="modelsec-fuzz-h5-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
_PATH = os.path.join(_TMP, "input.h5")
os.makedirs(os.path.join(_TMP, "blobs"), exist_ok=True)
_LENGTH = struct.Struct("<I")


class _ProbeChild:
    """One forked process that runs the probe on each path it is sent and answers with
    the summary as JSON (length-prefixed), until its pipe closes."""

    def __init__(self) -> None:
        self.pid = 0
        self.served = 0
        self.buffer = b""

    def send(self, path: str) -> None:
        if self.pid and self.served >= RECYCLE_AFTER:
            self.stop()
        if not self.pid:
            self._start()
        self.served += 1
        _write_all(self.requests, _LENGTH.pack(len(path)) + path.encode())

    def answered(self, seconds: float) -> bytes | None:
        """The whole reply, if it came within ``seconds``; NativeCrash if the child died."""
        while True:
            if len(self.buffer) >= _LENGTH.size:
                end = _LENGTH.size + _LENGTH.unpack_from(self.buffer)[0]
                if len(self.buffer) >= end:
                    reply, self.buffer = self.buffer[_LENGTH.size : end], self.buffer[end:]
                    return reply
            if seconds <= 0 or not select.select([self.replies], [], [], seconds)[0]:
                return None
            chunk = os.read(self.replies, 1 << 16)
            if not chunk:
                self._died()
            self.buffer += chunk

    def _died(self) -> None:
        _, status = os.waitpid(self.pid, 0)
        self.pid = 0
        self.stop()
        if os.WIFSIGNALED(status):
            raise NativeCrash(f"libhdf5 crashed ({signal.Signals(os.WTERMSIG(status)).name})")
        raise NativeCrash(f"the probe process exited ({os.WEXITSTATUS(status)})")

    def _start(self) -> None:
        request_read, self.requests = os.pipe()
        self.replies, reply_write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            try:
                os.close(self.requests)
                os.close(self.replies)
                _serve(request_read, reply_write)
            finally:
                os._exit(0)
        os.close(request_read)
        os.close(reply_write)
        self.pid, self.served, self.buffer = pid, 0, b""

    def stop(self) -> None:
        """Kill the child (mid-probe or idle) and close its pipes; the next send forks anew."""
        if self.pid:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
            self.pid = 0
        for fd in (self.requests, self.replies):
            try:
                os.close(fd)
            except OSError:
                pass


def _serve(requests: int, replies: int) -> None:
    """The child: probe each path read from ``requests``; the summary goes to ``replies``."""
    # libFuzzer's handlers came with the fork: a crash in libhdf5 must end this process by
    # its signal, as it ends production's probe, not as a libFuzzer crash report (exit 77).
    for fatal in (signal.SIGSEGV, signal.SIGBUS, signal.SIGILL, signal.SIGFPE, signal.SIGABRT):
        signal.signal(fatal, signal.SIG_DFL)
    while True:
        head = _read_exactly(requests, _LENGTH.size)
        if head is None:
            return
        path = (_read_exactly(requests, _LENGTH.unpack(head)[0]) or b"").decode()
        try:
            out = Probe(os.path.join(_TMP, "blobs")).run(path)
        except Exception as exc:  # noqa: BLE001 - the production probe prints this too
            out = {"open_error": f"{type(exc).__name__}: {exc}"}
        payload = json.dumps(out).encode()
        _write_all(replies, _LENGTH.pack(len(payload)) + payload)


def _read_exactly(fd: int, n: int) -> bytes | None:
    out = b""
    while len(out) < n:
        chunk = os.read(fd, n - len(out))
        if not chunk:
            return None
        out += chunk
    return out


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


_CHILD = _ProbeChild()


def _probe_in_child(path: str) -> dict[str, Any]:
    """The probe's summary, computed in a child process as production computes it in a
    separate interpreter. Raises InputTimeout past CHILD_SECONDS and NativeCrash when the
    child dies; either way a fresh child takes the next input."""
    try:
        _CHILD.send(path)
        deadline = time.monotonic() + CHILD_SECONDS
        reply = _CHILD.answered(CHILD_SECONDS)
        while reply is None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise InputTimeout(f"libhdf5 spent more than {CHILD_SECONDS} s on the file")
            reply = _CHILD.answered(left)
    except BaseException:  # our deadline, a crash, or the harness's alarm: start afresh
        _CHILD.stop()
        raise
    summary = json.loads(reply or b"null")
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
