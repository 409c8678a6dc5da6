"""``modelsec verify --scan``: a ModelScan the real operator completed, read through the
real API server (TLS, the kubeconfig hack/envtest.sh writes), then the files on disk
checked against its fingerprint by the real command line."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from cluster_models import write_bert
from cluster_scans import API, local_source, scan_of, verify, wait_verdict

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(3600)]


@pytest.fixture
def scanned_model(cluster: Any, operator: Any, models_root: Path, request: pytest.FixtureRequest) -> Any:
    """A Local model directory and the name of the ModelScan the operator completed for it."""
    prefix = "verify-" + hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:8]
    directory = models_root / prefix
    model = write_bert(directory / "bert")
    with scan_of(cluster, prefix, local_source(directory), f"file://{model}") as setup:
        assert wait_verdict(cluster, setup.name)["status"]["filesScanned"] == 3
        yield model, setup.name


def test_files_are_verified_against_the_modelscan(cluster: Any, scanned_model: Any) -> None:
    model, name = scanned_model
    done = verify(cluster, str(model), "--scan", name)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 OK" in done.stdout and f"ModelScan {name}" in done.stdout


def test_a_changed_volume_is_detected_without_naming_the_file(cluster: Any, scanned_model: Any) -> None:
    model, name = scanned_model
    (model / "tokenizer" / "vocab.txt").write_text("[PAD]\n[UNK]\nhell0\n")
    done = verify(cluster, str(model), "--scan", name)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "records no per-file digests" in done.stdout and "CHANGED" in done.stdout

    (model / "tokenizer" / "vocab.txt").write_text("[PAD]\n[UNK]\nhello\n")
    assert verify(cluster, str(model), "--scan", name).returncode == 0
    (model / "modeling_extra.py").write_text("import os\n")
    done = verify(cluster, str(model), "--scan", name)
    assert done.returncode == 1 and "4 file(s) on disk, 3 scanned" in done.stdout


def test_an_unknown_or_unfinished_scan_is_an_error(cluster: Any, scanned_model: Any, tmp_path: Path) -> None:
    model, _ = scanned_model
    done = verify(cluster, str(model), "--scan", "no-such-scan-0000000000000000")
    assert done.returncode == 2 and "no ModelScan named no-such-scan" in done.stderr
    pending = "pending-" + hashlib.sha256(str(tmp_path).encode()).hexdigest()[:12]
    cluster.apply(
        {
            "apiVersion": API,
            "kind": "ModelScan",
            "metadata": {"name": pending},
            "spec": {"model": f"file://{model}", "securityGroup": "no-such-group-for-verify"},
        }
    )
    try:
        done = verify(cluster, str(model), "--scan", pending)
        assert done.returncode == 2 and "no completed scan to verify against" in done.stderr
    finally:
        cluster.kubectl("delete", "--wait=false", f"modelscans/{pending}", check=False)
