"""Check where tensors with external data point.

A tensor stored outside the model names a file in ``external_data["location"]``, which a
runtime resolves relative to the model's directory and reads. A location that is absolute,
climbs out with ``..``, plays on Windows path syntax, or (for a model on local disk) goes
through a symlink or resolves outside the directory makes the runtime read an arbitrary
file (``/etc/shadow``, a credential, another tenant's model) into a tensor, from which a
crafted graph can leak it.

Only the reference is checked: the external bytes are never opened (a 1 GB weights file
costs an ``lstat``).
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field

from modelsec.onnx.model import Graph, OnnxModel, Tensor

ABSOLUTE = "absolute"
TRAVERSAL = "traversal"
AMBIGUOUS = "ambiguous"  # backslashes, control characters, URLs, ~, empty
SYMLINK = "symlink"
OUTSIDE = "outside"  # resolves outside the model directory, or is not a regular file

_DRIVE = re.compile(r"^[A-Za-z]:")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


@dataclass
class ExternalIssue:
    """One problem of one external data location, with how many tensors use it and the first names."""

    kind: str
    location: str
    message: str
    offset: int
    tensors: list[str] = field(default_factory=list)
    count: int = 1


def _tensors_of_graph(g: Graph) -> Iterator[Tensor]:
    yield from g.initializers
    yield from g.sparse_initializers
    yield from g.sparse_indices
    for node in g.nodes:
        for attr in node.attributes:
            yield from attr.tensors


def all_tensors(model: OnnxModel) -> Iterator[Tensor]:
    """Every TensorProto in the model: initializers, sparse ones, attribute tensors, in
    every graph, subgraph, function body and function attribute default."""
    for g in model.all_graphs():
        yield from _tensors_of_graph(g)
    for fn in model.functions:
        for node in fn.nodes:
            for attr in node.attributes:
                yield from attr.tensors
        for attr in fn.attribute_defaults:
            yield from attr.tensors


def lexical_problems(location: str) -> list[tuple[str, str]]:
    """Problems visible in the string alone, as (kind, why)."""
    out: list[tuple[str, str]] = []
    if location == "":
        return [(AMBIGUOUS, "the location is empty")]
    if location.startswith(("/", "\\")) or _DRIVE.match(location):
        out.append((ABSOLUTE, "the location is an absolute path (or a drive/UNC path)"))
    parts = re.split(r"[\\/]+", location)
    if ".." in parts:
        out.append((TRAVERSAL, "the location climbs out of the model directory with '..'"))
    if "\\" in location and not any(k == ABSOLUTE for k, _ in out):
        out.append((AMBIGUOUS, "the location uses backslashes, which only Windows treats as separators"))
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in location):
        out.append((AMBIGUOUS, "the location contains control characters (NUL truncation)"))
    if _SCHEME.match(location):
        out.append((AMBIGUOUS, "the location is a URL"))
    if location.startswith("~"):
        out.append((AMBIGUOUS, "the location starts with '~' (home directory expansion)"))
    if any("\udc80" <= ch <= "\udcff" for ch in location):
        out.append((AMBIGUOUS, "the location is not valid UTF-8"))
    return out


def local_problems(location: str, model_dir: str) -> list[tuple[str, str]]:
    """Problems on disk for a lexically clean relative location: a symlink on the way,
    a target outside ``model_dir``, or something that is not a regular file."""
    base = os.path.abspath(model_dir)
    real_base = os.path.realpath(base)
    current = base
    out: list[tuple[str, str]] = []
    for part in location.split("/"):
        if part in ("", "."):
            continue
        current = os.path.join(current, part)
        try:
            st = os.lstat(current)
        except OSError:
            return out  # missing: the runtime fails to load; nothing is read
        if stat.S_ISLNK(st.st_mode):
            target = os.path.realpath(current)
            inside = target == real_base or target.startswith(real_base + os.sep)
            out.append(
                (
                    SYMLINK if inside else OUTSIDE,
                    f"{os.path.relpath(current, base)} is a symlink to {target}"
                    + ("" if inside else ", outside the model directory"),
                )
            )
            if not inside:
                return out
    target = os.path.realpath(os.path.join(base, location))
    if not (target == real_base or target.startswith(real_base + os.sep)):
        if not any(k == OUTSIDE for k, _ in out):
            out.append((OUTSIDE, f"the location resolves to {target}, outside the model directory"))
        return out
    try:
        st = os.stat(target)
    except OSError:
        return out
    if not stat.S_ISREG(st.st_mode):
        out.append((OUTSIDE, "the location is not a regular file (a device, FIFO or directory)"))
    return out


def check_external(model: OnnxModel, model_dir: str | None) -> list[ExternalIssue]:
    """Issues for every tensor that uses external data, aggregated per (kind, location).
    ``model_dir`` is the directory of a model on local disk, else None."""
    found: dict[tuple[str, str], ExternalIssue] = {}
    local_cache: dict[str, list[tuple[str, str]]] = {}
    for t in all_tensors(model):
        if t.external is None and not t.is_external:
            continue
        location = t.external.location if t.external is not None else None
        if location is None:
            if t.is_external:
                problems = [(AMBIGUOUS, "the tensor is marked external but names no location")]
                location = ""
            else:
                continue
        else:
            problems = lexical_problems(location)
            if not problems and model_dir is not None:
                if location not in local_cache:
                    local_cache[location] = local_problems(location, model_dir)
                problems = local_cache[location]
        for kind, why in problems:
            key = (kind, location)
            issue = found.get(key)
            if issue is None:
                shown = location if len(location) <= 200 else location[:197] + "..."
                found[key] = ExternalIssue(
                    kind, location, f"external data location {shown!r}: {why}", t.offset, [t.name]
                )
            else:
                issue.count += 1
                if len(issue.tensors) < 5:
                    issue.tensors.append(t.name)
    return list(found.values())
