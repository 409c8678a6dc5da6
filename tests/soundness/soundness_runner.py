"""A soundness campaign, chunk by chunk: generate, scan, run the oracle, tally, minimise.

Used by the CI-sized test (one chunk, in process) and by
``benchmarks/soundness_campaign.py`` (many chunks over worker processes, resumable).
A chunk's figures are plain JSON so that chunks written by earlier runs merge with new
ones. Findings are grouped by class (``finding_class``: the design gap, as named by the
regression tests); the first bypass of a class not yet minimised is shrunk with ddmin and
its bytes kept (hex) with its provenance.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from soundness_grammar import Program, finding_class, generate
from soundness_judge import ALLOWED, Judgement, Scanner, judge, minimise
from soundness_oracle import Oracle

KEYS_KEPT = 20  # program indexes remembered per finding class


@dataclass
class Finding:
    """One class of bypass or false alarm within a chunk (or, merged, a campaign)."""

    count: int = 0
    indexes: list[int] = field(default_factory=list)
    mechanisms: dict[str, int] = field(default_factory=dict)  # finer: how the callable was obtained, ...
    family: str = ""
    event: str = ""  # bypass: the oracle's event; false alarm: the scanner's reason
    data_only: bool = False
    rules: list[str] = field(default_factory=list)
    filename: str = ""
    example_hex: str = ""  # the first program's bytes
    minimised_hex: str = ""  # ... after ddmin (bypasses only)

    def add(self, judgement: Judgement, detail: str) -> None:
        self.count += 1
        bump(self.mechanisms, judgement.program.mechanism)
        if len(self.indexes) < KEYS_KEPT:
            self.indexes.append(judgement.program.index)
        if self.count == 1:
            program = judgement.program
            self.family, self.event, self.data_only = program.family, detail, program.data_only
            self.rules, self.filename, self.example_hex = (
                list(program.rules),
                program.filename,
                program.data.hex(),
            )


@dataclass
class ChunkResult:
    seed: int
    start: int
    count: int
    seconds: float = 0.0
    families: dict[str, int] = field(default_factory=dict)
    scanner: dict[str, int] = field(default_factory=dict)  # ALLOWED / BLOCKED / ERROR
    oracle_runs: int = 0
    oracle_events: dict[str, int] = field(default_factory=dict)  # by event kind
    data_only: int = 0  # data-only programs ...
    data_only_loaded: int = 0  # ... that a real loader loaded without any event
    # Programs the scanner blocked that the oracle ran (the sample): did the oracle agree?
    blocked_and_dangerous: int = 0
    blocked_and_quiet: int = 0
    loader_outcomes: dict[str, int] = field(default_factory=dict)  # "loader:outcome"
    bypasses: dict[str, Finding] = field(default_factory=dict)
    false_alarms: dict[str, Finding] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_json(raw: dict[str, Any]) -> ChunkResult:
        result = ChunkResult(**{k: v for k, v in raw.items() if k not in ("bypasses", "false_alarms")})
        result.bypasses = {k: Finding(**v) for k, v in raw["bypasses"].items()}
        result.false_alarms = {k: Finding(**v) for k, v in raw["false_alarms"].items()}
        return result


def tally(result: ChunkResult, judgement: Judgement) -> None:
    program, scan, oracle = judgement.program, judgement.scan, judgement.oracle
    bump(result.families, program.family)
    bump(result.scanner, scan.outcome)
    if oracle is None:
        return
    result.oracle_runs += 1
    if program.data_only:
        result.data_only += 1
        result.data_only_loaded += bool(oracle.loaded) and not oracle.dangerous
    if oracle.event is not None:
        bump(result.oracle_events, oracle.event.kind)
    for run in oracle.runs:
        bump(result.loader_outcomes, f"{run.loader}:{run.outcome}")
    if scan.outcome != ALLOWED and not program.data_only:
        if oracle.dangerous:
            result.blocked_and_dangerous += 1
        else:
            result.blocked_and_quiet += 1
    if judgement.bypass:
        assert oracle.event is not None
        event = f"{oracle.event.kind}: {oracle.event.detail} (in {oracle.event.loader})"
        result.bypasses.setdefault(finding_class(program), Finding()).add(judgement, event)
    elif judgement.false_alarm:
        reason = f"{scan.outcome}: {scan.reason} [{' '.join(sorted(set(scan.codes)))}]"
        result.false_alarms.setdefault(finding_class(program), Finding()).add(judgement, reason)


def bump(counter: dict[str, int], key: str, by: int = 1) -> None:
    counter[key] = counter.get(key, 0) + by


def run_chunk(
    seed: int,
    start: int,
    count: int,
    scanner: Scanner,
    oracle: Oracle,
    *,
    sample_rate: float = 0.02,
    minimised: frozenset[str] = frozenset(),
    minimise_bypasses: bool = True,
) -> ChunkResult:
    """Programs ``start`` .. ``start + count - 1`` of campaign ``seed``."""
    began = time.monotonic()
    result = ChunkResult(seed, start, count)
    first_of_class: dict[str, Judgement] = {}
    for index in range(start, start + count):
        program: Program = generate(seed, index)
        judgement = judge(program, scanner, oracle, sample_rate)
        tally(result, judgement)
        if judgement.bypass and finding_class(program) not in minimised:
            first_of_class.setdefault(finding_class(program), judgement)
    if minimise_bypasses:
        for name, judgement in first_of_class.items():
            result.bypasses[name].minimised_hex = minimise(judgement, scanner, oracle, name).hex()
    result.seconds = round(time.monotonic() - began, 3)
    return result


def merge(chunks: list[ChunkResult]) -> dict[str, Any]:
    """Campaign figures from its chunks."""
    families: Counter[str] = Counter()
    scanner: Counter[str] = Counter()
    events: Counter[str] = Counter()
    loaders: Counter[str] = Counter()
    bypasses: dict[str, Finding] = {}
    false_alarms: dict[str, Finding] = {}
    for chunk in sorted(chunks, key=lambda c: c.start):
        families.update(chunk.families)
        scanner.update(chunk.scanner)
        events.update(chunk.oracle_events)
        loaders.update(chunk.loader_outcomes)
        for into, found in ((bypasses, chunk.bypasses), (false_alarms, chunk.false_alarms)):
            for name, finding in found.items():
                merged = into.setdefault(
                    name, Finding(**{**asdict(finding), "count": 0, "indexes": [], "mechanisms": {}})
                )
                merged.count += finding.count
                for mechanism, count in finding.mechanisms.items():
                    bump(merged.mechanisms, mechanism, count)
                merged.indexes = (merged.indexes + finding.indexes)[:KEYS_KEPT]
                if finding.minimised_hex and (
                    not merged.minimised_hex or len(finding.minimised_hex) < len(merged.minimised_hex)
                ):
                    merged.minimised_hex = finding.minimised_hex
    return {
        "programs": sum(c.count for c in chunks),
        "seconds": round(sum(c.seconds for c in chunks), 1),
        "families": dict(families.most_common()),
        "scanner": dict(scanner),
        "oracle_runs": sum(c.oracle_runs for c in chunks),
        "data_only": sum(c.data_only for c in chunks),
        "data_only_loaded": sum(c.data_only_loaded for c in chunks),
        "oracle_events": dict(events.most_common()),
        "blocked_sample": {
            "oracle_saw_an_event": sum(c.blocked_and_dangerous for c in chunks),
            "oracle_saw_nothing": sum(c.blocked_and_quiet for c in chunks),
        },
        "loader_outcomes": dict(sorted(loaders.items())),
        "bypasses": {k: asdict(v) for k, v in sorted(bypasses.items(), key=lambda kv: -kv[1].count)},
        "false_alarms": {k: asdict(v) for k, v in sorted(false_alarms.items(), key=lambda kv: -kv[1].count)},
    }
