"""The fuzzing campaign of issue 10: coverage-guided fuzzing (atheris, libFuzzer) of every
parser that reads untrusted bytes, in chunks, resumable, in the background.

    nice -n 19 .venv/bin/python benchmarks/fuzz_campaign.py \\
        --parser all --inputs 1000000 --jobs 2 --out benchmarks/out/fuzz

Each parser has a directory ``OUT/<parser>/`` (layout in tests/fuzz/worker.py). A chunk is
one worker process (``tests/fuzz/worker.py fuzz``) that runs ``--chunk`` inputs and exits;
its counts are merged into ``OUT/<parser>/state.json``, so the command can be stopped at
any time and run again: it continues from the inputs already run and from the coverage
corpus libFuzzer kept. Each free job takes the parser that has had the least worker time,
so every parser gets about the same CPU and the fast ones reach ``--inputs`` first.
``--inputs`` counts mutated inputs: every chunk starts by rerunning the corpus and seeds,
and those replays are executions but not new inputs, so they do not count towards it.

Per input: 5 s (libFuzzer's -timeout) and 256 MiB of address space over the worker's
baseline (RLIMIT_AS). A hang or a native crash ends its chunk; the input libFuzzer wrote is
replayed in a fresh process to locate it, recorded as a finding, and the parser's next
chunk starts. Every new finding is replayed (``confirmed``: it reproduces in a fresh
process) and minimised. ``--report`` prints the table that docs/benchmarks.md records.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
FUZZ = REPO / "tests" / "fuzz"
WORKER = FUZZ / "worker.py"
sys.path.insert(0, str(FUZZ))

from harness import PARSERS  # noqa: E402

REPLAY_SECONDS = 120  # a replay of one input: 5 s of alarm plus start-up, with room to spare
MINIMISE_SECONDS = 300


@dataclass
class ParserState:
    """Everything a parser's campaign has run so far (``OUT/<parser>/state.json``)."""

    parser: str
    inputs: int = 0
    replays: int = 0  # of inputs: corpus files rerun as chunks started (counted from 2026-12-07)
    # of inputs, at most this many were replays run before they were counted: the chunks
    # run until then times the corpus and seed files (set once, when counting began)
    uncounted_replays: int = 0
    chunks: int = 0
    seconds: float = 0.0  # worker wall time spent on inputs (start-up excluded)
    peak_rss: int = 0  # the largest worker RSS seen (bytes)
    baseline_rss: int = 0  # worker RSS before its first input (largest seen)
    slowest_seconds: float = 0.0
    restarts: int = 0  # chunks that ended on a hang or a native crash
    findings: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path, parser: str) -> ParserState:
        if path.exists():
            return cls(**json.loads(path.read_text()))
        return cls(parser)

    @property
    def mutated(self) -> int:
        """Inputs libFuzzer made by mutation (at least): executions less corpus replays."""
        return max(0, self.inputs - self.replays - self.uncounted_replays)

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1, sort_keys=True))
        tmp.replace(path)

    def merge_run(self, run: dict[str, Any]) -> list[str]:
        """Add one worker run's counts; the keys of findings not seen before."""
        self.inputs += int(run["inputs"])
        self.replays += int(run.get("replays", 0))
        self.seconds += float(run["seconds"])
        self.peak_rss = max(self.peak_rss, int(run["peak_rss"]))
        self.baseline_rss = max(self.baseline_rss, int(run["baseline_rss"]))
        self.slowest_seconds = max(self.slowest_seconds, float(run["slowest_seconds"]))
        new = []
        for key, found in run["findings"].items():
            entry = self.findings.get(key)
            if entry is None:
                new.append(key)
                self.findings[key] = dict(found)
            else:
                entry["count"] = int(entry["count"]) + int(found["count"])
                entry["size"] = min(int(entry["size"]), int(found["size"]))
        return new


class Campaign:
    def __init__(self, out: Path, target_inputs: int, chunk: int, python: str) -> None:
        self.out = out
        self.target_inputs = target_inputs
        self.chunk = chunk
        self.python = python
        self.lock = threading.Lock()
        self.states: dict[str, ParserState] = {}

    def directory(self, parser: str) -> Path:
        return self.out / parser

    def state(self, parser: str) -> ParserState:
        if parser not in self.states:
            directory = self.directory(parser)
            directory.mkdir(parents=True, exist_ok=True)
            state = ParserState.load(directory / "state.json", parser)
            self.states[parser] = state
            for leftover in sorted(directory.glob("run-*.json")):  # a run cut short last time
                self._absorb(parser, leftover)
            self._collect_artifacts(parser)
        return self.states[parser]

    def replays_per_chunk(self, parser: str) -> int:
        """The corpus and seed files a chunk of this parser reruns before it mutates."""
        directory = self.directory(parser)
        return sum(
            1
            for kept in ("corpus", "seeds")
            if (directory / kept).is_dir()
            for _ in (directory / kept).iterdir()
        )

    # -- one chunk ----------------------------------------------------------------------

    def run_chunk(self, parser: str, job: int, inputs: int) -> None:
        directory = self.directory(parser)
        log = directory / f"worker-{job}.log"
        command = [
            self.python,
            str(WORKER),
            "fuzz",
            "--parser",
            parser,
            "--inputs",
            str(inputs),
            "--dir",
            str(directory),
            "--job",
            str(job),
        ]
        with open(log, "wb") as out:
            proc = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, cwd=REPO, check=False)
        run = directory / f"run-{job}.json"
        with self.lock:
            state = self.states[parser]
            state.chunks += 1
            finished = self._absorb(parser, run)
            if not finished:
                state.restarts += 1
                tail = log.read_bytes()[-600:].decode("utf-8", "replace").strip().splitlines()[-3:]
                print(
                    f"[{parser}] chunk ended early (exit {proc.returncode}): {' | '.join(tail)}", flush=True
                )
            self._collect_artifacts(parser)
            state.save(directory / "state.json")
            print(f"[{parser}] {state.inputs:,} inputs, {len(state.findings)} finding class(es)", flush=True)

    def _absorb(self, parser: str, run_path: Path) -> bool:
        """Merge a worker's run file into the state (then delete it); whether it finished."""
        if not run_path.exists():
            return False
        try:
            run = json.loads(run_path.read_text())
        except ValueError:
            run_path.unlink()
            return False
        state = self.states[parser]
        for key in state.merge_run(run):
            self._confirm(parser, key, self.directory(parser) / "findings" / f"{key}.bin")
        run_path.unlink()
        return bool(run.get("done"))

    def _collect_artifacts(self, parser: str) -> None:
        """Inputs libFuzzer wrote when a chunk died (timeout-*, crash-*, oom-*, slow-*):
        replay each in a fresh process to locate it, and record it as a finding."""
        directory = self.directory(parser)
        artifacts = directory / "artifacts"
        if not artifacts.is_dir():
            return
        state = self.states[parser]
        for artifact in sorted(artifacts.iterdir()):
            prefix = artifact.name.split("-", 1)[0]
            replay = self._replay(parser, artifact)
            outcome = replay.get("outcome")
            if outcome is None:
                kind = {"timeout": "hang", "oom": "memory"}.get(prefix, "native")
                signature = replay.get("native") or f"{prefix} under libFuzzer, not reproduced alone"
                outcome = {"kind": kind, "signature": signature, "detail": replay.get("stderr", "")}
                key = f"{kind}-{_digest(signature)}"
            else:
                key = outcome["key"]
            state.inputs += 1  # the input that stopped the chunk ran, and counts
            entry = state.findings.setdefault(
                key, {"kind": outcome["kind"], "signature": outcome["signature"], "count": 0, "size": None}
            )
            entry["count"] = int(entry["count"]) + 1
            findings = directory / "findings"
            findings.mkdir(exist_ok=True)
            size = artifact.stat().st_size
            if entry["size"] is None or size <= int(entry["size"]):
                entry["size"] = size
                shutil.copyfile(artifact, findings / f"{key}.bin")
                (findings / f"{key}.json").write_text(
                    json.dumps({**outcome, "size": size, "from": prefix}, indent=1)
                )
            entry["confirmed"] = replay.get("outcome") is not None or bool(replay.get("native"))
            self._quarantine(directory, artifact.name.split("-")[-1])
            artifact.unlink()

    @staticmethod
    def _quarantine(directory: Path, digest: str) -> None:
        """Move an input that stopped a chunk out of the corpus and seeds (libFuzzer names
        both by SHA-1): every chunk starts by running the whole corpus, so an input that
        times out there under load (a slow but bounded one) would end every chunk after a
        few thousand replays, and the campaign would count little but replays."""
        for kept in (directory / "corpus" / digest, directory / "seeds" / digest):
            if kept.exists():
                (directory / "quarantine").mkdir(exist_ok=True)
                kept.replace(directory / "quarantine" / digest)

    def _replay(self, parser: str, path: Path) -> dict[str, Any]:
        command = [self.python, str(WORKER), "replay", "--parser", parser, str(path)]
        try:
            proc = subprocess.run(command, capture_output=True, cwd=REPO, timeout=REPLAY_SECONDS, check=False)
        except subprocess.TimeoutExpired:
            return {
                "outcome": {
                    "kind": "hang",
                    "signature": "hang in native code (no Python frame reached)",
                    "detail": "",
                    "key": f"hang-{_digest('native hang')}",
                }
            }
        lines = proc.stdout.decode("utf-8", "replace").strip().splitlines()
        if proc.returncode == 0 and lines:
            return json.loads(lines[-1])
        stderr = proc.stderr.decode("utf-8", "replace")
        frames = [line.strip() for line in stderr.splitlines() if line.strip().startswith("File ")]
        where = frames[0] if frames else "no Python frame"
        name = {-11: "SIGSEGV", -6: "SIGABRT", -7: "SIGBUS", -8: "SIGFPE", -9: "SIGKILL"}.get(
            proc.returncode, f"exit {proc.returncode}"
        )
        return {"outcome": None, "native": f"native crash ({name}) at {where}", "stderr": stderr[-3000:]}

    def _confirm(self, parser: str, key: str, path: Path) -> None:
        """Replay a new finding in a fresh process and minimise it; both are recorded."""
        entry = self.states[parser].findings[key]
        if not path.exists():
            return
        replay = self._replay(parser, path)
        entry["confirmed"] = bool(replay.get("outcome") and replay["outcome"]["key"] == key)
        if not entry["confirmed"]:
            return
        smallest = path.with_suffix(".min.bin")
        command = [
            self.python,
            str(WORKER),
            "minimise",
            "--parser",
            parser,
            str(path),
            "--out",
            str(smallest),
        ]
        try:
            subprocess.run(command, capture_output=True, cwd=REPO, timeout=MINIMISE_SECONDS, check=False)
        except subprocess.TimeoutExpired:
            return
        if smallest.exists():
            entry["minimised_size"] = smallest.stat().st_size

    def recheck(self, parsers: list[str]) -> None:
        """Replay every finding's saved input with the code as it is now and record what it
        gives (``now``: ``passes``, ``reproduces`` or another finding's key), with the commit."""
        commit = (
            subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"], capture_output=True, cwd=REPO, check=False
            )
            .stdout.decode()
            .strip()
        )
        for parser in parsers:
            state = self.state(parser)
            for key, entry in state.findings.items():
                path = self.directory(parser) / "findings" / f"{key}.bin"
                if not path.exists():
                    continue
                replay = self._replay(parser, path)
                outcome = replay.get("outcome")
                if outcome is None and replay.get("native"):
                    entry["now"] = replay["native"]
                elif outcome is None:
                    entry["now"] = "passes"
                else:
                    entry["now"] = (
                        "reproduces"
                        if outcome["key"] == key
                        else f"gives {outcome['key']}: {outcome['signature']}"
                    )
                entry["checked_at"] = commit
                print(f"[{parser}] {key}: {entry['now']}", flush=True)
            state.save(self.directory(parser) / "state.json")

    # -- the whole campaign ----------------------------------------------------------------

    def run(self, parsers: list[str], jobs: int) -> None:
        for parser in parsers:
            self.state(parser)
            seeds = self.directory(parser) / "seeds"
            if not seeds.is_dir():
                subprocess.run(
                    [
                        self.python,
                        str(WORKER),
                        "seeds",
                        "--parser",
                        parser,
                        "--dir",
                        str(self.directory(parser)),
                    ],
                    cwd=REPO,
                    check=True,
                )
        in_flight: dict[str, int] = {}
        stalled: dict[str, int] = {}

        def next_chunk() -> tuple[str, int, int] | None:
            """The parser that has had the least worker time so far, among those short of
            their inputs: every parser gets about the same CPU, fast ones reach the
            target first, and no round waits for the slowest chunk."""
            with self.lock:
                open_ = [
                    p
                    for p in parsers
                    if stalled.get(p, 0) < 3
                    and self.states[p].mutated + in_flight.get(p, 0) < self.target_inputs
                ]
                if not open_:
                    return None
                parser = min(open_, key=lambda p: (self.states[p].seconds, self.states[p].inputs))
                short = self.target_inputs - self.states[parser].mutated - in_flight.get(parser, 0)
                # the chunk's replays come first and do not count: run them on top
                replays = self.replays_per_chunk(parser)
                count = min(self.chunk, short + replays)
                counted = max(1, count - replays)  # the mutated inputs it should add
                in_flight[parser] = in_flight.get(parser, 0) + counted
                return parser, count, counted

        def work(job: int) -> None:
            while (item := next_chunk()) is not None:
                parser, count, counted = item
                before = self.states[parser].inputs
                try:
                    self.run_chunk(parser, job, count)
                finally:
                    with self.lock:
                        in_flight[parser] -= counted
                        # a worker that cannot start (an import error) must not loop forever
                        stalled[parser] = (
                            stalled.get(parser, 0) + 1 if self.states[parser].inputs == before else 0
                        )
                        if stalled[parser] >= 3:
                            print(f"[{parser}] three chunks in a row ran nothing; left out", flush=True)

        with ThreadPoolExecutor(max_workers=jobs) as pool:
            for future in [pool.submit(work, job) for job in range(jobs)]:
                future.result()


def _digest(text: str) -> str:
    import hashlib

    return hashlib.sha1(text.encode()).hexdigest()[:12]


def _mb(n: int) -> str:
    return f"{n / (1 << 20):.0f}"


def report(out: Path, parsers: list[str]) -> str:
    """The Markdown table of a campaign, one row per parser."""
    rows = [
        "| parser | inputs run | mutated (at least) | chunks (ended early) | crashes | hangs | memory | other | peak RSS (MiB) | "
        "baseline (MiB) | slowest input (s) | inputs/s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    details: list[str] = []
    for parser in parsers:
        path = out / parser / "state.json"
        if not path.exists():
            rows.append(f"| {parser} | not run | | | | | | | | | | |")
            continue
        state = ParserState.load(path, parser)
        kinds: dict[str, int] = {}
        for key, entry in sorted(state.findings.items()):
            kinds[entry["kind"]] = kinds.get(entry["kind"], 0) + 1
            now = f"; at {entry['checked_at']}: {entry['now']}" if entry.get("now") else ""
            details.append(
                f"- {parser}: `{key}` {entry['kind']}: {entry['signature']} "
                f"({entry['count']} input(s), smallest {entry['size']} bytes"
                f"{', confirmed' if entry.get('confirmed') else ', not reproduced alone'}{now})"
            )
        other = kinds.get("recursion", 0) + kinds.get("oracle", 0) + kinds.get("native", 0)
        rate = state.inputs / state.seconds if state.seconds else 0.0
        rows.append(
            f"| {parser} | {state.inputs:,} | {state.mutated:,} | {state.chunks} ({state.restarts}) | "
            f"{kinds.get('crash', 0)} | {kinds.get('hang', 0)} | "
            f"{kinds.get('memory', 0)} | {other} | {_mb(state.peak_rss)} | {_mb(state.baseline_rss)} | "
            f"{state.slowest_seconds:.2f} | {rate:,.0f} |"
        )
    text = "\n".join(rows)
    if details:
        text += "\n\nFinding classes (distinct signatures):\n\n" + "\n".join(details)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--parser", default="all", help=f"one of {', '.join(PARSERS)}, a comma list, or all")
    parser.add_argument(
        "--inputs",
        type=int,
        default=1_000_000,
        help="mutated inputs per parser, in total (corpus replays not counted)",
    )
    parser.add_argument("--jobs", type=int, default=1, help="worker processes at a time")
    parser.add_argument("--chunk", type=int, default=50_000, help="inputs per worker process")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "fuzz")
    parser.add_argument("--report", action="store_true", help="print the table of what has run, run nothing")
    parser.add_argument(
        "--recheck",
        action="store_true",
        help="replay every finding with the current code (fixed or not), run nothing else",
    )
    args = parser.parse_args()
    names = list(PARSERS) if args.parser == "all" else args.parser.split(",")
    unknown = [n for n in names if n not in PARSERS]
    if unknown:
        parser.error(f"unknown parser(s) {', '.join(unknown)}; known: {', '.join(PARSERS)}")
    if args.report:
        print(report(args.out, names))
        return
    if args.recheck:
        Campaign(args.out, args.inputs, args.chunk, sys.executable).recheck(names)
        return
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "machine.json").write_text(
        json.dumps(
            {
                "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
                "jobs": args.jobs,
                "nice": os.nice(0),
                "inputs": args.inputs,
                "chunk": args.chunk,
            },
            indent=1,
        )
    )
    started = time.monotonic()
    Campaign(args.out, args.inputs, args.chunk, sys.executable).run(names, args.jobs)
    print(f"campaign done in {time.monotonic() - started:,.0f} s\n")
    print(report(args.out, names))


if __name__ == "__main__":
    main()
