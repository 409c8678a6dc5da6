"""Decode what a Keras Lambda stores, to say what the code would do, without running it.

Forms seen in the wild:

* Keras 2 / tf-keras: ``function`` = ``[base64(marshal(code)), defaults, closure]`` with
  ``function_type: "lambda"`` (``func_dump``); older files store the base64 text alone.
* Keras 3: ``{"class_name": "__lambda__", "config": {"code": b64, "defaults", "closure"}}``
  (Lambda layers) or ``{"config": {"value": [b64, defaults, closure]}}`` (other lambdas).
* Hand-written or converted configs: Python source text (``"lambda x: ..."``).

Decoding only enriches the finding: a Lambda is code execution whether or not its bytes
can be read.
"""

from __future__ import annotations

import base64
import binascii
import builtins
import re
from dataclasses import dataclass, field
from typing import Any

from modelsec.keras.marshal_reader import CodeSummary, MarshalError, summarize_code

MAX_CODE_B64 = 16 << 20

# Names whose presence in a Lambda means it reaches the OS, imports code, or evaluates text.
DANGEROUS_NAMES = frozenset(
    {
        "os",
        "posix",
        "nt",
        "sys",
        "subprocess",
        "system",
        "popen",
        "Popen",
        "spawn",
        "spawnl",
        "spawnv",
        "execv",
        "execve",
        "execl",
        "execvp",
        "fork",
        "pty",
        "exec",
        "eval",
        "compile",
        "__import__",
        "importlib",
        "import_module",
        "runpy",
        "run_path",
        "open",
        "getattr",
        "setattr",
        "delattr",
        "globals",
        "locals",
        "vars",
        "__builtins__",
        "builtins",
        "__globals__",
        "__subclasses__",
        "__code__",
        "socket",
        "shutil",
        "rmtree",
        "remove",
        "unlink",
        "ctypes",
        "cdll",
        "CDLL",
        "pickle",
        "marshal",
        "loads",
        "dill",
        "requests",
        "urllib",
        "urlopen",
        "http",
        "ftplib",
        "smtplib",
        "webbrowser",
        "breakpoint",
        "b64decode",
        "codecs",
        "load_library",
        "load_op_library",
        "write_file",
        "read_file",
        "gfile",
        "GFile",
        "check_output",
        "check_call",
        "startfile",
    }
)
PYTHON_BUILTINS = frozenset(name for name in dir(builtins) if not name.startswith("_")) | {
    "__import__",
    "__build_class__",
}

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass
class LambdaInfo:
    """What one Lambda's stored function revealed."""

    form: str  # "bytecode", "source", "named function", "unreadable"
    summary: CodeSummary | None = None
    identifiers: list[str] = field(default_factory=list)  # names/strings it uses
    error: str = ""

    @property
    def dangerous(self) -> list[str]:
        return sorted({n for n in self.identifiers if n in DANGEROUS_NAMES})

    def describe(self) -> str:
        if self.form == "bytecode" and self.summary is not None:
            names = ", ".join(sorted(set(self.summary.names))[:20]) or "none"
            return (
                f"bytecode ({self.summary.layout} layout, {self.summary.code_objects} code "
                f"object(s)) uses names: {names}"
            )
        if self.form == "source":
            return "source text uses: " + (", ".join(sorted(set(self.identifiers))[:20]) or "nothing")
        if self.form == "named function":
            return "refers to function " + ", ".join(self.identifiers)
        return f"stored function could not be decoded ({self.error or 'unknown form'})"


def _decode_b64(text: str) -> bytes | None:
    if len(text) > MAX_CODE_B64:
        return None
    compact = "".join(text.split())
    if not compact or len(compact) % 4 or not re.fullmatch(r"[A-Za-z0-9+/=]+", compact):
        return None
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        return None


def _from_bytecode(raw: bytes) -> LambdaInfo:
    try:
        summary = summarize_code(raw)
    except (MarshalError, RecursionError) as exc:
        return LambdaInfo("unreadable", error=f"marshal data does not parse: {exc}")
    idents = list(dict.fromkeys(summary.names + [s for s in summary.strings if _IDENT.fullmatch(s)]))
    return LambdaInfo("bytecode", summary=summary, identifiers=idents)


def _from_text(text: str) -> LambdaInfo:
    raw = _decode_b64(text)
    if raw is not None and raw[:1] and (raw[0] & 0x7F) == ord("c"):
        return _from_bytecode(raw)
    if raw is not None:
        return LambdaInfo("unreadable", error="base64 data is not a marshalled code object")
    idents = list(dict.fromkeys(_IDENT.findall(text[:MAX_CODE_B64])))
    if _IDENT.fullmatch(text.strip()):
        return LambdaInfo("named function", identifiers=[text.strip()])
    return LambdaInfo("source", identifiers=idents)


def decode_function(value: Any, function_type: str | None = None) -> LambdaInfo:
    """Interpret a stored Lambda function (any of the forms in the module doc)."""
    if isinstance(value, dict):
        inner = value.get("config")
        if value.get("class_name") == "__lambda__" and isinstance(inner, dict):
            for key in ("code", "value"):
                if key in inner:
                    return decode_function(inner[key], "lambda")
            return LambdaInfo("unreadable", error="__lambda__ config without code")
        if value.get("class_name") == "function" and isinstance(inner, str):
            return LambdaInfo("named function", identifiers=[inner])
        return LambdaInfo("unreadable", error="function stored as an unrecognised object")
    if isinstance(value, (list, tuple)):
        if value and isinstance(value[0], str):
            return decode_function(value[0], function_type)
        return LambdaInfo("unreadable", error="function stored as an unrecognised list")
    if isinstance(value, str):
        if function_type == "function":
            return LambdaInfo("named function", identifiers=[value])
        return _from_text(value)
    return LambdaInfo("unreadable", error=f"function stored as {type(value).__name__}")
