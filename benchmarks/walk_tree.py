"""How long listing a model directory takes: the engine's walk against plain ``os.walk``.

The engine's walk checks every entry's type (to report FIFOs, devices, sockets, link
loops and unlistable directories instead of skipping them); this measures what that costs
on a large tree of empty files, where listing is all there is to do.

    .venv/bin/python benchmarks/walk_tree.py [--dirs 200] [--files 100] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from modelsec.engine import Engine, ScanReport


def make_tree(root: Path, dirs: int, files: int) -> None:
    for d in range(dirs):
        folder = root / f"d{d // 20:03d}" / f"d{d:04d}"
        folder.mkdir(parents=True)
        for f in range(files):
            (folder / f"f{f:04d}.bin").touch()


def engine_walk(root: Path) -> int:
    report = ScanReport(target=str(root))
    count = sum(1 for _ in Engine()._walk(root, report))
    assert not report.incompletes and not report.findings
    return count


def os_walk_baseline(root: Path) -> int:
    """The shape of the walk before issue 10: os.walk, then a stat per entry."""
    count = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if not path.is_symlink() and path.is_file():
                count += 1
    return count


def timed(walk: Callable[[Path], int], root: Path, runs: int) -> tuple[float, int]:
    times, count = [], 0
    for _ in range(runs):
        started = time.perf_counter()
        count = walk(root)
        times.append(time.perf_counter() - started)
    return statistics.median(times), count


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dirs", type=int, default=200)
    parser.add_argument("--files", type=int, default=100, help="files per directory")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="modelsec-walk-") as tmp:
        root = Path(tmp)
        make_tree(root, args.dirs, args.files)
        print(f"tree: {args.dirs} directories x {args.files} files; median of {args.runs} runs (warm cache)")
        for name, walk in (("engine walk", engine_walk), ("os.walk + stat", os_walk_baseline)):
            seconds, count = timed(walk, root, args.runs)
            print(
                f"  {name:<16} {count:>7} files  {seconds * 1000:8.1f} ms  "
                f"{seconds / count * 1e6:6.2f} us/file"
            )


if __name__ == "__main__":
    main()
