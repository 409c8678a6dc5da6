"""One fuzzing process: runs one target under atheris (libFuzzer, coverage-guided) for a
budget of inputs, or replays / minimises saved inputs. Started by the CI test
(tests/fuzz/test_fuzz_ci.py) and by ``benchmarks/fuzz_campaign.py``; not imported.

    worker.py fuzz     --parser NAME --inputs N --dir DIR [--job K]
    worker.py seeds    --parser NAME --dir DIR
    worker.py replay   --parser NAME FILE...          (one JSON line per file)
    worker.py minimise --parser NAME FILE --out FILE

``DIR`` is a parser's campaign directory: ``seeds/`` (written once), ``corpus/`` (what
libFuzzer keeps, so a later run resumes from it), ``findings/`` (``<key>.bin``, the smallest
input seen for that finding, and ``<key>.json``), ``artifacts/`` (inputs libFuzzer wrote
when a hang or a native crash stopped the process) and ``run-<job>.json`` (this run's
counts, flushed every two seconds so a killed run loses at most that).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
from harness import Outcome, Target  # noqa: E402

FLUSH_SECONDS = 2.0
SLOW_SECONDS = 1.0  # inputs slower than this are kept (slowest only) for a look


@dataclass
class RunStats:
    """Counts of one worker run, written to ``run-<job>.json``."""

    parser: str
    inputs: int = 0
    # Of ``inputs``: the corpus and seeds libFuzzer runs again when a run starts, before it
    # mutates anything (a run that a slow corpus entry stops early is mostly these).
    replays: int = 0
    seconds: float = 0.0
    baseline_rss: int = 0
    peak_rss: int = 0
    slowest_seconds: float = 0.0
    findings: dict[str, dict[str, object]] = field(default_factory=dict)
    done: bool = False


class Recorder:
    """Keeps the counts and the smallest input of every finding."""

    def __init__(self, parser: str, directory: Path, job: int, budget: int, replaying: int = 0) -> None:
        self.stats = RunStats(parser)
        self.replaying = replaying  # inputs at the start that are corpus and seed files
        self.directory = directory
        self.findings = directory / "findings"
        self.findings.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"run-{job}.json"
        self.slow = directory / f"slowest-{job}.bin"
        self.budget = budget
        self.started = time.monotonic()
        self.flushed = self.started

    def input(self, data: bytes, seconds: float, outcome: Outcome | None) -> None:
        stats = self.stats
        stats.inputs += 1
        if stats.inputs <= self.replaying:
            stats.replays += 1
        if seconds > stats.slowest_seconds:
            stats.slowest_seconds = seconds
            if seconds > SLOW_SECONDS:
                self.slow.write_bytes(data)
        if outcome is not None:
            self.finding(outcome, data)
        now = time.monotonic()
        if stats.inputs >= self.budget:
            self.flush(done=True)
            os._exit(0)  # libFuzzer has no "stop after N of my inputs"; exit is the way
        if now - self.flushed > FLUSH_SECONDS:
            self.flush()

    def finding(self, outcome: Outcome, data: bytes) -> None:
        entry = self.stats.findings.setdefault(
            outcome.key, {"kind": outcome.kind, "signature": outcome.signature, "count": 0, "size": None}
        )
        entry["count"] = int(entry["count"]) + 1  # type: ignore[call-overload]
        if entry["size"] is None or len(data) < int(entry["size"]):  # type: ignore[call-overload]
            entry["size"] = len(data)
            (self.findings / f"{outcome.key}.bin").write_bytes(data)
            (self.findings / f"{outcome.key}.json").write_text(
                json.dumps({**asdict(outcome), "size": len(data)}, indent=1)
            )
        self.flush()

    def flush(self, done: bool = False) -> None:
        stats = self.stats
        stats.seconds = round(time.monotonic() - self.started, 3)
        stats.peak_rss = harness.peak_rss_bytes()
        stats.done = done
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(stats)))
        tmp.replace(self.path)
        self.flushed = time.monotonic()


def load_instrumented(parser: str) -> Target:
    """Import the target inside atheris's import hook, so that the parser code it reaches
    reports coverage; every format module and the scanning code they import lazily are
    loaded there too (they are otherwise imported on the first input that needs them,
    outside the hook)."""
    import atheris

    with atheris.instrument_imports(include=list(harness.INSTRUMENTED)):
        target = harness.load(parser)
        from modelsec import formats

        formats.load_all()
    return target


def write_dictionary(target: Target, path: Path) -> Path | None:
    if not target.tokens:
        return None
    lines = [
        f'kw{i}="' + "".join(f"\\x{b:02x}" for b in token) + '"' for i, token in enumerate(target.tokens)
    ]
    # written aside and renamed: two jobs may start chunks of one parser together, and
    # libFuzzer must never read a dictionary the other job has just truncated
    aside = path.with_name(f"{path.name}.{os.getpid()}")
    aside.write_text("\n".join(lines) + "\n")
    aside.replace(path)
    return path


def write_seeds(target: Target, directory: Path) -> int:
    seeds = harness.SeedSet(target.max_len)
    seeds.add_all(target.seeds())
    return seeds.write(directory)


def fuzz(args: argparse.Namespace) -> None:
    import atheris

    directory = Path(args.dir)
    target = load_instrumented(args.parser)
    harness.observe_scanner_errors()
    seeds, corpus, artifacts = directory / "seeds", directory / "corpus", directory / "artifacts"
    if not seeds.is_dir():
        write_seeds(target, seeds)
    corpus.mkdir(parents=True, exist_ok=True)
    artifacts.mkdir(parents=True, exist_ok=True)
    replaying = sum(1 for kept in (corpus, seeds) for _ in kept.iterdir())
    recorder = Recorder(args.parser, directory, args.job, args.inputs, replaying)
    limited = False

    def one_input(data: bytes) -> None:
        nonlocal limited
        if not limited:  # after libFuzzer has loaded the corpus: the cap is for inputs
            limited = True
            harness.limit_memory()
            recorder.stats.baseline_rss = harness.peak_rss_bytes()
        started = time.perf_counter()
        outcome = harness.check(target, data)
        recorder.input(data, time.perf_counter() - started, outcome)

    argv = [
        sys.argv[0],
        f"-timeout={harness.INPUT_SECONDS}",
        "-rss_limit_mb=0",
        "-malloc_limit_mb=0",
        f"-max_len={target.max_len}",
        f"-artifact_prefix={artifacts}/",
        "-print_final_stats=0",
        *([f"-seed={args.seed}"] if args.seed else []),
    ]
    dictionary = write_dictionary(target, directory / "tokens.dict")
    if dictionary:
        argv.append(f"-dict={dictionary}")
    argv += [str(corpus), str(seeds)]
    recorder.flush()
    atheris.Setup(argv, one_input, custom_mutator=target.mutator)
    atheris.Fuzz()


def replay(args: argparse.Namespace) -> None:
    import faulthandler

    faulthandler.enable()  # a native crash prints the Python frames it happened in
    target = harness.load(args.parser)
    harness.observe_scanner_errors()
    harness.limit_memory()
    for name in args.files:
        data = Path(name).read_bytes()
        # code stuck in C never sees the alarm: after twice the limit, print where it is
        # and exit (armed per input: start-up on a loaded machine is not the input's)
        faulthandler.dump_traceback_later(2 * harness.INPUT_SECONDS, exit=True)
        started = time.perf_counter()
        outcome = harness.check_within(target, data)
        faulthandler.cancel_dump_traceback_later()
        print(
            json.dumps(
                {
                    "file": name,
                    "seconds": round(time.perf_counter() - started, 3),
                    "outcome": asdict(outcome) | {"key": outcome.key} if outcome else None,
                }
            ),
            flush=True,
        )


def minimise(args: argparse.Namespace) -> None:
    target = harness.load(args.parser)
    harness.observe_scanner_errors()
    harness.limit_memory()
    data = Path(args.files[0]).read_bytes()
    outcome = harness.check_within(target, data)
    if outcome is None:
        print(json.dumps({"reproduced": False}))
        return
    smallest = harness.minimise(target, data, outcome)
    Path(args.out).write_bytes(smallest)
    print(json.dumps({"reproduced": True, "key": outcome.key, "size": len(smallest)}))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("mode", choices=["fuzz", "seeds", "replay", "minimise"])
    parser.add_argument("--parser", required=True)
    parser.add_argument("--inputs", type=int, default=1000)
    parser.add_argument("--dir")
    parser.add_argument("--job", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0, help="libFuzzer's random seed (0: from the clock)")
    parser.add_argument("--out")
    parser.add_argument("files", nargs="*")
    args = parser.parse_intermixed_args()
    if args.mode == "fuzz":
        fuzz(args)
    elif args.mode == "seeds":
        target = harness.load(args.parser)
        print(write_seeds(target, Path(args.dir) / "seeds"))
    elif args.mode == "replay":
        replay(args)
    else:
        minimise(args)


if __name__ == "__main__":
    main()
