"""The operator end to end, against a real kube-apiserver + etcd (hack/envtest.sh) and the
operator as a real subprocess. Nothing here is mocked.

Model fixtures are bytes written by the tests; malicious pickles are built from opcodes
and never loaded.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from modelsec import formats
from modelsec.k8s.naming import scan_name

# Generous: on a fresh machine the first test also builds kube-apiserver and etcd; every
# wait inside a test has its own, short, timeout.
pytestmark = [pytest.mark.cluster, pytest.mark.timeout(3600)]

API = "modelsec.io/v1alpha1"
# Protocol 4: FRAME, 'os', 'system', STACK_GLOBAL, 'id', TUPLE1, REDUCE: runs `id` if loaded.
STACK_GLOBAL_PICKLE = b"\x80\x04\x95\x18\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x94\x8c\x06system\x94\x93\x94\x8c\x02id\x94\x85\x94R\x94."
# Protocol 2: GLOBAL 'os system', 'id', TUPLE1, REDUCE: the same call, older opcodes.
GLOBAL_PICKLE = b"\x80\x02cos\nsystem\nq\x00X\x02\x00\x00\x00idq\x01\x85q\x02Rq\x03."
# {'weights': [1, 2, 3]}: a plain data pickle.
CLEAN_PICKLE = b"\x80\x02}q\x00X\x07\x00\x00\x00weightsq\x01]q\x02(K\x01K\x02K\x03es."

needs_pickle_scanner = pytest.mark.skipif(
    "pickle" not in formats.FORMAT_MODULES,
    reason="the pickle format scanner is not registered yet (modelsec.formats.FORMAT_MODULES)",
)


def source(name: str, path: Path) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "ModelSource",
        "metadata": {"name": name},
        "spec": {"type": "Local", "local": {"path": str(path)}},
    }


def group(name: str, source_ref: str, rules: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "SecurityGroup",
        "metadata": {"name": name},
        "spec": {"sourceRef": source_ref, "rules": rules, **extra},
    }


def scan(model: str, group_name: str, name: str | None = None) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "ModelScan",
        "metadata": {"name": name or scan_name(model, None, group_name)},
        "spec": {"model": model, "securityGroup": group_name},
    }


BLOCK_CODE = [
    {"name": "LoadTimeCodeExecution", "mode": "Blocking"},
    {"name": "SuspiciousComponents", "mode": "Blocking"},
    {"name": "ApprovedFormats", "mode": "NonBlocking"},
]


def ready(obj: dict[str, Any]) -> str | None:
    for condition in obj.get("status", {}).get("conditions", []):
        if condition["type"] == "Ready":
            return condition["status"]
    return None


def condition(obj: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")


def recorded(obj: dict[str, Any]) -> bool:
    return obj.get("status", {}).get("phase") in ("Completed", "Failed")


@pytest.fixture
def workspace(models_root: Path, request: pytest.FixtureRequest, cluster: Any) -> Any:
    """A models directory and a name prefix of this test's own; its objects are deleted after."""
    readable = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower().removeprefix("test_")).strip("-")[:30]
    prefix = f"{readable.strip('-')}-{hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:6]}"
    directory = models_root / prefix
    directory.mkdir()

    class Workspace:
        dir = directory
        name = staticmethod(lambda suffix: f"{prefix}-{suffix}")

    yield Workspace
    # Scans are named after their model; they are this test's when their group is.
    for plural in ("modelscans", "securitygroups", "modelsources"):
        items = json.loads(cluster.kubectl("get", plural, "-o", "json").stdout)["items"]
        mine = [
            f"{plural}/{o['metadata']['name']}"
            for o in items
            if o["metadata"]["name"].startswith(prefix)
            or str(o.get("spec", {}).get("securityGroup", "")).startswith(prefix)
        ]
        if mine:
            cluster.kubectl("delete", "--wait=false", *mine, check=False)


# --- the API server rejects what the schema knows is wrong ---------------------------


@pytest.mark.parametrize(
    "document, message",
    [
        pytest.param(
            {"kind": "ModelSource", "spec": {"type": "Local"}},
            "spec.type Local needs spec.local.path",
            id="source-local-needs-path",
        ),
        pytest.param(
            {
                "kind": "ModelSource",
                "spec": {"type": "S3", "s3": {"bucket": "models"}, "local": {"path": "/m"}},
            },
            "spec.local is only allowed when spec.type is Local",
            id="source-settings-must-match-type",
        ),
        pytest.param(
            {"kind": "ModelSource", "spec": {"type": "Ftp"}},
            'Unsupported value: "Ftp"',
            id="source-type-enum",
        ),
        pytest.param(
            {"kind": "ModelSource", "spec": {"type": "Local", "local": {"path": "relative/dir"}}},
            "spec.local.path",
            id="source-path-absolute",
        ),
        pytest.param(
            {"kind": "SecurityGroup", "spec": {"rules": [{"name": "NoSuchRule"}]}},
            'Unsupported value: "NoSuchRule"',
            id="group-unknown-rule",
        ),
        pytest.param(
            {
                "kind": "SecurityGroup",
                "spec": {"rules": [{"name": "LoadTimeCodeExecution", "mode": "Sometimes"}]},
            },
            'Unsupported value: "Sometimes"',
            id="group-mode-enum",
        ),
        pytest.param(
            {
                "kind": "SecurityGroup",
                "spec": {"rules": [{"name": "LoadTimeCodeExecution"}, {"name": "LoadTimeCodeExecution"}]},
            },
            "Duplicate value",
            id="group-rule-listed-twice",
        ),
        pytest.param(
            {"kind": "SecurityGroup", "spec": {"rules": [], "rescanInterval": "daily"}},
            "spec.rescanInterval",
            id="group-rescan-interval-pattern",
        ),
        pytest.param(
            {"kind": "ModelScan", "spec": {"model": "http://example.com/m.pkl", "securityGroup": "g"}},
            "spec.model must be hf://<org>/<name>, s3://<bucket>/<key> or file:///<absolute path>",
            id="scan-model-scheme",
        ),
        pytest.param(
            {"kind": "ModelScan", "spec": {"model": "file:///m/x.pkl"}},
            "spec.securityGroup: Required value",
            id="scan-needs-group",
        ),
    ],
)
def test_api_server_rejects_invalid_objects_with_readable_messages(
    cluster: Any, document: dict[str, Any], message: str
) -> None:
    document = {"apiVersion": API, "metadata": {"name": "invalid-object"}, **document}
    result = cluster.apply(document, check=False)
    assert result.returncode != 0, f"accepted: {document}"
    assert message in result.stderr, result.stderr


def test_model_scan_spec_is_immutable(cluster: Any, workspace: Any) -> None:
    document = scan("file:///nowhere/m.pkl", "no-such-group", workspace.name("immutable"))
    cluster.apply(document)
    document["spec"]["securityGroup"] = "another-group"
    result = cluster.apply(document, check=False)
    assert result.returncode != 0
    assert "spec is immutable" in result.stderr, result.stderr


def test_defaults_are_applied_by_the_api_server(cluster: Any, workspace: Any) -> None:
    name = workspace.name("defaults")
    cluster.apply(group(name, "src", [{"name": "LoadTimeCodeExecution"}]))
    stored = cluster.get("securitygroups", name)
    assert stored["spec"]["rules"][0]["mode"] == "Blocking"
    assert stored["spec"]["errorOutcome"] == "ERROR"


# --- validation conditions -------------------------------------------------------------


def test_group_conditions_explain_missing_source_and_bad_params(
    cluster: Any, operator: Any, workspace: Any
) -> None:
    src, g, params = workspace.name("src"), workspace.name("group"), workspace.name("params")
    cluster.apply(group(g, src, BLOCK_CODE))
    missing = cluster.wait_for("securitygroups", g, lambda o: ready(o) == "False", what="Ready=False")
    assert condition(missing)["reason"] == "SourceNotFound"
    assert f"ModelSource {src!r} does not exist" in condition(missing)["message"]

    cluster.apply(source(src, workspace.dir))
    cluster.wait_for("modelsources", src, lambda o: ready(o) == "True", what="source Ready")
    fixed = cluster.wait_for("securitygroups", g, lambda o: ready(o) == "True", what="group Ready")
    assert fixed["status"]["rules"] == 3 and fixed["status"]["blocking"] == 2

    cluster.apply(group(params, src, [{"name": "ApprovedFormats", "params": {"approvedFormat": ["onnx"]}}]))
    bad = cluster.wait_for("securitygroups", params, lambda o: ready(o) == "False", what="Ready=False")
    assert condition(bad)["reason"] == "InvalidParams"
    assert "approvedFormat" in condition(bad)["message"] and "Extra inputs" in condition(bad)["message"]

    gone = workspace.name("gone")
    cluster.apply(source(gone, workspace.dir / "not-there"))
    absent = cluster.wait_for("modelsources", gone, lambda o: ready(o) == "False", what="Ready=False")
    assert condition(absent)["reason"] == "PathNotFound"


# --- scanning ------------------------------------------------------------------------


@needs_pickle_scanner
@pytest.mark.parametrize("payload", [GLOBAL_PICKLE, STACK_GLOBAL_PICKLE], ids=["global", "stack-global"])
def test_malicious_pickle_is_blocked_with_rule_and_file_in_status(
    cluster: Any, operator: Any, workspace: Any, payload: bytes
) -> None:
    model = workspace.dir / "evil.pkl"
    model.write_bytes(payload)
    src, g = workspace.name("src"), workspace.name("group")
    cluster.apply(source(src, workspace.dir), group(g, src, BLOCK_CODE))
    document = scan(f"file://{model}", g)
    cluster.apply(document)
    name = document["metadata"]["name"]
    done = cluster.wait_for("modelscans", name, recorded, timeout=120, what="a verdict")
    status = done["status"]
    assert (status["phase"], status["outcome"]) == ("Completed", "BLOCKED"), status
    failed = {r["name"]: r for r in status["rules"] if r["result"] == "FAILED"}
    assert "LoadTimeCodeExecution" in failed and failed["LoadTimeCodeExecution"]["violations"] >= 1
    assert any(
        f["rule"] == "LoadTimeCodeExecution" and f["file"].endswith("evil.pkl") for f in status["findings"]
    )
    assert status["fingerprint"] and status["filesScanned"] == 1 and status["bytesScanned"] == len(payload)
    # A scan this short never shows Running (--running-status-after): only the verdict's Event.
    cluster.wait_events(name, {"ScanBlocked"})
    operator.wait_metric("modelsec_scans_total", 1, outcome="BLOCKED")


def test_clean_model_is_allowed_with_full_status_and_events(
    cluster: Any, operator: Any, workspace: Any
) -> None:
    model = workspace.dir / "clean.pkl"
    model.write_bytes(CLEAN_PICKLE)
    src, g = workspace.name("src"), workspace.name("group")
    cluster.apply(source(src, workspace.dir), group(g, src, BLOCK_CODE))
    document = scan(f"file://{model}", g)
    cluster.apply(document)
    name = document["metadata"]["name"]
    done = cluster.wait_for("modelscans", name, recorded, timeout=120, what="a verdict")
    status = done["status"]
    assert (status["phase"], status["outcome"]) == ("Completed", "ALLOWED"), status
    assert {r["name"]: r["result"] for r in status["rules"]}["LoadTimeCodeExecution"] == "PASSED"
    for key in (
        "fingerprint",
        "filesScanned",
        "bytesScanned",
        "scannerVersion",
        "startedAt",
        "completedAt",
        "groupDigest",
        "observedGeneration",
        "worker",
    ):
        assert status.get(key) is not None, key
    assert condition(done)["status"] == "True" and condition(done)["reason"] == "Allowed"
    labels = done["metadata"]["labels"]
    assert labels["modelsec.io/security-group"] == g and len(labels["modelsec.io/scan-key"]) == 16
    cluster.wait_events(name, {"ScanCompleted"})
    table = cluster.kubectl("get", "mscan", name).stdout
    assert "Completed" in table and "ALLOWED" in table and g in table
    assert name in cluster.kubectl("get", "modelsec").stdout  # the category lists all kinds


def test_model_outside_the_source_fails_closed(cluster: Any, operator: Any, workspace: Any) -> None:
    outside = workspace.dir.parent / f"{workspace.name('outside')}.pkl"
    outside.write_bytes(CLEAN_PICKLE)
    inside = workspace.dir / "models"
    inside.mkdir()
    (inside / "sneaky.pkl").symlink_to(outside)
    src, g = workspace.name("src"), workspace.name("group")
    cluster.apply(source(src, inside), group(g, src, BLOCK_CODE))
    for model in (f"file://{outside}", f"file://{inside}/sneaky.pkl", f"file://{inside}/../x.pkl"):
        document = scan(model, g)
        cluster.apply(document)
        done = cluster.wait_for("modelscans", document["metadata"]["name"], recorded, what="a verdict")
        status = done["status"]
        assert (status["phase"], status["outcome"]) == ("Failed", "ERROR"), status
        assert condition(done)["reason"] == "OutsideSource"
        assert "outside the Local source directory" in status["reason"]
        assert "failing closed" in status["reason"]
    cluster.wait_events(document["metadata"]["name"], {"ScanError"})


def test_scan_of_a_missing_group_fails_then_runs_when_the_group_appears(
    cluster: Any, operator: Any, workspace: Any
) -> None:
    model = workspace.dir / "m.pkl"
    model.write_bytes(CLEAN_PICKLE)
    src, g = workspace.name("src"), workspace.name("late-group")
    document = scan(f"file://{model}", g)
    cluster.apply(document)
    name = document["metadata"]["name"]
    failed = cluster.wait_for("modelscans", name, recorded, what="a verdict")
    assert (failed["status"]["phase"], condition(failed)["reason"]) == ("Failed", "GroupNotFound")
    cluster.apply(source(src, workspace.dir), group(g, src, BLOCK_CODE))
    done = cluster.wait_for(
        "modelscans", name, lambda o: o.get("status", {}).get("phase") == "Completed", what="Completed"
    )
    assert done["status"]["outcome"] == "ALLOWED"
    assert done["status"]["history"][0]["phase"] == "Failed"


def test_editing_a_group_re_evaluates_and_keeps_the_previous_verdict(
    cluster: Any, operator: Any, workspace: Any
) -> None:
    # An unrecognised format fails ApprovedFormats: a warning while NonBlocking, a block
    # once the group makes it Blocking. (Independent of which format scanners exist.)
    model = workspace.dir / "weights.bin"
    model.write_bytes(b"\x13\x37" * 512)
    src, g = workspace.name("src"), workspace.name("group")
    rules = [{"name": "ApprovedFormats", "mode": "NonBlocking"}]
    cluster.apply(source(src, workspace.dir), group(g, src, rules))
    document = scan(f"file://{model}", g)
    cluster.apply(document)
    name = document["metadata"]["name"]
    first = cluster.wait_for("modelscans", name, recorded, what="a verdict")["status"]
    assert first["outcome"] == "ALLOWED"
    assert {r["name"]: r["result"] for r in first["rules"]}["ApprovedFormats"] == "FAILED"
    engine_runs = operator.metric("modelsec_scan_duration_seconds_count")

    cluster.apply(group(g, src, [{"name": "ApprovedFormats", "mode": "Blocking"}]))
    second = cluster.wait_for(
        "modelscans", name, lambda o: o["status"].get("outcome") == "BLOCKED", what="BLOCKED"
    )["status"]
    assert second["groupDigest"] != first["groupDigest"]
    assert second["fingerprint"] == first["fingerprint"]
    previous = second["history"][0]
    assert previous["outcome"] == "ALLOWED" and previous["completedAt"] == first["completedAt"]
    assert previous["groupDigest"] == first["groupDigest"]
    assert "changed" in previous["supersededBecause"]
    # Same bytes: judged again from the cached report, not read again.
    assert operator.metric("modelsec_scan_duration_seconds_count") == engine_runs
    assert operator.metric("modelsec_report_cache_hits_total") >= 1

    cluster.kubectl("annotate", "mscan", name, "modelsec.io/rescan=by-test", "--overwrite")
    third = cluster.wait_for(
        "modelscans",
        name,
        lambda o: o["status"].get("rescanRequest") == "by-test" and recorded(o),
        what="rescan",
    )["status"]
    assert third["outcome"] == "BLOCKED" and len(third["history"]) == 2
    assert operator.metric("modelsec_scan_duration_seconds_count") == engine_runs + 1


def test_one_model_many_groups_is_read_once(cluster: Any, operator: Any, workspace: Any) -> None:
    model = workspace.dir / "shared.bin"
    model.write_bytes(b"\x00\x01" * 4096)
    src = workspace.name("src")
    groups = [workspace.name(f"g{i}") for i in range(3)]
    cluster.apply(source(src, workspace.dir), *(group(g, src, BLOCK_CODE) for g in groups))
    for g in groups:
        cluster.wait_for("securitygroups", g, lambda o: ready(o) == "True", what="group Ready")
    before = operator.metric("modelsec_scan_duration_seconds_count")
    documents = [scan(f"file://{model}", g) for g in groups]
    cluster.apply(*documents)
    for document in documents:
        cluster.wait_for("modelscans", document["metadata"]["name"], recorded, what="a verdict")
    fingerprints = {
        cluster.get("modelscans", d["metadata"]["name"])["status"]["fingerprint"] for d in documents
    }
    assert len(fingerprints) == 1
    assert operator.metric("modelsec_scan_duration_seconds_count") == before + 1


def test_killing_the_operator_mid_scan_loses_nothing(
    cluster: Any, operator_factory: Callable[..., Any], workspace: Any
) -> None:
    src, g = workspace.name("src"), workspace.name("group")
    first_model, slow_model = workspace.dir / "first.bin", workspace.dir / "slow.bin"
    first_model.write_bytes(b"first")
    slow_model.write_bytes(b"slow" * 100)
    cluster.apply(source(src, workspace.dir), group(g, src, BLOCK_CODE))

    # A generous test-only delay makes the second scan provably in flight when we kill.
    process = operator_factory(env={"MODELSEC_SCAN_DELAY_SECONDS": "1"}).start()
    done_before = scan(f"file://{first_model}", g)
    cluster.apply(done_before)
    kept = cluster.wait_for("modelscans", done_before["metadata"]["name"], recorded, what="a verdict")

    process.stop()
    process.env = {"MODELSEC_SCAN_DELAY_SECONDS": "60"}
    process.start()
    in_flight = scan(f"file://{slow_model}", g)
    cluster.apply(in_flight)
    name = in_flight["metadata"]["name"]

    def running(o: dict[str, Any]) -> bool:
        return o.get("status", {}).get("phase") == "Running"

    # A graceful stop (SIGTERM, as on a rollout) does not wait for the scan to finish...
    cluster.wait_for("modelscans", name, running, what="Running")
    cluster.wait_events(name, {"ScanStarted"})  # a long scan is announced (after 2 s)
    began = time.monotonic()
    process.stop()
    assert time.monotonic() - began < 20 and process.proc.returncode == 0
    assert "redone on the next start" in process.log()
    assert running(cluster.get("modelscans", name))

    # ... and neither does a SIGKILL (node loss, OOM): both leave the scan Running.
    process.start()
    killed_worker = cluster.wait_for(
        "modelscans",
        name,
        lambda o: running(o) and o["status"]["worker"].endswith(f"@{process.proc.pid}"),
        what="Running on the second operator",
    )["status"]["worker"]
    process.kill()
    time.sleep(1)
    assert running(cluster.get("modelscans", name))  # nobody finished it

    process.env = {}
    process.start()
    finished = cluster.wait_for("modelscans", name, recorded, timeout=120, what="a verdict")["status"]
    assert finished["phase"] == "Completed" and finished["outcome"] == "ALLOWED"
    assert finished["worker"] != killed_worker
    # The verdict recorded before the restarts is untouched: not re-scanned, not lost.
    after = cluster.get("modelscans", done_before["metadata"]["name"])["status"]
    assert after["completedAt"] == kept["status"]["completedAt"]
    assert after["outcome"] == kept["status"]["outcome"] and not after.get("history")


def test_two_replicas_with_peering_scan_once(
    cluster: Any, operator_factory: Callable[..., Any], workspace: Any
) -> None:
    peering = workspace.name("peering")
    high = operator_factory("--peering", peering, "--priority", "200").start()
    low = operator_factory("--peering", peering, "--priority", "100").start()
    src, g = workspace.name("src"), workspace.name("group")
    model = workspace.dir / "m.bin"
    model.write_bytes(b"\x01" * 100)
    cluster.apply(source(src, workspace.dir), group(g, src, BLOCK_CODE))
    document = scan(f"file://{model}", g)
    cluster.apply(document)
    done = cluster.wait_for(
        "modelscans", document["metadata"]["name"], recorded, timeout=120, what="a verdict"
    )
    assert done["status"]["worker"].endswith(f"@{high.proc.pid}")
    high.wait_metric("modelsec_scans_total", 1, outcome="ALLOWED")
    assert low.metric("modelsec_scan_duration_seconds_count") == 0
    assert low.metric("modelsec_scans_total", outcome="ALLOWED") == 0


def test_health_and_metrics_endpoints(operator: Any) -> None:
    text = operator.metrics()
    for name in (
        "modelsec_scans_total",
        "modelsec_scan_duration_seconds",
        "modelsec_bytes_scanned_total",
        "modelsec_scan_queue_depth",
        "modelsec_scan_errors_total",
    ):
        assert f"# HELP {name}" in text, name


def test_transient_errors_are_retried_with_backoff(cluster: Any, operator: Any, workspace: Any) -> None:
    """A model that is not there yet is retried (Pending, reason ModelNotFound), not judged."""
    model = workspace.dir / "late.pkl"
    src, g = workspace.name("src"), workspace.name("group")
    cluster.apply(source(src, workspace.dir), group(g, src, BLOCK_CODE))
    document = scan(f"file://{model}", g)
    cluster.apply(document)
    name = document["metadata"]["name"]
    waiting = cluster.wait_for(
        "modelscans",
        name,
        lambda o: bool(o.get("status", {}).get("conditions")) and condition(o)["reason"] == "ModelNotFound",
        what="ModelNotFound",
    )
    assert waiting["status"]["phase"] == "Pending" and "retrying in" in condition(waiting)["message"]
    assert "outcome" not in waiting["status"]
    model.write_bytes(CLEAN_PICKLE)
    done = cluster.wait_for("modelscans", name, recorded, timeout=90, what="a verdict")["status"]
    assert (done["phase"], done["outcome"]) == ("Completed", "ALLOWED") and done["attempts"] >= 2
    assert operator.metric("modelsec_scan_errors_total", reason="ModelNotFound") >= 1


async def test_rescan_interval_rescans_elapsed_verdicts(cluster: Any, operator: Any, workspace: Any) -> None:
    """The resync pass (run here in-process against the real API, with a clock moved past
    the interval) pokes elapsed scans; the operator then reads the model again."""
    from datetime import timedelta

    from modelsec.k8s.config import load_configuration
    from modelsec_operator.handlers.groups import ScanEntry
    from modelsec_operator.handlers.lifecycle import resync_once
    from modelsec_operator.kube import Kube
    from modelsec_operator.planning import parse_time

    model = workspace.dir / "m.pkl"
    model.write_bytes(CLEAN_PICKLE)
    src, g = workspace.name("src"), workspace.name("group")
    cluster.apply(source(src, workspace.dir), group(g, src, BLOCK_CODE, rescanInterval="1h"))
    document = scan(f"file://{model}", g)
    cluster.apply(document)
    name = document["metadata"]["name"]
    first = cluster.wait_for("modelscans", name, recorded, what="a verdict")["status"]
    runs = operator.metric("modelsec_scan_duration_seconds_count")

    entry = ScanEntry(name, first["phase"], first["groupDigest"], first["completedAt"], None, None)
    kube = Kube(load_configuration(Path(cluster.kubeconfig)))
    try:
        completed = parse_time(first["completedAt"])
        assert completed is not None
        assert await resync_once(kube, {g: [entry]}, now=completed + timedelta(minutes=59)) == 0
        assert await resync_once(kube, {g: [entry]}, now=completed + timedelta(hours=1)) == 1
    finally:
        kube.close()
    due = (completed + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    second = cluster.wait_for(
        "modelscans",
        name,
        lambda o: o["status"].get("rescanRequest") == due and recorded(o),
        what="a second verdict",
    )["status"]
    assert second["history"][0]["completedAt"] == first["completedAt"]
    assert "rescan requested" in second["history"][0]["supersededBecause"]
    assert operator.metric("modelsec_scan_duration_seconds_count") == runs + 1  # read again, not cached


def test_health_endpoint_reports_the_scan_pool(operator: Any) -> None:
    import json as json_
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{operator.health_port}/healthz", timeout=5) as response:
        assert response.status == 200
        body = json_.loads(response.read())
    assert set(body["scans"]) == {"inFlight", "waiting", "cachedReports"}


@pytest.fixture
def s3_server(tmp_path: Path) -> Any:
    """moto's S3 server in its own process, enforcing IAM: only the keys we hand out work."""
    import json as json_
    import socket
    import subprocess
    import sys
    import urllib.request

    import boto3

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        for _ in range(400):
            try:
                urllib.request.urlopen(endpoint + "/moto-api/", timeout=1)
                break
            except OSError:
                time.sleep(0.05)
        admin = {
            "endpoint_url": endpoint,
            "region_name": "us-east-1",
            "aws_access_key_id": "AKIATESTADMIN000",
            "aws_secret_access_key": "admin-secret",
        }
        iam = boto3.client("iam", **admin)
        iam.create_user(UserName="scanner")
        key = iam.create_access_key(UserName="scanner")["AccessKey"]
        iam.put_user_policy(
            UserName="scanner",
            PolicyName="read-models",
            PolicyDocument=json_.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
                }
            ),
        )
        s3 = boto3.client("s3", **admin)
        s3.create_bucket(Bucket="models")
        s3.put_object(Bucket="models", Key="team/evil.pkl", Body=GLOBAL_PICKLE)
        s3.put_object(Bucket="models", Key="other/clean.pkl", Body=CLEAN_PICKLE)
        urllib.request.urlopen(
            urllib.request.Request(
                endpoint + "/moto-api/reset-auth",
                data=b"0",
                method="POST",
                headers={"Content-Type": "text/plain"},
            )
        )
        yield endpoint, key["AccessKeyId"], key["SecretAccessKey"]
    finally:
        proc.terminate()
        proc.wait(10)


@needs_pickle_scanner
def test_s3_source_reads_credentials_from_its_secret(
    cluster: Any, operator_factory: Callable[..., Any], workspace: Any, s3_server: Any
) -> None:
    endpoint, key_id, secret_key = s3_server
    no_ambient = {
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
        "AWS_CONFIG_FILE": "/nonexistent",
    }
    operator_factory(env=no_ambient).start()
    secret = workspace.name("creds")
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": secret, "namespace": "default"},
            "stringData": {"AWS_ACCESS_KEY_ID": key_id, "AWS_SECRET_ACCESS_KEY": secret_key},
        }
    )
    try:
        src, g = workspace.name("src"), workspace.name("group")
        cluster.apply(
            {
                "apiVersion": API,
                "kind": "ModelSource",
                "metadata": {"name": src},
                "spec": {
                    "type": "S3",
                    "s3": {
                        "endpoint": endpoint,
                        "bucket": "models",
                        "prefix": "team/",
                        "credentialsSecretRef": {"name": secret, "namespace": "default"},
                    },
                },
            },
            group(g, src, BLOCK_CODE),
        )
        cluster.wait_for("modelsources", src, lambda o: ready(o) == "True", what="source Ready")
        evil = scan("s3://models/team/evil.pkl", g)
        outside = scan("s3://models/other/clean.pkl", g)
        cluster.apply(evil, outside)
        done = cluster.wait_for(
            "modelscans", evil["metadata"]["name"], recorded, timeout=120, what="a verdict"
        )
        status = done["status"]
        assert (status["phase"], status["outcome"]) == ("Completed", "BLOCKED"), status
        assert any(
            f["file"].endswith("evil.pkl") and f["rule"] == "LoadTimeCodeExecution"
            for f in status["findings"]
        )
        refused = cluster.wait_for("modelscans", outside["metadata"]["name"], recorded, what="a verdict")
        assert condition(refused)["reason"] == "OutsideSource"

        # The same object through a source without the Secret: refused by the server, so
        # the verdict is ERROR (fail closed), which shows the keys above were really used.
        anonymous, anonymous_group = workspace.name("anon"), workspace.name("anon-group")
        cluster.apply(
            {
                "apiVersion": API,
                "kind": "ModelSource",
                "metadata": {"name": anonymous},
                "spec": {"type": "S3", "s3": {"endpoint": endpoint, "bucket": "models"}},
            },
            group(anonymous_group, anonymous, BLOCK_CODE),
        )
        denied_scan = scan("s3://models/team/evil.pkl", anonymous_group)
        cluster.apply(denied_scan)
        denied = cluster.wait_for(
            "modelscans", denied_scan["metadata"]["name"], recorded, timeout=120, what="a verdict"
        )["status"]
        assert denied["outcome"] == "ERROR" and denied["incompletes"], denied

        missing = workspace.name("nosecret")
        cluster.apply(
            {
                "apiVersion": API,
                "kind": "ModelSource",
                "metadata": {"name": missing},
                "spec": {
                    "type": "S3",
                    "s3": {
                        "endpoint": endpoint,
                        "bucket": "models",
                        "credentialsSecretRef": {"name": "absent", "namespace": "default"},
                    },
                },
            }
        )
        absent = cluster.wait_for("modelsources", missing, lambda o: ready(o) == "False", what="Ready=False")
        assert condition(absent)["reason"] == "SecretNotFound"
    finally:
        cluster.kubectl("delete", "secret", "-n", "default", secret, check=False)


# --- references that can never be read (issue 10, item 9) ------------------------------


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"model": "file:///models/x\u0000.pkl"}, "spec.model: Invalid value"),
        ({"model": "hf://org/m\u202e"}, "spec.model: Invalid value"),
        ({"model": "hf://org/m", "revision": "main\nx"}, "spec.revision: Invalid value"),
        ({"model": "hf://org/m", "securityGroup": "Team A"}, "spec.securityGroup: Invalid value"),
    ],
    ids=["nul", "bidi", "revision-newline", "group-name"],
)
def test_api_server_refuses_references_that_can_never_be_read(
    cluster: Any, workspace: Any, spec: dict[str, str], message: str
) -> None:
    document = scan("hf://org/m", workspace.name("g"), workspace.name("invalid"))
    document["spec"].update(spec)
    # JSON, not YAML: a NUL must reach the API server as the client would send it.
    result = cluster.kubectl("apply", "-f", "-", input=json.dumps(document), check=False)
    assert result.returncode != 0, result.stdout
    assert message in result.stderr and "should match" in result.stderr, result.stderr


def test_a_scan_the_operator_cannot_read_fails_at_once_as_invalid_reference(
    cluster: Any, operator: Any, workspace: Any
) -> None:
    # A soft hyphen (U+00AD) passes the schema's pattern; the operator refuses it, once.
    src, g = workspace.name("src"), workspace.name("group")
    cluster.apply(source(src, workspace.dir), group(g, src, BLOCK_CODE))
    document = scan(f"file://{workspace.dir}/x\u00ad.pkl", g, workspace.name("soft-hyphen"))
    cluster.kubectl("apply", "-f", "-", input=json.dumps(document))
    name = document["metadata"]["name"]
    done = cluster.wait_for("modelscans", name, recorded, timeout=30, what="a terminal status")
    status = done["status"]
    assert (status["phase"], status["outcome"], condition(done)["reason"]) == (
        "Failed",
        "ERROR",
        "InvalidReference",
    )
    assert "control or invisible characters" in status["reason"] and status["attempts"] == 1
    time.sleep(3)  # nothing is retried: the status stays as written
    assert cluster.get("modelscans", name)["status"]["attempts"] == 1
