"""A structure-aware mutator for targets whose inputs are JSON documents (AdmissionReviews,
workloads, Keras configs): half of the time it edits the parsed document (replace, delete,
duplicate or graft a node; values chosen to break parsers that trust shapes) and writes it
back, so mutations reach past the JSON decoder; otherwise libFuzzer's byte mutations."""

from __future__ import annotations

import json
import random
from typing import Any

import atheris

# Values that break code trusting a field's shape: wrong types, edge numbers, hostile strings.
ODD_VALUES: tuple[Any, ...] = (
    None,
    True,
    False,
    0,
    -1,
    2**63,
    1e308,
    -0.0,
    "",
    " ",
    "\ud800",
    "\x00",
    "a" * 300,
    "hf://org/model@0123456789abcdef0123456789abcdef01234567",
    "s3://bucket/key",
    "file:///m/x.pkl",
    "org/model",
    "models/x.pkl",
    "$(MODEL)",
    "${MODEL:-x}",
    "sh",
    "-c",
    "--model",
    [],
    {},
    [[]],
    {"": {}},
)


def _nodes(doc: Any, out: list[tuple[Any, Any]], depth: int = 0) -> None:
    """(container, key) of every value under ``doc``."""
    if depth > 64:
        return
    items = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else ()
    for key, value in list(items):
        out.append((doc, key))
        _nodes(value, out, depth + 1)


def mutate_json(data: bytes, max_size: int, seed: int) -> bytes:
    rng = random.Random(seed)
    if rng.random() < 0.5:
        return atheris.Mutate(data, max_size)
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        return atheris.Mutate(data, max_size)
    nodes: list[tuple[Any, Any]] = []
    _nodes(doc, nodes)
    if not nodes:
        return atheris.Mutate(data, max_size)
    for _ in range(rng.randint(1, 3)):
        parent, key = rng.choice(nodes)
        try:
            value = parent[key]
        except (KeyError, IndexError):
            continue
        op = rng.randrange(6)
        if op == 0:
            parent[key] = rng.choice(ODD_VALUES)
        elif op == 1:
            del parent[key]
        elif op == 2 and isinstance(parent, list):
            parent.insert(key, value)  # duplicate an element
        elif op == 3:
            other_parent, other_key = rng.choice(nodes)  # graft another subtree here
            try:
                parent[key] = json.loads(json.dumps(other_parent[other_key]))
            except (KeyError, IndexError, ValueError, RecursionError):
                pass
        elif op == 4:
            parent[key] = [value] if rng.random() < 0.5 else {"x": value}  # wrap
        elif isinstance(parent, dict):
            parent[rng.choice(["containers", "args", "command", "env", "annotations", "kind", "spec"])] = (
                value
            )
    try:
        out = json.dumps(doc).encode("utf-8", "surrogatepass")
    except (ValueError, RecursionError):
        return atheris.Mutate(data, max_size)
    return out[:max_size]
