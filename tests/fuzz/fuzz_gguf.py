"""GGUF: header, metadata key/values (chat templates included) and the tensor table."""

from __future__ import annotations

from collections.abc import Iterator

from harness import Target, builder_seeds, corpus_files, import_test_helpers
from scanning import scan_as


def _seeds() -> Iterator[bytes]:
    import_test_helpers("formats_hf")
    from gguf_build import ARRAY, GGUF, KV, STRING, UINT32, layout

    template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    kvs = [
        KV("general.architecture", STRING, "llama"),
        KV("general.alignment", UINT32, 32),
        KV("tokenizer.chat_template", STRING, template),
        KV("tokenizer.ggml.tokens", ARRAY, (STRING, ["a", "b", "<s>"])),
    ]
    yield from builder_seeds(
        lambda: GGUF(kvs=kvs, tensors=layout([("a", [4, 4]), ("b", [2])])).build(),
        lambda: GGUF(kvs=kvs[:2], tensors=layout([("a", [2, 2])]), version=2).build(),
        lambda: GGUF(kvs=kvs[:1], tensors=layout([("a", [2])]), endian=">").build(),
    )
    yield from corpus_files(lambda path, head: head.startswith(b"GGUF"), 64 << 10)


TARGET = Target(
    name="gguf",
    run=scan_as("model.gguf"),
    seeds=_seeds,
    max_len=32 << 10,
    tokens=(
        b"GGUF",
        b"general.alignment",
        b"tokenizer.chat_template",
        b"general.architecture",
        b"\x08\x00\x00\x00",
        b"\x09\x00\x00\x00",
        b"{%",
        b"{{",
    ),
)
