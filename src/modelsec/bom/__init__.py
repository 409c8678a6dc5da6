"""ML-BOMs: a CycloneDX 1.6 bill of materials of a scanned model.

The BOM describes one model as scanned: a ``machine-learning-model`` component (name,
revision, license, where it came from, the verdict and every rule's result as
properties) and one ``file`` component per file (SHA-256 when the scan computed it,
format, license, source and revision). :func:`bom_json` is the API for anything holding
a scan result (the operator); ``modelsec bom`` writes the same document for CI, from a
scan or from a saved JSON report. See docs/integrity.md.

cyclonedx-python-lib (``modelsec[integrity]``) is imported only when a BOM is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from modelsec.policy import Verdict
    from modelsec.report.document import ModelRecord
    from modelsec.sources import ScannedModel


class BomUnavailable(RuntimeError):
    """cyclonedx-python-lib is not installed (``pip install modelsec[integrity]``)."""


def bom_json(scanned: ScannedModel, verdict: Verdict) -> str:
    """The CycloneDX 1.6 JSON BOM of ``scanned`` judged by ``verdict``."""
    from modelsec import __version__
    from modelsec.report import ModelResult
    from modelsec.report.document import model_record

    return record_bom_json(model_record(ModelResult(scanned, verdict)), verdict.group, __version__)


def record_bom_json(record: ModelRecord, group: str, scanner_version: str) -> str:
    """The BOM of a model as a JSON result document records it (``modelsec scan -f json``)."""
    try:
        from modelsec.bom import build
    except ImportError as exc:
        raise BomUnavailable(
            f"cyclonedx-python-lib is not installed ({exc}); install modelsec[integrity]"
        ) from None
    return build.render(build.build(record, group, scanner_version))
