"""``modelsec scan`` keeps its long-lived objects out of the garbage collector's way
(modelsec.heap: a fifth of a scan of many small files went to collections), and the engine
that the operator and the webhook run for weeks never does (frozen cyclic garbage would add
up there). Run in fresh interpreters: freezing is process-wide."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

FROZEN_AFTER = """
import gc, sys
{setup}
print(gc.get_freeze_count())
"""


def _frozen_after(setup: str) -> int:
    code = FROZEN_AFTER.format(setup=setup)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(done.stdout.split()[-1])


def _directory(tmp_path: Path) -> Path:
    for i in range(3):
        (tmp_path / f"m{i}.pkl").write_bytes(pickle.dumps({"w": [float(i)]}, protocol=4))
    return tmp_path


def test_the_engine_never_freezes(tmp_path: Path) -> None:
    target = _directory(tmp_path)
    assert (
        _frozen_after(f"from modelsec.engine import Engine\nEngine(workers=1).scan_path({str(target)!r})")
        == 0
    )


def test_modelsec_scan_freezes_what_it_imported(tmp_path: Path) -> None:
    target = _directory(tmp_path)
    run = f"from modelsec.cli.main import main\ntry:\n    main(['scan', '-q', '--jobs', '1', {str(target)!r}])\nexcept SystemExit:\n    pass"
    assert _frozen_after(run) > 1000
