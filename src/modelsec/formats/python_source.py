"""Python source files inside a model (``modeling_*.py`` of a Hugging Face repo, code in a
``torch.package`` or zip, helper scripts).

Decision: a model that ships Python ships code its loader may run. Hugging Face imports the
repository's modules with ``trust_remote_code``; ``torch.package`` and hub loaders import
theirs; the rest is one ``import`` away. modelsec never runs or imports it and cannot prove
it harmless, so every Python file is reported under RuntimeCodeExecution (format
``python-source``, category auxiliary so that ApprovedFormats stays about weights). The
finding summarises, from the syntax tree only, what the code imports and which risky
functions it calls, to help the reviewer. The directory analyser in
:mod:`modelsec.formats.hf_repo` adds how the repository wires the code in (``auto_map``).
"""

from __future__ import annotations

import ast
import re

from modelsec.bytesource import ByteSource
from modelsec.context import ScanContext
from modelsec.findings import Severity, threat
from modelsec.formats.base import FormatCategory, FormatScanner, Reader
from modelsec.formats.config_common import decode_text, head_is_text

MAX_SOURCE_BYTES = 4 << 20  # summarised up to this size; larger files are still reported
PYTHON_SUFFIXES = (".py", ".pyw")
_PY_LINE = re.compile(
    r"^(?:import [\w.]+|from [\w.]+ import |def \w+\s*\(|async def \w+\s*\(|class \w+\s*[(:]|#!.*python|if __name__ ==)",
    re.MULTILINE,
)
RISKY_MODULES = frozenset(
    {
        "os",
        "subprocess",
        "sys",
        "socket",
        "shutil",
        "ctypes",
        "pickle",
        "marshal",
        "importlib",
        "urllib",
        "requests",
        "httpx",
        "http",
        "ftplib",
        "paramiko",
        "pty",
        "runpy",
        "builtins",
        "base64",
        "zlib",
        "codecs",
        "dill",
        "cloudpickle",
        "joblib",
        "multiprocessing",
        "webbrowser",
    }
)
RISKY_CALLS = frozenset(
    {
        "eval",
        "exec",
        "compile",
        "__import__",
        "system",
        "popen",
        "Popen",
        "run",
        "call",
        "check_output",
        "check_call",
        "getoutput",
        "spawn",
        "execv",
        "execve",
        "urlopen",
        "urlretrieve",
        "import_module",
        "loads",
        "load",
        "b64decode",
        "decompress",
        "remove",
        "rmtree",
        "unlink",
        "chmod",
        "setattr",
        "getattr",
        "globals",
        "open",
        "connect",
    }
)

PY_SOURCE = threat(
    "MS-PY-001",
    "RuntimeCodeExecution",
    Severity.HIGH,
    "Python source shipped with the model",
    "Review the code, or use a model that needs none (weights in safetensors, an architecture "
    "your framework ships). Never load it with trust_remote_code unless you reviewed this "
    "exact revision.",
    "Loaders import model code (Hugging Face trust_remote_code, torch.package, hub "
    "entry points). The message lists imports and risky calls found in the syntax tree; an "
    "empty list is not evidence of safety.",
)


def looks_like_python(head: bytes, source: ByteSource, filename: str) -> bool:
    if not head_is_text(head, source):
        return False
    if filename.lower().endswith(PYTHON_SUFFIXES):
        # the name decides: an import by name runs whatever the file holds, a module with
        # no import, def or class line in its head (one expression, a long docstring) too
        return True
    text = head.decode("utf-8", errors="ignore")
    if not _PY_LINE.search(text):
        return False
    if source.size > len(head):
        return False
    try:
        ast.parse(text)  # parsing builds a tree; nothing is compiled or run
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def summarise(text: str) -> tuple[list[str], list[str]] | None:
    """(imported modules, risky calls) from the syntax tree, or None if it does not parse."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    imports: set[str] = set()
    calls: set[str] = set()
    for node in ast.walk(tree):  # breadth-first and iterative
        if isinstance(node, ast.Import):
            imports.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            imports.add(("." * node.level) + (node.module or ""))
        elif isinstance(node, ast.Call):
            func = node.func
            name = (
                func.attr
                if isinstance(func, ast.Attribute)
                else func.id
                if isinstance(func, ast.Name)
                else None
            )
            if name in RISKY_CALLS:
                if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
                    calls.add(f"{func.value.id}.{name}")
                else:
                    calls.add(name)
    return sorted(imports), sorted(calls)


def describe(text: str | None) -> tuple[str, Severity]:
    if text is None:
        return "not UTF-8 text; contents not summarised", Severity.HIGH
    summary = summarise(text) if len(text) <= MAX_SOURCE_BYTES else None
    if summary is None:
        return "could not be parsed by this Python version; contents not summarised", Severity.HIGH
    imports, calls = summary
    risky = sorted({m for m in imports if m.lstrip(".").split(".")[0] in RISKY_MODULES})
    parts = []
    if risky:
        parts.append("imports " + ", ".join(risky[:12]) + (" ..." if len(risky) > 12 else ""))
    if calls:
        parts.append("calls " + ", ".join(calls[:12]) + (" ..." if len(calls) > 12 else ""))
    if not parts:
        parts.append(f"{len(imports)} import(s), no risky calls found in its syntax tree")
    severity = Severity.CRITICAL if calls and risky else Severity.HIGH
    return "; ".join(parts), severity


class PythonSourceScanner(FormatScanner):
    name = "python-source"
    category = FormatCategory.AUXILIARY
    priority = 88
    # Loaders pick modules by name; whatever else the bytes are, an import runs them.
    readers = (Reader("Python import (trust_remote_code, torch.hub)", "the whole file as source"),)

    def detect(self, head: bytes, source: ByteSource, filename: str) -> bool:
        return looks_like_python(head, source, filename)

    def scan(self, source: ByteSource, ctx: ScanContext) -> None:
        data = source.read_at(0, min(source.size, MAX_SOURCE_BYTES + 1))
        text = decode_text(data) if len(data) <= MAX_SOURCE_BYTES else None
        what, severity = describe(text)
        if len(data) > MAX_SOURCE_BYTES:
            what = f"{source.size} bytes, too large to summarise"
        ctx.report(
            PY_SOURCE.at(ctx.path, f"Python source the model's loader may import: {what}", severity=severity)
        )


SCANNER = PythonSourceScanner()
