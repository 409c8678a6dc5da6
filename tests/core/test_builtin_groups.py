"""The built-in groups ship twice: YAML for people, JSON for ``modelsec scan`` (which then
starts without PyYAML, issue 14). hack/gen_builtin_groups.py writes the JSON; these tests
fail when the two disagree."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from modelsec.policy import BUILTIN_GROUPS_FILE, builtin_group_names, load_group

REPO = Path(__file__).resolve().parents[2]
YAML_GROUPS = REPO / "src" / "modelsec" / "groups"


def test_the_json_holds_exactly_the_yaml_groups() -> None:
    shipped = json.loads(BUILTIN_GROUPS_FILE.read_text())
    written = {path.stem: yaml.safe_load(path.read_text()) for path in YAML_GROUPS.glob("*.yaml")}
    assert len(written) >= 3
    assert shipped == written, "run .venv/bin/python hack/gen_builtin_groups.py"


def test_the_generator_reports_the_committed_json_fresh() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "hack" / "gen_builtin_groups.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


def test_a_built_in_group_loads_as_its_yaml_file_does(tmp_path: Path) -> None:
    """Same spec whether read from the shipped JSON or from the YAML as a user's file."""
    assert builtin_group_names() == sorted(path.stem for path in YAML_GROUPS.glob("*.yaml"))
    for name in builtin_group_names():
        builtin = load_group(name)
        from_file = load_group(str(YAML_GROUPS / f"{name}.yaml"))
        assert (builtin.name, builtin.origin) == (name, "built-in")
        assert builtin.spec == from_file.spec
