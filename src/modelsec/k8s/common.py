"""Shapes shared by the three resources: conditions, secret references, CEL rules."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from modelsec.safe_text import printable


class K8sModel(BaseModel):
    """Base for resource parts: camelCase on the wire, unknown keys rejected (the API
    server prunes them anyway; rejecting them here catches typos in the operator)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    def wire(self) -> dict[str, Any]:
        """The JSON-ready dict as the API server stores it (aliases, no unset optionals)."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


def cel(
    rule: str, message: str, *, field_path: str | None = None, reason: str | None = None
) -> dict[str, str]:
    """One ``x-kubernetes-validations`` entry. The message is what ``kubectl apply`` shows,
    so it says what to write instead."""
    entry = {"rule": rule, "message": message}
    if field_path:
        entry["fieldPath"] = field_path
    if reason:
        entry["reason"] = reason
    return entry


def validations(*rules: dict[str, str]) -> dict[str, Any]:
    """``json_schema_extra`` carrying CEL rules into the generated CRD schema."""
    return {"x-kubernetes-validations": list(rules)}


def utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def timestamp(moment: datetime | None = None) -> str:
    """RFC 3339 in UTC with a ``Z``, as Kubernetes writes times."""
    return (moment or utcnow()).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ConditionStatus(str, enum.Enum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(K8sModel):
    """A ``metav1.Condition``: the latest observation of one aspect of the object."""

    type: str = Field(max_length=316, description="Condition type, e.g. Ready.")
    status: ConditionStatus
    reason: str = Field(
        max_length=1024, description="CamelCase machine-readable reason, e.g. SourceNotFound."
    )
    message: str = Field(default="", max_length=32768, description="What happened, for humans.")
    last_transition_time: str = Field(
        alias="lastTransitionTime", description="When the status last changed (RFC 3339)."
    )
    observed_generation: int | None = Field(
        default=None, alias="observedGeneration", description="metadata.generation observed."
    )


# Conditions are a map keyed by type: one entry per type, merged by server-side apply.
CONDITIONS_LIST: dict[str, Any] = {
    "x-kubernetes-list-type": "map",
    "x-kubernetes-list-map-keys": ["type"],
    "maxItems": 16,
}


def set_condition(
    existing: list[dict[str, Any]] | None,
    type_: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    generation: int | None = None,
) -> list[dict[str, Any]]:
    """The condition list with ``type_`` replaced; ``lastTransitionTime`` only moves when
    the status flips, as the API conventions ask."""
    conditions = [dict(c) for c in (existing or []) if c.get("type") != type_]
    previous = next((c for c in (existing or []) if c.get("type") == type_), None)
    since = (
        previous["lastTransitionTime"]
        if previous and previous.get("status") == status.value and previous.get("lastTransitionTime")
        else timestamp()
    )
    conditions.append(
        Condition(
            type=type_,
            status=status,
            reason=reason,
            # Messages quote specs and model files; kubectl describe prints them raw.
            message=printable(message)[:32768],
            lastTransitionTime=since,
            observedGeneration=generation,
        ).wire()
    )
    return sorted(conditions, key=lambda c: c["type"])


class SecretKeyRef(K8sModel):
    """A key of a Secret. The resources are cluster-scoped, so the namespace is explicit."""

    name: str = Field(max_length=253, description="Secret name.")
    namespace: str = Field(max_length=63, description="Namespace of the Secret.")
    key: str = Field(default="token", max_length=253, description="Key inside the Secret.")


class SecretRef(K8sModel):
    """A whole Secret whose keys are documented where it is used."""

    name: str = Field(max_length=253, description="Secret name.")
    namespace: str = Field(max_length=63, description="Namespace of the Secret.")


# metav1.LabelSelector, spelled out so that `kubectl explain` and the API server know it.
LABEL_SELECTOR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "A label selector (matchLabels / matchExpressions), as in a Deployment.",
    "properties": {
        "matchLabels": {
            "type": "object",
            "additionalProperties": {"type": "string"},
            "description": "Labels a namespace must carry, all of them.",
        },
        "matchExpressions": {
            "type": "array",
            "maxItems": 32,
            "items": {
                "type": "object",
                "required": ["key", "operator"],
                "properties": {
                    "key": {"type": "string", "maxLength": 317},
                    "operator": {"type": "string", "enum": ["In", "NotIn", "Exists", "DoesNotExist"]},
                    "values": {"type": "array", "maxItems": 64, "items": {"type": "string"}},
                },
            },
        },
    },
    "x-kubernetes-map-type": "atomic",
}
