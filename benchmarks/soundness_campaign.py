"""The soundness campaign of issue 9: generated pickle programs against the scanner and the
real loaders, in chunks, resumable, in the background.

    nice -n 19 .venv/bin/python benchmarks/soundness_campaign.py \\
        --programs 1000000 --seed 1 --jobs 2 --out benchmarks/out/soundness

Program ``i`` of seed ``S`` is always the same file (tests/soundness/soundness_grammar.py),
so a campaign is cut into chunks of ``--chunk`` programs; each finished chunk is written to
``OUT/chunks/`` and skipped when the command is run again (same seed and chunk size).
Each worker process owns one scanner and one oracle fork server
(tests/soundness/soundness_oracle.py). The first bypass of each class is minimised (ddmin
over opcodes) and saved as ``OUT/bypasses/<class>.bin`` with its provenance beside it
(``.json``: mechanisms, production rules, the oracle's event, program indexes to rebuild
others). Figures go to ``OUT/summary.json`` and stdout; docs/benchmarks.md records runs.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
for folder in (REPO / "tests" / "soundness", REPO / "tests" / "pickle"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from soundness_grammar import generate  # noqa: E402
from soundness_judge import Scanner, judge, minimise  # noqa: E402
from soundness_oracle import Oracle  # noqa: E402
from soundness_runner import ChunkResult, merge, run_chunk  # noqa: E402

_worker: dict[str, Any] = {}


def _start_worker(timeout: float) -> None:
    _worker["scanner"] = Scanner()
    _worker["oracle"] = Oracle(timeout=timeout)


def _chunk(
    seed: int, start: int, count: int, sample_rate: float, minimised: frozenset[str]
) -> dict[str, Any]:
    result = run_chunk(
        seed,
        start,
        count,
        _worker["scanner"],
        _worker["oracle"],
        sample_rate=sample_rate,
        minimised=minimised,
    )
    return result.to_json()


def chunk_path(out: Path, seed: int, start: int, size: int) -> Path:
    return out / "chunks" / f"seed{seed}-size{size}-{start:010d}.json"


def load_chunks(out: Path, seed: int, size: int, programs: int) -> dict[int, ChunkResult]:
    done = {}
    for start in range(0, programs, size):
        path = chunk_path(out, seed, start, size)
        if path.exists():
            done[start] = ChunkResult.from_json(json.loads(path.read_text()))
    return done


def environment(oracle_info: dict[str, Any], isolation: str) -> dict[str, Any]:
    def version(module: str) -> str:
        try:
            return __import__(module).__version__
        except Exception:
            return "absent"

    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    return {
        "date": datetime.date.today().isoformat(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "commit": commit.stdout.strip(),
        "libraries": {m: version(m) for m in ("numpy", "joblib", "sklearn", "pandas", "scipy", "torch")},
        "oracle": {"isolation": isolation, **oracle_info},
    }


def save_bypasses(out: Path, summary: dict[str, Any]) -> None:
    folder = out / "bypasses"
    folder.mkdir(parents=True, exist_ok=True)
    for name, finding in summary["bypasses"].items():
        data = bytes.fromhex(finding["minimised_hex"] or finding["example_hex"])
        (folder / f"{name}.bin").write_bytes(data)
        provenance = {k: v for k, v in finding.items() if k not in ("example_hex", "minimised_hex")}
        provenance["minimised"] = bool(finding["minimised_hex"])
        provenance["bytes"] = len(data)
        (folder / f"{name}.json").write_text(json.dumps(provenance, indent=1) + "\n")


def reminimise(summary: dict[str, Any], seed: int, timeout: float) -> None:
    """Minimise each bypass class again from its first program (after the minimiser
    changed, or to refresh the examples against today's scanner)."""
    scanner, oracle = Scanner(), Oracle(timeout=timeout)
    try:
        for name, finding in summary["bypasses"].items():
            program = generate(seed, finding["indexes"][0])
            judgement = judge(program, scanner, oracle, sample_rate=0.0)
            if judgement.bypass:
                finding["minimised_hex"] = minimise(judgement, scanner, oracle, name).hex()
            else:
                finding["minimised_hex"] = ""
                finding["event"] += " (no longer a bypass when minimised again)"
    finally:
        oracle.close()
        scanner.close()


def print_summary(summary: dict[str, Any]) -> None:
    print(
        f"\nprograms {summary['programs']:,}  worker seconds {summary['seconds']:,}  "
        f"oracle runs {summary['oracle_runs']:,}  scanner {summary['scanner']}"
    )
    print(f"oracle events by kind: {summary['oracle_events']}")
    print(
        f"data-only programs {summary.get('data_only', 0):,}, of which loaded cleanly "
        f"{summary.get('data_only_loaded', 0):,} (the false-alarm candidates)"
    )
    print(f"blocked sample: {summary['blocked_sample']}")
    print("\nfamily counts: " + ", ".join(f"{k} {v:,}" for k, v in summary["families"].items()))
    for title, key in (("bypasses", "bypasses"), ("false alarms", "false_alarms")):
        print(f"\n{title}: {len(summary[key])} class(es)")
        for name, finding in summary[key].items():
            size = len(finding["minimised_hex"] or finding["example_hex"]) // 2
            print(f"  {finding['count']:8,}  {name}  ({size} bytes; {finding['event'][:110]})")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--programs", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "soundness")
    parser.add_argument("--chunk", type=int, default=1000, help="programs per chunk (resume unit)")
    parser.add_argument(
        "--sample-rate",
        type=float,
        default=0.02,
        help="share of blocked, not data-only programs the oracle also runs",
    )
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds per oracle child")
    parser.add_argument(
        "--reminimise",
        action="store_true",
        help="only minimise the first program of each bypass class of a finished run again",
    )
    args = parser.parse_args()
    if args.reminimise:
        summary = json.loads((args.out / "summary.json").read_text())
        reminimise(summary, args.seed, args.timeout)
        (args.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
        save_bypasses(args.out, summary)
        print_summary(summary)
        return

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "chunks").mkdir(exist_ok=True)
    done = load_chunks(args.out, args.seed, args.chunk, args.programs)
    todo = [s for s in range(0, args.programs, args.chunk) if s not in done]
    print(
        f"seed {args.seed}: {len(done)} chunk(s) already done, {len(todo)} to run with {args.jobs} job(s)",
        flush=True,
    )
    with Oracle() as probe:
        env = environment(probe.info, probe.isolation)
    began = time.monotonic()
    minimised = {name for c in done.values() for name, f in c.bypasses.items() if f.minimised_hex}
    with ProcessPoolExecutor(
        max_workers=args.jobs, initializer=_start_worker, initargs=(args.timeout,)
    ) as pool:
        running: dict[Future[dict[str, Any]], int] = {}
        while todo or running:
            while todo and len(running) < 2 * args.jobs:
                start = todo.pop(0)
                count = min(args.chunk, args.programs - start)
                future = pool.submit(_chunk, args.seed, start, count, args.sample_rate, frozenset(minimised))
                running[future] = start
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                start = running.pop(future)
                raw = future.result()
                chunk_path(args.out, args.seed, start, args.chunk).write_text(json.dumps(raw) + "\n")
                result = ChunkResult.from_json(raw)
                done[start] = result
                minimised |= {name for name, f in result.bypasses.items() if f.minimised_hex}
                programs = sum(c.count for c in done.values())
                print(
                    f"{programs:,}/{args.programs:,} programs; bypass classes so far "
                    f"{len(set().union(*(c.bypasses for c in done.values())))}; "
                    f"chunk {start} in {result.seconds:.0f} s",
                    flush=True,
                )
    summary = merge(list(done.values()))
    summary["wall_seconds_this_run"] = round(time.monotonic() - began, 1)
    summary["environment"] = env
    summary["seed"], summary["chunk"] = args.seed, args.chunk
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    save_bypasses(args.out, summary)
    print_summary(summary)


if __name__ == "__main__":
    main()
