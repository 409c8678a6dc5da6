"""Regenerate src/modelsec/groups/builtin.json from the built-in groups' YAML files.

.venv/bin/python hack/gen_builtin_groups.py          # write
.venv/bin/python hack/gen_builtin_groups.py --check  # exit 1 if the committed file is stale

The YAML files are what people read and edit; ``modelsec scan`` reads the JSON, so a scan
with a built-in group does not import PyYAML (issue 14: start-up). Every group is validated
as it is written, so a broken edit fails here rather than at a user's first scan.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

from modelsec.policy import BUILTIN_GROUPS_FILE, parse_group

GROUPS = Path(__file__).resolve().parent.parent / "src" / "modelsec" / "groups"


def render() -> str:
    documents = {path.stem: yaml.safe_load(path.read_text()) for path in sorted(GROUPS.glob("*.yaml"))}
    for name, document in documents.items():
        parse_group(document, f"{name}.yaml", name)  # raises GroupError with the reason
    return json.dumps(documents, indent=2, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if BUILTIN_GROUPS_FILE.read_text() != text:
            print(f"{BUILTIN_GROUPS_FILE} is stale: run hack/gen_builtin_groups.py", file=sys.stderr)
            return 1
        return 0
    BUILTIN_GROUPS_FILE.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
