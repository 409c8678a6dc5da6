"""CPU time on the critical path of ``modelsec scan --jobs 2`` of many_files.py's directory.

With two CPUs and two workers, a parallel scan's wall time is the parent's work before its
first fork, plus the busiest worker's, plus the parent's after the last result. Wall time
moves with whatever else the machine runs; the CPU time of those three parts moves far
less, so commits can be compared on a busy machine:

    .venv/bin/python benchmarks/critical_path.py --baseline <rev>            # pickle layout
    .venv/bin/python benchmarks/critical_path.py --layout torch --rounds 9

Each round runs the CLI from a source tree (this checkout's ``src``, or ``<rev>``'s from git
archive) with bytecode cached, in a wrapper that records ``getrusage`` at the first fork,
in each worker when it ends, and in the parent around the last result. Rounds of the two
trees are interleaved. Prints medians and minimums in milliseconds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from many_files import ensure_directory  # noqa: E402
from startup import PYTHON, environment, source_tree  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

# Runs inside the measured interpreter: argv[1] is the directory, argv[2] the log file.
WRAPPER = r"""
import os, resource, sys

def cpu_ms():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return (usage.ru_utime + usage.ru_stime) * 1000

log, marks, started = sys.argv[2], {}, [0.0]
real_fork = os.fork

def fork():
    marks.setdefault("fork", cpu_ms())
    pid = real_fork()
    if pid == 0:
        started[0] = cpu_ms()
    return pid

def worker_done():
    with open(log, "a") as out:
        out.write(f"worker {os.getpid()} {cpu_ms() - started[0]:.2f}\n")

os.fork = fork
import modelsec.parallel as parallel
# (the editable install would find modelsec.forked in the checkout even for an older tree)
if hasattr(parallel, "_scan_forked"):  # workers fed over pipes (modelsec.forked)
    import modelsec.forked as forked
    serve = forked._serve
    def _serve(*args):
        try:
            return serve(*args)
        finally:
            worker_done()
    forked._serve = _serve
else:  # older trees: a ProcessPoolExecutor's workers, measured per batch
    scan_batch = parallel._scan_batch
    def _scan_batch(batch):
        try:
            return scan_batch(batch)
        finally:
            worker_done()
    parallel._scan_batch = _scan_batch
scan_in_workers = parallel.scan_in_workers

def in_workers(*args, **kwargs):
    yield from scan_in_workers(*args, **kwargs)
    marks["last"] = cpu_ms()

parallel.scan_in_workers = in_workers
from modelsec.cli.main import main
try:
    main(["scan", "-q", "--no-progress", "--jobs", "2", sys.argv[1]])
except SystemExit:
    pass
end = cpu_ms()
with open(log, "a") as out:
    out.write(f"parent {marks['fork']:.2f} {end - marks['last']:.2f}\n")
"""


def one_round(src: Path, directory: Path) -> tuple[float, float, float]:
    """(prefix, busiest worker, tail) in CPU milliseconds."""
    with tempfile.NamedTemporaryFile("r", suffix=".log") as log:
        subprocess.run(
            [str(PYTHON), "-c", WRAPPER, str(directory), log.name],
            env=environment(src, cached=True),
            check=True,
        )
        workers: dict[str, float] = {}
        prefix = tail = 0.0
        for line in log.read().splitlines():
            kind, *values = line.split()
            if kind == "worker":  # the last line per worker is its total
                workers[values[0]] = float(values[1])
            else:
                prefix, tail = float(values[0]), float(values[1])
    return prefix, max(workers.values()), tail


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--layout", choices=("pickle", "torch"), default="pickle")
    parser.add_argument("--baseline", metavar="REV", help="measure this commit's tree too")
    args = parser.parse_args()
    directory = ensure_directory(args.layout)
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"this checkout": REPO / "src"}
        if args.baseline:
            trees[args.baseline] = source_tree(args.baseline, Path(tmp))
        results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in trees}
        for src in trees.values():  # warm-up: bytecode, page cache
            one_round(src, directory)
        for _ in range(args.rounds):
            for name, src in trees.items():
                results[name].append(one_round(src, directory))
    print(f"{args.layout} layout, {args.rounds} rounds, CPU ms (median / min), {os.cpu_count()} CPUs")
    print(
        "| tree | parent until the first fork | busiest worker | parent after the last result | critical path |"
    )
    print("| --- | --- | --- | --- | --- |")
    for name, rows in results.items():
        cells = []
        for column in (*zip(*rows), [sum(row) for row in rows]):
            cells.append(f"{statistics.median(column):.0f} / {min(column):.0f}")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
