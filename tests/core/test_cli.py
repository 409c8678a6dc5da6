"""The CLI as users and CI pipelines run it: a real subprocess, real files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
CLEAN = EXAMPLES / "clean"


def modelsec(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modelsec", *args], capture_output=True, text=True, cwd=cwd, timeout=120
    )


def test_help_teaches_every_command():
    top = modelsec("--help")
    assert top.returncode == 0
    for command in ("scan", "rules", "groups", "formats", "threats", "operator", "webhook"):
        assert command in top.stdout
    for command in ("scan", "rules", "groups", "formats", "threats"):
        sub = modelsec(command, "--help")
        assert sub.returncode == 0, sub.stderr
        assert "usage: modelsec " + command in sub.stdout
    scan_help = modelsec("scan", "--help").stdout
    assert "exit codes" in scan_help and "sarif" in scan_help and "hf://" in scan_help


def test_usage_errors_exit_4():
    assert modelsec().returncode == 4
    assert modelsec("scan").returncode == 4
    assert modelsec("scan", "--format", "xml", str(CLEAN)).returncode == 4
    missing = modelsec("scan", "/definitely/not/here.pt")
    assert missing.returncode == 4 and "no such file" in missing.stderr
    bad_group = modelsec("scan", str(CLEAN), "--group", "nope")
    assert bad_group.returncode == 4 and "built-in groups" in bad_group.stderr
    bad_ref = modelsec("scan", "gopher://x/y")
    assert bad_ref.returncode == 4 and "unsupported scheme" in bad_ref.stderr


def test_clean_model_exits_0_with_a_readable_table():
    result = modelsec("scan", str(CLEAN))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ALLOWED" in result.stdout and "LoadTimeCodeExecution" in result.stdout


def test_json_output_is_stable_and_complete(tmp_path):
    out = tmp_path / "r.json"
    result = modelsec("scan", str(CLEAN), "--format", "json", "--output", str(out))
    assert result.returncode == 0 and result.stdout == ""
    doc = json.loads(out.read_text())
    assert doc["schemaVersion"] == "modelsec.io/scan-result/v1"
    assert doc["outcome"] == "ALLOWED"
    model = doc["models"][0]
    for key in (
        "target",
        "uri",
        "sourceType",
        "outcome",
        "reason",
        "fingerprint",
        "filesScanned",
        "bytesScanned",
        "rules",
        "findings",
        "findingsTotal",
        "incomplete",
        "files",
    ):
        assert key in model
    assert {f["path"].rsplit("/", 1)[-1] for f in model["files"]} >= {"tiny-mlp.safetensors"}
    assert all(len(f["sha256"]) == 64 for f in model["files"])


def test_group_from_file(tmp_path):
    group = tmp_path / "only-safetensors.yaml"
    group.write_text(
        "kind: SecurityGroup\nmetadata: {name: only-st}\nspec:\n  rules:\n"
        "    - {name: ApprovedFormats, mode: Blocking, params: {approvedFormats: [text]}}\n"
    )
    result = modelsec("scan", str(CLEAN / "tiny-mlp.safetensors"), "--group", str(group), "--format", "json")
    doc = json.loads(result.stdout)
    assert doc["group"]["name"] == "only-st"
    if doc["models"][0]["files"][0]["format"] == "safetensors":
        assert result.returncode == 1 and doc["outcome"] == "BLOCKED"
    valid = modelsec("groups", "validate", str(group))
    assert valid.returncode == 0
    group.write_text("spec:\n  rules:\n    - {name: Nope}\n")
    invalid = modelsec("groups", "validate", str(group))
    assert invalid.returncode == 4 and "unknown rule 'Nope'" in invalid.stderr


def test_sarif_output_shape(tmp_path):
    bad = tmp_path / "bad.pkl"
    bad.write_bytes((EXAMPLES / "malicious" / "os-system.pkl").read_bytes())
    result = modelsec("scan", str(bad), "--format", "sarif")
    doc = json.loads(result.stdout)
    assert doc["version"] == "2.1.0"
    run = doc["runs"][0]
    assert run["tool"]["driver"]["name"] == "modelsec"
    rule_ids = {r["id"] for r in run["tool"]["driver"]["rules"]}
    assert result.returncode == 1
    assert any(r["level"] == "error" and r["ruleId"].startswith("MS-PKL") for r in run["results"])
    for res in run["results"]:
        assert res["ruleId"] in rule_ids
        assert res["level"] in ("error", "warning", "note")
        assert res["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]


def test_groups_show_round_trips(tmp_path):
    shown = modelsec("groups", "show", "strict")
    assert shown.returncode == 0 and "kind: SecurityGroup" in shown.stdout
    path = tmp_path / "strict-copy.yaml"
    path.write_text(shown.stdout)
    assert modelsec("groups", "validate", str(path)).returncode == 0


def test_catalogue_commands_emit_json():
    rules = json.loads(modelsec("rules", "--format", "json").stdout)
    assert {"LoadTimeCodeExecution", "SuspiciousComponents", "ApprovedFormats", "ApprovedLocation"} <= {
        r["id"] for r in rules
    }
    formats = json.loads(modelsec("formats", "--format", "json").stdout)
    assert any(f["name"] == "text" for f in formats)
    threats = json.loads(modelsec("threats", "--format", "json").stdout)
    assert all(t["code"].startswith("MS-") for t in threats)


def test_scanning_a_local_file_does_not_import_cluster_or_cloud_clients():
    code = (
        "import sys; from modelsec.cli.main import main; "
        f"rc = main(['scan', '-q', {str(CLEAN)!r}]); "
        "heavy = [m for m in ('kubernetes', 'kopf', 'boto3', 'botocore', 'huggingface_hub', 'aiohttp') "
        "if m in sys.modules]; print(heavy); sys.exit(rc)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr
