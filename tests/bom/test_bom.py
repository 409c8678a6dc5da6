"""``modelsec bom`` and :func:`modelsec.bom.bom_json`: CycloneDX 1.6 ML-BOMs of scanned
models, validated against the CycloneDX 1.6 JSON schema that cyclonedx-python-lib ships
(with format checks: URIs, dates)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from remote_fixtures import HubServer
from safetensors.numpy import save
from source_helpers import hf_config

from modelsec.bom import bom_json
from modelsec.cli.main import main
from modelsec.engine import Engine
from modelsec.policy import evaluate, load_group, parse_group
from modelsec.rules.base import EvaluationInput
from modelsec.sources import ScannedModel, ScanOptions, parse_model_uri, scan_model

FILES = {
    "config.json": b'{"architectures": ["BertModel"], "hidden_size": 64}',
    "model.safetensors": save({"w": np.arange(262144, dtype=np.float32)}),  # 1 MiB
    "tokenizer/vocab.txt": b"[PAD]\n[UNK]\nhello\n",
}
# A protocol-2 pickle that would call os.system if loaded; built from bytes, never loaded.
OS_SYSTEM_PICKLE = b"\x80\x02cos\nsystem\nq\x00X\x02\x00\x00\x00idq\x01\x85q\x02Rq\x03."

VALIDATOR = JsonStrictValidator(SchemaVersion.V1_6)


def valid(text: str) -> dict[str, Any]:
    errors = VALIDATOR.validate_str(text, all_errors=True)
    assert errors is None, [str(e) for e in errors]
    bom: dict[str, Any] = json.loads(text)
    assert (bom["bomFormat"], bom["specVersion"]) == ("CycloneDX", "1.6")
    return bom


def props(component: dict[str, Any]) -> dict[str, str]:
    return {p["name"]: p["value"] for p in component.get("properties", [])}


def files_of(bom: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {props(c)["modelsec:name"]: c for c in bom["components"] if c["type"] == "file"}


def write_model(root: Path, files: dict[str, bytes] = FILES) -> Path:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def judged(scanned: ScannedModel, group: str = "local-default") -> str:
    chosen = load_group(group)
    verdict = evaluate(chosen, EvaluationInput(scanned.report, scanned.source_type, scanned.metadata))
    return bom_json(scanned, verdict)


def test_the_validator_rejects_what_is_not_cyclonedx_1_6() -> None:
    """The check below means something: the schema (and its formats) catch mistakes."""
    good = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "version": 1,
        "components": [{"type": "file", "name": "x", "hashes": [{"alg": "SHA-256", "content": "ab" * 32}]}],
    }
    assert VALIDATOR.validate_str(json.dumps(good)) is None
    for broken in (
        {
            **good,
            "components": [{"type": "file", "name": "x", "hashes": [{"alg": "SHA-256", "content": "zz"}]}],
        },
        {**good, "components": [{"type": "model", "name": "x"}]},
        {**good, "serialNumber": "not-a-urn"},
        {**good, "metadata": {"timestamp": "yesterday"}},
    ):
        assert VALIDATOR.validate_str(json.dumps(broken)) is not None, broken


def test_a_local_model(tmp_path: Path) -> None:
    model = write_model(tmp_path / "bert")
    bom = valid(judged(scan_model(parse_model_uri(str(model)), Engine())))

    subject = bom["metadata"]["component"]
    assert subject["type"] == "machine-learning-model" and subject["name"] == "bert"
    facts = props(subject)
    assert facts["modelsec:uri"] == f"file://{model}" and facts["modelsec:sourceType"] == "Local"
    assert facts["modelsec:outcome"] == "ALLOWED" and facts["modelsec:securityGroup"] == "local-default"
    assert facts["modelsec:rule:LoadTimeCodeExecution"].startswith("PASSED Blocking: ")
    assert subject["externalReferences"] == [{"type": "distribution", "url": f"file://{model}"}]

    files = files_of(bom)
    assert set(files) == set(FILES)
    for name, data in FILES.items():
        assert files[name]["hashes"] == [{"alg": "SHA-256", "content": hashlib.sha256(data).hexdigest()}]
        assert props(files[name])["modelsec:size"] == str(len(data))
        assert props(files[name])["modelsec:source"] == f"file://{model}"
    assert props(files["model.safetensors"])["modelsec:format"] == "safetensors"
    assert props(files["config.json"])["modelsec:format"] == "json"
    model_dependency = next(d for d in bom["dependencies"] if d["ref"] == "model")
    assert sorted(model_dependency["dependsOn"]) == sorted(f"file:{n}" for n in FILES)
    assert bom["metadata"]["tools"]["components"][0]["name"] == "modelsec"


def test_a_blocked_model_records_the_verdict_and_the_failed_rule(tmp_path: Path) -> None:
    model = write_model(tmp_path / "m", {**FILES, "extra/optimizer.pkl": OS_SYSTEM_PICKLE})
    bom = valid(judged(scan_model(parse_model_uri(str(model)), Engine())))
    facts = props(bom["metadata"]["component"])
    assert facts["modelsec:outcome"] == "BLOCKED"
    assert "LoadTimeCodeExecution" in facts["modelsec:reason"]
    assert facts["modelsec:rule:LoadTimeCodeExecution"].startswith("FAILED Blocking: ")
    assert int(facts["modelsec:findingsTotal"]) >= 1
    assert props(files_of(bom)["extra/optimizer.pkl"])["modelsec:format"] == "pickle"


def test_file_names_that_are_not_uri_friendly(tmp_path: Path) -> None:
    names = {"a b/ü.json": b"{}", "tab\there.txt": b"x", "esc\x1b[31m.txt": b"y", "percent%41.txt": b"z"}
    model = write_model(tmp_path / "odd dir ü", names)
    bom = valid(judged(scan_model(parse_model_uri(str(model)), Engine())))
    assert set(files_of(bom)) == set(names)
    assert " " not in bom["metadata"]["component"]["externalReferences"][0]["url"]


def test_a_one_file_model(tmp_path: Path) -> None:
    path = tmp_path / "weights.safetensors"
    path.write_bytes(FILES["model.safetensors"])
    bom = valid(judged(scan_model(parse_model_uri(str(path)), Engine())))
    assert props(bom["metadata"]["component"])["modelsec:singleFile"] == "true"
    assert list(files_of(bom)) == ["weights.safetensors"]


def test_a_hugging_face_model(hub: HubServer) -> None:
    hub.orgs["acme"] = True
    hub.add_repo("acme/bert", dict(FILES), card_data={"license": "apache-2.0"}, tags=["license:apache-2.0"])
    commit = hub.repos["acme/bert"].refs["main"]
    scanned = scan_model(parse_model_uri("hf://acme/bert"), Engine(), ScanOptions(config=hf_config(hub)))
    group = parse_group(
        {
            "rules": [
                {"name": "LoadTimeCodeExecution"},
                {"name": "LicenseApproved", "params": {"approvedLicenses": ["apache-2.0"]}},
            ]
        },
        "test",
        "team",
    )
    verdict = evaluate(group, EvaluationInput(scanned.report, scanned.source_type, scanned.metadata))
    bom = valid(bom_json(scanned, verdict))

    subject = bom["metadata"]["component"]
    assert (subject["group"], subject["name"], subject["version"]) == ("acme", "bert", commit)
    assert subject["purl"] == f"pkg:huggingface/acme/bert@{commit}"
    assert subject["licenses"] == [{"license": {"id": "Apache-2.0"}}]
    assert subject["supplier"] == {"name": "acme"}
    facts = props(subject)
    assert facts["modelsec:revision"] == commit and facts["modelsec:securityGroup"] == "team"
    assert facts["modelsec:rule:LicenseApproved"].startswith("PASSED Blocking")

    files = files_of(bom)
    assert set(files) == set(FILES)
    assert all(
        f["version"] == commit and f["licenses"] == [{"license": {"id": "Apache-2.0"}}]
        for f in files.values()
    )
    # The weights were read by range: the Hub's SHA-256 is a claim, never a BOM hash.
    weights = files["model.safetensors"]
    assert "hashes" not in weights
    lfs = hashlib.sha256(FILES["model.safetensors"]).hexdigest()
    assert props(weights)["modelsec:claimedDigest"] == f"claimed:sha256:{lfs}@{hub.url}/acme/bert@{commit}"
    assert files["config.json"]["hashes"][0]["content"] == hashlib.sha256(FILES["config.json"]).hexdigest()


# --- the command line -----------------------------------------------------------------------


def test_bom_from_a_scan_and_from_its_report_agree(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = write_model(tmp_path / "bert")
    assert main(["bom", str(model), "-o", str(tmp_path / "direct.json")]) == 0
    assert main(["scan", str(model), "-f", "json", "-o", str(tmp_path / "scan.json"), "-q"]) == 0
    assert main(["bom", "--report", str(tmp_path / "scan.json"), "-o", str(tmp_path / "converted.json")]) == 0
    direct = valid((tmp_path / "direct.json").read_text())
    converted = valid((tmp_path / "converted.json").read_text())
    for bom in (direct, converted):  # unique per document, by design
        del bom["serialNumber"], bom["metadata"]["timestamp"]
    # the scans differ in timing only, which the BOM does not record
    assert direct == converted


def test_bom_exit_codes_follow_the_verdict(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = write_model(tmp_path / "bad", {"model.pkl": OS_SYSTEM_PICKLE})
    assert main(["bom", str(bad), "-o", str(tmp_path / "bad.json")]) == 1
    assert (
        props(valid((tmp_path / "bad.json").read_text())["metadata"]["component"])["modelsec:outcome"]
        == "BLOCKED"
    )
    capsys.readouterr()
    assert main(["bom"]) == 4
    assert main(["bom", str(bad), "--report", str(tmp_path / "bad.json")]) == 4
    (tmp_path / "not-a-report.json").write_text("{}")
    assert main(["bom", "--report", str(tmp_path / "not-a-report.json")]) == 2
    assert "not a modelsec scan result" in capsys.readouterr().err
    assert main(["bom", str(bad), "-o", str(tmp_path / "no" / "such" / "dir.json")]) == 2
