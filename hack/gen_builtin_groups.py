"""Regenerate src/modelsec/groups/builtin.json from the built-in groups' YAML files.

.venv/bin/python hack/gen_builtin_groups.py          # write
.venv/bin/python hack/gen_builtin_groups.py --check  # exit 1 if the committed file is stale

The YAML files are what people read and edit. Each is validated here and written as the
dump of its validated spec; ``modelsec scan`` constructs the spec from that dump, so a scan
with a built-in group imports no PyYAML and builds no validator (issue 14: start-up). A
broken edit fails here rather than at a user's first scan.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

from modelsec.policy import BUILTIN_GROUPS_FILE, builtin_group_dump

GROUPS = Path(__file__).resolve().parent.parent / "src" / "modelsec" / "groups"


def render() -> str:
    dumps = {
        path.stem: builtin_group_dump(yaml.safe_load(path.read_text()), path.stem)
        for path in sorted(GROUPS.glob("*.yaml"))
    }
    return json.dumps(dumps, indent=2, sort_keys=True) + "\n"


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
