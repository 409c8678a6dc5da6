#!/usr/bin/env python3
"""How large a verdict's ML-BOM is as the operator stores it (a ConfigMap, 1 MiB), and how
long building it takes, for models of N files (docs/integrity.md, "The BOM of each
verdict"). Files are small and distinct, so every one has its own SHA-256, as in a real
model; the engine scans them for real.

    .venv/bin/python benchmarks/bom_configmap.py [--files 100 1000 2500 10000]
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO / "operator")]

from modelsec.bom import bom_json  # noqa: E402
from modelsec.policy import evaluate, load_group  # noqa: E402
from modelsec.rules.base import EvaluationInput  # noqa: E402
from modelsec.sources import parse_model_uri, scan_model  # noqa: E402
from modelsec_operator.bom_export import MAX_STORED_BYTES, BomTooLarge, encode  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, nargs="+", default=[100, 1000, 2500, 10000])
    args = parser.parse_args()
    group = load_group("local-default")
    print(f"{'files':>7} {'JSON':>10} {'B/file':>7} {'gzip':>9} {'B/file':>7}  stored as     build")
    with tempfile.TemporaryDirectory() as tmp:
        for count in args.files:
            model = Path(tmp) / f"m{count}"
            model.mkdir()
            for i in range(count):
                (model / f"shard-{i:06d}.txt").write_text(f"row {i}\n")
            scanned = scan_model(parse_model_uri(str(model)))
            verdict = evaluate(group, EvaluationInput(scanned.report, scanned.source_type, scanned.metadata))
            began = time.perf_counter()
            text = bom_json(scanned, verdict)
            built = time.perf_counter() - began
            compact = json.dumps(json.loads(text), separators=(",", ":")).encode()
            packed = gzip.compress(compact, 9, mtime=0)
            try:
                stored = encode(text).key
            except BomTooLarge:
                stored = "(too large)"
            print(
                f"{count:>7} {len(compact):>10} {len(compact) // count:>7} {len(packed):>9} "
                f"{len(packed) // count:>7}  {stored:<12} {built:6.2f} s"
            )
    print(f"limit: {MAX_STORED_BYTES} bytes stored per ConfigMap")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
