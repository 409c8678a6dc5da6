"""The oracle's fork server: a zygote that loads generated pickles with the real loaders.

Run only by :mod:`soundness_oracle` (``python soundness_zygote.py``), never on files a
user gives: it exists to *execute* generated candidates and watch what they do. Start-up
does the expensive part once: import every module the allowlist names (so the children
never import them again), warm each loader up on benign files (so their own lazy imports
happen here), compute the set of modules a load may still import, and install a
``sys.addaudithook`` hook that stays disarmed in this process.

Then, per request, it forks one child per batch of loaders. The child changes to a fresh
temporary directory, applies resource limits (address space, CPU, a file size of 0 so no
file can grow, open files), arms the hook and runs the loaders one after the other,
writing one JSON line per step into a pipe. (It keeps its user: where the interpreter is
installed under a private home, as here, an unprivileged child could not import the
standard-library modules an allowed code path imports lazily, and would report load
errors the real loaders never raise.) The hook writes the first dangerous event it sees into the
same pipe and ends the child with ``os._exit`` before the operation happens. A child that
dies, hangs past its deadline or runs out of memory is classified from its exit status,
and the loaders after the one that broke run in a new child.

Wire format (stdin/stdout of this process): every message is a 4-byte big-endian length
and that many bytes. A request is two messages, a JSON header then the candidate's
bytes; a response is one JSON message.
"""

from __future__ import annotations

import dis
import importlib
import importlib.machinery
import io
import json
import os
import pickle
import resource
import select
import shutil
import signal
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any, BinaryIO

# Thread pools of numerical libraries would be copied half-alive into every fork and cost
# CPU the other engineers on this machine need.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

EVENT_EXIT = 86  # a child's exit status after the hook recorded a dangerous event

# -- what counts as dangerous ------------------------------------------------------------

# Audit events by kind. Any event named here, or starting with one of the prefixes, aborts
# the child. (CPython's table: https://docs.python.org/3/library/audit_events.html.)
KIND_OF_EVENT: dict[str, str] = {
    "os.system": "command",
    "subprocess.Popen": "command",
    "os.exec": "command",
    "os.posix_spawn": "command",
    "os.spawn": "command",
    "os.fork": "command",
    "os.forkpty": "command",
    "os.startfile": "command",
    "pty.spawn": "command",
    "exec": "code",  # (not "compile": ast.literal_eval compiles, only exec runs code)
    "marshal.loads": "code",
    "marshal.load": "code",
    "code.__new__": "code",
    "function.__new__": "code",
    "builtins.input": "code",
    "builtins.breakpoint": "code",
    "sys.settrace": "code",
    "sys.setprofile": "code",
    "sys.addaudithook": "code",
    "cpython.run_command": "code",
    "cpython.run_file": "code",
    "cpython.run_module": "code",
    "cpython.run_startup": "code",
    "cpython.run_interactivehook": "code",
    "webbrowser.open": "command",
    "os.kill": "process",
    "os.killpg": "process",
    "signal.pthread_kill": "process",
    "resource.setrlimit": "process",
    "resource.prlimit": "process",
    "gc.get_objects": "interpreter",
    "gc.get_referrers": "interpreter",
    "gc.get_referents": "interpreter",
    "object.__setattr__": "mutation",
    "object.__delattr__": "mutation",
    "sys._current_frames": "interpreter",
    "mmap.__new__": "file-write",
    "tempfile.mkstemp": "file-write",
    "tempfile.mkdtemp": "file-write",
    "glob.glob": "file-read",
    "glob.glob/2": "file-read",
    "sqlite3.connect": "file-write",
    "urllib.Request": "network",
    "syslog.openlog": "network",
    "syslog.syslog": "network",
}
KIND_OF_PREFIX: dict[str, str] = {
    "socket.": "network",
    "http.client.": "network",
    "ftplib.": "network",
    "smtplib.": "network",
    "imaplib.": "network",
    "poplib.": "network",
    "nntplib.": "network",
    "telnetlib.": "network",
    "ctypes.": "ctypes",
    "shutil.": "file-write",
    "os.": "file-write",  # chmod, chown, remove, rename, mkdir, putenv, utime, ...
    "winreg.": "command",
    "msvcrt.": "command",
    "_winapi.": "command",
    "fcntl.": "file-write",
}
# os.* events that only read; dangerous outside the import machinery, fine inside it.
READ_ONLY_OS = frozenset({"os.listdir", "os.scandir", "os.walk", "os.fwalk", "os.getxattr", "os.listxattr"})
# Allowed inside the import machinery (loading an allowed module's code and data).
IMPORT_ONLY = frozenset({"exec", "marshal.loads", "marshal.load"}) | READ_ONLY_OS
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
MAX_GLOBALS_REPORTED = 20


class Watch:
    """The audit hook's state: disarmed in the zygote, armed in each child."""

    def __init__(self) -> None:
        self.armed = False
        self.busy = False  # re-entrancy guard: the hook's own work raises events too
        self.pipe: int | None = None
        self.loader = ""
        self.allowed_modules: frozenset[str] = frozenset()
        self.allowed_prefixes: tuple[str, ...] = ()
        self.read_roots: tuple[str, ...] = ()
        self.safe_globals: frozenset[str] = frozenset()
        self.globals_seen: list[str] = []
        self.permitted: set[str] = set()  # modules allowed code imported in this child
        self.trusted_packages: frozenset[str] = frozenset()  # whose import statements are fine

    # -- the hook ------------------------------------------------------------------------

    def __call__(self, event: str, args: tuple[Any, ...]) -> None:
        if not self.armed or self.busy:
            return
        self.busy = True
        try:
            try:
                verdict = self.judge(event, args)
            except Exception as exc:  # noqa: BLE001 - an event the hook cannot judge is not let through
                verdict = "unjudged", f"{event}: the hook failed ({type(exc).__name__}: {exc})"
            if verdict is not None:
                kind, detail = verdict
                self.emit({"event": event, "kind": kind, "detail": detail[:300], "loader": self.loader})
                os._exit(EVENT_EXIT)
        finally:
            self.busy = False

    def judge(self, event: str, args: tuple[Any, ...]) -> tuple[str, str] | None:
        """(kind, detail) when ``event`` is dangerous here, else None."""
        if event == "pickle.find_class":
            path = f"{args[0]}.{args[1]}"
            if path not in self.safe_globals and len(self.globals_seen) < MAX_GLOBALS_REPORTED:
                self.globals_seen.append(path)
            return None
        loading = importing_module()
        if loading is not None and not self.module_allowed(loading):
            # importlib.import_module raises no "import" event of its own: what it does
            # while loading (open, exec) is caught here instead.
            return "import", f"{loading} (seen as {event})"
        if event == "import":
            module = str(args[0])
            if loading is not None or self.module_allowed(module):
                return None  # an allowed module's own imports are part of loading it
            if self.library_import():
                self.permitted.add(module)
                return None
            if not package_exists(module.split(".")[0]):
                return None  # nothing to import: the load fails with ImportError, running nothing
            return "import", module
        if event == "open":
            return self.judge_open(args, loading is not None)
        kind = KIND_OF_EVENT.get(event)
        if kind is None:
            kind = next((k for prefix, k in KIND_OF_PREFIX.items() if event.startswith(prefix)), None)
        if kind is None:
            return None
        if event in IMPORT_ONLY and loading is not None:
            return None
        if event in READ_ONLY_OS:
            kind = "file-read"
        return kind, describe_args(event, args)

    def judge_open(self, args: tuple[Any, ...], importing: bool) -> tuple[str, str] | None:
        path, mode, flags = (list(args) + [None, None, None])[:3]
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            isinstance(flags, int) and flags & WRITE_FLAGS
        )
        if writing:
            return "file-write", f"open({path!r}, {mode!r})"
        if isinstance(path, int):
            return None  # an inherited descriptor, opened by the loader itself
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        if not isinstance(path, str):
            path = os.fspath(path) if hasattr(path, "__fspath__") else str(path)
        full = os.path.realpath(path)
        if full.startswith(self.read_roots) or importing:
            return None
        return "file-read", f"open({path!r}) outside the working directory"

    def library_import(self) -> bool:
        """An ``import`` statement in the code of a trusted library (one the allowlist
        draws from, or the standard library): the library chose that module (a lazy
        import), not the pickle, whose imports are ``__import__`` calls with names taken
        from the stream (in find_class, or in a resolver such as _ufunc_reconstruct)."""
        frame = sys._getframe(1)
        while frame is not None and frame.f_code.co_filename == __file__:
            frame = frame.f_back
        if frame is None or dis.opname[frame.f_code.co_code[frame.f_lasti]] != "IMPORT_NAME":
            return False
        caller = frame.f_globals.get("__name__")
        return isinstance(caller, str) and caller.split(".")[0] in self.trusted_packages

    def module_allowed(self, module: str) -> bool:
        return (
            module in self.allowed_modules
            or module in self.permitted
            or module.startswith(self.allowed_prefixes)
        )

    def emit(self, record: dict[str, Any]) -> None:
        if self.pipe is not None:
            os.write(self.pipe, json.dumps(record).encode() + b"\n")


def importing_module() -> str | None:
    """The outermost module the import machinery is loading right now, if any."""
    frame = sys._getframe(1)
    outermost = None
    while frame is not None:
        code = frame.f_code
        if code.co_name == "_find_and_load" and code.co_filename.startswith("<frozen importlib"):
            outermost = frame.f_locals.get("name")
        frame = frame.f_back
    return outermost if isinstance(outermost, str) else None


def package_exists(name: str) -> bool:
    """Whether a top-level module ``name`` could be imported (found, not run)."""
    if name in sys.modules or name in sys.builtin_module_names:
        return True
    try:
        return importlib.machinery.PathFinder.find_spec(name) is not None or (
            importlib.machinery.FrozenImporter.find_spec(name) is not None
        )
    except (ImportError, ValueError):
        return False


def describe_args(event: str, args: tuple[Any, ...]) -> str:
    if event in ("exec", "compile") and args:
        code = args[0]
        filename = getattr(code, "co_filename", None) or (args[1] if len(args) > 1 else "?")
        return f"{event} of code from {filename!r}"
    try:
        text = ", ".join(repr(a) for a in args)
    except Exception:  # a hostile __repr__ must not hide the event
        text = "<unrepresentable arguments>"
    return f"{event}({text})"


WATCH = Watch()

# -- loaders -----------------------------------------------------------------------------


def load_c_pickle(path: str, data: bytes) -> object:
    return pickle.loads(data)


def load_python_pickle(path: str, data: bytes) -> object:
    return pickle._Unpickler(io.BytesIO(data)).load()  # type: ignore[attr-defined]


def load_joblib(path: str, data: bytes) -> object:
    import joblib

    return joblib.load(path)


def load_numpy(path: str, data: bytes) -> object:
    import numpy

    result = numpy.load(path, allow_pickle=True)
    if hasattr(result, "files"):  # an .npz: its members load lazily, so load them here
        return {name: result[name] for name in result.files}
    return result


def load_torch(path: str, data: bytes) -> object:
    import torch  # type: ignore[import-not-found]

    return torch.load(path, weights_only=False)


LOADERS: dict[str, Callable[[str, bytes], object]] = {
    "pickle": load_c_pickle,
    "pypickle": load_python_pickle,
    "joblib": load_joblib,
    "numpy": load_numpy,
    "torch": load_torch,
}


def available_loaders() -> list[str]:
    names = ["pickle", "pypickle"]
    for name, module in (("joblib", "joblib"), ("numpy", "numpy"), ("torch", "torch")):
        try:
            importlib.import_module(module)
        except ImportError:
            continue
        names.append(name)
    return names


# -- start-up ----------------------------------------------------------------------------


def preload(safe: frozenset[str]) -> set[str]:
    """Import every module the allowlist names; returns the module names it names
    (importable or not: a missing library, such as torch here, may be tried by a load)."""
    from soundness_catalog import split_path  # beside this script

    named: set[str] = set()
    for path in sorted(safe):
        resolved = split_path(path)
        module = resolved[0] if resolved is not None else path.rsplit(".", 1)[0]
        parts = module.split(".")
        named.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return named


def warm_up(loaders: list[str]) -> None:
    """Run each loader on benign files so its lazy imports happen before arming."""
    import numpy

    work = tempfile.mkdtemp(prefix="modelsec-zygote-warmup-")
    try:
        arrays = {"a": numpy.arange(6.0), "o": numpy.array([{"k": 1}, None], dtype=object)}
        pickled = pickle.dumps(arrays, protocol=4)
        samples: list[tuple[str, bytes]] = [
            ("plain.pkl", pickled),
            ("p0.pkl", pickle.dumps(arrays, protocol=0)),
        ]
        if "joblib" in loaders:
            import joblib

            for compress in (0, ("zlib", 1), ("gzip", 1), ("bz2", 1), ("lzma", 1), ("xz", 1)):
                name = os.path.join(work, f"w{len(samples)}.joblib")
                joblib.dump(arrays, name, compress=compress)
                with open(name, "rb") as handle:
                    samples.append((name, handle.read()))
        npy = os.path.join(work, "w.npy")
        numpy.save(npy, arrays["o"], allow_pickle=True)
        npz = os.path.join(work, "w.npz")
        numpy.savez(npz, a=arrays["a"])
        for name in (npy, npz):
            with open(name, "rb") as handle:
                samples.append((name, handle.read()))
        for name, data in samples:
            path = name if os.path.isabs(name) else os.path.join(work, name)
            if not os.path.exists(path):
                with open(path, "wb") as handle:
                    handle.write(data)
            for loader in loaders:
                try:
                    LOADERS[loader](path, data)
                except Exception:
                    pass  # a loader that rejects a format it does not read is fine
    finally:
        shutil.rmtree(work, ignore_errors=True)


def read_roots(workroot: str) -> tuple[str, ...]:
    """Directories a load may read from: its working directory, the Python installation
    (lazy imports, package data), the time zone database, and the random device."""
    import sysconfig
    import zoneinfo

    roots = {workroot, sys.prefix, sys.base_prefix, sys.exec_prefix, *zoneinfo.TZPATH}
    roots.update(p for p in sysconfig.get_paths().values() if p)
    roots.update(p for p in sys.path if p and os.path.isdir(p))
    normal = {os.path.realpath(r).rstrip("/") + "/" for r in roots if r and r != "/"}
    return tuple(sorted(normal)) + ("/dev/urandom", "/dev/null", "/proc/self/", "/sys/devices/system/cpu/")


def network_isolated() -> bool:
    """True when this process sees no network interface but loopback (``unshare -n``)."""
    import socket

    try:
        return [name for _, name in socket.if_nameindex()] == ["lo"]
    except OSError:
        return False


# -- serving -----------------------------------------------------------------------------


def read_message(stream: BinaryIO) -> bytes | None:
    head = stream.read(4)
    if len(head) < 4:
        return None
    (length,) = struct.unpack(">I", head)
    body = stream.read(length)
    return body if len(body) == length else None


def write_message(stream: BinaryIO, data: bytes) -> None:
    stream.write(struct.pack(">I", len(data)) + data)
    stream.flush()


def apply_limits(memory_bytes: int, cpu_seconds: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def run_child(
    write_fd: int,
    workdir: str,
    path: str,
    data: bytes,
    loaders: list[str],
    limits: dict[str, int],
    use: bool = False,
) -> None:
    """In the forked child: confine, arm, load; never returns."""
    try:
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        os.chdir(workdir)
        apply_limits(limits["memory"], limits["cpu"])
        WATCH.pipe = write_fd
        WATCH.armed = True
        for loader in loaders:
            WATCH.loader = loader
            WATCH.emit({"start": loader})
            try:
                result = LOADERS[loader](path, data)
                record = {"done": loader, "outcome": "ok", "detail": type(result).__name__}
                if use:  # a crash here ends the child: the loader's run is a crash
                    from soundness_use import exercise

                    record["used"] = exercise(result)[:32]
            except MemoryError:
                record = {"done": loader, "outcome": "memory", "detail": "MemoryError"}
            except RecursionError:
                record = {"done": loader, "outcome": "error", "detail": "RecursionError"}
            except BaseException as exc:  # noqa: BLE001 - every failure of a load is an outcome
                record = {
                    "done": loader,
                    "outcome": "error",
                    "detail": f"{type(exc).__name__}: {str(exc)[:160]}",
                }
            if WATCH.globals_seen:
                record["globals"] = list(WATCH.globals_seen)
                WATCH.globals_seen.clear()
            WATCH.emit(record)
        os._exit(0)
    except BaseException:  # noqa: BLE001 - the child must never return into the server loop
        os._exit(3)


def run_batch(
    workdir: str,
    path: str,
    data: bytes,
    loaders: list[str],
    timeout: float,
    limits: dict[str, int],
    use: bool = False,
) -> tuple[list[dict[str, Any]], str | None]:
    """Fork one child for ``loaders``; its records and how it ended abnormally (or None)."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        run_child(write_fd, workdir, path, data, loaders, limits, use)
    os.close(write_fd)
    deadline = time.monotonic() + timeout
    chunks: list[bytes] = []
    ended: str | None = None
    total = 0
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            ended = "timeout"
            break
        ready, _, _ = select.select([read_fd], [], [], left)
        if not ready:
            continue
        chunk = os.read(read_fd, 65536)
        if not chunk:
            break
        total += len(chunk)
        if total < 1 << 20:  # a child cannot flood the server's memory
            chunks.append(chunk)
    os.close(read_fd)
    if ended == "timeout":
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    records = []
    for line in b"".join(chunks).splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    if ended is None:
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            ended = "timeout" if sig == signal.SIGXCPU else f"crash:{signal.Signals(sig).name}"
        elif os.WEXITSTATUS(status) not in (0, EVENT_EXIT):
            ended = f"crash:exit {os.WEXITSTATUS(status)}"
    return records, ended


def serve_one(header: dict[str, Any], data: bytes, workroot: str, limits: dict[str, int]) -> dict[str, Any]:
    workdir = tempfile.mkdtemp(prefix="job-", dir=workroot)
    try:
        os.chmod(workdir, 0o755)
        name = os.path.basename(header.get("filename") or "model.pkl") or "model.pkl"
        path = os.path.join(workdir, name)
        with open(path, "wb") as handle:
            handle.write(data)
        os.chmod(path, 0o644)
        pending = [name_ for name_ in header["loaders"] if name_ in LOADERS]
        runs: list[dict[str, Any]] = []
        event: dict[str, Any] | None = None
        while pending and event is None:
            records, ended = run_batch(
                workdir, path, data, pending, float(header["timeout"]), limits, bool(header.get("use"))
            )
            started = [r["start"] for r in records if "start" in r]
            for record in records:
                if "done" in record:
                    runs.append(record)
                elif "event" in record:
                    event = record
            if event is not None:
                break
            finished = {r["done"] for r in runs}
            if ended is not None:
                broken = (
                    started[-1]
                    if started and started[-1] not in finished
                    else (pending[0] if not started else None)
                )
                if broken is not None:
                    runs.append({"done": broken, "outcome": ended.split(":")[0], "detail": ended})
                    finished.add(broken)
            pending = [p for p in pending if p not in finished]
            if ended is None:
                break
        return {"runs": runs, "event": event}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # anything printed by an import must not corrupt the protocol
    from modelsec.pickle.allowlist import safe_globals

    config = json.loads(read_message(stdin) or b"{}")
    safe = safe_globals()
    named = preload(safe)
    loaders = available_loaders()
    before = set(sys.modules)
    warm_up(loaders)
    if config.get("use"):  # what using models imports, imported before the children arm
        import soundness_use

        soundness_use.warm_up()
    workroot = tempfile.mkdtemp(prefix="modelsec-oracle-")
    os.chmod(workroot, 0o755)
    WATCH.safe_globals = safe
    # Codec lookups (codecs.encode is allowlisted) import encodings.<name>, and only there.
    # Time-zone lookups by key (zoneinfo, allowlisted; pandas' tz strings) fall back to the
    # tzdata data package for a key the system database lacks: reading it is not an attack
    # (zoneinfo refuses keys that are paths; pandas' "dateutil/<path>" form is, and is caught
    # as a file read outside the read roots).
    WATCH.allowed_modules = frozenset(named | (set(sys.modules) - before) | {"tzdata"})
    WATCH.allowed_prefixes = ("encodings.", "tzdata.")
    WATCH.trusted_packages = frozenset({m.split(".")[0] for m in named} | set(sys.stdlib_module_names))
    WATCH.read_roots = read_roots(workroot)
    sys.addaudithook(WATCH)
    status = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/status") as handle:
        vm_kib = next(int(line.split()[1]) for line in handle if line.startswith("VmSize:"))
    limits = {
        "memory": vm_kib * 1024 + int(config.get("memory_headroom_mb", 1024)) * (1 << 20),
        "cpu": int(config.get("cpu_seconds", 5)),
    }
    info = {
        "ready": True,
        "pid": os.getpid(),
        "loaders": loaders,
        "network_isolated": network_isolated(),
        "allowed_modules": len(WATCH.allowed_modules),
        "memory_limit_mb": limits["memory"] >> 20,
        "inherited_as_limit": status[0],
    }
    write_message(stdout, json.dumps(info).encode())
    try:
        while True:
            head = read_message(stdin)
            if head is None:
                break
            data = read_message(stdin)
            if data is None:
                break
            response = serve_one(json.loads(head), data, workroot, limits)
            write_message(stdout, json.dumps(response).encode())
    finally:
        shutil.rmtree(workroot, ignore_errors=True)


if __name__ == "__main__":
    main()
