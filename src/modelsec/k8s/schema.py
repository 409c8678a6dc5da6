"""Pydantic JSON Schema -> Kubernetes *structural* OpenAPI v3 schema.

The API server accepts only structural schemas: every node typed, no ``$ref``, no
``additionalProperties`` beside ``properties``, ``anyOf`` only around value validations.
Pydantic emits plain JSON Schema, so this module rewrites it:

- ``$ref`` to ``$defs`` are inlined (keeping the referring field's description/default);
- ``Optional[X]`` (``anyOf: [X, {type: null}]``) becomes ``X``: an absent field is how
  Kubernetes spells "unset", and null values are pruned by the API server;
- ``dict[str, Any]`` becomes ``x-kubernetes-preserve-unknown-fields`` (rule params are
  validated by the operator against each rule's own model);
- titles and ``additionalProperties: false`` are dropped (the server prunes unknown fields);
- ``x-kubernetes-*`` keys given through ``json_schema_extra`` pass through untouched.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from pydantic import BaseModel

_DROP = {"title", "examples", "$defs"}


class SchemaError(ValueError):
    """The model cannot be expressed as a structural schema; fix the model."""


def structural(model: type[BaseModel]) -> dict[str, Any]:
    """The structural OpenAPI v3 schema of ``model`` (validation mode, wire aliases)."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.get("$defs", {})
    return _convert(raw, defs, path=model.__name__)


def _resolve(node: dict[str, Any], defs: dict[str, Any], path: str) -> dict[str, Any]:
    ref = node.get("$ref")
    if ref is None:
        return node
    name = ref.rsplit("/", 1)[-1]
    if name not in defs:
        raise SchemaError(f"{path}: unresolvable $ref {ref}")
    merged: dict[str, Any] = copy.deepcopy(defs[name])
    # Keys beside $ref (description, default) describe the field and win over the type's.
    merged.update({k: v for k, v in node.items() if k != "$ref"})
    return merged


def _strip_null(node: dict[str, Any]) -> dict[str, Any]:
    variants = node.get("anyOf")
    if not variants:
        return node
    non_null = [v for v in variants if v.get("type") != "null"]
    if len(non_null) != 1:
        return node  # a real union: left for _convert to reject
    merged = {k: v for k, v in node.items() if k != "anyOf"}
    merged = {**non_null[0], **merged}
    if merged.get("default", ...) is None:
        del merged["default"]
    return merged


def _describe(text: str) -> str:
    # Docstrings use reST ``literals``; kubectl explain shows plain text.
    return re.sub(r"``([^`]+)``", r"`\1`", " ".join(text.split()))


def _convert(node: dict[str, Any], defs: dict[str, Any], path: str) -> dict[str, Any]:
    node = _strip_null(_resolve(node, defs, path))
    node = _strip_null(_resolve(node, defs, path))  # a $ref inside Optional[...]
    if "anyOf" in node or "oneOf" in node or "allOf" in node:
        raise SchemaError(f"{path}: unions cannot be expressed structurally; use one type")
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP or key == "$ref" or (key == "default" and value is None):
            continue
        if key == "description":
            out[key] = _describe(value)
        elif key == "properties":
            out[key] = {name: _convert(sub, defs, f"{path}.{name}") for name, sub in value.items()}
        elif key == "items":
            out[key] = _convert(value, defs, f"{path}[]")
        elif key == "additionalProperties":
            if value is False:
                continue
            if value is True or value == {}:
                out["x-kubernetes-preserve-unknown-fields"] = True
            else:
                out[key] = _convert(value, defs, f"{path}{{}}")
        elif key == "required":
            out[key] = sorted(value)
        else:
            out[key] = copy.deepcopy(value)
    out = _ordered(out)
    if (
        "type" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
        and not out.get("x-kubernetes-int-or-string")
    ):
        raise SchemaError(f"{path}: no type (structural schemas need one on every node)")
    if out.get("type") == "object" and "properties" in out and "additionalProperties" in out:
        raise SchemaError(f"{path}: properties and additionalProperties are exclusive")
    return out


_FIRST = ("type", "description", "default", "enum", "format", "pattern")
_LAST = ("properties", "additionalProperties", "items", "required")


def _ordered(node: dict[str, Any]) -> dict[str, Any]:
    """Keys in reading order (what, why, constraints, children, extensions) so that the
    generated YAML reviews well; JSON does not care."""
    first = [k for k in _FIRST if k in node]
    last = [k for k in _LAST if k in node]
    extensions = sorted(k for k in node if k.startswith("x-kubernetes-"))
    middle = sorted(k for k in node if k not in first and k not in last and k not in extensions)
    return {k: node[k] for k in first + middle + last + extensions}


def at(schema: dict[str, Any], *path: str) -> dict[str, Any]:
    """The sub-schema at ``path`` (property names; ``[]`` for array items), for the few
    overrides a CRD needs beyond its models."""
    node = schema
    for step in path:
        node = node["items"] if step == "[]" else node["properties"][step]
    return node
