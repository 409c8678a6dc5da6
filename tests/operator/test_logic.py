"""The operator's decisions without an API server: validation, planning, resolution,
status building. (The cluster tests prove the same behaviour end to end.)"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from modelsec.engine import ScanReport
from modelsec.findings import Finding, Severity
from modelsec.k8s.scan import MAX_FINDINGS, MAX_HISTORY
from modelsec.k8s.source import ModelSourceSpec
from modelsec.metadata import ModelMetadata
from modelsec.policy import Mode, Outcome, RuleEvaluation, Verdict
from modelsec.rules.base import RuleResult, SourceType
from modelsec.sources import ModelRef, ScannedModel
from modelsec_operator.planning import Action, plan
from modelsec_operator.scanning import ScanRefused, resolve
from modelsec_operator.validation import validate_group, validate_source
from modelsec_operator.verdicts import completed_status, history_after

RULES = [{"name": "LoadTimeCodeExecution", "mode": "Blocking"}]


def local_source(path: Path) -> dict:
    return {"type": "Local", "local": {"path": str(path)}}


# --- sources and groups --------------------------------------------------------------


def test_local_source_ready_and_not(tmp_path: Path) -> None:
    assert validate_source("s", local_source(tmp_path), None).ready
    missing = validate_source("s", local_source(tmp_path / "nope"), None)
    assert (missing.ready, missing.reason) == (False, "PathNotFound")
    outside = validate_source("s", local_source(tmp_path), tmp_path / "root")
    assert (outside.ready, outside.reason) == (False, "OutsideLocalRoot")
    assert "--local-root" in outside.message


def test_source_spec_rules_match_the_cel_rules() -> None:
    bad = validate_source("s", {"type": "S3", "local": {"path": "/x"}}, None)
    assert bad.reason == "InvalidSpec" and "Local" in bad.message


def test_group_reasons(tmp_path: Path) -> None:
    source = validate_source("src", local_source(tmp_path), None)
    ok = validate_group("g", {"sourceRef": "src", "rules": RULES}, 3, source)
    assert ok.ready and ok.counts == {"rules": 1, "blocking": 1} and ok.generation == 3
    assert validate_group("g", {"sourceRef": "src", "rules": RULES}, 3, None).reason == "SourceNotFound"
    unknown = validate_group("g", {"sourceRef": "src", "rules": [{"name": "Nope"}]}, 1, source)
    assert unknown.reason == "UnknownRule" and "known rules" in unknown.message
    params = validate_group(
        "g",
        {"sourceRef": "src", "rules": [{"name": "ApprovedFormats", "params": {"approvedFormat": []}}]},
        1,
        source,
    )
    assert params.reason == "InvalidParams" and "approvedFormat" in params.message
    mismatch = validate_group("g", {"sourceRef": "src", "sourceType": "S3", "rules": RULES}, 1, source)
    assert mismatch.reason == "SourceTypeMismatch"
    assert validate_group("g", {"sourceRef": "src", "rules": []}, 1, source).reason == "NoRules"


def test_a_group_that_enforces_no_rule_is_ready_only_when_it_says_so(tmp_path: Path) -> None:
    source = validate_source("src", local_source(tmp_path), None)
    all_disabled = [{"name": "LoadTimeCodeExecution", "mode": "Disabled"}]
    for rules in ([], all_disabled):
        refused = validate_group("g", {"sourceRef": "src", "rules": rules}, 1, source)
        assert (refused.ready, refused.reason) == (False, "NoRules")
        assert "allowEmpty" in refused.message
        meant = validate_group("g", {"sourceRef": "src", "rules": rules, "allowEmpty": True}, 1, source)
        assert meant.ready and "every model is ALLOWED" in meant.message


def test_group_digest_follows_group_and_source(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    a = validate_source("src", local_source(tmp_path), None)
    b = validate_source("src", local_source(tmp_path / "b"), None)
    spec = {"sourceRef": "src", "rules": RULES}
    assert validate_group("g", spec, 1, a).digest == validate_group("g", dict(spec), 2, a).digest
    assert validate_group("g", spec, 1, a).digest != validate_group("g", spec, 1, b).digest
    other = {"sourceRef": "src", "rules": [{"name": "LoadTimeCodeExecution", "mode": "NonBlocking"}]}
    assert validate_group("g", spec, 1, a).digest != validate_group("g", other, 1, a).digest


# --- planning ------------------------------------------------------------------------


@pytest.fixture
def ready_group(tmp_path: Path):
    source = validate_source("src", local_source(tmp_path), None)
    return validate_group("g", {"sourceRef": "src", "rules": RULES, "rescanInterval": "1h"}, 1, source)


def test_plan_new_interrupted_current_changed(ready_group) -> None:
    assert plan({}, ready_group, "g").action == Action.EVALUATE
    interrupted = plan({"phase": "Running", "worker": "old@1"}, ready_group, "g")
    assert interrupted.action == Action.SCAN and "old@1" in interrupted.why
    now = datetime.now(UTC)
    done = {
        "phase": "Completed",
        "groupDigest": ready_group.digest,
        "completedAt": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    assert plan(done, ready_group, "g", now=now).action == Action.NOTHING
    assert plan({**done, "groupDigest": "old"}, ready_group, "g", now=now).action == Action.EVALUATE
    assert plan(done, ready_group, "g", now=now + timedelta(hours=1)).action == Action.SCAN
    asked = plan(done, ready_group, "g", now=now, rescan_requested="2030-01-01T00:00:00Z")
    assert asked.action == Action.SCAN
    answered = {**done, "rescanRequest": "2030-01-01T00:00:00Z"}
    assert (
        plan(answered, ready_group, "g", now=now, rescan_requested="2030-01-01T00:00:00Z").action
        == Action.NOTHING
    )


def test_plan_missing_or_broken_group_fails_closed(tmp_path: Path) -> None:
    missing = plan({}, None, "team")
    assert (missing.action, missing.reason) == (Action.FAIL, "GroupNotFound")
    assert plan({"phase": "Completed", "completedAt": "x"}, None, "team").action == Action.NOTHING
    broken = validate_group("g", {"sourceRef": "src", "rules": RULES}, 1, None)
    failed = plan({"phase": "Completed", "groupDigest": "before"}, broken, "g")
    assert (failed.action, failed.reason) == (Action.FAIL, "GroupNotReady")
    assert plan({"phase": "Failed", "groupDigest": broken.digest}, broken, "g").action == Action.NOTHING


# --- resolving references ------------------------------------------------------------


def test_local_references_must_stay_inside_the_source(tmp_path: Path) -> None:
    root = tmp_path / "models"
    root.mkdir()
    (root / "ok.pkl").write_bytes(b"x")
    (tmp_path / "secret").write_bytes(b"x")
    os.symlink(tmp_path / "secret", root / "link.pkl")
    spec = ModelSourceSpec.model_validate(local_source(root))
    assert resolve(f"file://{root}/ok.pkl", None, spec, "d").ref.location == str(root / "ok.pkl")
    for escape in (f"file://{root}/../secret", f"file://{root}/link.pkl", "file:///etc/passwd"):
        with pytest.raises(ScanRefused) as refused:
            resolve(escape, None, spec, "d")
        assert refused.value.reason == "OutsideSource" and "failing closed" in refused.value.message
    with pytest.raises(ScanRefused) as mismatch:
        resolve("hf://org/model", None, spec, "d")
    assert mismatch.value.reason == "SourceMismatch"


def test_s3_references_must_stay_inside_bucket_and_prefix() -> None:
    spec = ModelSourceSpec.model_validate({"type": "S3", "s3": {"bucket": "models", "prefix": "team/"}})
    assert resolve("s3://models/team/m.pkl", None, spec, "d").ref.location == "models/team/m.pkl"
    for outside in ("s3://models/other/m.pkl", "s3://models/teamx/m.pkl", "s3://other/team/m.pkl"):
        with pytest.raises(ScanRefused, match="outside the S3 source"):
            resolve(outside, None, spec, "d")
    with pytest.raises(ScanRefused) as dotted:  # a proxy may fold it to models/secret/m.pkl
        resolve("s3://models/team/../secret/m.pkl", None, spec, "d")
    assert dotted.value.reason == "InvalidReference"


@pytest.mark.parametrize(
    "model, revision",
    [
        ("file:///models/x\x00.pkl", None),  # os.path.realpath raised ValueError: retried forever
        ("file:///models/x\u202e.pkl", None),
        ("file:///models/x.pkl", "main\nevil"),
        ("file:///models/" + "x" * 3000, None),
    ],
)
def test_references_that_can_never_be_read_are_refused_as_invalid(
    tmp_path: Path, model: str, revision: str | None
) -> None:
    spec = ModelSourceSpec.model_validate(local_source(tmp_path))
    with pytest.raises(ScanRefused) as refused:
        resolve(model, revision, spec, "d")
    assert refused.value.reason == "InvalidReference"


def test_scan_specs_say_in_words_what_is_wrong() -> None:
    from pydantic import ValidationError

    from modelsec.k8s.scan import ModelScanSpec

    for spec, words in (
        ({"model": "file:///m/\x00", "securityGroup": "g"}, "control or invisible"),
        ({"model": "gs://b/k", "securityGroup": "g"}, "must be hf://"),
        ({"model": "hf://o/m", "revision": "a b", "securityGroup": "g"}, "not a usable revision"),
        ({"model": "hf://o/m", "securityGroup": "Team A"}, "name of a SecurityGroup"),
    ):
        with pytest.raises(ValidationError, match=words):
            ModelScanSpec.model_validate(spec)


# --- status --------------------------------------------------------------------------


def _finding(i: int, severity: Severity = Severity.LOW, rule: str = "LoadTimeCodeExecution") -> Finding:
    return Finding(rule, "MS-TST-001", severity, f"/m/f{i}.pkl", f"finding {i}")


def test_findings_are_bounded_with_counts_and_blocking_first() -> None:
    warnings = [_finding(i, rule="ApprovedFormats") for i in range(MAX_FINDINGS + 10)]
    blocking = [_finding(1000, Severity.CRITICAL)]
    verdict = Verdict(
        "g",
        Outcome.BLOCKED,
        [
            RuleEvaluation("ApprovedFormats", Mode.NON_BLOCKING, RuleResult.FAILED, warnings, "w"),
            RuleEvaluation("LoadTimeCodeExecution", Mode.BLOCKING, RuleResult.FAILED, blocking, "b"),
        ],
        "blocking rule(s) failed: LoadTimeCodeExecution",
    )
    report = ScanReport(target="/m")
    scanned = ScannedModel(ModelRef("file", "/m"), report, ModelMetadata(uri="file:///m"), SourceType.LOCAL)
    status = completed_status(
        verdict,
        scanned,
        generation=1,
        group_digest="d",
        group_generation=1,
        worker="w",
        attempts=1,
        conditions=None,
    )
    assert len(status["findings"]) == MAX_FINDINGS
    assert status["findings"][0]["file"] == "/m/f1000.pkl"
    assert status["findingsTotal"] == MAX_FINDINGS + 11 and status["findingsTruncated"] is True
    assert {r["name"]: r["violations"] for r in status["rules"]} == {
        "ApprovedFormats": MAX_FINDINGS + 10,
        "LoadTimeCodeExecution": 1,
    }
    assert status["conditions"][0]["type"] == "Ready" and status["conditions"][0]["reason"] == "Blocked"
    assert "history" not in status  # a merge patch must leave the audit history alone


def test_history_is_bounded_and_counts_what_it_drops() -> None:
    status: dict = {}
    for i in range(MAX_HISTORY + 5):
        status = {
            "phase": "Completed",
            "outcome": "ALLOWED",
            "completedAt": f"2030-01-01T00:00:{i:02d}Z",
            "rules": [{"name": "R", "mode": "Blocking", "result": "FAILED"}],
            "history": status.get("history"),
            "historyDropped": status.get("historyDropped"),
        }
        history, dropped = history_after(status, f"change {i}")
        status["history"], status["historyDropped"] = history, dropped
    assert len(status["history"]) == MAX_HISTORY and status["historyDropped"] == 5
    newest = status["history"][0]
    assert newest["supersededBecause"] == f"change {MAX_HISTORY + 4}" and newest["failedRules"] == ["R"]
    assert history_after({"phase": "Running"}, "x") == ([], 0)


def test_condition_messages_escape_what_they_quote() -> None:
    from modelsec.k8s.common import ConditionStatus, set_condition

    (ready,) = set_condition(
        None,
        "Ready",
        ConditionStatus.FALSE,
        "PathNotFound",
        "spec.local.path /m/\x1b[2J\x1b[32mReady is not a directory",
    )
    assert "\x1b" not in ready["message"] and "\\x1b[2J" in ready["message"]
