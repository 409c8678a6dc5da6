"""The fuzz harness itself: each kind of finding is recognised (so a clean campaign means
something), and the campaign survives a hang instead of stopping on it."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import harness
import pytest
from harness import REPO, Target, check, classify, load, minimise

from modelsec import formats
from modelsec.bytesource import BytesSource
from modelsec.context import Limits, ScanContext, ScanSink
from modelsec.engine import dispatch
from modelsec.formats.base import FormatCategory
from modelsec.interpretations import REGISTERED

WORKER = Path(__file__).resolve().parent / "worker.py"


def test_an_exception_escaping_the_entry_point_is_a_crash_located_in_the_code() -> None:
    outcome = check(load("fuzz_selftest:RAISES"), b"..X..")
    assert outcome is not None and outcome.kind == "crash"
    assert outcome.signature == "IndexError in fuzz/fuzz_selftest.py:_raise_on_x"
    assert check(load("fuzz_selftest:RAISES"), b"fine") is None


def test_documented_refusals_are_not_findings() -> None:
    target = load("fuzz_selftest:RAISES")
    assert check(Target("t", target.run, target.seeds, expected=(IndexError,)), b"X") is None


def test_recursion_and_memory_errors_are_their_own_kinds() -> None:
    def deep(data: bytes) -> None:
        deep(data)

    assert classify(MemoryError()).kind == "memory"
    outcome = check(Target("deep", deep, list), b"")
    assert outcome is not None and outcome.kind == "recursion"


class _Broken:
    """A format scanner with a bug: the engine catches it (fail closed), the harness must
    still see it."""

    name, category, priority, readers = "broken", FormatCategory.MODEL, 1, ()

    def scan(self, source: BytesSource, ctx: ScanContext) -> None:
        raise KeyError("header")


@pytest.fixture
def broken_format(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    real = formats.by_name
    monkeypatch.setattr(formats, "by_name", lambda name: _Broken() if name == "broken" else real(name))
    yield


def test_an_exception_the_engine_turns_into_an_incomplete_is_still_a_crash(broken_format: None) -> None:
    harness.observe_scanner_errors()
    sink = ScanSink(Limits())

    def run(data: bytes) -> None:
        dispatch(BytesSource(data), ScanContext("f.bin", sink, dispatch, formats=REGISTERED), "broken")

    outcome = check(Target("broken", run, list), b"abc")
    assert outcome is not None and outcome.kind == "crash" and "escaped a scanner" in outcome.signature
    assert [i.code for i in sink.incompletes] == ["MS-GEN-002"]  # and the engine failed closed


def test_minimise_keeps_what_makes_the_finding() -> None:
    target = load("fuzz_selftest:RAISES")
    data = b"a" * 100 + b"X" + b"b" * 100
    outcome = check(target, data)
    assert outcome is not None
    assert minimise(target, data, outcome) == b"X"


def _worker(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, str(WORKER), *args], capture_output=True, cwd=REPO, timeout=timeout, check=False
    )


def test_an_input_past_the_memory_cap_is_a_memory_finding(tmp_path: Path) -> None:
    sample = tmp_path / "input"
    sample.write_bytes(b"x")
    proc = _worker("replay", "--parser", "fuzz_selftest:ALLOCATES", str(sample))
    outcome = json.loads(proc.stdout.decode().splitlines()[-1])["outcome"]
    assert outcome["kind"] == "memory", proc.stderr.decode()[-2000:]


def test_a_hang_stops_the_worker_and_the_campaign_records_it(tmp_path: Path) -> None:
    pytest.importorskip("atheris")
    from fuzz_campaign import Campaign

    campaign = Campaign(tmp_path, target_inputs=10, chunk=10, python=sys.executable)
    parser = "fuzz_selftest:SPINS"
    campaign.state(parser)
    campaign.run_chunk(parser, 0, 10)  # libFuzzer's -timeout stops the worker on the first input
    state = campaign.states[parser]
    assert state.restarts == 1
    [(key, finding)] = state.findings.items()
    assert finding["kind"] == "hang" and finding["signature"] == "InputTimeout in fuzz/fuzz_selftest.py:_spin"
    assert finding["confirmed"] and (tmp_path / parser / "findings" / f"{key}.bin").exists()
    assert not list((tmp_path / parser / "artifacts").iterdir())  # moved into findings/


def test_an_input_that_stops_a_chunk_leaves_the_corpus(tmp_path: Path) -> None:
    """Every chunk starts by running the corpus and seeds: an input there that times out
    would stop every chunk after a few replays, so it is moved to quarantine/."""
    pytest.importorskip("atheris")
    from fuzz_campaign import Campaign

    campaign = Campaign(tmp_path, target_inputs=10, chunk=10, python=sys.executable)
    parser = "fuzz_selftest:SPINS_ON_SEED"
    campaign.state(parser)
    campaign.run_chunk(parser, 0, 10)
    assert campaign.states[parser].restarts == 1
    [quarantined] = (tmp_path / parser / "quarantine").iterdir()
    assert quarantined.read_bytes() == b"seed"
    assert not (tmp_path / parser / "seeds" / quarantined.name).exists()


def test_corpus_replays_at_a_chunk_start_are_counted_apart(tmp_path: Path) -> None:
    pytest.importorskip("atheris")
    from fuzz_campaign import Campaign

    campaign = Campaign(tmp_path, target_inputs=40, chunk=40, python=sys.executable)
    parser = "fuzz_selftest:RAISES"
    campaign.state(parser)
    campaign.run_chunk(parser, 0, 40)
    (tmp_path / parser / "corpus" / "extra").write_bytes(b"another input")
    kept = len(list((tmp_path / parser / "corpus").iterdir()))  # the extra file among them
    campaign.run_chunk(parser, 0, 40)
    state = campaign.states[parser]
    assert state.inputs == 80
    # the first chunk reran its one seed; the second, the seed and the corpus as it found it
    assert state.replays == 1 + 1 + kept


def test_the_campaign_target_counts_mutated_inputs_not_replays(tmp_path: Path) -> None:
    """A chunk that only reran its corpus has run no new input: the campaign keeps going
    until the mutated inputs (executions less replays, counted or bounded) reach --inputs."""
    pytest.importorskip("atheris")
    from fuzz_campaign import Campaign, ParserState, report

    parser = "fuzz_selftest:RAISES"
    directory = tmp_path / parser
    directory.mkdir()
    # 30 executions before replays were counted, at most 20 of them replays: 10 mutated
    ParserState(parser, inputs=30, chunks=2, uncounted_replays=20).save(directory / "state.json")
    campaign = Campaign(tmp_path, target_inputs=40, chunk=25, python=sys.executable)
    campaign.run([parser], jobs=1)
    state = campaign.states[parser]
    assert state.replays > 0
    assert state.mutated == state.inputs - state.replays - 20 >= 40
    assert "| fuzz_selftest:RAISES | " + f"{state.inputs:,} | {state.mutated:,} |" in report(
        tmp_path, [parser]
    )


def test_a_dictionary_being_read_is_never_truncated_by_the_next_chunk(tmp_path: Path) -> None:
    """Two jobs can start chunks of one parser at once: the second must not truncate the
    dictionary the first one's libFuzzer is reading (it ended a chunk with 'file does not
    exist or is empty')."""
    from worker import write_dictionary

    first = Target("t", lambda data: None, lambda: (), tokens=(b"PK\x03\x04", b"ustar"))
    second = Target("t", lambda data: None, lambda: (), tokens=(b"GGUF",))
    path = tmp_path / "tokens.dict"
    write_dictionary(first, path)
    with path.open() as reading:
        write_dictionary(second, path)  # the file the first reader holds is left alone
        assert reading.read().count("\n") == 2
    assert path.read_text().count("\n") == 1
    assert [p.name for p in tmp_path.iterdir()] == ["tokens.dict"]
