"""Wall time and peak memory on 1 GiB models, for modelsec and the alternatives.

    .venv/bin/python benchmarks/large_files.py [--tools modelsec,picklescan,...] [--repeat 3]

The baseline is what any scanner that fingerprints must at least do: read the file once
and hash it with SHA-256 (`openssl dgst -sha256`, the same OpenSSL that Python's hashlib
uses; coreutils' sha256sum is several times slower on machines without SHA extensions
and would flatter everyone). Each tool runs as a user would run it, under GNU time for its peak RSS; the
page cache is warmed first so that every tool, and the baseline, reads from memory.
Targets for modelsec: peak memory under 150 MB, wall time within 1.5x of the baseline.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time
from pathlib import Path

from make_large_models import ensure
from tools import REPO, bench_env, ensure_tool

TIME = "/usr/bin/time"
BASELINE = "read + SHA-256 (baseline)"


def measure(cmd: list[str], repeat: int) -> tuple[float, int, int]:
    """(median wall seconds, max peak RSS in KiB, last exit code) over ``repeat`` runs."""
    walls, peaks, rc = [], [], 0
    for _ in range(repeat):
        started = time.perf_counter()
        try:
            proc = subprocess.run(
                [TIME, "-f", "%M", *cmd], capture_output=True, text=True, timeout=900, env=bench_env()
            )
        except subprocess.TimeoutExpired:
            return float("inf"), 0, -1
        walls.append(time.perf_counter() - started)
        lines = proc.stderr.strip().splitlines()
        peaks.append(int(lines[-1]) if lines and lines[-1].isdigit() else 0)
        rc = proc.returncode
    return statistics.median(walls), max(peaks), rc


def commands(tool: str, path: Path) -> list[str] | None:
    if tool == BASELINE:
        files = [str(p) for p in sorted(path.rglob("*")) if p.is_file()] if path.is_dir() else [str(path)]
        return ["openssl", "dgst", "-sha256", *files]
    if tool == "modelsec":
        return [str(REPO / ".venv/bin/modelsec"), "scan", "-q", "--no-progress", str(path)]
    bin_dir = ensure_tool(tool)
    return {
        "picklescan": [str(bin_dir / "picklescan"), "-p", str(path)],
        "modelscan": [str(bin_dir / "modelscan"), "-p", str(path)],
        "modelaudit": [str(bin_dir / "modelaudit"), "scan", "--no-cache", str(path)],
        "fickling": None if path.is_dir() else [str(bin_dir / "fickling"), "--check-safety", str(path)],
    }[tool]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tools", default="modelsec,picklescan,modelscan,modelaudit,fickling")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--size-gib", type=float, default=1.0)
    args = parser.parse_args()
    models = ensure(args.size_gib)
    tools = [BASELINE, *args.tools.split(",")]
    print("| model | tool | wall (median) | vs baseline | peak RSS | exit |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, path in models.items():
        files = [str(p) for p in sorted(path.rglob("*")) if p.is_file()] if path.is_dir() else [str(path)]
        subprocess.run(["cat", *files], stdout=subprocess.DEVNULL, check=True)  # warm the cache
        baseline = None
        for tool in tools:
            cmd = commands(tool, path)
            if cmd is None:
                continue
            wall, peak_kib, rc = measure(cmd, args.repeat)
            baseline = baseline or wall
            print(
                f"| {name} | {tool} | {wall:.2f} s | {wall / baseline:.2f}x | {peak_kib / 1024:.0f} MiB | {rc} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
