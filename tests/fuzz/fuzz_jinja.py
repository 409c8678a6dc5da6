"""Jinja template analysis (templates/): parse, never render; bindings, folding, checks."""

from __future__ import annotations

from collections.abc import Iterator

from harness import Target, import_test_helpers
from scanning import scan_as

from modelsec.templates import analyze

_scan = scan_as("chat_template.jinja")


def run(data: bytes) -> None:
    analyze(data.decode("utf-8", "replace"))
    _scan(data)


def _seeds() -> Iterator[bytes]:
    import_test_helpers("templates")
    import real_templates

    for text in real_templates.ALL.values():
        yield text.encode()
    yield b"{{ ''.__class__.__mro__[1].__subclasses__() }}"
    yield b"{% set x = cycler.__init__.__globals__ %}{{ x.os.popen('id').read() }}"
    yield b"{% for i in range(10) %}{{ i|attr('__class__') }}{% endfor %}"


TARGET = Target(
    name="jinja",
    run=run,
    seeds=_seeds,
    max_len=16 << 10,
    tokens=(
        b"{{",
        b"}}",
        b"{%",
        b"%}",
        b"{#",
        b"#}",
        b"__class__",
        b"__globals__",
        b"|attr(",
        b"namespace(",
        b"set ",
        b"macro ",
        b"call",
        b"endfor",
        b"endif",
        b"loop.",
        b"messages",
        b"raise_exception",
    ),
)
