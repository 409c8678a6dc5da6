#!/usr/bin/env python3
"""Generate src/modelsec/onnx/opsets.json from the installed ``onnx`` package's schemas.

The scanner must not import ``onnx`` at scan time, so the official operator sets are
committed as data. For every official domain the table lists each operator with the opset
versions at which its schema changed (``since_version``); a version is stored negative when
the schema introduced at that version is *deprecated* (the operator was removed from the
standard from that version on, e.g. ``Upsample`` at 10, ``Scatter`` at 11). The operator
exists at opset ``v`` iff the greatest listed ``|since|`` <= ``v`` is positive.

Usage: .venv/bin/python hack/gen_onnx_opsets.py [--check]
  --check  exit 1 if the committed table differs from what the installed onnx produces
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import onnx.defs
import onnx.helper

import onnx

OUT = Path(__file__).resolve().parent.parent / "src" / "modelsec" / "onnx" / "opsets.json"

# Official domains. "" is ai.onnx; ai.onnx.training has no operators of its own today but
# is an official domain name, so it is listed (an op in it is unknown, not "custom").
DOMAINS = ("ai.onnx", "ai.onnx.ml", "ai.onnx.training", "ai.onnx.preview.training", "ai.onnx.preview")


def build() -> dict:
    release, _ir, ai_onnx, ai_onnx_ml, *rest = onnx.helper.VERSION_TABLE[-1]
    training = rest[0] if rest else 1
    domains: dict[str, dict] = {d: {"max_version": 1, "ops": {}} for d in DOMAINS}
    for schema in onnx.defs.get_all_schemas_with_history():
        domain = schema.domain or "ai.onnx"
        if domain not in domains:
            raise SystemExit(f"unexpected schema domain {domain!r}: add it to DOMAINS")
        versions = domains[domain]["ops"].setdefault(schema.name, [])
        versions.append(-schema.since_version if schema.deprecated else schema.since_version)
        domains[domain]["max_version"] = max(domains[domain]["max_version"], schema.since_version)
    # The release's declared opset versions win over the highest since_version seen: an
    # opset can bump without changing every operator.
    domains["ai.onnx"]["max_version"] = max(domains["ai.onnx"]["max_version"], ai_onnx)
    domains["ai.onnx.ml"]["max_version"] = max(domains["ai.onnx.ml"]["max_version"], ai_onnx_ml)
    domains["ai.onnx.training"]["max_version"] = max(domains["ai.onnx.training"]["max_version"], training)
    domains["ai.onnx.preview.training"]["max_version"] = max(
        domains["ai.onnx.preview.training"]["max_version"], training
    )
    for info in domains.values():
        info["ops"] = {name: sorted(v, key=abs) for name, v in sorted(info["ops"].items())}
    return {
        "generated_by": "hack/gen_onnx_opsets.py",
        "onnx_version": onnx.__version__,
        "onnx_release": release,
        "encoding": "ops[name] = since_versions ascending; negative = deprecated (removed) from that version",
        "domains": domains,
    }


def render(table: dict) -> str:
    # One operator per line keeps diffs readable when onnx is upgraded.
    lines = ["{"]
    for key in ("generated_by", "onnx_version", "onnx_release", "encoding"):
        lines.append(f"  {json.dumps(key)}: {json.dumps(table[key])},")
    lines.append('  "domains": {')
    domain_items = list(table["domains"].items())
    for di, (domain, info) in enumerate(domain_items):
        lines.append(f"    {json.dumps(domain)}: {{")
        lines.append(f'      "max_version": {info["max_version"]},')
        lines.append('      "ops": {')
        ops = list(info["ops"].items())
        for oi, (name, versions) in enumerate(ops):
            comma = "," if oi < len(ops) - 1 else ""
            lines.append(f"        {json.dumps(name)}: {json.dumps(versions)}{comma}")
        lines.append("      }")
        lines.append("    }" + ("," if di < len(domain_items) - 1 else ""))
    lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main() -> int:
    text = render(build())
    json.loads(text)  # the hand-rolled rendering must stay valid JSON
    if "--check" in sys.argv[1:]:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT} is out of date: run hack/gen_onnx_opsets.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
