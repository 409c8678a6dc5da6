"""Directories scanned by worker processes (modelsec.parallel) report exactly what a
sequential scan reports, in the same order; a worker that dies fails its files closed."""

from __future__ import annotations

import json
import os
import pickle
import signal
import struct
import threading
import zipfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from modelsec import engine as engine_module
from modelsec import parallel
from modelsec.engine import Engine, FileResult, ScanReport
from modelsec.policy import Outcome, evaluate, load_group
from modelsec.rules.base import EvaluationInput, SourceType

OS_SYSTEM = b"cos\nsystem\n(S'echo pwned'\ntR."  # protocol 0: GLOBAL os.system, REDUCE


@pytest.fixture(autouse=True)
def workers_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests are about the workers: their small directories go to workers at once,
    not after the scan here has timed a few files (engine.SCAN_HERE_FIRST, tested below)."""
    monkeypatch.setattr(engine_module, "SCAN_HERE_FIRST", False)


def _safetensors(name: str, values: int) -> bytes:
    header = json.dumps({name: {"dtype": "F32", "shape": [values], "data_offsets": [0, 4 * values]}}).encode()
    return struct.pack("<Q", len(header)) + header + b"\0" * (4 * values)


def _zip(members: dict[str, bytes]) -> bytes:
    import io

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


def model_directory(root: Path, copies: int = 4) -> Path:
    """Every kind of result a scan can give, several times over, in nested directories."""
    for i in range(copies):
        part = root / f"part{i}" / ("nested" if i % 2 else "")
        part.mkdir(parents=True, exist_ok=True)
        (part / "weights.safetensors").write_bytes(_safetensors(f"w{i}", 16 + i))
        (part / "state.pkl").write_bytes(pickle.dumps({"step": i, "lr": [0.1, 0.01]}, protocol=4))
        (part / "exploit.pkl").write_bytes(OS_SYSTEM)
        (part / "model.pt").write_bytes(_zip({"archive/data.pkl": OS_SYSTEM, "archive/version": b"3\n"}))
        (part / "tokenizer_config.json").write_text(
            json.dumps({"chat_template": "{{ cycler.__init__.__globals__.os.popen('id').read() }}"})
        )
        (part / "README.md").write_text(f"model part {i}\n")
        (part / "empty.bin").write_bytes(b"")
        (part / "pytorch_model.bin").write_bytes(b"\x00garbage that claims to be a model" * i)
    os.mkfifo(root / "part0" / "pipe.pkl")  # never opened: an incomplete naming it
    (root / "part1" / "outside.pkl").symlink_to("/etc/hostname")  # a finding, not followed
    return root


def comparable(report: ScanReport) -> dict[str, Any]:
    """Everything in a report but the timings."""
    files = []
    for result in report.files:
        fields = asdict(result)
        fields.pop("seconds")
        files.append(fields)
    return {
        "files": files,
        "findings": report.findings,
        "incompletes": report.incompletes,
        "layout_formats": report.layout_formats,
        "fingerprint": report.fingerprint,
    }


def test_workers_report_what_a_sequential_scan_reports_in_the_same_order(tmp_path, monkeypatch):
    root = model_directory(tmp_path / "model", copies=6)
    used: list[int] = []
    real = parallel.scan_in_workers

    def counting(engine, files, workers, progress=None):
        used.append(workers)
        return real(engine, files, workers, progress)

    monkeypatch.setattr(parallel, "scan_in_workers", counting)
    monkeypatch.setattr(parallel, "BATCH_FILES", 3)  # many batches, finishing out of order
    sequential = Engine(workers=1).scan_path(root)
    assert used == []
    in_workers = Engine(workers=3).scan_path(root)
    assert used == [3]
    assert len(sequential.files) == 6 * 8  # the FIFO is an incomplete, the link a finding
    assert [i.code for i in sequential.incompletes] == ["MS-GEN-004"]
    assert [f.threat for f in sequential.findings] == ["MS-FS-001"]
    assert comparable(in_workers) == comparable(sequential)


@pytest.mark.corpus
def test_workers_agree_with_a_sequential_scan_on_the_corpora(corpora: Path):
    assert comparable(Engine(workers=2).scan_path(corpora)) == comparable(
        Engine(workers=1).scan_path(corpora)
    )


def test_progress_counts_every_byte_once(tmp_path):
    root = model_directory(tmp_path / "model")
    total = sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())
    for workers in (1, 2):
        seen: list[int] = []
        Engine(workers=workers).scan_path(root, seen.append)
        assert sum(seen) == total, workers


def test_a_worker_that_dies_fails_its_files_closed_and_the_rest_are_scanned(tmp_path, monkeypatch):
    """A crash in native code or the OOM killer takes the worker down mid-file: the files of
    its batch are named as not inspected (ERROR), every other file is scanned as usual."""
    assert threading.active_count() == 1, "workers must be forked for the patch below to reach them"
    root = tmp_path / "model"
    root.mkdir()
    for i in range(40):
        (root / f"m{i:02d}.pkl").write_bytes(OS_SYSTEM if i == 33 else pickle.dumps([i], protocol=4))
    (root / "m17_crash.pkl").write_bytes(pickle.dumps([17], protocol=4))
    from modelsec.formats import pickle as pickle_format

    real_scan = pickle_format.SCANNER.scan

    def dies_on_crash(source: Any, ctx: Any) -> None:
        if ctx.path.endswith("crash.pkl"):
            os.kill(os.getpid(), signal.SIGKILL)
        real_scan(source, ctx)

    monkeypatch.setattr(pickle_format.SCANNER, "scan", dies_on_crash)
    monkeypatch.setattr(parallel, "BATCH_FILES", 4)
    report = Engine(workers=2).scan_path(root)

    assert [Path(f.path).name for f in report.files] == sorted(p.name for p in root.iterdir())
    by_name = {Path(f.path).name: f for f in report.files}
    crashed = by_name["m17_crash.pkl"]
    assert crashed.sha256 is None and crashed.incompletes
    assert "failed" in crashed.incompletes[0].reason and crashed.incompletes[0].code == "MS-GEN-002"
    assert "killed by SIGKILL" in crashed.incompletes[0].reason
    assert [f.threat for f in by_name["m33.pkl"].findings] == ["MS-PKL-100"]  # after the crash
    assert by_name["m00.pkl"].sha256 and not by_name["m00.pkl"].incompletes
    failed = [f for f in report.files if f.incompletes]
    assert 1 <= len(failed) <= 2 * 2 * 4  # the batches in flight with the crash, no more
    verdict = evaluate(load_group("local-default"), EvaluationInput(report, SourceType.LOCAL))
    assert verdict.outcome != Outcome.ALLOWED


def test_a_worker_whose_scan_raises_fails_its_files_closed_with_the_reason(tmp_path, monkeypatch):
    """An exception that escapes the engine in a worker (MemoryError while pickling results,
    say) ends that worker: its batch is named as not inspected, with the exception."""
    assert threading.active_count() == 1, "workers must be forked for the patch below to reach them"
    root = tmp_path / "model"
    root.mkdir()
    for i in range(12):
        (root / f"m{i:02d}.pkl").write_bytes(pickle.dumps([i], protocol=4))
    real_scan_file = Engine.scan_file

    def raises(self: Engine, path: Any, progress: Any = None) -> FileResult:
        if str(path).endswith("m05.pkl"):
            raise MemoryError("no room for the results")
        return real_scan_file(self, path, progress)

    monkeypatch.setattr(Engine, "scan_file", raises)
    monkeypatch.setattr(parallel, "BATCH_FILES", 2)
    report = Engine(workers=2).scan_path(root)
    failed = {Path(f.path).name: f.incompletes[0].reason for f in report.files if f.incompletes}
    assert set(failed) == {"m04.pkl", "m05.pkl"}, failed  # m05's batch, no other
    assert all("MemoryError: no room for the results" in why for why in failed.values())
    assert sum(1 for f in report.files if f.sha256) == 10


def test_a_worker_that_died_idle_is_replaced_before_it_gets_work(tmp_path):
    from modelsec.context import Limits
    from modelsec.forked import Children

    files = []
    for i in range(3):
        (tmp_path / f"m{i}.pkl").write_bytes(pickle.dumps([i], protocol=4))
        files.append(tmp_path / f"m{i}.pkl")
    with Children(1, Limits(), report_progress=False) as children:
        (idle,) = children.idle()
        os.kill(idle.pid, signal.SIGKILL)
        os.waitpid(idle.pid, 0)  # gone before it is given anything
        children.give(idle, "batch", tuple(files))
        events = []
        while not events:
            events = [event for event in children.events(None) if event[2] is not None]
    ((batch, _, results),) = events
    assert batch == "batch" and [r.sha256 is not None for r in results] == [True] * 3


def test_a_scan_abandoned_midway_leaves_no_worker_behind(tmp_path, monkeypatch):
    root = tmp_path / "model"
    root.mkdir()
    for i in range(64):
        (root / f"m{i:02d}.pkl").write_bytes(pickle.dumps([i], protocol=4))
    monkeypatch.setattr(parallel, "BATCH_FILES", 2)
    workers = _recording_forks(monkeypatch)
    results = parallel.scan_in_workers(Engine(), sorted(root.iterdir()), 2)
    assert next(results).sha256
    results.close()  # the caller stops iterating (Ctrl-C, an error in the report)
    assert len(workers) == 2
    for pid in workers:  # each worker was reaped (other children of this process may live)
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


def _recording_forks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The pids of the processes os.fork makes from now on (in this process)."""
    real_fork = os.fork
    pids: list[int] = []

    def recording() -> int:
        pid = real_fork()
        if pid:
            pids.append(pid)
        return pid

    monkeypatch.setattr(os, "fork", recording)
    return pids


def test_when_no_worker_can_be_forked_the_directory_is_scanned_here(tmp_path, monkeypatch):
    """fork refused (EAGAIN: a process limit; ENOMEM) for the second worker: the first is
    stopped and reaped, and the files are scanned in this process, with the same report."""
    import errno

    root = model_directory(tmp_path / "model", copies=2)
    sequential = Engine(workers=1).scan_path(root)
    real_fork = os.fork
    forks: list[int] = []

    def refuses_the_second(*args: Any) -> int:
        forks.append(0)
        if len(forks) == 2:
            raise OSError(errno.EAGAIN, "Resource temporarily unavailable")
        pid = real_fork()
        forks[-1] = pid
        return pid

    monkeypatch.setattr(os, "fork", refuses_the_second)
    monkeypatch.setattr(parallel, "BATCH_FILES", 3)  # batches enough for two workers
    open_before = len(os.listdir("/proc/self/fd"))
    here = Engine(workers=2).scan_path(root)
    assert len(forks) == 2
    assert comparable(here) == comparable(sequential)
    with pytest.raises(ChildProcessError):
        os.waitpid(forks[0], os.WNOHANG)  # the first worker was reaped
    assert len(os.listdir("/proc/self/fd")) == open_before  # no pipe left open


def test_where_fork_is_unsafe_a_process_pool_reports_the_same(tmp_path, monkeypatch):
    root = model_directory(tmp_path / "model", copies=2)
    monkeypatch.setattr(parallel, "_fork_is_safe", lambda: False)
    monkeypatch.setattr(parallel, "BATCH_FILES", 3)
    seen: list[int] = []
    pooled = Engine(workers=2).scan_path(root, seen.append)
    assert comparable(pooled) == comparable(Engine(workers=1).scan_path(root))
    assert sum(seen) == sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def test_small_directories_and_single_workers_stay_in_this_process(tmp_path, monkeypatch):
    def refuse(*args: Any, **kwargs: Any) -> list[FileResult]:
        raise AssertionError("worker processes started")

    monkeypatch.setattr(parallel, "scan_in_workers", refuse)
    few = tmp_path / "few"
    few.mkdir()
    for i in range(3):
        (few / f"{i}.pkl").write_bytes(pickle.dumps(i))
    assert len(Engine(workers=4).scan_path(few).files) == 3
    assert len(Engine(workers=1).scan_path(model_directory(tmp_path / "many")).files) > 8


def test_default_worker_count_follows_affinity_and_cgroup_quota(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5})
    quota = tmp_path / "cpu.max"
    monkeypatch.setattr(parallel, "CGROUP_CPU_MAX", quota)
    assert parallel.usable_cpus() == 6  # no cgroup file
    assert parallel.default_workers() == parallel.MAX_DEFAULT_WORKERS
    quota.write_text("max 100000\n")
    assert parallel.usable_cpus() == 6
    quota.write_text("150000 100000\n")  # 1.5 CPUs
    assert parallel.usable_cpus() == 1 and parallel.default_workers() == 1
    quota.write_text("200000 100000\n")
    assert parallel.default_workers() == 2


def test_cli_jobs_flag(tmp_path):
    import subprocess
    import sys

    root = model_directory(tmp_path / "model")

    def scan(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "modelsec", "scan", "--no-progress", *args, str(root)],
            capture_output=True,
            text=True,
            timeout=300,
        )

    assert scan("--jobs", "0").returncode == 4
    assert scan("--jobs", "x").returncode == 4
    documents = []
    for jobs in ("1", "3"):
        out = tmp_path / f"jobs{jobs}.json"
        result = scan("--jobs", jobs, "--format", "json", "-o", str(out))
        assert result.returncode == 1, result.stderr  # BLOCKED: os.system in exploit.pkl
        documents.append(_without_timings(json.loads(out.read_text())))
    assert documents[0] == documents[1]


def _without_timings(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_timings(v) for k, v in value.items() if "second" not in k.lower()}
    if isinstance(value, list):
        return [_without_timings(v) for v in value]
    return value


# -- scanned here first: workers only when the rest pays for them -----------------------------


def test_small_files_scanned_quickly_stay_here() -> None:
    """A thousand files at 100 µs each (checkpoints laid out alike): two workers would save
    50 ms of scanning and spend 40 ms on results crossing back, plus their start."""
    fan_out = parallel.FanOut(2)
    assert not any(fan_out.pays(100e-6, left) for left in range(999, 0, -1))


def test_slower_small_files_go_to_workers_after_a_few() -> None:
    fan_out = parallel.FanOut(2)
    decisions = [fan_out.pays(400e-6, left) for left in range(999, 989, -1)]
    assert decisions.index(True) == parallel.PACE_FILES - 1  # once the pace is known


def test_a_slow_first_file_does_not_decide_alone() -> None:
    """The first file pays for imports (tens of ms): the pace is the median of the last
    files, so one slow file among quick ones sends nothing to workers."""
    fan_out = parallel.FanOut(2)
    assert not fan_out.pays(0.04, 999)
    assert not any(fan_out.pays(100e-6, left) for left in range(998, 0, -1))


def test_very_slow_files_go_to_workers_without_waiting_for_the_pace() -> None:
    fan_out = parallel.FanOut(4)
    assert not fan_out.pays(0.1, 20)
    assert fan_out.pays(0.15, 19)  # 0.25 s spent: past SLOW_START, two files are enough


def test_the_rest_goes_to_workers_in_order(tmp_path, monkeypatch):
    """Scanned here first, then handed over: the report is the sequential one, and the
    workers got the files after those scanned here."""
    monkeypatch.setattr(engine_module, "SCAN_HERE_FIRST", True)
    monkeypatch.setattr(parallel, "FORK_COST", -1.0)  # always pays, once the pace is known
    root = model_directory(tmp_path / "model", copies=6)
    handed: list[int] = []
    real = parallel.scan_in_workers

    def counting(engine, files, workers, progress=None):
        handed.append(len(files))
        return real(engine, files, workers, progress)

    monkeypatch.setattr(parallel, "scan_in_workers", counting)
    here_first = Engine(workers=2).scan_path(root)
    assert comparable(here_first) == comparable(Engine(workers=1).scan_path(root))
    assert handed == [len(here_first.files) - parallel.PACE_FILES]
