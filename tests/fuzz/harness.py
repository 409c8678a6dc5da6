"""The shared fuzz harness: what a target is, what counts as a finding, and the limits one
input runs under.

A *target* (one ``fuzz_<parser>.py`` module per parser, exposing ``TARGET``) calls one
public entry point of a parser that reads untrusted bytes. An input is a *finding* when:

- an exception escapes the entry point (``crash``), other than the clear refusals the
  entry point documents (``Target.expected``);
- an exception escapes a format scanner into the engine (``engine._failed`` sees it): the
  engine fails closed and reports it as ``MS-GEN-002`` ("scanner error"), so nothing is
  ALLOWED, but bad input deserved a clear error, not an internal one (``crash``);
- ``RecursionError`` (``recursion``) or ``MemoryError`` (``memory``: the worker caps its
  address space at 256 MiB above its baseline, :func:`limit_memory`);
- a target's own oracle fails (``oracle``: an answer that is not a valid response, a
  scanner error that left no incomplete behind).

Hangs (more than 5 s on one input) and native crashes (a signal in C code) kill the worker
process; libFuzzer writes the input out and the campaign (``benchmarks/fuzz_campaign.py``)
records it, then starts a new worker. See docs/benchmarks.md ("Fuzzing").
"""

from __future__ import annotations

import hashlib
import importlib
import os
import resource
import sys
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

# parser name -> target module (tests/fuzz/fuzz_<module>.py)
PARSERS: dict[str, str] = {
    "pickle": "fuzz_pickle",
    "zip": "fuzz_zip",
    "tar": "fuzz_tar",
    "7z": "fuzz_sevenzip",
    "compressed": "fuzz_compressed",
    "safetensors": "fuzz_safetensors",
    "numpy": "fuzz_numpy",
    "gguf": "fuzz_gguf",
    "protobuf": "fuzz_protobuf",
    "onnx": "fuzz_onnx",
    "tflite": "fuzz_tflite",
    "keras-config": "fuzz_keras_config",
    "keras-h5": "fuzz_keras_h5",
    "marshal": "fuzz_marshal",
    "jinja": "fuzz_jinja",
    "admission": "fuzz_admission",
    "references": "fuzz_references",
}

INPUT_SECONDS = 5  # per input, enforced by libFuzzer's -timeout in the worker
INPUT_MEMORY = 256 << 20  # address space one input may add (RLIMIT_AS above the baseline)

# Python packages whose code the worker instruments for coverage.
INSTRUMENTED = ("modelsec", "modelsec_webhook")


@dataclass(frozen=True)
class Target:
    """One parser's fuzz target.

    ``run`` calls the parser's public entry point on one input and raises only for a
    finding (its own oracle raises :class:`OracleFailure`). ``seeds`` yields starting
    inputs (test-fixture builders and, through :func:`corpus_files`, the shared corpora).
    """

    name: str
    run: Callable[[bytes], None]
    seeds: Callable[[], Iterable[bytes]]
    max_len: int = 64 << 10
    # exceptions that are the entry point's documented refusal of bad input
    expected: tuple[type[BaseException], ...] = ()
    # libFuzzer dictionary entries (magic numbers, keywords) that guide the mutator
    tokens: tuple[bytes, ...] = ()
    # a structure-aware mutator (data, max_size, seed) -> data, in place of libFuzzer's
    mutator: Callable[[bytes, int, int], bytes] | None = None


class OracleFailure(AssertionError):
    """A target's own check on the result failed (not an exception from the parser)."""


class NativeCrash(Exception):
    """A child process the target runs native code in died on a signal."""


class InputTimeout(BaseException):
    """Raised by the replay alarm (a BaseException, so ``except Exception`` in a parser
    cannot swallow it)."""


@dataclass(frozen=True)
class Outcome:
    """One finding: its class, a signature that groups inputs with the same cause, and the
    traceback that shows where."""

    kind: str  # crash | recursion | memory | oracle | hang | native
    signature: str
    detail: str

    @property
    def key(self) -> str:
        return f"{self.kind}-{hashlib.sha1(self.signature.encode()).hexdigest()[:12]}"


def load(parser: str) -> Target:
    """The target of a parser named in :data:`PARSERS`, or ``module:attr`` (tests)."""
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    module, _, attr = (PARSERS[parser] if parser in PARSERS else parser).partition(":")
    return getattr(importlib.import_module(module), attr or "TARGET")


# --- the scanner-error observer -------------------------------------------------------------

_escaped: list[BaseException] = []


def observe_scanner_errors() -> None:
    """Record every exception that escapes a format scanner into the engine (which turns it
    into an ``MS-GEN-002`` incomplete), so the fuzzer sees it as a crash."""
    from modelsec import engine
    from modelsec.bytesource import LimitExceeded

    if getattr(engine._failed, "fuzz_observer", False):
        return
    original = engine._failed

    def failed(ctx, exc):  # type: ignore[no-untyped-def]
        if not isinstance(exc, LimitExceeded):  # a limit is a clear, intended refusal
            _escaped.append(exc)
        before = len(ctx._sink.incompletes)
        original(ctx, exc)
        if len(ctx._sink.incompletes) == before:  # fail closed means an incomplete, always
            _escaped.append(OracleFailure(f"scanner error left no incomplete: {exc!r}"))

    failed.fuzz_observer = True  # type: ignore[attr-defined]
    engine._failed = failed


def check(target: Target, data: bytes) -> Outcome | None:
    """Run one input; the finding it produced, if any. Never raises (but a hang or a
    native crash stops the process: the worker's libFuzzer deals with those)."""
    _escaped.clear()
    try:
        target.run(data)
    except target.expected:
        pass
    except BaseException as exc:  # noqa: BLE001 - classifying what escaped is the point
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        _escaped.clear()
        return classify(exc)
    if _escaped:
        return classify(_escaped[0], via_engine=True)
    return None


def classify(exc: BaseException, via_engine: bool = False) -> Outcome:
    kind = (
        "memory"
        if isinstance(exc, MemoryError)
        else "recursion"
        if isinstance(exc, RecursionError)
        else "oracle"
        if isinstance(exc, OracleFailure)
        else "hang"
        if isinstance(exc, InputTimeout)
        else "native"
        if isinstance(exc, NativeCrash)
        else "crash"
    )
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [
        f
        for f in frames
        if (
            "/src/modelsec/" in f.filename
            or "/modelsec_webhook/" in f.filename
            or "/tests/fuzz/" in f.filename
        )
        and not f.filename.endswith("harness.py")
    ]
    where = ours[-1] if ours else (frames[-1] if frames else None)
    place = f"{_short(where.filename)}:{where.name}" if where else "?"
    if kind in ("oracle", "native"):
        # the message says what was wrong; drop numbers so one cause is one signature
        place = "".join(c for c in str(exc)[:80] if not c.isdigit())
    signature = f"{type(exc).__name__} in {place}" + (" (escaped a scanner)" if via_engine else "")
    detail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__, limit=-12))[-4000:]
    return Outcome(kind, signature, detail)


def _short(filename: str) -> str:
    for marker in ("/src/", "/webhook/", "/tests/"):
        if marker in filename:
            return filename.rsplit(marker, 1)[1]
    return filename.rsplit("/", 1)[-1]


# --- limits -------------------------------------------------------------------------------


def limit_memory(extra: int = INPUT_MEMORY) -> int:
    """Cap this process's address space at its current size plus ``extra``: an input that
    allocates more gets a MemoryError (recorded as ``memory``) instead of taking the
    machine. Returns the cap. No core dumps: a native crash leaves the input, not a core."""
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[0])
    cap = pages * os.sysconf("SC_PAGE_SIZE") + extra
    resource.setrlimit(resource.RLIMIT_AS, (cap, resource.RLIM_INFINITY))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    return cap


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# --- seeds --------------------------------------------------------------------------------


def corpora_root() -> Path | None:
    root = Path(os.environ.get("MODELSEC_CORPORA", REPO.parent / "shared" / "corpora"))
    return root if root.is_dir() else None


def corpus_files(accept: Callable[[Path, bytes], bool], max_size: int) -> Iterator[bytes]:
    """Files of the shared corpora (``MODELSEC_CORPORA``) and of examples/ that ``accept``
    takes (given the path and its first 64 KiB), read as seeds; bigger ones are skipped.
    The corpora are only read: seeds go to the campaign's own directory."""
    roots = [r for r in (corpora_root(), REPO / "examples") if r is not None]
    for root in roots:
        for path in sorted(root.rglob("*")):
            try:
                if not path.is_file() or path.stat().st_size > max_size:
                    continue
                data = path.read_bytes()
            except OSError:
                continue
            if accept(path, data[: 64 << 10]):
                yield data


def builder_seeds(*builders: Callable[[], bytes]) -> Iterator[bytes]:
    """Seeds from fixture builders; one that fails (a library missing) is skipped, not fatal."""
    for build in builders:
        try:
            yield build()
        except Exception as exc:  # noqa: BLE001 - a missing seed costs coverage, not the run
            print(f"fuzz: seed {getattr(build, '__name__', build)} not built: {exc!r}", file=sys.stderr)


@dataclass
class SeedSet:
    """De-duplicated seeds, each cut to the target's ``max_len``."""

    max_len: int
    seen: set[bytes] = field(default_factory=set)

    def add_all(self, seeds: Iterable[bytes]) -> None:
        for seed in seeds:
            if seed:
                self.seen.add(bytes(seed[: self.max_len]))

    def write(self, directory: Path) -> int:
        directory.mkdir(parents=True, exist_ok=True)
        for seed in self.seen:
            (directory / hashlib.sha1(seed).hexdigest()).write_bytes(seed)
        return len(self.seen)


def import_test_helpers(*parts: str) -> None:
    """Make test helper modules (``tests/<dir>/x_build.py``) importable from a target."""
    for part in parts:
        path = str(REPO / "tests" / part)
        if path not in sys.path:
            sys.path.insert(0, path)


def check_within(target: Target, data: bytes, seconds: float = INPUT_SECONDS) -> Outcome | None:
    """:func:`check` with a wall-clock alarm (replay and minimising, outside libFuzzer,
    which owns SIGALRM while it fuzzes): past ``seconds`` the input is a ``hang``, located
    where the alarm interrupted it. Code stuck in C sees the alarm only when it returns."""
    import signal

    def expired(signum, frame):  # type: ignore[no-untyped-def]
        raise InputTimeout(f"more than {seconds} s on one input")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return check(target, data)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def minimise(
    target: Target, data: bytes, outcome: Outcome, budget_seconds: float = 120.0, attempts: int = 4000
) -> bytes:
    """The smallest input found (by removing ever smaller chunks, then zeroing bytes) that
    still gives a finding with the same key. Hangs are not minimised (each try costs 5 s)."""
    import time

    if outcome.kind == "hang":
        return data
    deadline = time.monotonic() + budget_seconds

    def same(candidate: bytes) -> bool:
        nonlocal attempts
        attempts -= 1
        found = check_within(target, candidate)
        return found is not None and found.key == outcome.key

    best = data
    chunk = max(1, len(best) // 2)
    while chunk >= 1 and attempts > 0 and time.monotonic() < deadline:
        at, shrunk = 0, False
        while at < len(best) and attempts > 0 and time.monotonic() < deadline:
            candidate = best[:at] + best[at + chunk :]
            if candidate and same(candidate):
                best, shrunk = candidate, True
            else:
                at += chunk
        if not shrunk:
            chunk //= 2
    return best
