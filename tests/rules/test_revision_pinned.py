"""RevisionPinned: what counts as a pin, on references and in scans."""

from __future__ import annotations

import pytest

from modelsec.engine import ScanReport
from modelsec.metadata import ModelMetadata
from modelsec.rules import get
from modelsec.rules.base import EvaluationInput, RuleResult, SourceType
from modelsec.rules.revision_pinned import RevisionPinnedParams, judge

SHA = "0123456789abcdef0123456789abcdef01234567"
HF, S3 = SourceType.HUGGING_FACE, SourceType.S3
DEFAULT = RevisionPinnedParams()


@pytest.mark.parametrize(
    "source, revision, pinned",
    [
        (HF, SHA, True),
        (HF, SHA.upper(), True),
        (HF, None, False),
        (HF, "", False),
        (HF, "main", False),
        (HF, "v1.0", False),
        (HF, SHA[:7], False),
        (HF, SHA + "0", False),
        (HF, "refs/pr/3", False),
        (HF, "sha256:" + "a" * 64, True),
        (S3, "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY", True),
        (S3, "null", False),
        (S3, "latest", False),
        (S3, None, False),
        (S3, "etag:abc:12", True),
        (S3, "sha256:" + "b" * 64, True),
    ],
)
def test_what_is_pinned(source: SourceType, revision: str | None, pinned: bool) -> None:
    assert judge(source, revision, DEFAULT).pinned is pinned


def test_messages_say_how_to_fix_it() -> None:
    assert "40-hex commit sha" in judge(HF, "v2", DEFAULT).message
    assert "all 40 hex digits" in judge(HF, "abc1234", DEFAULT).message
    assert "moves" in judge(HF, "main", DEFAULT).message


def test_trusted_revisions() -> None:
    params = RevisionPinnedParams.parse({"trustedRevisions": ["v*", "release-*"]})
    assert judge(HF, "v1.2", params).pinned and judge(HF, "release-7", params).pinned
    assert not judge(HF, "main", params).pinned


def _given(source: SourceType, extra: dict[str, str], revision: str | None = None) -> EvaluationInput:
    metadata = ModelMetadata(uri="hf://org/m", revision=revision, extra=extra)
    return EvaluationInput(ScanReport(target="hf://org/m"), source, metadata)


def test_rule_in_a_scan_judges_the_requested_revision_not_the_resolved_one() -> None:
    rule = get("RevisionPinned")
    assert rule is not None
    unpinned = rule.evaluate(_given(HF, {}, revision=SHA), DEFAULT)  # resolved, but not asked for
    assert unpinned.result == RuleResult.FAILED and unpinned.violations[0].threat == "MS-POL-003"
    assert rule.evaluate(_given(HF, {"requestedRevision": SHA}, SHA), DEFAULT).result == RuleResult.PASSED
    assert rule.evaluate(_given(HF, {"requestedRevision": "main"}, SHA), DEFAULT).result == RuleResult.FAILED


def test_rule_is_skipped_not_passed_when_the_source_cannot_tell() -> None:
    rule = get("RevisionPinned")
    assert rule is not None
    outcome = rule.evaluate(_given(S3, {}, revision="v1"), DEFAULT)
    assert outcome.result == RuleResult.SKIPPED and "admission webhook" in outcome.message


def test_rule_does_not_apply_to_local_sources() -> None:
    rule = get("RevisionPinned")
    assert rule is not None and SourceType.LOCAL not in rule.sources
