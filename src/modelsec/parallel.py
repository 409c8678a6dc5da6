"""Scanning the files of one local model in worker processes.

Scanning is CPU-bound Python (the pickle machine, the parsers), so threads would take turns
on the GIL: the files of a directory are scanned in processes instead. They go out in
batches of consecutive files (fewer round trips than one file per task) and come back in
the order they were listed, so a parallel scan reports exactly what a sequential one does,
in the same order; the caller sees an iterator of :class:`~modelsec.engine.FileResult`.

Bounds: at most ``2 * workers`` batches are in flight or waiting to be handed back, so the
memory held beyond the report is a few batches' results; each worker scans one file at a
time under the same :class:`~modelsec.context.Limits`, so a scan's worst-case memory is
``workers`` times a sequential one's (hence a small default, :func:`default_workers`).

A worker that dies (a crash in native code, the kernel's OOM killer) fails its batch
closed: every file in it gets an incomplete naming what happened, and the remaining files
are scanned by a fresh pool. Nothing is skipped and nothing turns into ALLOWED.

Workers are forked while this process runs a single thread (they start with the modules
already imported) and fed over pipes (:mod:`modelsec.forked`); where fork is unsafe
(macOS, or another thread running), a ``ProcessPoolExecutor`` with the platform's other
start method does the same. Results cross back as pickles written by our own workers over
a pipe to this process: they hold strings and numbers from our dataclasses, never scanned
content to load.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from modelsec import heap
from modelsec.findings import THREATS, Incomplete

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing.context import BaseContext
    from multiprocessing.sharedctypes import Synchronized

    from modelsec.context import Limits
    from modelsec.engine import Engine, FileResult

MAX_DEFAULT_WORKERS = 4  # memory: each worker may hold a file's bounded buffers at once
BATCH_FILES = 32  # consecutive files per task
BATCH_BYTES = 64 << 20  # a batch closes at this many bytes (one large file is a batch)
PROGRESS_EVERY = 0.2  # seconds between progress updates while waiting for results
WORKER_DIED = "MS-GEN-002"  # modelsec.engine.ENGINE_ERROR: scanning failed, failing closed
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")  # cgroup v2: "<quota> <period>" or "max <period>"


def usable_cpus() -> int:
    """CPUs this process may run on: its affinity mask, capped by a cgroup CPU quota
    (a CI container limited to 2 CPUs on a 64-CPU host has 2)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    try:
        quota, period = CGROUP_CPU_MAX.read_text().split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, int(quota) // int(period)))
    except (OSError, ValueError):
        pass
    return max(1, cpus)


def default_workers() -> int:
    return min(usable_cpus(), MAX_DEFAULT_WORKERS)


# A directory of small files (less than engine.PARALLEL_MIN_BYTES in all) is scanned in this
# process first: for many of them, starting workers costs more than they save, and files
# laid out alike get cheaper as the scan goes (pickle/reuse.py). Workers forked later start
# with everything this process imported and learned.
PACE_FILES = 8  # the files whose median time is the pace of what is left
SLOW_START = 0.2  # seconds after which the pace of fewer files is enough to decide
FORK_COST = 0.03  # seconds to fork the workers and see their first results, about
PER_FILE_COST = 40e-6  # seconds a file's result costs crossing back from a worker


class FanOut:
    """Whether the rest of a directory should go to ``workers`` processes: once what is left,
    at the pace of the last files, would take them less time, their start and the way
    back of each result included, than it takes here."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.elapsed = 0.0
        self.recent: list[float] = []

    def pays(self, seconds: float, left: int) -> bool:
        """Record a file that took ``seconds``; True if the ``left`` files should go to workers."""
        self.elapsed += seconds
        self.recent = [*self.recent[1 - PACE_FILES :], seconds]
        if not left or (len(self.recent) < PACE_FILES and self.elapsed < SLOW_START):
            return False
        pace = sorted(self.recent)[len(self.recent) // 2]
        saved = left * (pace * (1 - 1 / self.workers) - PER_FILE_COST)
        return saved > FORK_COST


@dataclass(frozen=True)
class _Batch:
    """Consecutive files of a directory, scanned by one worker; ``index`` keeps report order."""

    index: int
    files: tuple[Path, ...]


def _batches(files: list[Path]) -> list[_Batch]:
    """Consecutive files grouped up to :data:`BATCH_FILES` files or :data:`BATCH_BYTES`."""
    out: list[_Batch] = []
    current: list[Path] = []
    size = 0
    for path in files:
        try:
            length = path.stat().st_size
        except OSError:
            length = 0  # the scan reports why it cannot be read
        if current and (len(current) >= BATCH_FILES or size + length > BATCH_BYTES):
            out.append(_Batch(len(out), tuple(current)))
            current, size = [], 0
        current.append(path)
        size += length
    if current:
        out.append(_Batch(len(out), tuple(current)))
    return out


# --- in the worker processes ----------------------------------------------------------------

_engine: Engine | None = None
_hashed: Synchronized[int] | None = None


def _start_worker(limits: Limits, hashed: Synchronized[int] | None) -> None:
    """Each worker's engine, and the shared count of bytes hashed (for the progress bar).
    Ctrl-C is the parent's to handle: it stops the workers itself."""
    global _engine, _hashed
    from modelsec.engine import Engine

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _engine = Engine(limits)
    _hashed = hashed


def _count_hashed(nbytes: int) -> None:
    assert _hashed is not None
    with _hashed.get_lock():
        _hashed.value += nbytes


def _scan_batch(batch: _Batch) -> list[FileResult]:
    assert _engine is not None
    progress = _count_hashed if _hashed is not None else None
    return [_engine.scan_file(path, progress) for path in batch.files]


# --- in this process ---------------------------------------------------------------------------


def scan_in_workers(
    engine: Engine, files: list[Path], workers: int, progress: Callable[[int], None] | None = None
) -> Iterator[FileResult]:
    """The results of ``engine.scan_file`` for each of ``files``, in order, computed by
    ``workers`` processes. ``progress`` gets the bytes hashed, as a sequential scan's does."""
    from modelsec import formats

    formats.scanners()  # the registry, imported once here rather than in every forked worker
    # Before forking: a worker's collections must not walk (and so copy) the parent's heap.
    heap.settle()
    todo = _batches(files)
    workers = max(1, min(workers, len(todo)))
    if _fork_is_safe():
        return _scan_forked(engine, todo, workers, progress)
    return _scan_pooled(engine, todo, workers, progress)


def _fork_is_safe() -> bool:
    """A POSIX system other than macOS, and no other thread in this process (a forked child
    gets only the forking thread, and locks other threads held)."""
    return sys.platform.startswith("linux") and threading.active_count() == 1


def _scan_forked(
    engine: Engine, todo: list[_Batch], workers: int, progress: Callable[[int], None] | None
) -> Iterator[FileResult]:
    from modelsec.forked import ChildDied, Children

    window = 2 * workers  # batches being scanned or waiting to be handed back
    next_batch = 0  # the next batch to hand to a child
    next_out = 0  # the next batch to hand back to the caller
    finished: dict[int, list[FileResult]] = {}
    try:
        children = Children(
            workers, engine.limits, report_progress=progress is not None, session=engine.session
        )
    except OSError:  # the system refuses another process (EAGAIN, ENOMEM): scan here
        for batch in todo:
            yield from (engine.scan_file(path, progress) for path in batch.files)
        return
    with children:
        while next_out < len(todo):
            for child in children.idle():
                if next_batch == len(todo) or children.busy() + len(finished) >= window:
                    break
                children.give(child, todo[next_batch], todo[next_batch].files)
                next_batch += 1
            for batch, hashed, outcome in children.events(PROGRESS_EVERY if progress else None):
                if hashed and progress is not None:
                    progress(hashed)
                if isinstance(outcome, ChildDied):  # fail closed: the batch's files are named
                    finished[batch.index] = [_not_scanned(path, outcome) for path in batch.files]
                elif outcome is not None:
                    finished[batch.index] = outcome
            while next_out in finished:
                yield from _registered(finished.pop(next_out))
                next_out += 1


def _scan_pooled(
    engine: Engine, todo: list[_Batch], workers: int, progress: Callable[[int], None] | None
) -> Iterator[FileResult]:
    from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    context = _context()
    hashed = context.Value("Q", 0) if progress is not None else None
    reported = 0

    def report_progress() -> None:
        nonlocal reported
        if hashed is not None and progress is not None and hashed.value > reported:
            total = hashed.value
            progress(total - reported)
            reported = total

    window = 2 * workers
    next_batch = 0  # the next batch to hand to the pool
    next_out = 0  # the next batch to hand back to the caller
    finished: dict[int, list[FileResult]] = {}
    while next_out < len(todo):
        pool = ProcessPoolExecutor(
            workers, mp_context=context, initializer=_start_worker, initargs=(engine.limits, hashed)
        )
        running: dict[Future[list[FileResult]], _Batch] = {}
        broken = False
        try:
            while next_out < len(todo) and not broken:
                while next_batch < len(todo) and len(running) + len(finished) < window:
                    try:
                        future = pool.submit(_scan_batch, todo[next_batch])
                    except BrokenProcessPool:  # a worker died since the last results
                        broken = True
                        break
                    running[future] = todo[next_batch]
                    next_batch += 1
                if broken:
                    break
                done, _ = wait(
                    running,
                    timeout=PROGRESS_EVERY if hashed is not None else None,
                    return_when=FIRST_COMPLETED,
                )
                report_progress()
                for future in done:
                    batch = running.pop(future)
                    try:
                        finished[batch.index] = future.result()
                    except Exception as exc:  # fail closed: the batch's files are named, not lost
                        finished[batch.index] = [_not_scanned(path, exc) for path in batch.files]
                        broken = True  # a dead worker breaks the pool: start a fresh one
                while next_out in finished:
                    yield from _registered(finished.pop(next_out))
                    next_out += 1
            # Batches handed to the broken pool fail with it; they are failed closed above
            # as they complete, and the rest go to the next pool.
            for future, batch in running.items():
                try:
                    finished[batch.index] = future.result()
                except Exception as exc:
                    finished[batch.index] = [_not_scanned(path, exc) for path in batch.files]
            pool.shutdown(wait=True)
        except BaseException:  # Ctrl-C, or the caller stopped iterating: stop the workers now
            _stop(pool)
            raise
    report_progress()


def _context() -> BaseContext:
    """Where fork is unsafe: forkserver if the platform has it, else spawn."""
    import multiprocessing

    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


def _not_scanned(path: Path, exc: BaseException) -> FileResult:
    from modelsec.engine import FileResult

    why = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return FileResult(
        path=os.fspath(path),
        size=0,
        sha256=None,
        format="unknown",
        incompletes=[
            Incomplete(
                os.fspath(path),
                f"the process scanning this file (and the others of its batch) failed ({why}); "
                "not inspected, failing closed",
                WORKER_DIED,
            )
        ],
    )


def _registered(results: list[FileResult]) -> list[FileResult]:
    """Findings made in a worker name threats declared by modules this process may not have
    imported (scanning code is loaded on first use): load the catalogue so that reports
    (SARIF rule descriptions) know every threat found, as after a sequential scan."""
    if any(f.threat not in THREATS for result in results for f in result.findings):
        from modelsec import formats

        formats.load_all()
    return results


def _stop(pool: ProcessPoolExecutor) -> None:
    pool.shutdown(wait=False, cancel_futures=True)
    terminate = getattr(pool, "terminate_workers", None)  # Python 3.14
    if terminate is not None:
        terminate()
        return
    for process in list(getattr(pool, "_processes", {}).values()):
        process.terminate()
