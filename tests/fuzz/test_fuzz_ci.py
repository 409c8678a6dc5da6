"""The short-budget fuzzing run of the default test suite: every parser's target under
atheris for a couple of thousand coverage-guided inputs (``MODELSEC_FUZZ_CI_INPUTS``),
through the same worker as the million-input campaign (benchmarks/fuzz_campaign.py).

A parser passes when its budget ran to the end with no finding, or only with findings of
a class listed in :data:`KNOWN`, each of which names the regression test that pins it (a
strict xfail while it is open, a passing test when it is contained by design). An input
that stopped the worker (libFuzzer's 5 s timeout, a native crash) is replayed alone: it
fails the test if it fails there too, and is a warning if it passes (a loaded machine)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from harness import PARSERS, REPO

WORKER = Path(__file__).resolve().parent / "worker.py"
INPUTS = int(os.environ.get("MODELSEC_FUZZ_CI_INPUTS", "2000"))
PARALLEL = 2

# Finding signatures that may show up, and the regression test that covers each.
KNOWN: dict[str, dict[str, str]] = {
    "keras-h5": {
        # libhdf5 loops on some malformed files; production runs it in a separate process
        # bounded by PROBE_TIMEOUT and reports the file (MS-KERAS-022), never ALLOWED.
        "InputTimeout in fuzz/fuzz_keras_h5.py:_probe_in_child": "test_fuzz_regressions.py::test_keras_h5_libhdf5_hang_is_contained",
        "NativeCrash in libhdf crashed (SIGSEGV)": "test_fuzz_regressions.py::test_keras_h5_libhdf5_crash_is_contained",
    },
}


def _run(parser: str, root: Path) -> dict[str, Any]:
    """Run the parser's budget; a worker stopped by a hang or a native crash is started
    again (as the campaign does) after its input is replayed alone, at most three times."""
    directory = root / parser
    budget = INPUTS
    inputs, findings, artifacts, log, returncode = 0, {}, {}, "", 0
    for _ in range(3):
        command = [
            sys.executable,
            str(WORKER),
            "fuzz",
            "--parser",
            parser,
            "--inputs",
            str(budget - inputs),
            "--dir",
            str(directory),
            "--seed",
            "1",
        ]
        proc = subprocess.run(command, capture_output=True, cwd=REPO, timeout=900, check=False)
        returncode = proc.returncode
        log = proc.stdout.decode("utf-8", "replace")[-1500:] + proc.stderr.decode("utf-8", "replace")[-1500:]
        run_file = directory / "run-0.json"
        run = json.loads(run_file.read_text()) if run_file.exists() else {}
        inputs += run.get("inputs", 0)
        findings.update(run.get("findings", {}))
        for path in sorted((directory / "artifacts").glob("*")):
            artifacts[path.name] = _replay(parser, path)
            path.unlink()
            inputs += 1
        if run.get("done") or inputs >= budget:
            break
    return {
        "budget": budget,
        "inputs": inputs,
        "findings": findings,
        "artifacts": artifacts,
        "returncode": returncode,
        "log": log,
    }


def _replay(parser: str, path: Path) -> str | None:
    """What an input that stopped the worker (a libFuzzer timeout or crash) does alone, in a
    fresh process under the same limits: None when it passes (the machine was slow)."""
    proc = subprocess.run(
        [sys.executable, str(WORKER), "replay", "--parser", parser, str(path)],
        capture_output=True,
        cwd=REPO,
        timeout=300,
        check=False,
    )
    lines = proc.stdout.decode("utf-8", "replace").strip().splitlines()
    if proc.returncode != 0 or not lines:
        return f"replay died (exit {proc.returncode}): {proc.stderr.decode('utf-8', 'replace')[-800:]}"
    outcome = json.loads(lines[-1])["outcome"]
    return None if outcome is None else f"{outcome['kind']}: {outcome['signature']}"


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    pytest.importorskip("atheris", reason="atheris (test extra) is not installed")
    root = tmp_path_factory.mktemp("fuzz")
    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        results = dict(zip(PARSERS, pool.map(lambda p: _run(p, root), PARSERS)))
    return results


@pytest.mark.timeout(1200)  # the first test's set-up runs every parser (about 2 minutes on 2 idle cores)
@pytest.mark.parametrize("parser", list(PARSERS))
def test_short_fuzz_run_finds_nothing_new(parser: str, campaign: dict[str, dict[str, Any]]) -> None:
    result = campaign[parser]
    known = KNOWN.get(parser, {})
    unknown = {key: found for key, found in result["findings"].items() if found["signature"] not in known}
    assert not unknown, (
        f"{parser}: new finding(s) {json.dumps(unknown, indent=1)}; inputs are in the "
        f"worker's findings/ directory (replay: tests/fuzz/worker.py replay --parser {parser} FILE)"
    )
    stopped = {
        name: found
        for name, found in result["artifacts"].items()
        if found is not None and found.split(": ", 1)[-1] not in known
    }
    assert not stopped, (
        f"{parser}: the worker stopped on inputs that fail alone too: {stopped}\n{result['log']}"
    )
    for name in result["artifacts"]:
        if name not in stopped:  # slow only on a loaded machine (e.g. the HDF5 probe's start-up)
            warnings.warn(f"{parser}: {name} stopped the worker but passes alone", stacklevel=1)
    assert result["inputs"] >= result["budget"], (
        f"{parser}: ran {result['inputs']} of {result['budget']} inputs (exit {result['returncode']}):\n{result['log']}"
    )
