"""Templates (modelsec.pickle.reuse): a clean pickle's analysis stands for files laid out
byte for byte alike, and never for a file whose bytes outside the analysis could matter.

The attacker's move is to make a directory where the first files are benign and a later
one differs only where the template does not look: in the bytes literals (holes). Each
test below scans benign files first, in the same engine, then the hostile one, and
requires the verdict the hostile file gets when scanned alone.
"""

from __future__ import annotations

import json
import pickle
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
from pklbuild import (
    EMPTY_DICT,
    MARK,
    REDUCE,
    SETITEMS,
    TUPLE,
    binbytes,
    codes,
    global_,
    sbu,
    scan,
    summary,
    v4,
    writers,
)
from soundness_mutants import genuine_models, mutants

from modelsec.bytesource import BytesSource
from modelsec.context import Limits
from modelsec.engine import Engine, FileResult
from modelsec.pickle import reuse
from modelsec.pickle.opcodes import OpcodeReader, PickleError
from modelsec.pickle.reuse import StreamTemplates, build_template


def _state_dict(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    state = OrderedDict(
        (name, rng.standard_normal(shape, dtype=np.float32))
        for name, shape in (("w", (8, 16)), ("b", (16,)), ("v", (3, 7)))
    )
    return pickle.dumps(state, protocol=4)


def _in_session(benign: list[bytes], hostile: bytes) -> tuple[FileResult, Engine]:
    """``hostile`` scanned after ``benign`` by one engine (one session of templates)."""
    engine = Engine()
    for index, data in enumerate(benign):
        assert not engine.scan_source(f"benign{index}.pkl", BytesSource(data)).findings
    return engine.scan_source("hostile.pkl", BytesSource(hostile)), engine


def _verdict(result: FileResult) -> tuple[set[str], bool]:
    return codes(result), bool(result.incompletes)


def _templates(engine: Engine) -> StreamTemplates:
    return engine.session.kept(StreamTemplates)


def test_files_laid_out_alike_are_covered_by_one_template() -> None:
    files = [_state_dict(seed) for seed in range(4)]
    assert len({len(data) for data in files}) == 1 and len(set(files)) == 4
    engine = Engine()
    for index, data in enumerate(files[:2]):
        assert not engine.scan_source(f"m{index}.pkl", BytesSource(data)).findings
    templates = _templates(engine)
    for data in files[2:]:
        assert templates.covers(BytesSource(data), engine.limits)
    # what the template stands for is what a full scan of each says
    for data in files:
        assert not scan(data).findings


def test_one_engine_scanning_in_threads() -> None:
    """The operator scans in several threads with one engine: its session's templates are
    shared, and no scan sees a table another is changing (a scanner error would be ERROR)."""
    from concurrent.futures import ThreadPoolExecutor

    files = [_state_dict(seed) for seed in range(40)]
    engine = Engine()

    def scan_all(offset: int) -> list[FileResult]:
        return [engine.scan_source(f"t{offset}-{i}.pkl", BytesSource(data)) for i, data in enumerate(files)]

    with ThreadPoolExecutor(4) as pool:
        results = [result for batch in pool.map(scan_all, range(4)) for result in batch]
    assert all(not result.findings and not result.incompletes for result in results)
    assert any(template is not None for template in _templates(engine)._templates.values())


def test_a_file_differing_outside_the_holes_is_scanned_in_full() -> None:
    template = build_template(_state_dict(0), Limits())
    assert template is not None and template.holes
    other = bytearray(_state_dict(1))
    start, end = template.holes[0]
    other[start - 1] ^= 1  # a length byte or opcode right before the first hole
    assert not template.matches(bytes(other))
    assert template.matches(_state_dict(2))


def _dict_of_bytes(value: bytes) -> bytes:
    """{"a": value} as a protocol-4 stream (value a BINBYTES literal)."""
    return v4(EMPTY_DICT + MARK + sbu("a") + binbytes(value) + SETITEMS)


def test_an_embedded_pickle_in_a_hole_is_found() -> None:
    """A later file's literal holds a pickle that runs os.system: the template's holes are
    checked for what the machine checks every literal for, so it is scanned in full."""
    payload = v4(global_("os", "system") + MARK + sbu("id") + TUPLE + REDUCE)
    padding = 80  # a hole is a literal of HOLE_MIN bytes or more
    benign = [_dict_of_bytes(bytes([seed + 1]) * (len(payload) + padding)) for seed in range(2)]
    hostile = _dict_of_bytes(payload + bytes(padding))
    alone = scan(hostile)
    assert alone.findings, summary(alone)
    result, engine = _in_session(benign, hostile)
    assert _verdict(result) == _verdict(alone), summary(result)
    assert any(template is not None for template in _templates(engine)._templates.values())


def test_no_template_when_a_check_reads_the_holes() -> None:
    """A decision tree's nodes are read back by its contract (child indexes): its verdict
    rests on the hole bytes, so no template is made and every file is scanned in full."""
    model = genuine_models()["decision tree"]()
    data = pickle.dumps(model, protocol=4)
    assert build_template(data, Limits()) is None


def test_no_template_when_a_string_maker_takes_a_hole() -> None:
    """pandas given str(b'dateutil/...'): the bytes decide the string, and the time-zone
    check fails closed on bytes it has not read."""
    tz = binbytes(b"dateutil//etc/hostname" + b"/" * 60)
    made = global_("builtins", "str") + MARK + tz + sbu("ascii") + TUPLE + REDUCE
    data = v4(global_("pandas", "DatetimeIndex") + MARK + EMPTY_DICT + made + TUPLE + REDUCE)
    assert build_template(data, Limits()) is None


# -- every mutant of a genuine model: the session verdict is the verdict alone ---------------

MUTANT_WRITERS = ("pickle-4", "pickle-5")


@pytest.mark.parametrize("writer", MUTANT_WRITERS)
@pytest.mark.parametrize("model", sorted(genuine_models()))
def test_mutants_after_their_genuine_model(model: str, writer: str) -> None:
    """The campaign's mutants (one integer of a genuine model set to an edge value) differ
    from the genuine file only in array bytes, which is exactly where a template does not
    look: after two genuine files, each mutant gets the verdict it gets alone."""
    make = genuine_models()[model]
    genuine = writers(writer)[writer](make())
    rng = np.random.default_rng(23)
    checked = 0
    for mutant in mutants(model, make, rng, 6, writer):
        if len(mutant.data) != len(genuine):
            continue
        alone = scan(mutant.data)
        result, _ = _in_session([genuine, genuine], mutant.data)
        assert _verdict(result) == _verdict(alone), f"{mutant.where}={mutant.value}: {summary(result)}"
        checked += 1
    if not checked:
        pytest.skip(f"no mutant of {model} keeps the genuine file's size")


def test_the_mutant_property_can_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the read-back guard a template would stand for a forged tree: the property
    above is what stops it (the test of the test)."""
    monkeypatch.setattr(reuse, "_overlaps", lambda reads, holes: False)
    make = genuine_models()["decision tree"]
    genuine = pickle.dumps(make(), protocol=4)
    failures = 0
    for mutant in mutants("decision tree", make, np.random.default_rng(23), 12, "pickle-4"):
        if len(mutant.data) == len(genuine) and scan(mutant.data).findings:
            result, _ = _in_session([genuine, genuine], mutant.data)
            failures += not result.findings
    assert failures


# -- the labelled corpora: each hostile file after two copies with its holes zeroed ---------


def _holes(data: bytes) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    reader = OpcodeReader(BytesSource(data), 0, spans)
    try:
        for _ in range(1_000_000):
            if reader.next()[0] == ord("."):
                break
    except (PickleError, EOFError, ValueError):
        pass
    return spans


def _labelled_pickles(root: Path) -> list[Path]:
    found = []
    for manifest in sorted(root.glob("*/manifest.json")):
        for entry in json.loads(manifest.read_text()):
            path = manifest.parent / entry["file"]
            if (
                entry["label"] == "malicious"
                and path.is_file()
                and path.stat().st_size <= reuse.MAX_TEMPLATE_BYTES
            ):
                found.append(path)
    return found


def test_hostile_corpus_files_after_their_zeroed_twins(corpora: Path) -> None:
    """The hostile file's bytes literals are what a template leaves out. With them zeroed
    the file may be clean (its template then exists); the real file must still get the
    verdict it gets alone."""
    compared = 0
    for path in _labelled_pickles(corpora):
        data = path.read_bytes()
        spans = _holes(data)
        if not spans:
            continue
        twin = bytearray(data)
        for start, end in spans:
            twin[start:end] = bytes(end - start)
        engine = Engine()
        for index in range(2):
            engine.scan_source(f"twin{index}.pkl", BytesSource(bytes(twin)))
        result = engine.scan_source(path.name, BytesSource(data))
        alone = Engine().scan_source(path.name, BytesSource(data))
        assert _verdict(result) == _verdict(alone), f"{path}: {summary(result)}"
        compared += 1
    assert compared, "no labelled pickle with a bytes literal of HOLE_MIN bytes"
