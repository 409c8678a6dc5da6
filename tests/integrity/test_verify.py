"""``modelsec verify``: files on disk against what a scan recorded (JSON report, ML-BOM),
through the real command line; remote reports come from real scans of the test Hub."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from remote_fixtures import HubServer
from safetensors.numpy import save
from source_helpers import hf_config

from modelsec.cli.main import main
from modelsec.engine import Engine
from modelsec.integrity.verify import fingerprint
from modelsec.policy import evaluate, load_group
from modelsec.report import ModelResult, RunResult
from modelsec.report.jsonout import render
from modelsec.rules.base import EvaluationInput
from modelsec.sources import ScanOptions, parse_model_uri, scan_model

FILES = {
    "config.json": b'{"architectures": ["BertModel"], "hidden_size": 64}',
    "model.safetensors": save({"w": np.arange(262144, dtype=np.float32)}),  # 1 MiB
    "tokenizer/vocab.txt": b"[PAD]\n[UNK]\nhello\nworld\n",
}


def write_model(root: Path, files: dict[str, bytes] = FILES) -> Path:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def run(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def report_of(target: str, path: Path, **config: Any) -> Path:
    """``modelsec scan TARGET --format json -o path``, in process."""
    scanned = scan_model(parse_model_uri(target), Engine(), ScanOptions(config=config))
    group = load_group("local-default")
    verdict = evaluate(group, EvaluationInput(scanned.report, scanned.source_type, scanned.metadata))
    path.write_text(render(RunResult(group, [ModelResult(scanned, verdict)])))
    return path


@pytest.fixture
def scanned(tmp_path: Path) -> tuple[Path, Path]:
    """A model directory and the JSON report of its scan."""
    model = write_model(tmp_path / "model")
    code = main(["scan", str(model), "--format", "json", "-o", str(tmp_path / "scan.json"), "-q"])
    assert code in (0, 1)
    return model, tmp_path / "scan.json"


def lines(out: str, status: str) -> list[str]:
    return [line.split()[1] for line in out.splitlines() if line.strip().startswith(status + " ")]


def test_the_scanned_files_match(scanned: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    model, report = scanned
    code, out, _ = run("verify", str(model), "--report", str(report), capsys=capsys)
    assert code == 0, out
    assert "3 file(s)" in out and "3 OK" in out and "MATCH (exit 0)" in out


@pytest.mark.parametrize("jobs", ["1", "3"])
def test_changed_bytes_of_the_same_size_are_named(
    scanned: tuple[Path, Path], jobs: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import hashlib

    model, report = scanned
    data = bytearray(FILES["model.safetensors"])
    data[-1] ^= 0xFF  # one bit flipped in the weights: same size, different bytes
    (model / "model.safetensors").write_bytes(bytes(data))
    code, out, _ = run("verify", str(model), "--report", str(report), "--jobs", jobs, capsys=capsys)
    assert code == 1 and "3 file(s)" in out
    assert lines(out, "CHANGED") == ["model.safetensors"]
    assert hashlib.sha256(bytes(data)).hexdigest() in out
    assert hashlib.sha256(FILES["model.safetensors"]).hexdigest() in out


def test_a_different_size_is_changed_without_reading(
    scanned: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    model, report = scanned
    (model / "config.json").write_bytes(FILES["config.json"] + b" ")
    code, out, _ = run("verify", str(model), "--report", str(report), capsys=capsys)
    assert code == 1 and lines(out, "CHANGED") == ["config.json"]
    assert f"{len(FILES['config.json']) + 1} bytes on disk, {len(FILES['config.json'])} scanned" in out
    assert "read    2 file(s)" in out  # the changed one was never hashed


def test_missing_files_fail_unless_allowed(
    scanned: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    model, report = scanned
    (model / "tokenizer" / "vocab.txt").unlink()
    code, out, _ = run("verify", str(model), "--report", str(report), capsys=capsys)
    assert code == 1 and lines(out, "MISSING") == ["tokenizer/vocab.txt"]
    code, out, _ = run("verify", str(model), "--report", str(report), "--allow-missing", capsys=capsys)
    assert code == 0 and lines(out, "MISSING") == ["tokenizer/vocab.txt"]


def test_extra_files_fail_unless_ignored(
    scanned: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    model, report = scanned
    (model / "modeling_evil.py").write_text("import os\n")
    (model / ".cache" / "huggingface").mkdir(parents=True)
    (model / ".cache" / "huggingface" / "config.json.metadata").write_text("abc\n")
    code, out, _ = run("verify", str(model), "--report", str(report), capsys=capsys)
    assert code == 1
    assert lines(out, "EXTRA") == [".cache/huggingface/config.json.metadata", "modeling_evil.py"]
    code, out, _ = run(
        "verify",
        str(model),
        "--report",
        str(report),
        "--ignore",
        ".cache/",
        "--ignore",
        "*.py",
        capsys=capsys,
    )
    assert code == 0, out


@pytest.mark.timeout(30)
def test_fifos_are_never_opened(scanned: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    """A FIFO beside the model, and one in place of a scanned file: both differences,
    neither opened (opening a FIFO for reading blocks until a writer comes)."""
    model, report = scanned
    os.mkfifo(model / "pipe")
    (model / "config.json").unlink()
    os.mkfifo(model / "config.json")
    code, out, _ = run("verify", str(model), "--report", str(report), capsys=capsys)
    assert code == 1
    assert lines(out, "EXTRA") == ["pipe"] and lines(out, "CHANGED") == ["config.json"]
    assert "not a regular file (FIFO)" in out


def test_links_to_files_are_followed_links_to_directories_are_not(
    scanned: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A Hugging Face cache snapshot: every file a link into ../blobs; the loader reads
    the target's bytes, and so does verify."""
    model, report = scanned
    blobs = tmp_path / "blobs"
    blobs.mkdir()
    for name in FILES:
        (blobs / name.replace("/", "_")).write_bytes((model / name).read_bytes())
        (model / name).unlink()
        (model / name).symlink_to(blobs / name.replace("/", "_"))
    code, out, _ = run("verify", str(model), "--report", str(report), capsys=capsys)
    assert code == 0, out

    (model / "more").symlink_to(blobs, target_is_directory=True)
    code, out, _ = run("verify", str(model), "--report", str(report), capsys=capsys)
    assert code == 1 and lines(out, "EXTRA") == ["more"] and "link to a directory" in out
    (model / "more").unlink()
    (model / "dangling").symlink_to(tmp_path / "nowhere")
    code, out, _ = run("verify", str(model), "--report", str(report), capsys=capsys)
    assert code == 1 and lines(out, "EXTRA") == ["dangling"]


def test_a_one_file_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "scanned.safetensors"
    model.write_bytes(FILES["model.safetensors"])
    report = report_of(str(model), tmp_path / "r.json")
    deployed = tmp_path / "deploy" / "model.safetensors"  # another name, the same bytes
    deployed.parent.mkdir()
    shutil.copy(model, deployed)
    code, out, _ = run("verify", str(deployed), "--report", str(report), capsys=capsys)
    assert code == 0, out
    code, _, err = run("verify", str(deployed.parent), "--report", str(report), capsys=capsys)
    assert code == 4 and "scan of one file" in err
    deployed.write_bytes(FILES["model.safetensors"][:-4] + b"\0\0\0\1")
    assert run("verify", str(deployed), "--report", str(report), capsys=capsys)[0] == 1


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"{not json", "not JSON"),
        (b'{"schemaVersion": "other/v9"}', "not a modelsec scan result"),
        (b'{"schemaVersion": "modelsec.io/scan-result/v1", "models": "x"}', "invalid scan result"),
    ],
)
def test_unusable_reports_are_errors(
    tmp_path: Path, content: bytes, problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "r.json").write_bytes(content)
    model = write_model(tmp_path / "m")
    code, out, err = run("verify", str(model), "--report", str(tmp_path / "r.json"), capsys=capsys)
    assert code == 2 and problem in err and out == ""


def test_a_report_of_several_models_needs_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first, second = write_model(tmp_path / "a"), write_model(tmp_path / "b", {"x.json": b"{}"})
    assert main(["scan", str(first), str(second), "-f", "json", "-o", str(tmp_path / "r.json"), "-q"]) in (
        0,
        1,
    )
    code, _, err = run("verify", str(second), "--report", str(tmp_path / "r.json"), capsys=capsys)
    assert code == 2 and "holds 2 models" in err
    code, out, _ = run(
        "verify", str(second), "--report", str(tmp_path / "r.json"), "--model", str(second), capsys=capsys
    )
    assert code == 0, out


def test_names_are_escaped_in_the_output(
    scanned: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    model, report = scanned
    (model / "x\x1b[2J\x1b[32mALLOWED").write_text("!")
    code, out, _ = run("verify", str(model), "--report", str(report), capsys=capsys)
    assert code == 1 and "\x1b" not in out and "x\\x1b[2J\\x1b[32mALLOWED" in out


def test_an_unreadable_file_is_an_error_not_a_match(tmp_path: Path) -> None:
    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        pytest.skip("root without setpriv: permissions do not apply")
    root = Path(tempfile.mkdtemp(prefix="modelsec-verify-"))
    try:
        root.chmod(0o755)
        model = write_model(root / "model")
        for path in [model, *model.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        report = report_of(str(model), root / "scan.json")
        report.chmod(0o644)
        (model / "config.json").chmod(0o000)
        command = [sys.executable, "-m", "modelsec", "verify", str(model), "--report", str(report)]
        if os.geteuid() == 0:
            command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert done.returncode == 2, done.stdout + done.stderr
        assert "ERROR" in done.stdout and "config.json" in done.stdout and "Permission denied" in done.stdout
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_the_fingerprint_formula_is_the_scans(tmp_path: Path) -> None:
    """modelsec verify --scan recomputes ScanReport.fingerprint; a drift would make every
    verification against a ModelScan fail (or, worse, pass for other files)."""
    import hashlib

    model = write_model(tmp_path / "model")
    report = Engine().scan_path(str(model))
    assert (
        fingerprint({name: hashlib.sha256(data).hexdigest() for name, data in FILES.items()})
        == report.fingerprint
    )
    single = Engine().scan_path(str(model / "config.json"))
    assert fingerprint({"": hashlib.sha256(FILES["config.json"]).hexdigest()}) == single.fingerprint


# --- ML-BOMs as the record ------------------------------------------------------------------


def test_an_ml_bom_serves_as_the_record(
    scanned: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model, _ = scanned
    bom = tmp_path / "model.cdx.json"
    assert main(["bom", str(model), "-o", str(bom), "-q"]) in (0, 1)
    code, out, _ = run("verify", str(model), "--bom", str(bom), capsys=capsys)
    assert code == 0, out
    (model / "tokenizer" / "vocab.txt").write_bytes(b"[PAD]\n[UNK]\nhello\nw0rld\n")
    code, out, _ = run("verify", str(model), "--bom", str(bom), capsys=capsys)
    assert code == 1 and lines(out, "CHANGED") == ["tokenizer/vocab.txt"]
    bom.write_text(json.dumps({"bomFormat": "CycloneDX", "metadata": {}}))
    code, _, err = run("verify", str(model), "--bom", str(bom), capsys=capsys)
    assert code == 2 and "no machine-learning-model" in err


# --- remote scans: claimed digests ----------------------------------------------------------


def test_a_download_of_a_hub_model_against_its_scan(
    hub: HubServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The scan read the LFS weights by range: only the Hub's claim is known for them. A
    download matching the claim is UNPROVEN (exit 2) unless --accept-claimed; a download
    that differs from the claim is CHANGED either way. Small files were hashed."""
    hub.add_repo("acme/bert", dict(FILES))
    report = report_of("hf://acme/bert", tmp_path / "r.json", **hf_config(hub))
    files = {f["path"]: f for f in json.loads(report.read_text())["models"][0]["files"]}
    assert files["hf://acme/bert/model.safetensors"]["sha256"] is None
    assert files["hf://acme/bert/model.safetensors"]["digest"].startswith("claimed:sha256:")
    download = write_model(tmp_path / "download")

    code, out, _ = run("verify", str(download), "--report", str(report), capsys=capsys)
    assert code == 2 and lines(out, "UNPROVEN") == ["model.safetensors"] and "NOT VERIFIED" in out
    code, out, _ = run("verify", str(download), "--report", str(report), "--accept-claimed", capsys=capsys)
    assert code == 0, out

    (download / "model.safetensors").write_bytes(save({"w": np.ones(262144, dtype=np.float32)}))
    code, out, _ = run("verify", str(download), "--report", str(report), "--accept-claimed", capsys=capsys)
    assert code == 1 and lines(out, "CHANGED") == ["model.safetensors"] and "claimed by the source" in out


def test_verify_streams_in_constant_memory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A 256 MiB sparse file is hashed with the process's peak memory growing by far less
    than the file (the 5 GiB timing is benchmarks/verify_large_model.py)."""
    import resource

    model = tmp_path / "big"
    model.mkdir()
    with open(model / "weights.bin", "wb") as handle:
        handle.truncate(256 << 20)
    report = report_of(str(model), tmp_path / "r.json")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak: list[int] = []
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.01):
            peak.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        code, out, _ = run("verify", str(model), "--report", str(report), "--no-progress", capsys=capsys)
    finally:
        done.set()
        watcher.join()
    assert code == 0, out
    grown_kib = max(peak + [before]) - before
    assert grown_kib < 64 << 10, f"peak RSS grew by {grown_kib} KiB while hashing 256 MiB"


def test_an_unreachable_api_server_is_an_error(
    scanned: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--scan against an API server that is not there: exit 2 at once, saying so."""
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "c",
                "clusters": [
                    {
                        "name": "k",
                        "cluster": {"server": f"https://127.0.0.1:{port}", "insecure-skip-tls-verify": True},
                    }
                ],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
            }
        )
    )
    model, _ = scanned
    code, out, err = run(
        "verify",
        str(model),
        "--scan",
        "bert-0123456789abcdef",
        "--kubeconfig",
        str(kubeconfig),
        capsys=capsys,
    )
    assert code == 2 and out == ""
    assert f"cannot reach the Kubernetes API server at https://127.0.0.1:{port}" in err
    code, _, err = run(
        "verify", str(model), "--scan", "Not_A_Name", "--kubeconfig", str(kubeconfig), capsys=capsys
    )
    assert code == 2 and "is not a ModelScan name" in err
