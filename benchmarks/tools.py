"""The scanners we compare against, each in its own virtualenv under .cache/bench/.

Every tool is driven through its own command line, as a user would run it, and its answer
for one file is reduced to FLAGGED, CLEAN or FAILED (the tool errored or gave up).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH_ENVS = REPO / ".cache" / "bench"

# Pinned competitor versions (PyPI).
VERSIONS = {
    "picklescan": "picklescan==1.0.5",
    "modelscan": "modelscan==0.8.8",
    "modelaudit": "modelaudit==0.2.54",
    "fickling": "fickling==0.1.12",
}
EXTRA_REQUIREMENTS = {"fickling": ["typing_extensions==4.15.0"]}

FLAGGED, CLEAN, FAILED = "flagged", "clean", "failed"


@dataclass
class Answer:
    verdict: str
    seconds: float
    detail: str = ""


def ensure_tool(name: str) -> Path:
    """Create the tool's venv and install its pinned version (once)."""
    venv = BENCH_ENVS / name
    stamp = venv / ".installed"
    if not stamp.exists():
        print(f"installing {VERSIONS[name]} into {venv} ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "-q", VERSIONS[name], *EXTRA_REQUIREMENTS.get(name, [])],
            check=True,
        )
        stamp.write_text(VERSIONS[name])
    return venv / "bin"


def _source_key() -> str:
    """A digest of what a wheel of this checkout is built from."""
    digest = hashlib.sha256((REPO / "pyproject.toml").read_bytes())
    for path in sorted((REPO / "src").rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def ensure_modelsec_wheel() -> Path:
    """modelsec as users install it: a wheel of this checkout (its state now, committed or
    not) in a virtualenv of its own, with its pinned dependencies and bytecode compiled at
    install, as the other tools have. The checkout's .venv is an editable install, whose
    import hook costs every run about 10 ms of start-up that an installed wheel does not
    pay. Rebuilt when the sources change; older builds are removed."""
    key = _source_key()
    venv = BENCH_ENVS / f"modelsec-wheel-{key}"
    stamp = venv / ".installed"
    if not stamp.exists():
        for old in BENCH_ENVS.glob("modelsec-wheel-*"):
            shutil.rmtree(old, ignore_errors=True)
        print(f"installing a wheel of this checkout into {venv} ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        with tempfile.TemporaryDirectory() as wheels:
            python = str(REPO / ".venv" / "bin" / "python")
            subprocess.run(
                [python, "-m", "pip", "wheel", "-q", "--no-deps", "-w", wheels, str(REPO)], check=True
            )
            built = sorted(Path(wheels).glob("modelsec-*.whl"))
            subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(built[-1])], check=True)
        stamp.write_text(key)
    return venv / "bin"


def bench_env() -> dict[str, str]:
    """The environment users have: bytecode caching on (this machine's shell turns it off,
    which would add module compilation to every Python tool's time), no colours."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return env | {"NO_COLOR": "1", "TERM": "dumb"}


def _run(cmd: list[str], timeout: float) -> tuple[int | None, str, float]:
    started = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=bench_env())
        return proc.returncode, proc.stdout + proc.stderr, time.perf_counter() - started
    except subprocess.TimeoutExpired:
        return None, "timeout", time.perf_counter() - started


def modelsec(path: Path, timeout: float) -> Answer:
    cmd = [str(REPO / ".venv" / "bin" / "modelsec"), "scan", "-q", "--no-progress", str(path)]
    rc, out, secs = _run(cmd, timeout)
    verdict = {0: CLEAN, 1: FLAGGED}.get(rc if rc is not None else -1, FAILED)
    return Answer(verdict, secs, out[-300:])


def picklescan(path: Path, timeout: float) -> Answer:
    rc, out, secs = _run([str(ensure_tool("picklescan") / "picklescan"), "-p", str(path)], timeout)
    # 0 clean, 1 dangerous globals found, 2 scan error
    verdict = {0: CLEAN, 1: FLAGGED}.get(rc if rc is not None else -1, FAILED)
    return Answer(verdict, secs, out[-300:])


def modelscan(path: Path, timeout: float) -> Answer:
    rc, out, secs = _run([str(ensure_tool("modelscan") / "modelscan"), "-p", str(path)], timeout)
    # 0 no issues, 1 issues found, 2 scan error, 3 no supported files
    verdict = {0: CLEAN, 1: FLAGGED, 3: CLEAN}.get(rc if rc is not None else -1, FAILED)
    return Answer(verdict, secs, out[-300:])


def modelaudit(path: Path, timeout: float) -> Answer:
    rc, out, secs = _run(
        [str(ensure_tool("modelaudit") / "modelaudit"), "scan", "--no-cache", "--format", "json", str(path)],
        timeout,
    )
    # 0 no issues, 1 issues found, 2 errors during the scan
    verdict = {0: CLEAN, 1: FLAGGED}.get(rc if rc is not None else -1, FAILED)
    return Answer(verdict, secs, out[-300:])


def fickling(path: Path, timeout: float) -> Answer:
    if path.is_dir():
        return Answer(FAILED, 0.0, "fickling scans single pickle files")
    rc, out, secs = _run([str(ensure_tool("fickling") / "fickling"), "--check-safety", str(path)], timeout)
    if rc is None:
        return Answer(FAILED, secs, out)
    if rc == 0:
        return Answer(CLEAN, secs, out[-300:])
    # fickling exits non-zero both for "unsafe" and for a crash on a non-pickle.
    crashed = "Traceback" in out and "Severity" not in out
    return Answer(FAILED if crashed else FLAGGED, secs, out[-300:])


TOOLS: dict[str, Callable[[Path, float], Answer]] = {
    "modelsec": modelsec,
    "picklescan": picklescan,
    "modelscan": modelscan,
    "modelaudit": modelaudit,
    "fickling": fickling,
}


def tool_version(name: str) -> str:
    if name == "modelsec":
        out = subprocess.run(
            [str(REPO / ".venv" / "bin" / "modelsec"), "--version"], capture_output=True, text=True
        ).stdout.strip()
        return out.replace("modelsec ", "")
    return VERSIONS[name].split("==", 1)[1]


def dump(obj: object) -> str:
    return json.dumps(obj, indent=2)
