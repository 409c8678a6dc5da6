"""Wall time and peak memory of the GGUF parser and the config/template scanners.

    .venv/bin/python benchmarks/gguf_configs.py [--gib 4]

* a GGUF with a 256k-token vocabulary (tokens, scores, 280k merges), a chat template and a
  tensor region of ``--gib`` GiB (sparse on disk): the header parse alone, then the full
  engine scan (which hashes every byte);
* a tokenizer.json-like JSON of 200k vocab entries and 200k merges;
* a 3.5 MB YAML config with 60k entries.

Targets: the GGUF header parse reads well under 1% of a multi-GB file and stays within tens
of MB of memory; config scans stay linear in their size.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import gguf
import numpy as np

from modelsec.bytesource import FileSource
from modelsec.context import Limits, ScanContext, ScanSink
from modelsec.engine import Engine
from modelsec.formats.gguf import parse_header


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_gguf(path: Path, gib: float) -> None:
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_chat_template("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{% endfor %}")
    w.add_token_list([f"token{i}" for i in range(256_000)])
    w.add_token_scores([0.0] * 256_000)
    w.add_token_merges([f"a{i} b{i}" for i in range(280_000)])
    w.add_tensor("small", np.zeros((8, 8), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with open(path, "r+b") as fh:  # grow the data region sparsely
        fh.truncate(path.stat().st_size + int(gib * (1 << 30)))


def timed(label: str, fn) -> None:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    extra = fn()
    print(f"{label:<38} {time.perf_counter() - start:8.2f} s   peak RSS {peak_mib():7.1f} MiB  {extra or ''}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--gib", type=float, default=4.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        gguf_path = d / "model.gguf"
        make_gguf(gguf_path, args.gib)

        def header_only() -> str:
            sink = ScanSink(Limits())
            with FileSource(gguf_path) as src:
                parse_header(src, ScanContext(str(gguf_path), sink, lambda *a: None))
                return f"read {src.bytes_read / 1e6:.1f} MB of {src.size / 1e9:.1f} GB; findings {len(sink.findings)}"

        timed("GGUF header parse", header_only)
        timed(
            "GGUF full engine scan (with hash)",
            lambda: f"findings {len(Engine().scan_file(gguf_path).findings)}",
        )

        tok = d / "tokenizer.json"
        tok.write_text(
            json.dumps(
                {
                    "model": {
                        "vocab": {f"t{i}": i for i in range(200_000)},
                        "merges": [f"a{i} b{i}" for i in range(200_000)],
                    }
                }
            )
        )
        timed(f"tokenizer.json ({tok.stat().st_size / 1e6:.1f} MB)", lambda: Engine().scan_file(tok).format)

        yml = d / "config.yaml"
        yml.write_text(
            "items:\n"
            + "".join(f"  - name: item{i}\n    value: {i}\n    text: 'hello {i}'\n" for i in range(60_000))
        )
        timed(f"config.yaml ({yml.stat().st_size / 1e6:.1f} MB)", lambda: Engine().scan_file(yml).format)


if __name__ == "__main__":
    main()
