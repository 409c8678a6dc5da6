"""The per-source limits (requestDeadline, scanDeadline, maxResponseBytes, maxListPages)
from the command line: `modelsec scan --source-option KEY=VALUE`, the real CLI against the
test Hub. (From a ModelSource: spec.limits, tests/integrity/test_verify_bom_cluster.py.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from hf_server import HubServer


def scan(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).with_name("modelsec")), "scan", *args, "-f", "json", "--no-progress"],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_max_list_pages_from_the_command_line(hub: HubServer) -> None:
    hub.ignore_blobs = True  # sizes come from the paginated tree API
    hub.tree_page_size = 2
    hub.add_repo("acme/paged", {f"file-{i}.txt": b"x\n" for i in range(5)})
    endpoint = f"--source-option=endpoint={hub.url}"
    unbounded = scan("hf://acme/paged", endpoint)
    assert unbounded.returncode == 0, unbounded.stdout + unbounded.stderr
    bounded = scan("hf://acme/paged", endpoint, "--source-option", "maxListPages=1")
    assert bounded.returncode == 2, bounded.stdout + bounded.stderr
    document = json.loads(bounded.stdout)
    text = json.dumps(document)
    assert "MS-SRC-016" in text and "more than 1 pages (maxListPages)" in text


def test_a_bad_limit_is_refused_naming_the_key(hub: HubServer) -> None:
    hub.add_repo("acme/m", {"config.json": b"{}"})
    done = scan("hf://acme/m", f"--source-option=endpoint={hub.url}", "--source-option", "requestDeadline=-1")
    assert done.returncode == 2
    assert "requestDeadline" in done.stdout and "MS-SRC-002" in done.stdout
