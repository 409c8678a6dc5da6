"""The differential oracle: what the real loaders do with a generated candidate.

For tests and benchmarks only; never in the product and never on a user's file. It runs
*generated* pickles through CPython's C unpickler (``pickle.loads``), the pure-Python one
(``pickle._Unpickler``), ``joblib.load`` and ``numpy.load(allow_pickle=True)`` (and
``torch.load`` where torch is installed), inside a fork server (:mod:`soundness_zygote`)
started without network (``unshare -n``), each load in a throwaway child with resource
limits, a temporary working directory and an audit hook that stops the child
at the first dangerous event: a command, code compiled or executed outside an import, an
import of a module the allowlist does not name, a file opened for writing or read outside
the working directory, a socket, ctypes, and the like (see ``KIND_OF_EVENT`` there).

    with Oracle() as oracle:
        result = oracle.run(data, "model.pkl")
        result.event        # the first dangerous event, or None
        result.runs         # per loader: ok / error / memory / timeout / crash
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

ZYGOTE = Path(__file__).with_name("soundness_zygote.py")
DEFAULT_LOADERS = ("pickle", "pypickle", "joblib", "numpy", "torch")


@dataclass(frozen=True)
class LoaderRun:
    loader: str
    outcome: str  # ok, error, memory, timeout, crash
    detail: str = ""
    globals: tuple[str, ...] = ()  # unlisted globals the load resolved (pickle.find_class)


@dataclass(frozen=True)
class OracleEvent:
    kind: str  # command, code, import, file-write, file-read, network, ctypes, process, ...
    event: str  # the audit event
    detail: str
    loader: str


@dataclass(frozen=True)
class OracleResult:
    runs: tuple[LoaderRun, ...]
    event: OracleEvent | None

    @property
    def dangerous(self) -> bool:
        return self.event is not None

    @property
    def loaded(self) -> tuple[str, ...]:
        """Loaders that loaded the candidate to the end without incident."""
        return tuple(run.loader for run in self.runs if run.outcome == "ok")

    @property
    def crash(self) -> str | None:
        """How the first run that crashed ended (``crash:SIGSEGV``), or None."""
        return next((run.detail for run in self.runs if run.outcome == "crash"), None)

    def outcome(self, loader: str) -> str | None:
        return next((run.outcome for run in self.runs if run.loader == loader), None)


class OracleError(RuntimeError):
    """The fork server could not be started or stopped answering."""


def isolation_command() -> tuple[list[str], str]:
    """The command prefix that gives the zygote an empty network namespace, and its name.

    ``unshare -n`` needs root (or, with ``-r``, unprivileged user namespaces). Without
    either, the zygote runs in the host namespace and only the audit hook stands between a
    candidate and the network: every socket event aborts the child before it connects.
    """
    unshare = shutil.which("unshare")
    if unshare:
        for flags in (["-n"], ["-r", "-n"]):
            probe = subprocess.run([unshare, *flags, "true"], capture_output=True, timeout=10)
            if probe.returncode == 0:
                return [unshare, *flags], f"unshare {' '.join(flags)}"
    return [], "audit hook only (unshare unavailable)"


class Oracle:
    """A client of one fork server. Not thread-safe: one oracle per worker."""

    def __init__(
        self,
        *,
        timeout: float = 3.0,
        cpu_seconds: int = 5,
        memory_headroom_mb: int = 1024,
        loaders: tuple[str, ...] = DEFAULT_LOADERS,
        use: bool = False,
    ) -> None:
        self.timeout = timeout
        # use: after each load, use what was loaded (soundness_use.exercise): a crash then
        # is the loader's run's outcome
        self.use = use
        self.config = {"cpu_seconds": cpu_seconds, "memory_headroom_mb": memory_headroom_mb, "use": use}
        self.wanted = loaders
        self.isolation = ""
        self.info: dict[str, Any] = {}
        self.loaders: tuple[str, ...] = ()
        self.restarts = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._start()

    # -- lifecycle -----------------------------------------------------------------------

    def _start(self) -> None:
        prefix, self.isolation = isolation_command()
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
        self._proc = subprocess.Popen(
            [*prefix, sys.executable, str(ZYGOTE)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            cwd=str(ZYGOTE.parent),
        )
        self._send(json.dumps(self.config).encode())
        reply = self._receive(timeout=300)
        if reply is None:
            raise OracleError("the oracle's fork server did not start (see soundness_zygote.py)")
        self.info = json.loads(reply)
        self.loaders = tuple(name for name in self.wanted if name in self.info["loaders"])

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin:
            proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()

    def __enter__(self) -> Oracle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- wire ----------------------------------------------------------------------------

    def _send(self, *messages: bytes) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        self._proc.stdin.write(b"".join(struct.pack(">I", len(m)) + m for m in messages))
        self._proc.stdin.flush()

    def _receive(self, timeout: float) -> bytes | None:
        """One message, or None if the server died or said nothing for ``timeout`` s."""
        assert self._proc is not None and self._proc.stdout is not None
        stream: IO[bytes] = self._proc.stdout
        box: list[bytes | None] = [None]

        def read() -> None:
            head = stream.read(4)
            if len(head) == 4:
                body = stream.read(struct.unpack(">I", head)[0])
                box[0] = body

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(timeout)
        if reader.is_alive():
            self._proc.kill()  # unblocks the reader; the oracle restarts on next use
            reader.join()
            return None
        return box[0]

    # -- the oracle ----------------------------------------------------------------------

    def run(
        self, data: bytes, filename: str = "model.pkl", loaders: tuple[str, ...] | None = None
    ) -> OracleResult:
        """Load ``data`` (written as ``filename`` in a fresh directory) with each loader."""
        chosen = [name for name in (loaders or self.loaders) if name in self.loaders]
        header = json.dumps(
            {"filename": filename, "loaders": chosen, "timeout": self.timeout, "use": self.use}
        ).encode()
        for _attempt in range(2):
            if self._proc is None or self._proc.poll() is not None:
                self.close()
                self.restarts += 1
                self._start()
            try:
                self._send(header, data)
            except (BrokenPipeError, OSError):
                self._proc = None
                continue
            # Each batch may take `timeout`; a batch per loader at worst, plus set-up.
            reply = self._receive(timeout=self.timeout * (len(chosen) + 1) + 30)
            if reply is not None:
                return parse_result(json.loads(reply))
            self._proc = None
        raise OracleError("the oracle's fork server died twice on one candidate")


def parse_result(reply: dict[str, Any]) -> OracleResult:
    runs = tuple(
        LoaderRun(r["done"], r["outcome"], r.get("detail", ""), tuple(r.get("globals", ())))
        for r in reply["runs"]
    )
    raw = reply.get("event")
    event = None
    if raw is not None:
        event = OracleEvent(raw["kind"], raw["event"], raw.get("detail", ""), raw.get("loader", ""))
    return OracleResult(runs, event)
