"""ModelBlocked: deniedModels block whatever else the scan found (a decisive outcome);
a non-empty approvedModels is an allow-list."""

from __future__ import annotations

from rule_helpers import meta, result, run

from modelsec.engine import ScanReport
from modelsec.findings import Incomplete
from modelsec.policy import Outcome
from modelsec.rules.base import RuleResult


def test_model_blocked_lists() -> None:
    assert result("ModelBlocked", meta(), deniedModels=["other/*"])[0] == RuleResult.PASSED
    assert result("ModelBlocked", meta(), deniedModels=["ACME/Model"])[0] == RuleResult.FAILED
    # A deny beats an allow.
    status, message = result("ModelBlocked", meta(), deniedModels=["acme/*"], approvedModels=["acme/model"])
    assert status == RuleResult.FAILED and "deniedModels" in message
    assert result("ModelBlocked", meta(), approvedModels=["acme/*"])[0] == RuleResult.PASSED
    status, message = result("ModelBlocked", meta(), approvedModels=["trusted/*"])
    assert status == RuleResult.FAILED and "not in approvedModels" in message
    status, message = result("ModelBlocked", meta(model_id=None))
    assert status == RuleResult.ERROR and "no org/name model id" in message
    assert result("ModelBlocked", None)[0] == RuleResult.ERROR


def test_denied_model_overrides_every_other_result() -> None:
    uninspectable = ScanReport(target="hf://acme/model")
    uninspectable.incompletes.append(Incomplete("hf://acme/model/x.bin", "encrypted", "MS-GEN-001"))
    rules = [
        {"name": "LoadTimeCodeExecution"},  # ERROR: something could not be inspected
        {"name": "ModelBlocked", "mode": "NonBlocking", "params": {"deniedModels": ["acme/model"]}},
    ]
    verdict = run(rules, meta(), uninspectable)
    assert verdict.outcome == Outcome.BLOCKED
    assert "overrides every other rule" in verdict.reason
    allowed = run([{"name": "ModelBlocked", "params": {"deniedModels": ["other/x"]}}], meta())
    assert allowed.outcome == Outcome.ALLOWED
