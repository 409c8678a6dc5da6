"""A scanned stream is freed when its scan ends, not left to the cycle collector: a
directory of many small pickles would otherwise pile up every file's machine, values,
observer and scan context between collections (and pay for collecting them)."""

from __future__ import annotations

import gc
import pickle
from collections import OrderedDict
from collections.abc import Iterator

import numpy as np
import pytest
from pklbuild import call, scan, v4

STATE = OrderedDict(
    (f"layers.{i}.weight", np.full((4, 4), i, dtype=np.float32)) for i in range(3)
)  # REDUCE, BUILD and imports: every part of the machine that calls back into it


@pytest.fixture
def no_collector() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(pickle.dumps(STATE, protocol=4), id="state dict"),
        pytest.param(v4(call("os", "system", "id")), id="a dangerous call"),
    ],
)
def test_scanning_a_pickle_leaves_no_reference_cycle(data: bytes, no_collector: None) -> None:
    scan(data)  # the first scan may import scanning code and build caches
    gc.collect()
    result = scan(data)
    assert result.format == "pickle"
    garbage: list[object] = []
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        garbage = list(gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert not garbage, sorted({type(o).__qualname__ for o in garbage})
