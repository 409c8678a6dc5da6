"""The CRDs: generated from the models, structural, and committed up to date."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelsec import rules as rule_registry
from modelsec.k8s import crds
from modelsec.k8s.group import SecurityGroupResourceSpec, parse_duration
from modelsec.k8s.schema import SchemaError, structural
from modelsec.policy import SecurityGroupSpec, load_group

REPO = Path(__file__).resolve().parents[2]


def test_committed_crds_match_the_generator() -> None:
    rendered = crds.render_files()
    committed = {p.name: p.read_text() for p in (REPO / "crds").glob("*.yaml")}
    assert sorted(committed) == sorted(rendered), "run hack/gen-crds.sh"
    for name, text in rendered.items():
        assert committed[name] == text, f"crds/{name} is stale: run hack/gen-crds.sh"


def test_render_all_is_the_files_as_one_stream() -> None:
    documents = list(yaml.safe_load_all(crds.render_all()))
    assert [d["metadata"]["name"] for d in documents] == [
        "modelsources.modelsec.io",
        "securitygroups.modelsec.io",
        "modelscans.modelsec.io",
        "scanresults.modelsec.io",
        "clusterkopfpeerings.kopf.dev",
    ]


def _nodes(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, schema
    for name, sub in schema.get("properties", {}).items():
        yield from _nodes(sub, f"{path}.{name}")
    if "items" in schema:
        yield from _nodes(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from _nodes(schema["additionalProperties"], f"{path}{{}}")


@pytest.mark.parametrize("kind", crds.KINDS, ids=lambda k: k.kind)
def test_schemas_are_structural(kind: crds.Kind) -> None:
    for path, node in _nodes(kind.schema()):
        assert "$ref" not in node and "anyOf" not in node and "title" not in node, path
        assert "type" in node or node.get("x-kubernetes-preserve-unknown-fields"), path
        assert not ("properties" in node and "additionalProperties" in node), path
        if "default" in node:
            assert node["default"] is not None, path


@pytest.mark.parametrize("kind", crds.KINDS, ids=lambda k: k.kind)
def test_names_scope_and_columns(kind: crds.Kind) -> None:
    doc = kind.render()
    spec = doc["spec"]
    assert spec["group"] == "modelsec.io"
    if kind.kind == "ScanResult":  # internal, in the operator's namespace: not in `get modelsec`
        assert spec["scope"] == "Namespaced" and spec["names"]["categories"] == []
    else:
        assert spec["scope"] == "Cluster" and spec["names"]["categories"] == ["modelsec"]
    version = spec["versions"][0]
    assert version["name"] == "v1alpha1" and version["subresources"] == {"status": {}}
    assert version["additionalPrinterColumns"][-1]["name"] == "Age"


def test_short_names_and_printer_columns() -> None:
    by_kind = {k.kind: k.render()["spec"] for k in crds.KINDS}
    assert by_kind["ModelSource"]["names"]["shortNames"] == ["msrc"]
    assert by_kind["SecurityGroup"]["names"]["shortNames"] == ["sg", "msg"]
    assert by_kind["ModelScan"]["names"]["shortNames"] == ["mscan"]
    columns = [
        c["name"]
        for c in by_kind["ModelScan"]["versions"][0]["additionalPrinterColumns"]
        if "priority" not in c
    ]
    assert columns == ["Model", "Group", "Phase", "Outcome", "State", "Queue", "Age"]
    columns = [
        c["name"]
        for c in by_kind["SecurityGroup"]["versions"][0]["additionalPrinterColumns"]
        if "priority" not in c
    ]
    assert columns == ["Source", "Rules", "Blocking", "Ready", "Age"]


def _spec(kind: str) -> dict[str, Any]:
    kind_ = next(k for k in crds.KINDS if k.kind == kind)
    return kind_.schema()["properties"]["spec"]


def test_group_schema_knows_rules_modes_and_uniqueness() -> None:
    spec = _spec("SecurityGroup")
    rules = spec["properties"]["rules"]
    assert rules["x-kubernetes-list-type"] == "map" and rules["x-kubernetes-list-map-keys"] == ["name"]
    item = rules["items"]["properties"]
    assert item["name"]["enum"] == sorted(rule_registry.registry())
    assert item["mode"]["enum"] == ["Blocking", "NonBlocking", "Disabled"]
    assert item["mode"]["default"] == "Blocking"
    assert item["params"]["x-kubernetes-preserve-unknown-fields"] is True
    selector = spec["properties"]["namespaceSelector"]
    assert set(selector["properties"]) == {"matchLabels", "matchExpressions"}


def test_source_schema_ties_type_to_settings_with_cel() -> None:
    spec = _spec("ModelSource")
    rules = [v["rule"] for v in spec["x-kubernetes-validations"]]
    assert "self.type != 'Local' || has(self.local)" in rules
    assert "self.type == 'S3' || !has(self.s3)" in rules
    assert spec["properties"]["type"]["enum"] == ["Local", "HuggingFace", "S3"]


def test_scan_spec_is_immutable_and_model_checked() -> None:
    spec = _spec("ModelScan")
    assert spec["x-kubernetes-validations"][0]["rule"] == "self == oldSelf"
    assert "file:///" in spec["properties"]["model"]["x-kubernetes-validations"][0]["rule"]
    assert sorted(spec["required"]) == ["model", "securityGroup"]


def test_group_spec_extends_the_policy_spec_so_cli_groups_load_unchanged() -> None:
    assert issubclass(SecurityGroupResourceSpec, SecurityGroupSpec)
    builtin = load_group("strict")
    as_resource = SecurityGroupResourceSpec.model_validate(
        SecurityGroupSpec.of(builtin.spec).model_dump(by_alias=True)
    )
    assert as_resource.policy_spec() == builtin.spec
    with_interval = SecurityGroupResourceSpec.model_validate(
        {**SecurityGroupSpec.of(builtin.spec).model_dump(by_alias=True), "rescanInterval": "12h"}
    )
    assert with_interval.policy_spec() == builtin.spec  # cluster-only settings dropped


def test_a_group_exported_from_the_cluster_loads_in_the_cli() -> None:
    from modelsec.policy import parse_group

    exported = {
        "apiVersion": "modelsec.io/v1alpha1",
        "kind": "SecurityGroup",
        "metadata": {"name": "team-a", "generation": 3},
        "spec": {
            "sourceRef": "models",
            "namespaceSelector": {"matchLabels": {"team": "a"}},
            "errorOutcome": "ERROR",
            "rescanInterval": "12h",
            "rules": [{"name": "LoadTimeCodeExecution", "mode": "Blocking", "params": {}}],
        },
        "status": {"rules": 1, "conditions": []},
    }
    group = parse_group(exported, "kubectl get sg team-a -o yaml", "x")
    assert group.name == "team-a" and [r.name for r in group.spec.rules] == ["LoadTimeCodeExecution"]


def test_durations() -> None:
    assert parse_duration("1d12h").total_seconds() == 36 * 3600
    assert parse_duration("90m").total_seconds() == 5400
    for bad in ("", "12", "1h1d", "soon"):
        with pytest.raises(ValueError):
            parse_duration(bad)
    with pytest.raises(ValueError, match="at least 1m"):
        SecurityGroupResourceSpec.model_validate({"rules": [], "rescanInterval": "30s"})


def test_unions_are_refused_by_the_converter() -> None:
    from pydantic import BaseModel

    class Bad(BaseModel):
        value: int | str

    with pytest.raises(SchemaError, match="unions"):
        structural(Bad)
