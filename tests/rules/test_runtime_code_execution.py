"""RuntimeCodeExecution: a finding rule for code a model ships to run at inference time
(Hugging Face auto_map / trust_remote_code, TensorFlow PyFunc)."""

from __future__ import annotations

import json
from pathlib import Path

from rule_helpers import judge, scan_files

from modelsec.rules.base import RuleResult

MODELING = b"class XModel:\n    pass\n"


def config(**fields: object) -> bytes:
    return json.dumps({"architectures": ["XModel"], "model_type": "x", **fields}).encode()


def test_auto_map_custom_code_fails(tmp_path: Path) -> None:
    report = scan_files(
        tmp_path / "m",
        {"config.json": config(auto_map={"AutoModel": "modeling_x.XModel"}), "modeling_x.py": MODELING},
    )
    outcome = judge("RuntimeCodeExecution", report)
    assert outcome.result == RuleResult.FAILED
    assert "MS-HF-001" in {f.threat for f in outcome.violations}
    assert any(f.subject == "modeling_x.XModel" for f in outcome.violations)


def test_a_config_without_custom_code_passes(tmp_path: Path) -> None:
    outcome = judge("RuntimeCodeExecution", scan_files(tmp_path / "m", {"config.json": config()}))
    assert outcome.result == RuleResult.PASSED


def test_min_severity_above_the_findings_lets_them_through(tmp_path: Path) -> None:
    report = scan_files(
        tmp_path / "m",
        {"config.json": config(auto_map={"AutoModel": "modeling_x.XModel"}), "modeling_x.py": MODELING},
    )
    assert judge("RuntimeCodeExecution", report, {"minSeverity": "CRITICAL"}).result == RuleResult.PASSED
