"""What a source knows about a model besides its bytes (used by the metadata rules)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime


class SourceType(str, enum.Enum):
    """Where a model comes from: what decides which rules apply and which metadata exists."""

    LOCAL = "Local"
    HUGGING_FACE = "HuggingFace"
    S3 = "S3"


@dataclass(frozen=True)
class ModelMetadata:
    """Source-supplied facts. ``None`` means the source does not know (rules that need the
    fact then ERROR or FAIL as they document), never "empty"."""

    uri: str  # canonical reference: hf://org/name, s3://bucket/prefix, file:///path
    model_id: str | None = None  # org/name where the source has one
    author: str | None = None  # organisation or user owning the model
    license: str | None = None  # SPDX-style id from the model card / tags
    revision: str | None = None  # commit sha, version id or content digest
    last_modified: datetime | None = None
    verified_organization: bool | None = None
    extra: dict[str, str] = field(default_factory=dict)
