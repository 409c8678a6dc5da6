"""Worker processes forked from this one and fed batches of files over pipes.

:mod:`modelsec.parallel` uses this where ``fork`` is safe (Linux, one thread). It does what
``ProcessPoolExecutor`` does for it with less: no management thread, no call queue, no
shared counter, and none of the ~12 ms of ``multiprocessing`` and ``concurrent.futures``
imports that a scan of a thousand small files paid before its first worker started
(benchmarks/many_files.py, issue 14).

Each child owns two pipes: one carries batches to it, the other carries frames back.
A frame is a kind byte, a length and a pickle written by our own child: progress (bytes
hashed so far) or a batch's results. Results hold strings and numbers from our dataclasses,
never scanned content to load. A child that dies (native crash, OOM killer) closes its
result pipe: its batch is failed closed by the caller and a fresh child takes its place.
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    from modelsec.context import Limits, ScanSession
    from modelsec.engine import FileResult

_HEADER = struct.Struct("<cQ")  # kind, payload length
_PROGRESS = b"P"  # payload: bytes hashed since the last frame
_RESULTS = b"R"  # payload: (results, bytes hashed since the last frame)
_TASK = b"T"  # payload: the files of a batch
_FAILED = b"E"  # payload: why the child is ending (an exception escaped the scan)
PROGRESS_EVERY = 0.2  # seconds between a child's progress frames


class ChildDied(Exception):
    """A child ended (or broke its pipe) before it sent its batch's results."""


@dataclass
class _Frames:
    """The read end of a pipe that carries frames, and what was read of the next one."""

    fd: int
    buffer: bytearray = field(default_factory=bytearray)

    def read(self) -> tuple[bytes, bytes]:
        """One whole frame (blocking until it is complete: the sender writes each frame at
        once); :class:`ChildDied` at the end of the pipe."""
        buffer = self.buffer
        while True:
            if len(buffer) >= _HEADER.size:
                kind, length = _HEADER.unpack_from(buffer)
                end = _HEADER.size + length
                if len(buffer) >= end:
                    payload = bytes(buffer[_HEADER.size : end])
                    del buffer[:end]
                    return kind, payload
            chunk = os.read(self.fd, 1 << 20)
            if not chunk:
                raise ChildDied("the pipe ended before a whole frame")
            buffer += chunk


def _send(fd: int, kind: bytes, message: object) -> None:
    payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    data = memoryview(_HEADER.pack(kind, len(payload)) + payload)
    while data:
        data = data[os.write(fd, data) :]


@dataclass
class Child:
    """One forked worker, as its parent sees it."""

    pid: int
    tasks: int  # write end: batches to scan
    results: _Frames  # frames back
    batch: Any = None  # the batch it is scanning (the caller's object), or None when idle


class Children:
    """``count`` forked workers scanning with ``Limits``; :meth:`events` reports what they
    send. Use as a context manager: leaving it stops every child (Ctrl-C included)."""

    def __init__(
        self, count: int, limits: Limits, report_progress: bool, session: ScanSession | None = None
    ) -> None:
        self.limits = limits
        # What the parent's scans kept (pickle templates): a forked child starts with it
        self.session = session
        self.report_progress = report_progress
        self.children: list[Child] = []
        try:
            for _ in range(count):
                self.children.append(self.fork())
        except BaseException:  # no process or memory for another child: none is left behind
            self.stop(kill=True)
            raise

    def __enter__(self) -> Children:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop(kill=exc_info[0] is not None)

    def fork(self) -> Child:
        """A new child, sharing this process's imports (copy-on-write)."""
        task_read, task_write = os.pipe()
        result_read, result_write = os.pipe()
        # Our ends of the other children's pipes must not stay open in the new child: a
        # child would otherwise keep another's result pipe open past that one's death.
        ours = [fd for c in self.children for fd in (c.tasks, c.results.fd)] + [task_write, result_read]
        try:
            pid = os.fork()
        except OSError:
            for fd in (task_read, task_write, result_read, result_write):
                os.close(fd)
            raise
        if pid == 0:  # the child: never returns
            status = 1
            try:
                for fd in ours:
                    os.close(fd)
                signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
                _serve(task_read, result_write, self.limits, self.report_progress, self.session)
                status = 0
            except BaseException as exc:  # noqa: BLE001 - told to the parent, which fails the batch closed
                try:
                    _send(result_write, _FAILED, f"{type(exc).__name__}: {exc}")
                except BaseException:  # noqa: BLE001, S110 - the parent then sees the pipe end
                    pass
            finally:
                os._exit(status)
        os.close(task_read)
        os.close(result_write)
        return Child(pid, task_write, _Frames(result_read))

    def give(self, child: Child, batch: Any, files: tuple[Path, ...]) -> None:
        """Hand ``child`` the ``files`` of ``batch`` (the caller's object, given back by
        :meth:`events` with their results). A child found dead here (it can die idle, to the
        OOM killer) is replaced and the batch goes to its replacement."""
        try:
            _send(child.tasks, _TASK, files)
        except BrokenPipeError:
            self._replace(child)
            child = self.children[-1]
            _send(child.tasks, _TASK, files)
        child.batch = batch

    def idle(self) -> list[Child]:
        return [c for c in self.children if c.batch is None]

    def busy(self) -> int:
        return sum(1 for c in self.children if c.batch is not None)

    def events(self, timeout: float | None) -> Iterator[tuple[Any, int, list[FileResult] | ChildDied | None]]:
        """What busy children sent within ``timeout`` seconds: ``(batch, bytes hashed,
        results)``, where results are None for a progress frame and :class:`ChildDied`
        when the child scanning ``batch`` is gone (it has been reaped and replaced)."""
        busy = {c.results.fd: c for c in self.children if c.batch is not None}
        if not busy:
            return
        ready, _, _ = select.select(list(busy), [], [], timeout)
        for fd in ready:
            child = busy[fd]
            batch = child.batch
            try:
                kind, payload = child.results.read()
            except ChildDied:
                how = self._replace(child)
                yield batch, 0, ChildDied(f"the process scanning the batch was {how}")
                continue
            if kind == _PROGRESS:
                yield batch, pickle.loads(payload), None
            elif kind == _FAILED:
                self._replace(child)
                yield batch, 0, ChildDied(f"the process scanning the batch stopped: {pickle.loads(payload)}")
            else:
                child.batch = None
                results, hashed = pickle.loads(payload)
                yield batch, hashed, results

    def _replace(self, dead: Child) -> str:
        """Reap ``dead`` and fork its replacement; how ``dead`` ended."""
        os.close(dead.tasks)
        os.close(dead.results.fd)
        self.children.remove(dead)
        how = _reap(dead.pid)
        self.children.append(self.fork())
        return how

    def stop(self, kill: bool) -> None:
        """Close every child's task pipe (it exits when it reads the end) and wait for it;
        ``kill`` first, when the scan is abandoned and children may be mid-file."""
        for child in self.children:
            if kill:
                _kill(child.pid)
            os.close(child.tasks)
            os.close(child.results.fd)
        for child in self.children:
            _reap(child.pid)
        self.children = []


# --- in the child ---------------------------------------------------------------------------


def _serve(
    tasks: int, results: int, limits: Limits, report_progress: bool, session: ScanSession | None = None
) -> None:
    """Scan each batch read from ``tasks`` and write its results to ``results``, until the
    parent closes ``tasks``."""
    from modelsec.engine import Engine

    engine = Engine(limits)
    if session is not None:
        engine.session = session  # the parent's, copied on write
    frames = _Frames(tasks)
    hashed = 0
    last_sent = time.monotonic()

    def count(nbytes: int) -> None:
        nonlocal hashed, last_sent
        hashed += nbytes
        now = time.monotonic()
        if now - last_sent >= PROGRESS_EVERY:
            _send(results, _PROGRESS, hashed)
            hashed, last_sent = 0, now

    progress: Callable[[int], None] | None = count if report_progress else None
    while True:
        try:
            _, payload = frames.read()
        except ChildDied:  # the parent closed the pipe: no more work
            return
        files: tuple[Path, ...] = pickle.loads(payload)
        scanned = [engine.scan_file(path, progress) for path in files]
        _send(results, _RESULTS, (scanned, hashed))
        hashed = 0


# --- processes --------------------------------------------------------------------------------


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _reap(pid: int) -> str:
    """Wait for ``pid``; how it ended, in words."""
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        return "already reaped"
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit status {os.WEXITSTATUS(status)}"
