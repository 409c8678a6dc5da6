"""Detection, false alarms and wall time of modelsec and the usual alternatives on the
labelled corpora (../shared/corpora or $MODELSEC_CORPORA).

    .venv/bin/python benchmarks/compare_corpus.py [--tools modelsec,picklescan,...] [--jobs 2]

A malicious file counts as detected when the tool flags it; a benign file flagged is a
false alarm; a tool error or timeout on a malicious file is a miss (users see no block),
on a benign file it is reported as failed. Files labelled null (policy decides) are left out.
Writes benchmarks/out/corpus.json and prints a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tools import CLEAN, FAILED, FLAGGED, REPO, TOOLS, Answer, tool_version


def corpus_root() -> Path:
    return Path(os.environ.get("MODELSEC_CORPORA", REPO.parent / "shared" / "corpora"))


def labelled_files() -> list[tuple[str, Path, str, str]]:
    cases = []
    for manifest in sorted(corpus_root().glob("*/manifest.json")):
        for entry in json.loads(manifest.read_text()):
            if entry["label"] in ("malicious", "benign"):
                cases.append(
                    (
                        manifest.parent.name,
                        manifest.parent / entry["file"],
                        entry["label"],
                        entry.get("category", ""),
                    )
                )
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tools", default=",".join(TOOLS))
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args()
    tools = args.tools.split(",")
    cases = labelled_files()
    results: dict[str, dict[str, Answer]] = defaultdict(dict)

    def run_one(job: tuple[str, tuple[str, Path, str, str]]) -> None:
        tool, (corpus, path, _label, _cat) = job
        results[tool][f"{corpus}/{path.relative_to(corpus_root() / corpus)}"] = TOOLS[tool](
            path, args.timeout
        )

    for tool in tools:
        TOOLS[tool](cases[0][1], args.timeout)  # install / warm up outside the timing
        with ThreadPoolExecutor(args.jobs) as pool:
            list(pool.map(run_one, [(tool, case) for case in cases]))

    rows = []
    per_file = []
    for tool in tools:
        detected = missed = false_alarms = failed_benign = 0
        seconds = 0.0
        for corpus, path, label, category in cases:
            key = f"{corpus}/{path.relative_to(corpus_root() / corpus)}"
            answer = results[tool][key]
            seconds += answer.seconds
            if label == "malicious":
                detected += answer.verdict == FLAGGED
                missed += answer.verdict != FLAGGED
            else:
                false_alarms += answer.verdict == FLAGGED
                failed_benign += answer.verdict == FAILED
            per_file.append(
                {
                    "tool": tool,
                    "file": key,
                    "label": label,
                    "category": category,
                    "verdict": answer.verdict,
                    "seconds": round(answer.seconds, 3),
                }
            )
        n_mal = sum(1 for c in cases if c[2] == "malicious")
        n_ben = len(cases) - n_mal
        rows.append(
            (tool, tool_version(tool), detected, n_mal, missed, false_alarms, n_ben, failed_benign, seconds)
        )

    out_dir = REPO / "benchmarks" / "out"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "corpus.json").write_text(json.dumps(per_file, indent=1))
    print(f"corpus: {len(cases)} labelled files ({corpus_root()})\n")
    print(
        "| tool | version | detected | missed | false alarms | failed on benign | CPU-wall (sum of per-file runs) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for tool, version, det, n_mal, missed, fa, n_ben, fb, secs in rows:
        print(f"| {tool} | {version} | {det}/{n_mal} | {missed} | {fa}/{n_ben} | {fb} | {secs:.1f} s |")
    print()
    print_per_category(per_file, tools)
    missed_by_modelsec = [
        p
        for p in per_file
        if p["tool"] == "modelsec"
        and (
            (p["label"] == "malicious" and p["verdict"] != FLAGGED)
            or (p["label"] == "benign" and p["verdict"] != CLEAN)
        )
    ]
    if missed_by_modelsec:
        print("modelsec disagreements with the labels:")
        for p in missed_by_modelsec:
            print(f"  {p['file']}: label {p['label']}, verdict {p['verdict']}")


def print_per_category(per_file: list[dict], tools: list[str]) -> None:
    """Detected/false alarms per file category (pickle, torch, keras, jinja, ...)."""
    categories = sorted({p["category"] for p in per_file})
    print("| category | " + " | ".join(tools) + " |")
    print("| --- | " + " | ".join("---" for _ in tools) + " |")
    for category in categories:
        cells = []
        for tool in tools:
            rows = [p for p in per_file if p["tool"] == tool and p["category"] == category]
            mal = [p for p in rows if p["label"] == "malicious"]
            ben = [p for p in rows if p["label"] == "benign"]
            text = []
            if mal:
                text.append(f"{sum(p['verdict'] == FLAGGED for p in mal)}/{len(mal)} detected")
            if ben:
                text.append(f"{sum(p['verdict'] == FLAGGED for p in ben)}/{len(ben)} false alarms")
            cells.append(", ".join(text))
        print(f"| {category} | " + " | ".join(cells) + " |")
    print()


if __name__ == "__main__":
    main()
