"""The built-in groups ship twice: YAML for people, and for ``modelsec scan`` the dumps of
their validated specs, from which the specs are constructed without PyYAML or pydantic's
validators (issue 14: start-up). hack/gen_builtin_groups.py writes the dumps; these tests
fail when the two forms would give different groups."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from modelsec import rules
from modelsec.policy import builtin_group_names, load_group

REPO = Path(__file__).resolve().parents[2]
YAML_GROUPS = REPO / "src" / "modelsec" / "groups"


def test_the_generator_reports_the_committed_dumps_fresh() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "hack" / "gen_builtin_groups.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


def test_every_yaml_group_is_built_in() -> None:
    assert builtin_group_names() == sorted(path.stem for path in YAML_GROUPS.glob("*.yaml"))
    assert len(builtin_group_names()) >= 3


def same_model(built: Any, validated: Any, where: str) -> None:
    """Equal values of the same types (a str where the validated spec holds a StrEnum
    compares equal, so == alone would miss it), field by field of the dataclasses."""
    assert type(built) is type(validated), where
    assert dataclasses.is_dataclass(validated), where
    for field in dataclasses.fields(validated):
        ours: Any = getattr(built, field.name)
        theirs: Any = getattr(validated, field.name)
        assert type(ours) is type(theirs), f"{where}.{field.name}"
        if isinstance(theirs, list):
            assert len(ours) == len(theirs), f"{where}.{field.name}"
            for index, (a, b) in enumerate(zip(ours, theirs, strict=True)):
                if dataclasses.is_dataclass(b):
                    same_model(a, b, f"{where}.{field.name}[{index}]")
                else:
                    assert (type(a), a) == (type(b), b), f"{where}.{field.name}[{index}]"
        else:
            assert ours == theirs, f"{where}.{field.name}"


@pytest.mark.parametrize("name", builtin_group_names())
def test_a_built_in_group_is_the_group_its_yaml_file_validates_to(name: str) -> None:
    builtin = load_group(name)
    from_file = load_group(str(YAML_GROUPS / f"{name}.yaml"))
    assert (builtin.name, builtin.origin) == (from_file.name, "built-in")
    same_model(builtin.spec, from_file.spec, name)
    assert builtin.spec == from_file.spec
    # and each rule gets the parameters parse_params would give it
    assert sorted(builtin.parsed_params) == sorted(config.name for config in from_file.spec.rules)
    for config in from_file.spec.rules:
        rule = rules.get(config.name)
        assert rule is not None
        parsed = rule.parse_params(config.params)
        same_model(builtin.parsed_params[config.name], parsed, f"{name}: {config.name} params")
        assert builtin.parsed_params[config.name] == parsed
