"""Start-up time of the command line: what a CI job that runs ``modelsec`` once per file pays.

    .venv/bin/python benchmarks/startup.py                     # this checkout, 20 runs each
    .venv/bin/python benchmarks/startup.py --baseline <rev>    # and another commit, side by side
    .venv/bin/python benchmarks/startup.py --instructions      # add callgrind instruction counts
    .venv/bin/python benchmarks/startup.py --rev HEAD --baseline <rev>   # two commits, not the tree

Each case is a fresh process, timed from ``exec`` to exit, as a shell would see it:

- ``python -c pass``: the same virtualenv's bare interpreter, the floor;
- ``modelsec --version``, and ``modelsec scan -q`` of a small safetensors file and of a
  small pickle (the pickle scanner's path), with the built-in ``local-default`` group.

Two bytecode states: *cached* (the modules' bytecode is on disk, as after any earlier run
or a wheel that ships it) and *uncached* (modelsec's own modules are compiled at every run:
a copy of the package without ``__pycache__`` under ``PYTHONDONTWRITEBYTECODE=1``, as in a
read-only image built without compiled bytecode; third-party packages stay cached).

Runs are interleaved (one of each case in turn) so that load from other work on the machine
spreads over every case alike. Wall time is what users wait; CPU time (user + system of the
child, from ``wait4``) is far less sensitive to other load on a shared machine, and
``--instructions`` adds valgrind's instruction count, which load does not change at all.
Writes benchmarks/out/startup.json and prints a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

REPO = Path(__file__).resolve().parent.parent
PYTHON = REPO / ".venv" / "bin" / "python"
OUT = REPO / "benchmarks" / "out"
GOALS = {"version": 0.08, "scan safetensors": 0.15}  # seconds, wall, bytecode cached (issue 14)


@dataclass(frozen=True)
class Case:
    name: str
    argv: tuple[str, ...]  # after the interpreter


@dataclass
class Series:
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    instructions: int | None = None

    def summary(self) -> dict[str, float | int | None]:
        return {
            "wall_min": min(self.wall),
            "wall_median": statistics.median(self.wall),
            "cpu_min": min(self.cpu),
            "cpu_median": statistics.median(self.cpu),
            "instructions": self.instructions,
            "runs": len(self.wall),
        }


def cases(data: Path) -> list[Case]:
    scan = ("-m", "modelsec", "scan", "-q", "--no-progress")
    return [
        Case("bare interpreter", ("-c", "pass")),
        Case("version", ("-m", "modelsec", "--version")),
        Case("scan safetensors", (*scan, str(data / "small.safetensors"))),
        Case("scan pickle", (*scan, str(data / "small.pkl"))),
    ]


def write_inputs(data: Path) -> None:
    """A 4 KiB safetensors file and a pickled dict of arrays of the same size, both clean."""
    import pickle

    data.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(14)
    tensors = {
        "embed.weight": rng.standard_normal((16, 32), dtype=np.float32),
        "embed.bias": rng.standard_normal(32, dtype=np.float32),
    }
    save_file(tensors, str(data / "small.safetensors"))
    (data / "small.pkl").write_bytes(pickle.dumps(tensors, protocol=4))


def source_tree(rev: str, into: Path) -> Path:
    """``src/`` of commit ``rev`` (git archive: the shared checkout's state is not touched)."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", rev, "src"], check=True, capture_output=True
    ).stdout
    tar_path = into / "src.tar"
    tar_path.write_bytes(archive)
    with tarfile.open(tar_path) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def environment(src: Path, cached: bool) -> dict[str, str]:
    """Run ``modelsec`` from ``src`` (ahead of the editable install on sys.path)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH")}
    env |= {"PYTHONPATH": str(src), "NO_COLOR": "1", "TERM": "dumb"}
    if not cached:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def uncached_copy(src: Path, into: Path) -> Path:
    copy = into / "uncached-src"
    shutil.copytree(src, copy, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return copy


def run_once(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of one child process (CPU from the kernel's accounting)."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(argv)} exited {proc.returncode}:\n{stderr}")
    return wall, usage.ru_utime + usage.ru_stime


def instructions(argv: list[str], env: dict[str, str]) -> int:
    """Instructions executed (valgrind callgrind): independent of machine load."""
    proc = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *argv],
        env=env,
        capture_output=True,
        text=True,
    )
    found = re.search(r"Collected\s*:\s*(\d+)", proc.stderr)
    if not found:
        raise SystemExit(f"no instruction count from valgrind:\n{proc.stderr[-2000:]}")
    return int(found.group(1))


def measure(
    label: str, src: Path, cached: bool, all_cases: list[Case], runs: int, count_instructions: bool
) -> dict[str, Series]:
    env = environment(src, cached)
    check = subprocess.run(
        [str(PYTHON), "-c", "import modelsec; print(modelsec.__file__)"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if not check.startswith(str(src)):
        raise SystemExit(f"{label}: modelsec imported from {check}, not from {src}")
    for case in all_cases:  # warm the page cache (and, when cached, write the bytecode)
        run_once([str(PYTHON), *case.argv], env)
    series = {case.name: Series() for case in all_cases}
    for _ in range(runs):
        for case in all_cases:
            wall, cpu = run_once([str(PYTHON), *case.argv], env)
            series[case.name].wall.append(wall)
            series[case.name].cpu.append(cpu)
    if count_instructions:
        for case in all_cases:
            series[case.name].instructions = instructions([str(PYTHON), *case.argv], env)
    return series


def table(results: dict[str, dict[str, dict[str, Series]]], all_cases: list[Case]) -> str:
    labels = list(results)
    header = ["case", "bytecode"]
    for label in labels:
        header += [f"{label} wall min / median", f"{label} CPU median"]
        if any(s.instructions is not None for state in results[label].values() for s in state.values()):
            header.append(f"{label} instructions")
    header.append("goal (wall)")
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for state in ("cached", "uncached"):
        for case in all_cases:
            row = [case.name, state]
            for label in labels:
                s = results[label][state][case.name]
                row += [
                    f"{min(s.wall):.3f} / {statistics.median(s.wall):.3f} s",
                    f"{statistics.median(s.cpu):.3f} s",
                ]
                if len(header) > 2 + 2 * len(labels) + 1:
                    row.append(f"{s.instructions / 1e6:.0f} M" if s.instructions else "-")
            goal = GOALS.get(case.name)
            row.append(f"< {goal} s" if goal and state == "cached" else "")
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=20, help="runs per case and state (default 20)")
    parser.add_argument("--baseline", metavar="REV", help="also measure commit REV (git archive)")
    parser.add_argument(
        "--rev",
        metavar="REV",
        help="measure commit REV instead of the working tree (in a shared checkout, others' "
        "uncommitted edits stay out of the figures)",
    )
    parser.add_argument("--instructions", action="store_true", help="add callgrind instruction counts")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="modelsec-startup-") as tmp:
        work = Path(tmp)
        write_inputs(work / "data")
        all_cases = cases(work / "data")
        trees = {"this checkout": REPO / "src"}
        if args.rev:
            (work / "rev").mkdir()
            trees = {args.rev: source_tree(args.rev, work / "rev")}
        if args.baseline:
            (work / "baseline").mkdir()
            trees = {args.baseline: source_tree(args.baseline, work / "baseline"), **trees}
        results: dict[str, dict[str, dict[str, Series]]] = {}
        for label, src in trees.items():
            (work / label.replace("/", "_")).mkdir(exist_ok=True)
            results[label] = {
                "cached": measure(label, src, True, all_cases, args.runs, args.instructions),
                "uncached": measure(
                    label,
                    uncached_copy(src, work / label.replace("/", "_")),
                    False,
                    all_cases,
                    args.runs,
                    args.instructions,
                ),
            }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "startup.json").write_text(
        json.dumps(
            {
                label: {
                    state: {name: s.summary() for name, s in by_case.items()}
                    for state, by_case in states.items()
                }
                for label, states in results.items()
            },
            indent=1,
        )
    )
    print(table(results, all_cases))


if __name__ == "__main__":
    main()
