"""Raw tensor bytes (weights.bin in a zip, a storage blob) must not read as a broken pickle.

Three of the 256 possible first bytes are EXT opcodes and many more are valid opcodes;
a detector that takes "first opcode parses" as proof would block about one weight file in
a hundred. Seeded, so the sample is the same on every run.
"""

from __future__ import annotations

import numpy as np
import pytest

from modelsec.bytesource import BytesSource
from modelsec.engine import Engine


@pytest.mark.parametrize("dtype", ["uint8", "float32", "float16", "bfloat16-like"])
def test_random_tensor_bytes_are_not_findings(dtype: str) -> None:
    rng = np.random.default_rng(20261126)
    engine = Engine()
    flagged = []
    for i in range(800):
        if dtype == "uint8":
            data = rng.integers(0, 256, 4096, dtype=np.uint8).tobytes()
        elif dtype == "bfloat16-like":
            data = (
                (rng.standard_normal(2048).astype(np.float32).view(np.uint32) >> 16)
                .astype(np.uint16)
                .tobytes()
            )
        else:
            data = rng.standard_normal(4096 // np.dtype(dtype).itemsize).astype(dtype).tobytes()
        result = engine.scan_source(f"w{i}.bin", BytesSource(data))
        if result.findings or result.incompletes:
            flagged.append((data[:8].hex(), [f.threat for f in result.findings]))
    assert flagged == []


def test_ext_code_that_is_called_is_still_reported() -> None:
    result = Engine().scan_source("x.pkl", BytesSource(b"\x82\x05)R."))
    assert [f.threat for f in result.findings] == ["MS-PKL-103"]
