"""A directory of many small models: 1,000 pickled state dicts of 12 KiB (12 MiB in all),
scanned by modelsec, picklescan and ModelScan, side by side.

    .venv/bin/python benchmarks/many_files.py                   # 5 rounds, every tool
    .venv/bin/python benchmarks/many_files.py --layout torch    # torch.save's zip layout
    .venv/bin/python benchmarks/many_files.py --jobs 1,2        # modelsec with these --jobs
    .venv/bin/python benchmarks/many_files.py --instructions --baseline <rev>

Every tool scans the directory once per round through its own command line (tools.py:
pinned versions in virtualenvs under .cache/bench/, bytecode caching on; modelsec a wheel of
this checkout installed the same way, or with ``--dev`` the editable .venv); rounds are
interleaved so that load from other work on the machine falls on every tool alike. Wall
time is what a user waits; CPU time (user + system, the tool's worker processes included)
is what it costs the machine and moves far less with other load. modelsec scans the
directory as one model: every file is fingerprinted (SHA-256) and fully scanned.
``--instructions`` adds valgrind's instruction count of ``modelsec scan --jobs 1`` (bytecode
cached), which load does not change at all; with ``--baseline <rev>`` for that commit too.

Layouts: ``pickle`` (default), a protocol-4 pickle of an OrderedDict of float32 NumPy arrays
per file (``pickle.dump(state_dict)``), the files laid out alike (checkpoints of one model:
modelsec reuses the analysis of one for the others, modelsec/pickle/reuse.py);
``pickle-distinct``, the same with layer names that differ in every file (no reuse: the cost
of analysing each file); ``torch``, the zip that ``torch.save`` writes
(archive/data.pkl with ``_rebuild_tensor_v2`` and persistent storages), written without
torch as make_large_models.py does. Writes benchmarks/out/many_files.json and prints a
Markdown table.
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np

from make_large_models import _fake_torch, _Tensor, _TorchPickler
from tools import BENCH_ENVS, REPO, bench_env, ensure_modelsec_wheel, ensure_tool, tool_version

FILES = 1000
FILE_BYTES = 12 << 10
SHAPES = ((32, 64), (64,), (14, 64), (16,), (3, 16))  # 3,072 float32: 12 KiB per file


def _state(rng: np.random.Generator, prefix: str = "layers") -> OrderedDict[str, np.ndarray]:
    return OrderedDict(
        (
            f"{prefix}.{i}.{'weight' if len(shape) > 1 else 'bias'}",
            rng.standard_normal(shape, dtype=np.float32),
        )
        for i, shape in enumerate(SHAPES)
    )


_torch_names = functools.cache(_fake_torch)  # one set of torch-named objects for every file


def _torch_zip(state: OrderedDict[str, np.ndarray]) -> bytes:
    fake = _torch_names()
    tensors = OrderedDict(
        (name, _Tensor(str(i), array.size, array.shape)) for i, (name, array) in enumerate(state.items())
    )
    pickled = io.BytesIO()
    _TorchPickler(pickled, fake).dump(tensors)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("archive/data.pkl", pickled.getvalue())
        zf.writestr("archive/byteorder", "little")
        for i, array in enumerate(state.values()):
            zf.writestr(f"archive/data/{i}", array.tobytes())
        zf.writestr("archive/version", "3\n")
    return out.getvalue()


def ensure_directory(layout: str) -> Path:
    """The benchmark directory (written once, cached under .cache/bench/data/)."""
    root = BENCH_ENVS / "data" / f"many_{layout}_{FILES}"
    complete = root.with_name(root.name + ".complete")  # outside: the directory holds the models only
    (root / ".complete").unlink(missing_ok=True)  # where earlier versions of this script kept it
    if complete.exists():
        return root
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1000)
    suffix = ".pt" if layout == "torch" else ".pkl"
    for i in range(FILES):
        # pickle-distinct: every file names its layers differently, so no two files are laid
        # out alike and modelsec cannot reuse one file's analysis for another (pickle/reuse.py)
        state = _state(rng, f"block{i:04d}" if layout == "pickle-distinct" else "layers")
        data = _torch_zip(state) if layout == "torch" else pickle.dumps(state, protocol=4)
        (root / f"model_{i:04d}{suffix}").write_bytes(data)
    complete.write_text("")
    return root


def commands(directory: Path, jobs: list[int], dev: bool) -> dict[str, list[str]]:
    modelsec = str(REPO / ".venv" / "bin" / "modelsec") if dev else str(ensure_modelsec_wheel() / "modelsec")
    out = {"modelsec": [modelsec, "scan", "-q", "--no-progress", str(directory)]}  # as users run it
    for n in jobs:
        out[f"modelsec --jobs {n}"] = [
            modelsec,
            "scan",
            "-q",
            "--no-progress",
            "--jobs",
            str(n),
            str(directory),
        ]
    out["picklescan"] = [str(ensure_tool("picklescan") / "picklescan"), "-p", str(directory)]
    out["modelscan"] = [str(ensure_tool("modelscan") / "modelscan"), "-p", str(directory)]
    return out


def run(argv: list[str]) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds (the child and the workers it waited for) and exit code."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, env=bench_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    return time.perf_counter() - started, usage.ru_utime + usage.ru_stime, os.waitstatus_to_exitcode(status)


def count_instructions(directory: Path, baseline: str | None) -> dict[str, int]:
    """Instructions of ``modelsec scan --jobs 1`` of ``directory`` from this checkout's
    sources (and ``baseline``'s), bytecode cached: startup.py's helpers."""
    from startup import PYTHON, environment, instructions, source_tree

    argv = [str(PYTHON), "-m", "modelsec", "scan", "-q", "--no-progress", "--jobs", "1", str(directory)]
    counts: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"this checkout": REPO / "src"}
        if baseline:
            trees[baseline] = source_tree(baseline, Path(tmp))
        for label, src in trees.items():
            env = environment(src, cached=True)
            subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # bytecode
            counts[label] = instructions(argv, env)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--layout", choices=("pickle", "pickle-distinct", "torch"), default="pickle")
    parser.add_argument(
        "--jobs",
        default="",
        help="comma-separated --jobs values for modelsec, as rows beside its default (modelsec chooses)",
    )
    parser.add_argument(
        "--instructions", action="store_true", help="add callgrind instruction counts of modelsec --jobs 1"
    )
    parser.add_argument("--baseline", metavar="REV", help="with --instructions: count this commit's too")
    parser.add_argument(
        "--dev",
        action="store_true",
        help="run modelsec from the checkout's editable .venv instead of a wheel of it installed "
        "as users install it (about 10 ms more start-up per run)",
    )
    args = parser.parse_args()
    jobs = [int(n) for n in args.jobs.split(",") if n]
    directory = ensure_directory(args.layout)
    size = sum(p.stat().st_size for p in directory.iterdir())
    tools = commands(directory, jobs, args.dev)
    walls: dict[str, list[float]] = {name: [] for name in tools}
    cpus: dict[str, list[float]] = {name: [] for name in tools}
    codes: dict[str, set[int]] = {name: set() for name in tools}
    for argv in tools.values():  # warm-up: page cache, bytecode, first-run installs
        run(argv)
    for _ in range(args.rounds):
        for name, argv in tools.items():
            wall, cpu, code = run(argv)
            walls[name].append(wall)
            cpus[name].append(cpu)
            codes[name].add(code)

    rows = []
    for name in tools:
        tool = name.split()[0]
        rows.append(
            {
                "tool": name,
                "version": tool_version(tool),
                "wall_min": min(walls[name]),
                "wall_median": statistics.median(walls[name]),
                "cpu_median": statistics.median(cpus[name]),
                "exit_codes": sorted(codes[name]),
            }
        )
    counts = count_instructions(directory, args.baseline) if args.instructions else {}
    out = REPO / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "many_files.json").write_text(
        json.dumps(
            {
                "layout": args.layout,
                "files": FILES,
                "bytes": size,
                "cpus": os.cpu_count(),
                "rounds": args.rounds,
                "rows": rows,
                "instructions": counts,
            },
            indent=1,
        )
    )
    print(
        f"{FILES} files, {size / (1 << 20):.1f} MiB ({args.layout} layout), {args.rounds} rounds, "
        f"{os.cpu_count()} CPUs",
        file=sys.stderr,
    )
    print("| tool | version | wall min | wall median | CPU median | exit |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['tool']} | {r['version']} | {r['wall_min']:.2f} s | {r['wall_median']:.2f} s | "
            f"{r['cpu_median']:.2f} s | {','.join(map(str, r['exit_codes']))} |"
        )
    for label, count in counts.items():
        print(f"modelsec --jobs 1 ({label}): {count / 1e6:,.0f} M instructions")


if __name__ == "__main__":
    main()
