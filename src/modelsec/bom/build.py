"""Build the CycloneDX 1.6 BOM of one scanned model with cyclonedx-python-lib.

Input is a :class:`~modelsec.report.document.ModelRecord`: the model as the JSON result
document records it, whether it comes from a scan in this process or from a saved report.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from cyclonedx.contrib.license.factories import LicenseFactory
from cyclonedx.model import ExternalReference, ExternalReferenceType, HashAlgorithm, HashType, Property, XsUri
from cyclonedx.model.bom import Bom
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.model.contact import OrganizationalEntity
from cyclonedx.model.dependency import Dependency
from cyclonedx.model.license import DisjunctiveLicense, LicenseExpression
from cyclonedx.output.json import JsonV1Dot6
from packageurl import PackageURL

from modelsec.bom import properties as p
from modelsec.integrity.claims import parse_claim
from modelsec.integrity.names import model_name
from modelsec.report.document import FileRecord, ModelRecord

MODEL_REF = "model"


def build(record: ModelRecord, group: str, scanner_version: str) -> Bom:
    model = _model_component(record, group, scanner_version)
    files = [_file_component(record, f) for f in record.files]
    bom = Bom(components=files)
    bom.metadata.component = model
    bom.metadata.tools.components.add(
        Component(type=ComponentType.APPLICATION, name="modelsec", version=scanner_version)
    )
    # What Bom.register_dependency(model, files) records, built directly. That method finds
    # its target by a linear scan of the graph, and Bom.validate() (which every output runs)
    # calls it once per component: quadratic, minutes for a model of 10,000 files. Every
    # component is in the graph from here on, so those calls have nothing to do.
    bom.dependencies.add(
        Dependency(ref=model.bom_ref, dependencies=[Dependency(ref=f.bom_ref) for f in files])
    )
    bom.dependencies.update(Dependency(ref=f.bom_ref) for f in files)
    _skip_registered(bom, {model.bom_ref.value, *(f.bom_ref.value for f in files)})
    return bom


def _skip_registered(bom: Bom, registered: set[str | None]) -> None:
    """Make ``bom.register_dependency`` return at once for a component already in the
    dependency graph with nothing new to add (an instance attribute: the class is not
    touched)."""
    original = bom.register_dependency

    def register_dependency(target: Any, depends_on: Any = None) -> None:
        if depends_on is None and target.bom_ref.value in registered:
            return
        original(target, depends_on)

    # A method replaced on this one instance, on purpose (see above): mypy forbids it in general.
    bom.register_dependency = register_dependency  # type: ignore[method-assign]  # instance-only patch


def render(bom: Bom) -> str:
    return JsonV1Dot6(bom).output_as_string(indent=2) + "\n"


def _model_component(record: ModelRecord, group: str, scanner_version: str) -> Component:
    meta = record.metadata
    org, _, name = (meta.model_id or "").rpartition("/")
    if not name:
        name = record.uri.rstrip("/").rsplit("/", 1)[-1] or record.uri
    facts = {
        p.URI: record.uri,
        p.SOURCE_TYPE: record.source_type,
        p.REVISION: record.revision,
        p.SINGLE_FILE: "true" if _single_file(record) else "false",
        p.FINGERPRINT: record.fingerprint,
        p.GROUP: group,
        p.OUTCOME: record.outcome,
        p.REASON: record.reason,
        p.FINDINGS_TOTAL: str(record.findings_total),
        p.INCOMPLETE_TOTAL: str(len(record.incomplete)),
        p.SCANNER_VERSION: scanner_version,
    }
    rules = {f"{p.RULE}{r.name}": f"{r.result} {r.mode}: {r.message}" for r in record.rules}
    return Component(
        type=ComponentType.MACHINE_LEARNING_MODEL,
        bom_ref=MODEL_REF,
        name=name,
        group=org or None,
        version=record.revision,
        supplier=OrganizationalEntity(name=meta.author) if meta.author else None,
        purl=_purl(record, org, name),
        licenses=_licenses(record),
        external_references=[
            ExternalReference(type=ExternalReferenceType.DISTRIBUTION, url=_uri(record.uri))
        ],
        properties=_properties({**facts, **rules}),
    )


def _file_component(record: ModelRecord, file: FileRecord) -> Component:
    name = model_name(record.target, file.path) or file.path.rstrip("/").rsplit("/", 1)[-1]
    claim = parse_claim(file.digest)
    facts = {
        p.NAME: name,
        p.FORMAT: file.format,
        p.SIZE: str(file.size),
        p.SOURCE: record.uri,
        # A claim is not a hash of the bytes: it is recorded as what it is, never in hashes.
        p.CLAIMED_DIGEST: file.digest if claim is not None else None,
    }
    return Component(
        type=ComponentType.FILE,
        bom_ref=f"file:{name}",
        name=name,
        version=record.revision,
        hashes=[HashType(alg=HashAlgorithm.SHA_256, content=file.sha256)] if file.sha256 else None,
        licenses=_licenses(record),
        properties=_properties(facts),
    )


def _single_file(record: ModelRecord) -> bool:
    return len(record.files) == 1 and model_name(record.target, record.files[0].path) is None


def _purl(record: ModelRecord, org: str, name: str) -> PackageURL | None:
    """A package URL where the ecosystem has a type for models: ``pkg:huggingface``."""
    if record.source_type != "HuggingFace" or not org:
        return None
    return PackageURL(type="huggingface", namespace=org, name=name, version=record.revision)


def _uri(uri: str) -> XsUri:
    """``uri`` percent-encoded where a URI may not hold a character as is (spaces, control
    characters, non-ASCII file names), so that the BOM validates whatever the path."""
    return XsUri(quote(uri, safe=":/?#[]@!$&'()*+,;=%~", errors="surrogateescape"))


def _licenses(record: ModelRecord) -> list[DisjunctiveLicense | LicenseExpression]:
    text = record.metadata.license
    return [LicenseFactory().make_from_string(text)] if text else []


def _properties(values: dict[str, str | None]) -> list[Property]:
    return [Property(name=key, value=value) for key, value in values.items() if value is not None]
