"""What a scan recorded about a model's files, from wherever it was kept.

``modelsec verify`` compares files on disk with one of these:

- a JSON result document (``modelsec scan --format json``): every file with its SHA-256
  (or the source's claim, for remote files read by range);
- an ML-BOM written by ``modelsec bom``: the same, as CycloneDX file components;
- a ModelScan in the cluster: its status holds the model's fingerprint (SHA-256 over
  every file's name and digest), and the operator keeps the verdict's BOM, with the
  per-file digests, in a ConfigMap (``status.bom``). With the BOM the files that changed
  are named (:func:`with_bom`); without it a mismatch is detected but not attributed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from modelsec.integrity.claims import Claim, parse_claim
from modelsec.integrity.names import model_name

MAX_BOM_BYTES = 256 << 20


class ExpectedError(ValueError):
    """The recorded scan cannot be used for verification; the message says why."""


@dataclass(frozen=True)
class ExpectedFile:
    """One file as the scan recorded it: name in the model, size, SHA-256 or the source's claim."""

    name: str  # inside the model (POSIX); for a one-file model, the file's name
    size: int | None
    sha256: str | None  # computed by the scan from the bytes
    claim: Claim | None = None  # what the source claimed, when the scan did not hash it


@dataclass(frozen=True)
class Expected:
    """What a scan recorded about one model: its per-file digests, or only its fingerprint."""

    origin: str  # where it was read, for messages
    uri: str
    source_type: str
    outcome: str | None
    single_file: bool
    # Per-file digests, or None when only the fingerprint is known (a ModelScan).
    files: dict[str, ExpectedFile] | None
    fingerprint: str | None = None
    file_count: int | None = None
    note: str | None = None  # why the comparison is weaker than it could be, for the reader

    @property
    def remote(self) -> bool:
        return not self.uri.startswith("file://")


def _from_records(
    origin: str,
    uri: str,
    source_type: str,
    outcome: str | None,
    fingerprint: str | None,
    files: list[ExpectedFile],
    single: bool,
) -> Expected:
    by_name: dict[str, ExpectedFile] = {}
    for entry in files:
        if entry.name in by_name:
            raise ExpectedError(f"{origin}: file {entry.name!r} is listed twice")
        by_name[entry.name] = entry
    if single and len(by_name) != 1:
        raise ExpectedError(f"{origin}: a one-file model must list exactly one file")
    return Expected(origin, uri, source_type, outcome, single, by_name, fingerprint, len(by_name))


def from_report(record: Any, origin: str) -> Expected:
    """From a :class:`~modelsec.report.document.ModelRecord`."""
    files = []
    single = False
    for f in record.files:
        name = model_name(record.target, f.path)
        if name is None:
            single = True
            name = f.path.rstrip("/").rsplit("/", 1)[-1]
        files.append(ExpectedFile(name, f.size, f.sha256, None if f.sha256 else parse_claim(f.digest)))
    return _from_records(
        f"{origin} ({record.target})",
        record.uri,
        record.source_type,
        record.outcome,
        record.fingerprint,
        files,
        single,
    )


def load_bom(path: str) -> Expected:
    """Read the BOM at ``path`` (bounded) and take the files it records."""
    try:
        with open(path, "rb") as handle:
            text = handle.read(MAX_BOM_BYTES + 1)
    except OSError as exc:
        raise ExpectedError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if len(text) > MAX_BOM_BYTES:
        raise ExpectedError(f"{path}: larger than the {MAX_BOM_BYTES} bytes a BOM may have")
    return from_bom(text, f"ML-BOM {path}")


def from_bom(text: str | bytes, origin: str) -> Expected:
    """From a CycloneDX JSON BOM written by ``modelsec bom``."""
    from modelsec.bom import properties as p

    try:
        bom = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ExpectedError(f"{origin}: not JSON: {exc}") from None
    if not isinstance(bom, dict) or bom.get("bomFormat") != "CycloneDX":
        raise ExpectedError(f"{origin}: not a CycloneDX BOM")
    model = (bom.get("metadata") or {}).get("component")
    if not isinstance(model, dict) or model.get("type") != "machine-learning-model":
        raise ExpectedError(
            f"{origin}: no machine-learning-model in metadata.component (write the BOM with `modelsec bom`)"
        )
    facts = _properties(model)
    if p.URI not in facts:
        raise ExpectedError(
            f"{origin}: the model component has no {p.URI} property (write the BOM with `modelsec bom`)"
        )
    files = []
    for component in bom.get("components") or []:
        if not isinstance(component, dict) or component.get("type") != "file":
            continue
        props = _properties(component)
        name = props.get(p.NAME)
        if not name:
            raise ExpectedError(f"{origin}: file component {component.get('name')!r} has no {p.NAME}")
        sha256 = next(
            (
                h.get("content")
                for h in component.get("hashes") or []
                if isinstance(h, dict) and h.get("alg") == "SHA-256"
            ),
            None,
        )
        size = props.get(p.SIZE)
        files.append(
            ExpectedFile(
                name,
                int(size) if size and size.isdigit() else None,
                str(sha256).lower() if sha256 else None,
                None if sha256 else parse_claim(props.get(p.CLAIMED_DIGEST)),
            )
        )
    return _from_records(
        origin,
        facts[p.URI],
        facts.get(p.SOURCE_TYPE, ""),
        facts.get(p.OUTCOME),
        facts.get(p.FINGERPRINT),
        files,
        facts.get(p.SINGLE_FILE) == "true",
    )


def _properties(component: dict[str, Any]) -> dict[str, str]:
    found: dict[str, str] = {}
    for entry in component.get("properties") or []:
        if (
            isinstance(entry, dict)
            and isinstance(entry.get("name"), str)
            and isinstance(entry.get("value"), str)
        ):
            found[entry["name"]] = entry["value"]
    return found


def from_modelscan(scan: dict[str, Any], origin: str) -> Expected:
    """From a ModelScan object as the API server returns it."""
    status = scan.get("status") or {}
    model = (scan.get("spec") or {}).get("model") or ""
    if status.get("phase") != "Completed" or not status.get("fingerprint"):
        phase = status.get("phase") or "not started"
        raise ExpectedError(
            f"{origin}: no completed scan to verify against (phase {phase}"
            f"{': ' + str(status['reason']) if status.get('reason') else ''})"
        )
    count = status.get("filesScanned")
    source = "Local" if model.startswith("file://") else "HuggingFace" if model.startswith("hf://") else "S3"
    return Expected(
        origin,
        model,
        source,
        status.get("outcome"),
        single_file=False,
        files=None,
        fingerprint=str(status["fingerprint"]),
        file_count=count if isinstance(count, int) else None,
    )


def with_bom(scan: Expected, bom_text: str, origin: str) -> Expected:
    """The ModelScan's expectation with the per-file digests of its BOM, which must be
    the BOM of that very verdict: same model, same fingerprint."""
    bom = from_bom(bom_text, origin)
    if bom.fingerprint != scan.fingerprint:
        raise ExpectedError(
            f"{origin} is the BOM of another verdict (fingerprint {bom.fingerprint}, "
            f"the ModelScan's is {scan.fingerprint})"
        )
    if bom.uri != scan.uri:
        raise ExpectedError(f"{origin} describes {bom.uri}, not {scan.uri}")
    return Expected(
        origin,
        scan.uri,
        bom.source_type or scan.source_type,
        scan.outcome,
        bom.single_file,
        bom.files,
        scan.fingerprint,
        bom.file_count,
    )
