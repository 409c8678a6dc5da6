"""The verdict's ML-BOM in a ConfigMap (operator ``--bom-namespace``) and ``modelsec verify
--scan`` naming the files that changed through it; ``status.revision`` recorded when
``spec.revision`` is unset. A real operator on the real control plane (instance
``pytest-integrity``), the real command line, the test Hub server for the revision."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cluster_models import NPY, write_bert
from cluster_scans import (
    VERDICT_PHASES,
    apply_scan,
    delete,
    local_source,
    scan_of,
    verify,
    wait_verdict,
)

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(3600)]


def _prefix(request: pytest.FixtureRequest) -> str:
    return "bom-" + hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:8]


@pytest.fixture
def bom_namespace(cluster: Any, request: pytest.FixtureRequest) -> Any:
    name = _prefix(request) + "-store"
    cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def local_scan(
    cluster: Any, models_root: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., tuple[Path, str]]]:
    """Make a Local model, its source, group and ModelScan; wait for the verdict."""
    made: list[str] = []

    def make(wait: bool = True) -> tuple[Path, str]:
        prefix = _prefix(request)
        directory = models_root / prefix
        model = write_bert(directory / "bert")
        setup = apply_scan(cluster, prefix, local_source(directory), f"file://{model}")
        made.extend(setup.resources)
        if wait:
            wait_verdict(cluster, setup.name)
        return model, setup.name

    yield make
    delete(cluster, made)


def _configmap(cluster: Any, namespace: str, name: str) -> dict[str, Any]:
    return json.loads(cluster.kubectl("get", "configmap", name, "-n", namespace, "-o", "json").stdout)


def test_the_bom_is_kept_beside_the_modelscan_and_verify_names_the_changed_file(
    cluster: Any, operator_factory: Any, bom_namespace: str, local_scan: Any
) -> None:
    operator_factory("--bom-namespace", bom_namespace).start()
    model, name = local_scan()
    scan = cluster.get("modelscans", name)
    bom = scan["status"]["bom"]
    assert bom["namespace"] == bom_namespace and bom["name"] == name and bom["key"] == "bom.json"
    assert bom["files"] == 3 and "problem" not in bom
    stored = _configmap(cluster, bom_namespace, name)
    assert hashlib.sha256(stored["data"]["bom.json"].encode()).hexdigest() == bom["sha256"]
    owner = stored["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("ModelScan", name, scan["metadata"]["uid"])
    document = json.loads(stored["data"]["bom.json"])
    assert document["bomFormat"] == "CycloneDX" and len(document["components"]) == 3

    done = verify(cluster, str(model), "--scan", name)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"BOM in ConfigMap {bom_namespace}/{name}" in done.stdout and "3 OK" in done.stdout

    (model / "tokenizer" / "vocab.txt").write_text("[PAD]\n[UNK]\nhell0\n")
    (model / "modeling_extra.py").write_text("import os\n")
    done = verify(cluster, str(model), "--scan", name)
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert any(
        line.split()[:2] == ["CHANGED", "tokenizer/vocab.txt"] and "SHA-256" in line for line in lines
    ), done.stdout
    assert any(line.split()[:2] == ["EXTRA", "modeling_extra.py"] for line in lines), done.stdout
    assert "records no per-file digests" not in done.stdout


def test_a_bom_configmap_changed_by_someone_else_is_not_trusted(
    cluster: Any, operator_factory: Any, bom_namespace: str, local_scan: Any
) -> None:
    """Whoever can write ConfigMaps in the BOM namespace must not be able to make verify
    accept other files: the stored value must hash to what status.bom records, and only
    then are its digests used; otherwise the fingerprint is compared (still exit 1 on a
    change, without the file's name)."""
    operator_factory("--bom-namespace", bom_namespace).start()
    model, name = local_scan()
    (model / "weights.npy").write_bytes(NPY[:-1] + b"\x01")
    stored = _configmap(cluster, bom_namespace, name)
    forged = json.loads(stored["data"]["bom.json"])
    digest = hashlib.sha256((model / "weights.npy").read_bytes()).hexdigest()
    for component in forged["components"]:
        if component["name"] == "weights.npy":
            component["hashes"] = [{"alg": "SHA-256", "content": digest}]
    cluster.kubectl(
        "patch",
        "configmap",
        name,
        "-n",
        bom_namespace,
        "--type",
        "merge",
        "-p",
        json.dumps({"data": {"bom.json": json.dumps(forged, separators=(",", ":"))}}),
    )
    done = verify(cluster, str(model), "--scan", name)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "does not hold the BOM the operator wrote" in done.stdout
    assert "records no per-file digests" in done.stdout  # the fingerprint caught it


def test_without_a_place_for_boms_the_verdict_still_lands_and_says_why(
    cluster: Any, operator_factory: Any, local_scan: Any, request: pytest.FixtureRequest
) -> None:
    missing = _prefix(request) + "-absent"
    operator_factory("--bom-namespace", missing).start()
    model, name = local_scan()
    scan = cluster.get("modelscans", name)
    assert scan["status"]["outcome"] == "ALLOWED"
    problem = scan["status"]["bom"]["problem"]
    assert f"could not write ConfigMap {missing}/{name}" in problem and "404" in problem, problem
    done = verify(cluster, str(model), "--scan", name)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (
        "note    no per-file digests: ModelScan" in done.stdout and "could not write ConfigMap" in done.stdout
    )


def test_a_large_bom_is_stored_compressed(
    cluster: Any, operator_factory: Any, bom_namespace: str, models_root: Path, request: pytest.FixtureRequest
) -> None:
    """2,500 files: about 1.2 MB of JSON, more than a ConfigMap holds; its gzip fits."""
    operator_factory("--bom-namespace", bom_namespace).start()
    prefix = _prefix(request)
    model = models_root / prefix / "many"
    model.mkdir(parents=True)
    for i in range(2500):
        (model / f"shard-{i:05d}.txt").write_text(f"row {i}\n")
    with scan_of(cluster, prefix, local_source(models_root / prefix), f"file://{model}") as setup:
        scan = wait_verdict(cluster, setup.name, timeout=300)
        bom = scan["status"]["bom"]
        assert bom["key"] == "bom.json.gz" and bom["files"] == 2500, bom
        stored = _configmap(cluster, bom_namespace, setup.name)
        packed = base64.b64decode(stored["binaryData"]["bom.json.gz"])
        assert hashlib.sha256(packed).hexdigest() == bom["sha256"] and len(packed) < 1_000_000
        (model / "shard-01234.txt").write_text("changed\n")
        done = verify(cluster, str(model), "--scan", setup.name)
        assert done.returncode == 1, done.stdout + done.stderr
        assert any(line.split()[:2] == ["CHANGED", "shard-01234.txt"] for line in done.stdout.splitlines())


def test_the_scanned_revision_is_recorded_when_the_spec_names_none(
    cluster: Any, operator_factory: Any, hub: Any, request: pytest.FixtureRequest
) -> None:
    """A Hub model scanned at whatever `main` is: status.revision is the commit read, the
    one the pinning webhook rewrites references to; a later push does not change it until
    the next scan."""
    operator_factory().start()
    prefix = _prefix(request)
    repo = hub.add_repo("acme/tiny", {"config.json": b'{"model_type": "bert"}', "vocab.txt": b"a\nb\n"})
    first = repo.refs["main"]
    source_spec = {
        "type": "HuggingFace",
        "huggingFace": {"endpoint": hub.url},
        "limits": {"requestDeadline": 30, "maxListPages": 10},
    }
    with scan_of(cluster, prefix, source_spec, "hf://acme/tiny") as setup:
        scan = wait_verdict(cluster, setup.name)
        assert "revision" not in scan["spec"]
        assert scan["status"]["revision"] == first and scan["status"]["outcome"] == "ALLOWED"
        hub.push("acme/tiny", {"vocab.txt": b"a\nb\nc\n"})
        assert hub.repos["acme/tiny"].refs["main"] != first
        assert cluster.get("modelscans", setup.name)["status"]["revision"] == first


def test_source_limits_reach_the_scan(
    cluster: Any, operator_factory: Any, hub: Any, request: pytest.FixtureRequest
) -> None:
    """spec.limits.maxListPages: 1 against a listing of two pages fails the scan with the
    bound's threat code and name; without the limit the same model is ALLOWED."""
    operator_factory("--max-attempts", "1").start()
    prefix = _prefix(request)
    hub.ignore_blobs = True  # sizes come from the paginated tree API
    hub.tree_page_size = 2
    hub.add_repo("acme/paged", {f"file-{i}.txt": b"x\n" for i in range(5)})
    made = []
    try:
        outcomes = {}
        for limited in (True, False):
            spec: dict[str, Any] = {"type": "HuggingFace", "huggingFace": {"endpoint": hub.url}}
            if limited:
                spec["limits"] = {"maxListPages": 1}
            setup = apply_scan(cluster, f"{prefix}-{limited}".lower(), spec, "hf://acme/paged")
            made += setup.resources
            outcomes[limited] = wait_verdict(cluster, setup.name, phases=VERDICT_PHASES)["status"]
        assert outcomes[False]["outcome"] == "ALLOWED", outcomes[False]
        limited_status = outcomes[True]
        assert limited_status["outcome"] == "ERROR", limited_status
        text = json.dumps(limited_status)
        assert "MS-SRC-016" in text and "maxListPages" in text, text
    finally:
        delete(cluster, made)
