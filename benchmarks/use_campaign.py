"""Genuine models with one integer changed, scanned, and where ALLOWED, loaded and used.

    .venv/bin/python benchmarks/use_campaign.py --per-model 200 --seed 1 --out benchmarks/out/use

The soundness campaign's oracle only loads; a model whose compiled code trusts an index
loads cleanly and crashes when used (docs/red-team.md). This campaign takes each genuine
model of tests/soundness/soundness_mutants.py, changes one integer to an edge value,
pickles it, scans it with the built-in local-default group, and for every ALLOWED mutant
runs ``pickle.loads`` and then the use step (tests/soundness/soundness_use.py: predict,
transform, ``A @ x``, query...) in the oracle's confined child. A crash there is a hole in
a contract (saved to ``OUT/holes/``); an unmutated model that is not ALLOWED is a false
positive. Prints a table per model; docs/benchmarks.md records runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for folder in (REPO / "tests" / "soundness", REPO / "tests" / "pickle"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

import numpy as np  # noqa: E402
from soundness_judge import Scanner  # noqa: E402
from soundness_mutants import WRITERS, Mutant, genuine_models, mutants  # noqa: E402
from soundness_oracle import Oracle  # noqa: E402

ALLOWED = "ALLOWED"


@dataclass
class Tally:
    genuine: str = ""  # the unmutated model's verdict
    mutants: int = 0
    caught: int = 0  # BLOCKED or ERROR
    harmless: int = 0  # ALLOWED: loaded and used without a crash (or refused by Python)
    holes: list[Mutant] = field(default_factory=list)  # ALLOWED, and the use step crashed


def campaign(per_model: int, seed: int, scanner: Scanner, oracle: Oracle, writer: str) -> dict[str, Tally]:
    rng = np.random.default_rng(seed)
    loader = "joblib" if writer == "joblib" else "pickle"  # what reads each writer's files
    tallies: dict[str, Tally] = {}
    for name, make in genuine_models().items():
        tally = tallies[name] = Tally()
        tally.genuine = scanner.verdict(WRITERS[writer](make()), "model.pkl").outcome
        for mutant in mutants(name, make, rng, per_model, writer):
            tally.mutants += 1
            if scanner.verdict(mutant.data, "model.pkl").outcome != ALLOWED:
                tally.caught += 1
            elif oracle.run(mutant.data, "model.pkl", loaders=(loader,)).crash:
                tally.holes.append(mutant)
            else:
                tally.harmless += 1
    return tallies


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--per-model", type=int, default=100, help="mutants per genuine model")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--writer", choices=sorted(WRITERS), default="pickle-4", help="how mutants are written"
    )
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "use")
    args = parser.parse_args()
    started = time.monotonic()
    scanner = Scanner()
    with Oracle(timeout=10.0, cpu_seconds=10, loaders=("pickle", "joblib"), use=True) as oracle:
        tallies = campaign(args.per_model, args.seed, scanner, oracle, args.writer)
    scanner.close()
    holes = args.out / "holes"
    holes.mkdir(parents=True, exist_ok=True)
    print(
        f"seed {args.seed}, {args.per_model} mutants per model written by {args.writer}, "
        f"{time.monotonic() - started:.0f} s"
    )
    print(
        "| model | genuine | mutants | BLOCKED/ERROR | ALLOWED, used without a crash | ALLOWED, crashed in use |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    summary = {}
    for name, tally in tallies.items():
        print(
            f"| {name} | {tally.genuine} | {tally.mutants} | {tally.caught} | {tally.harmless} | {len(tally.holes)} |"
        )
        for index, hole in enumerate(tally.holes):
            stem = f"{name.replace(' ', '_')}-{index}"
            (holes / f"{stem}.pkl").write_bytes(hole.data)
            (holes / f"{stem}.json").write_text(json.dumps({"where": hole.where, "value": hole.value}))
        summary[name] = {
            "genuine": tally.genuine,
            "mutants": tally.mutants,
            "caught": tally.caught,
            "harmless": tally.harmless,
            "holes": [{"where": h.where, "value": h.value} for h in tally.holes],
        }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
