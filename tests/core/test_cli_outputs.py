"""What ``modelsec`` shows and writes (issue 10, items 13-15 and 19): reports that agree
with each other, groups that check nothing, first-contact details, and terminal safety."""

from __future__ import annotations

import dataclasses
import io
import json
import zipfile
from pathlib import Path

import yaml
from cli_helpers import OS_SYSTEM_PICKLE, modelsec

from modelsec.rules import registry

ESCAPES = "\x1b[2J\x1b[H\x1b[1;32mOUTCOME ALLOWED\x1b[0m\r\x07"


def pickle_model(folder: Path, name: str = "model.pkl") -> Path:
    path = folder / name
    path.write_bytes(OS_SYSTEM_PICKLE)
    return path


# --- item 13: outputs -------------------------------------------------------------------


def test_quiet_still_writes_the_report_file(tmp_path):
    model = pickle_model(tmp_path)
    for fmt in ("sarif", "json", "table"):
        out = tmp_path / f"out.{fmt}"
        result = modelsec("scan", str(model), "-q", "-f", fmt, "-o", str(out))
        assert result.returncode == 1 and result.stdout == "" and result.stderr == ""
        assert out.is_file() and out.stat().st_size > 0, fmt
    assert json.loads((tmp_path / "out.sarif").read_text())["version"] == "2.1.0"
    assert modelsec("scan", str(model), "-q").stdout == ""


def test_json_has_the_warnings_the_table_shows(tmp_path):
    model = pickle_model(tmp_path)  # pickle is not an approved format: a NonBlocking failure
    table = modelsec("scan", str(model)).stdout
    assert "MS-POL-001" in table and "(warning)" in table
    doc = json.loads(modelsec("scan", str(model), "--format", "json").stdout)["models"][0]
    threats = {f["threat"] for f in doc["findings"]}
    assert {"MS-PKL-100", "MS-POL-001"} <= threats
    assert doc["findingsTotal"] == len(doc["findings"])
    assert doc["warnings"] == [
        {"rule": "ApprovedFormats", "result": "FAILED", "message": "unapproved format(s): pickle"}
    ]


def test_json_keeps_file_names_exact(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    pickle_model(folder, f"{ESCAPES}.pkl")
    doc = json.loads(modelsec("scan", str(folder), "--format", "json").stdout)
    assert {f["file"] for f in doc["models"][0]["findings"]} == {str(folder / f"{ESCAPES}.pkl")}


# --- item 14: groups that check nothing -------------------------------------------------


def test_an_empty_group_is_refused_unless_it_says_so(tmp_path):
    model = pickle_model(tmp_path)
    empty = tmp_path / "empty.yaml"
    for spec in ({"rules": []}, {"rules": [{"name": "LoadTimeCodeExecution", "mode": "Disabled"}]}):
        empty.write_text(yaml.safe_dump({"kind": "SecurityGroup", "metadata": {"name": "e"}, "spec": spec}))
        refused = modelsec("scan", str(model), "-g", str(empty))
        assert refused.returncode == 4 and "would allow every model" in refused.stderr
        assert "allowEmpty" in refused.stderr and refused.stdout == ""
        invalid = modelsec("groups", "validate", str(empty))
        assert invalid.returncode == 4 and "would allow every model" in invalid.stderr

        empty.write_text(yaml.safe_dump({"spec": {**spec, "allowEmpty": True}}))
        allowed = modelsec("scan", str(model), "-g", str(empty), "-f", "json")
        assert allowed.returncode == 0 and "warning" in allowed.stderr
        assert "every model is ALLOWED" in json.loads(allowed.stdout)["models"][0]["reason"]
        valid = modelsec("groups", "validate", str(empty))
        assert valid.returncode == 0 and "warning" in valid.stderr


# --- item 15: first contact -------------------------------------------------------------


def test_negative_max_findings_is_a_usage_error(tmp_path):
    model = pickle_model(tmp_path)
    for bad in ("-1", "many"):
        result = modelsec("scan", str(model), "--max-findings", bad)
        assert result.returncode == 4 and "--max-findings" in result.stderr
    assert modelsec("scan", str(model), "--max-findings", "0").returncode == 1


def test_groups_show_prints_every_parameter_with_its_default(tmp_path):
    shown = yaml.safe_load(modelsec("groups", "show", "local-default").stdout)
    by_name = {r["name"]: r for r in shown["spec"]["rules"]}
    assert by_name["LoadTimeCodeExecution"]["params"] == {"minSeverity": "LOW"}
    assert "approvedFormats" in by_name["ApprovedFormats"]["params"]
    # every rule, with every default filled in, still validates
    every = tmp_path / "every.yaml"
    every.write_text(yaml.safe_dump({"spec": {"rules": [{"name": n} for n in registry()]}}))
    full = modelsec("groups", "show", str(every))
    assert full.returncode == 0, full.stderr
    assert all(
        r["params"]
        for r in yaml.safe_load(full.stdout)["spec"]["rules"]
        if dataclasses.fields(registry()[r["name"]].Params)
    )
    round_trip = tmp_path / "round-trip.yaml"
    round_trip.write_text(full.stdout)
    assert modelsec("groups", "validate", str(round_trip)).returncode == 0


def test_formats_lists_each_name_once():
    rows = json.loads(modelsec("formats", "--format", "json").stdout)
    names = [r["name"] for r in rows]
    assert len(names) == len(set(names))
    savedmodel = next(r for r in rows if r["name"] == "tf-savedmodel")
    assert savedmodel["layout"] is True and savedmodel["category"] == "model"
    table = modelsec("formats").stdout.splitlines()
    assert len([line for line in table if line.split()[0] == "tf-savedmodel"]) == 1


def test_offline_errors_name_the_reference_once():
    result = modelsec("scan", "hf://some-org/some-model", env={"HF_HUB_OFFLINE": "1"})
    assert result.returncode == 2
    assert "HF_HUB_OFFLINE" in result.stdout
    assert "hf://some-org/some-model: hf://some-org/some-model" not in result.stdout


# --- item 19: terminal injection ----------------------------------------------------------


def assert_escaped(text: str) -> None:
    assert "\x1b" not in text and "\r" not in text and "\x07" not in text
    assert "\\x1b[2J" in text


def test_table_escapes_control_characters_in_file_names(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    pickle_model(folder, f"{ESCAPES}.pkl")
    result = modelsec("scan", str(folder))
    assert result.returncode == 1
    assert_escaped(result.stdout)
    assert "OUTCOME ALLOWED" in result.stdout  # still shown, as harmless text


def test_table_escapes_archive_member_names_and_reasons(tmp_path):
    archive = tmp_path / "model.zip"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr(f"archive/{ESCAPES}data.pkl", OS_SYSTEM_PICKLE)
    archive.write_bytes(buffer.getvalue())
    result = modelsec("scan", str(archive))
    assert result.returncode == 1 and "MS-PKL-100" in result.stdout
    assert_escaped(result.stdout)


def test_error_messages_escape_what_the_user_passed(tmp_path):
    missing = modelsec("scan", str(tmp_path / f"{ESCAPES}.pkl"))
    assert missing.returncode == 4 and "no such file" in missing.stderr
    assert_escaped(missing.stderr)
    unknown_flag = modelsec("scan", f"--{ESCAPES}")
    assert unknown_flag.returncode == 4
    assert_escaped(unknown_flag.stderr)
    group = tmp_path / f"{ESCAPES}.yaml"
    group.write_text("spec:\n  rules:\n    - {name: Nope}\n")
    for command in (["groups", "validate", str(group)], ["scan", str(tmp_path), "-g", str(group)]):
        invalid = modelsec(*command)
        assert invalid.returncode == 4 and "unknown rule" in invalid.stderr
        assert_escaped(invalid.stderr)


def test_group_names_are_escaped_in_the_table_header(tmp_path):
    model = pickle_model(tmp_path)
    group = tmp_path / "g.yaml"
    group.write_text(
        yaml.safe_dump(
            {
                "kind": "SecurityGroup",
                "metadata": {"name": ESCAPES},
                "spec": {"rules": [{"name": "LoadTimeCodeExecution"}]},
            }
        )
    )
    result = modelsec("scan", str(model), "-g", str(group))
    assert result.returncode == 1
    assert_escaped(result.stdout)
    doc = json.loads(modelsec("scan", str(model), "-g", str(group), "-f", "json").stdout)
    assert doc["group"]["name"] == ESCAPES
