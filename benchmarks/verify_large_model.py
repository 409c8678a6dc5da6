"""How long does ``modelsec verify`` take on a 5 GiB model, and how much memory?

Writes (once, cached under .cache/bench/data/verify_5g/) a sharded safetensors model of
5 GiB of random weights (5 x 1 GiB shards, the index and a config), scans it with
``modelsec scan --format json`` for the record, then times ``modelsec verify --report``
as a user runs it (a subprocess: interpreter start included) against two baselines over
the same files: GNU ``sha256sum`` and a bare Python read + SHA-256 loop.

    .venv/bin/python benchmarks/verify_large_model.py [--repeat 3] [--gib 5] [--jobs 1 2]

The files stay in the page cache between runs (23 GiB of RAM here): the figures are the
hashing cost. Cold-cache runs add the disk's read time; dropping the page cache of a
machine shared with other jobs is not something a benchmark should do.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

from tools import BENCH_ENVS

REPO = Path(__file__).resolve().parent.parent
MODELSEC = [sys.executable, "-m", "modelsec"]


def make_model(root: Path, gib: int) -> Path:
    model = root / f"verify_{gib}g"
    done = model / ".complete"
    if done.exists():
        return model
    model.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(13)
    weight_map: dict[str, str] = {}
    for shard in range(gib):
        name = f"model-{shard + 1:05d}-of-{gib:05d}.safetensors"
        tensors = {
            f"layers.{shard}.{part}.weight": rng.random((8192, 8192), dtype=np.float32) for part in range(4)
        }  # 4 x 256 MiB = 1 GiB per shard
        save_file(tensors, str(model / name))
        weight_map.update({key: name for key in tensors})
        print(f"wrote {name}", file=sys.stderr)
    (model / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    (model / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"]}))
    done.touch()
    return model


def files_of(model: Path) -> list[Path]:
    return sorted(p for p in model.iterdir() if p.is_file() and p.name != ".complete")


def timed(command: list[str]) -> tuple[float, subprocess.CompletedProcess[bytes]]:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True)
    return time.perf_counter() - started, done


# `modelsec verify` as the console script runs it, reporting its own peak RSS on the last
# line of stderr (RUSAGE_CHILDREN would report the largest child so far: the scan).
VERIFY_WITH_RSS = (
    "import resource, sys\n"
    "from modelsec.cli.main import main\n"
    "code = main(sys.argv[1:])\n"
    "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def python_read_and_hash(paths: list[Path]) -> float:
    started = time.perf_counter()
    buffer = bytearray(4 << 20)
    for path in paths:
        digest = hashlib.sha256()
        with open(path, "rb", buffering=0) as handle:
            while count := handle.readinto(buffer):
                digest.update(memoryview(buffer)[:count])
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--gib", type=int, default=5)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2], help="verify --jobs values to time")
    args = parser.parse_args()

    model = make_model(BENCH_ENVS / "data", args.gib)
    paths = files_of(model)
    size = sum(p.stat().st_size for p in paths)
    report = BENCH_ENVS / "data" / f"verify_{args.gib}g.scan.json"
    scan_seconds, scan = timed(
        [*MODELSEC, "scan", str(model), "--format", "json", "-o", str(report), "--no-progress"]
    )
    if scan.returncode not in (0, 1):
        print(scan.stderr.decode(), file=sys.stderr)
        return 2
    python_read_and_hash(paths)  # warm the page cache once, not timed

    verify: dict[int, list[float]] = {jobs: [] for jobs in args.jobs}
    sha256sum, bare = [], []
    peak_kib = 0
    for _ in range(args.repeat):
        for jobs in args.jobs:
            seconds, done = timed(
                [
                    sys.executable,
                    "-c",
                    VERIFY_WITH_RSS,
                    "verify",
                    str(model),
                    "--report",
                    str(report),
                    "--no-progress",
                    "--jobs",
                    str(jobs),
                ]
            )
            if done.returncode != 0:
                print(done.stdout.decode() + done.stderr.decode(), file=sys.stderr)
                return 2
            verify[jobs].append(seconds)
            peak_kib = max(peak_kib, int(done.stderr.decode().split()[-1]))
        sha256sum.append(timed(["sha256sum", *map(str, paths)])[0])
        bare.append(python_read_and_hash(paths))

    gib = size / (1 << 30)
    print(f"model: {len(paths)} files, {gib:.2f} GiB ({model})")
    print(f"modelsec scan (for the record, once): {scan_seconds:.1f} s")
    rows = [(f"modelsec verify --jobs {jobs}", runs) for jobs, runs in verify.items()]
    for label, runs in rows + [("sha256sum", sha256sum), ("python read + sha256", bare)]:
        best = min(runs)
        print(
            f"{label:<26} median {statistics.median(runs):6.2f} s  best {best:6.2f} s  "
            f"({gib / best:.2f} GiB/s)"
        )
    print(f"modelsec verify peak RSS: {peak_kib / 1024:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
