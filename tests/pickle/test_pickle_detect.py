"""Detection by content: what CPython would start to unpickle, and nothing else."""

from __future__ import annotations

import json
import pickle

import pytest
from pklbuild import proto, scan

from modelsec.bytesource import BytesSource
from modelsec.context import Limits
from modelsec.formats.pickle import SCANNER
from modelsec.pickle.scanner import detection_probe, looks_like_pickle

SAMPLE = {"weights": [1.5, 2.5], "name": "layer", "shape": (2, 3), "flags": {True, False}}


def detect(data: bytes, size: int | None = None) -> bool:
    return SCANNER.detect(data[: 64 * 1024], BytesSource(data), "file")


@pytest.mark.parametrize("protocol", range(0, 6))
def test_every_protocol_is_detected(protocol: int) -> None:
    assert detect(pickle.dumps(SAMPLE, protocol=protocol))


@pytest.mark.parametrize("protocol", range(0, 6))
def test_detected_when_the_head_cuts_a_stream(protocol: int) -> None:
    data = pickle.dumps([str(i) * 50 for i in range(5000)], protocol=protocol)
    assert len(data) > 64 * 1024
    assert looks_like_pickle(data[:65536], len(data))


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"cmod\n\xf8\n", id="picklescan not_a_pickle (non-UTF-8 GLOBAL)"),
        pytest.param(b"cmy-module\nrun\n(tR.", id="GLOBAL of a non-identifier module"),
        pytest.param(b"cos\nsys tem\n(tR.", id="GLOBAL of a non-identifier name"),
        pytest.param(b"I12a\n.", id="INT with non-digits"),
        pytest.param(b"Fnot a float\n.", id="FLOAT"),
        pytest.param(b"S'unterminated\n.", id="STRING without closing quote"),
        pytest.param(b"\x80\x06N.", id="unsupported protocol"),
        pytest.param(b"R.", id="REDUCE on an empty stack"),
        pytest.param(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, id="PNG"),
        pytest.param(b"\x00\x00\x00\x00", id="zeros"),
        pytest.param(b"", id="empty"),
    ],
)
def test_not_pickles(data: bytes) -> None:
    assert not detect(data)


TEXTS = {
    "README.md": "# Model card\n\nThis model classifies images.\n\n## Usage\n\n"
    "```python\nimport torch\n```\n",
    "config.json": json.dumps({"architectures": ["BertModel"], "hidden_size": 768}, indent=2),
    "list.json": json.dumps([1, 2, 3]),
    "config.yaml": "model:\n  name: bert\n  layers: 12\n",
    "apiVersion.yaml": "apiVersion: v1\nkind: ConfigMap\n",
    "doc.yaml": "---\nkey: value\n",
    "modeling.py": "import os\nfrom typing import Any\n\n\nclass Model:\n    pass\n",
    "script.py": "#!/usr/bin/env python3\nprint('hello')\n",
    "defs.py": "def main():\n    return 1\n",
    "classes.py": "class Foo(object):\n    x = 1\n",
    "docstring.py": '"""Module docstring."""\n',
    "notes.txt": "Some notes about the model\nVersion 2\n",
    "version.txt": "Version 1.0\nTrained on data\n",
    "requirements.txt": "torch==2.1.0\nnumpy>=1.24\n",
    "LICENSE": "Apache License\nVersion 2.0, January 2004\n",
    "vocab.txt": "[PAD]\n[UNK]\n[CLS]\nthe\nof\n",
    "Makefile": "all:\n\tpython setup.py build\n",
    "tokenizer": "<|endoftext|>",
    "csv": "a,b,c\n1,2,3\n",
    "Kernel notes": "Kernel parameters\nlearning rate\n",
    "Getting": "Getting Started\n===============\n",
    "Results": "Results\n-------\naccuracy: 0.9\n",
}


@pytest.mark.parametrize("name", sorted(TEXTS))
def test_text_files_are_not_pickles(name: str) -> None:
    data = TEXTS[name].encode()
    assert not detect(data), name
    result = scan(data, name=name)
    assert result.format != "pickle"
    assert not [f for f in result.findings if f.threat.startswith("MS-PKL-")]


def test_joblib_and_numpy_pickles_are_detected() -> None:
    import io

    import joblib
    import numpy as np

    buf = io.BytesIO()
    joblib.dump({"a": np.arange(5)}, buf)
    assert detect(buf.getvalue())
    assert detect(pickle.dumps(np.arange(5), protocol=2))


def test_strong_start_then_valid_opcode_is_detected() -> None:
    assert detect(proto(4) + b"}")  # truncated, but it opened like a pickle and went on
    assert not detect(proto(4) + b"\x00garbage")


@pytest.mark.parametrize(
    "text",
    ["certifi\nidna\nnumpy\n", "click\nnumpy\n", "config\nmain\n\nvalue: 1\n", "iris\ntrain\n"],
)
def test_lines_that_read_as_one_harmless_global_are_not_pickles(text: str) -> None:
    # GLOBAL 'ertifi'.'idna' then a broken stream: nothing could run (no call, nothing
    # dangerous named), so this is text, not a pickle.
    data = text.encode()
    assert not detect(data)
    assert not [f for f in scan(data, name="requirements.txt").findings if f.threat.startswith("MS-PKL")]


def test_a_dangerous_global_then_garbage_is_a_pickle() -> None:
    data = b"cos\nsystem\n\x00garbage"
    assert detect(data)
    result = scan(data)
    assert {f.threat for f in result.findings} == {"MS-PKL-100", "MS-PKL-110"}


def test_detection_stops_once_a_proto_led_stream_took_a_second_opcode() -> None:
    # A pickle of plain data is parsed once, by the scan: detection reads two opcodes.
    data = pickle.dumps({f"layer.{i}": [float(i)] * 20 for i in range(200)}, protocol=4)
    assert detection_probe(data[: 64 * 1024], Limits()).ops == 2
    assert detect(data)
    # Anything else is parsed until the answer is known (here: to its STOP).
    assert detection_probe(pickle.dumps(SAMPLE, protocol=0), Limits()).ops > 2
