"""The JSON result document (``modelsec.io/scan-result/v1``) read back, typed and checked.

``modelsec verify --report`` and ``modelsec bom --report`` take a document that CI wrote
earlier, maybe edited, maybe hostile: it is validated here (schema id, types, sizes) and
every later step works on these models. The in-process path goes through the same models
(:func:`model_record`), so a BOM made right after a scan and one made from its saved
report are built from the same data.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from modelsec.policy import Mode, Outcome
from modelsec.report.jsonout import SCHEMA
from modelsec.rules.base import RuleResult

if TYPE_CHECKING:
    from modelsec.report import ModelResult

# A report lists every file of every model scanned; 100,000 files take ~30 MB of JSON.
MAX_DOCUMENT_BYTES = 256 << 20


class DocumentError(ValueError):
    """The document cannot be used; the message says why."""


class _Record(BaseModel):
    # Keys are only ever added within a schema version: ignore the ones we do not know.
    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)


class FileRecord(_Record):
    path: str
    size: int = Field(ge=0)
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    digest: str | None = None  # the source's claim (docs/json-output.md), older reports lack it
    format: str = "unknown"


class RuleRecord(_Record):
    name: str
    mode: Mode
    result: RuleResult
    violations: int = 0
    message: str = ""


class IncompleteRecord(_Record):
    file: str
    reason: str
    code: str


class MetadataRecord(_Record):
    model_id: str | None = Field(default=None, alias="modelId")
    author: str | None = None
    license: str | None = None
    verified_organization: bool | None = Field(default=None, alias="verifiedOrganization")


class ModelRecord(_Record):
    target: str
    uri: str
    revision: str | None = None
    source_type: str = Field(alias="sourceType")
    outcome: Outcome
    reason: str = ""
    fingerprint: str
    metadata: MetadataRecord = MetadataRecord()
    rules: list[RuleRecord] = []
    findings_total: int = Field(default=0, alias="findingsTotal")
    incomplete: list[IncompleteRecord] = []
    files: list[FileRecord]


class ScannerRecord(_Record):
    name: str
    version: str


class GroupRecord(_Record):
    name: str
    origin: str = ""


class ResultDocument(_Record):
    schema_version: str = Field(alias="schemaVersion")
    scanner: ScannerRecord
    group: GroupRecord
    outcome: Outcome
    models: list[ModelRecord]

    def model(self, select: str | None = None) -> ModelRecord:
        """The one model of the document, or the one whose target or URI is ``select``."""
        if select is None:
            if len(self.models) != 1:
                raise DocumentError(
                    f"the report holds {len(self.models)} models; name one with its target or URI: "
                    + ", ".join(m.target for m in self.models[:10])
                )
            return self.models[0]
        for record in self.models:
            if select in (record.target, record.uri):
                return record
        raise DocumentError(
            f"the report has no model {select!r} (it has: {', '.join(m.target for m in self.models[:10])})"
        )


def parse(text: str | bytes, origin: str) -> ResultDocument:
    try:
        raw = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise DocumentError(f"{origin}: not JSON: {exc}") from None
    if not isinstance(raw, dict) or raw.get("schemaVersion") != SCHEMA:
        found = raw.get("schemaVersion") if isinstance(raw, dict) else type(raw).__name__
        raise DocumentError(
            f"{origin}: not a modelsec scan result (schemaVersion {found!r}, "
            f"expected {SCHEMA!r}; write one with `modelsec scan --format json`)"
        )
    try:
        return ResultDocument.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5])
        raise DocumentError(f"{origin}: invalid scan result: {problems}") from None


def load(path: str) -> ResultDocument:
    """Read and check the document at ``path``; :class:`DocumentError` if it cannot be used."""
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > MAX_DOCUMENT_BYTES:
                raise DocumentError(
                    f"{path}: {size} bytes, more than the {MAX_DOCUMENT_BYTES} a scan result may have"
                )
            text = handle.read(MAX_DOCUMENT_BYTES + 1)
    except OSError as exc:
        raise DocumentError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return parse(text, path)


def model_record(result: ModelResult) -> ModelRecord:
    """One scanned model as the document records it (what ``--format json`` writes)."""
    from modelsec.report.jsonout import model_to_dict

    return ModelRecord.model_validate(model_to_dict(result))
