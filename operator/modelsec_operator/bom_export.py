"""Each verdict's ML-BOM, in a ConfigMap the ModelScan owns (see docs/integrity.md).

ModelScan status holds the model's fingerprint but no per-file digests: a model can have
100,000 files, and a status must stay far below etcd's object limit. ``modelsec verify
--scan`` needs the per-file SHA-256s to *name* the file that changed, and so does the
init container the webhook injects (``verifyAtStart``). The CycloneDX BOM of the verdict
carries them, so the operator keeps it beside the ModelScan:

- a ConfigMap named like the ModelScan, in ``--bom-namespace``, owned by the ModelScan
  (deleting the scan deletes it), labelled with its scan key;
- ``data["bom.json"]``: the BOM as compact JSON, when it fits; otherwise
  ``binaryData["bom.json.gz"]``, its gzip; beyond that (about 2,000 files as JSON, several
  times more compressed) no BOM, and ``status.bom.problem`` says why (verify then compares
  the fingerprint, which still detects a change but cannot name the file);
- ``status.bom`` records where it is and the SHA-256 of the stored value: a reader can
  tell the ConfigMap still holds what the operator wrote (a ConfigMap is easier to write
  than a status subresource), and the BOM's fingerprint property must equal the status's.

A BOM that cannot be written never costs the verdict: the status says why instead.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from modelsec.bom import BomUnavailable, bom_json
from modelsec.integrity.cluster import GZIP_KEY, JSON_KEY
from modelsec.k8s import API_VERSION, LABEL_SCAN_KEY
from modelsec.k8s.scan import BomRef
from modelsec.policy import Verdict
from modelsec.safe_text import printable
from modelsec.sources import ScannedModel

log = logging.getLogger("modelsec.operator.bom")

# The API server refuses ConfigMaps whose data and binaryData exceed 1 MiB (1,048,576
# bytes); the rest of the object (keys, labels, the owner reference) needs a little room.
MAX_STORED_BYTES = 1_000_000
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_MODELSCAN = "modelsec.io/modelscan"
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$")


@dataclass(frozen=True)
class StoredBom:
    """A BOM as its ConfigMap stores it: the key, the JSON or gzip bytes, and its number of files."""

    key: str  # JSON_KEY (data) or GZIP_KEY (binaryData)
    value: bytes
    files: int

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.value).hexdigest()


class BomTooLarge(ValueError):
    pass


def encode(bom_text: str) -> StoredBom:
    """The BOM as it is stored: compact JSON, or its gzip when the JSON does not fit."""
    document = json.loads(bom_text)
    files = sum(
        1 for c in document.get("components") or [] if isinstance(c, dict) and c.get("type") == "file"
    )
    # ASCII: file names that are not valid UTF-8 (surrogate escapes) stay encodable.
    compact = json.dumps(document, separators=(",", ":")).encode()
    if len(compact) <= MAX_STORED_BYTES:
        return StoredBom(JSON_KEY, compact, files)
    # mtime=0: the same BOM compresses to the same bytes, so an unchanged one is not rewritten.
    packed = gzip.compress(compact, compresslevel=9, mtime=0)
    if len(packed) <= MAX_STORED_BYTES:
        return StoredBom(GZIP_KEY, packed, files)
    raise BomTooLarge(
        f"the BOM of {files} file(s) is {len(compact)} bytes as JSON and "
        f"{len(packed)} compressed, more than a ConfigMap holds ({MAX_STORED_BYTES}); "
        "verify --scan compares the fingerprint instead"
    )


def configmap(namespace: str, scan: Mapping[str, Any], stored: StoredBom) -> dict[str, Any]:
    import base64

    metadata = scan.get("metadata") or {}
    name = str(metadata.get("name"))
    labels = {LABEL_MANAGED_BY: "modelsec-operator"}
    scan_key = (metadata.get("labels") or {}).get(LABEL_SCAN_KEY)
    if scan_key:
        labels[LABEL_SCAN_KEY] = scan_key
    if _LABEL_VALUE.match(name):
        labels[LABEL_MODELSCAN] = name
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            # A namespaced object may be owned by a cluster-scoped one: the garbage collector
            # deletes the BOM with its ModelScan.
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": "ModelScan",
                    "name": name,
                    "uid": str(metadata.get("uid")),
                }
            ],
        },
    }
    if stored.key == JSON_KEY:
        body["data"] = {JSON_KEY: stored.value.decode()}
    else:
        body["binaryData"] = {GZIP_KEY: base64.b64encode(stored.value).decode()}
    return body


class BomPublisher:
    """Writes the BOM of each verdict where ``namespace`` says; None disables it."""

    def __init__(self, api_client: Any, namespace: str | None) -> None:
        self.api_client = api_client  # the operator's kubernetes.client.ApiClient
        self.namespace = namespace

    async def _apply(self, body: dict[str, Any]) -> None:
        """Create the ConfigMap, or replace the one of that name."""
        from kubernetes.client import CoreV1Api
        from kubernetes.client.exceptions import ApiException

        core = CoreV1Api(self.api_client)
        namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]

        def call() -> None:
            try:
                core.create_namespaced_config_map(namespace, body)
            except ApiException as exc:
                if exc.status != 409:
                    raise
                core.replace_namespaced_config_map(name, namespace, body)

        await asyncio.to_thread(call)

    async def publish(
        self, scan: Mapping[str, Any], scanned: ScannedModel, verdict: Verdict
    ) -> dict[str, Any] | None:
        """``status.bom`` for this verdict (None when BOMs are off)."""
        if not self.namespace:
            return None
        name = str((scan.get("metadata") or {}).get("name"))
        try:
            stored = await asyncio.to_thread(lambda: encode(bom_json(scanned, verdict)))
        except (BomUnavailable, BomTooLarge) as exc:
            return BomRef(problem=printable(str(exc))[:1000]).wire()
        previous = (scan.get("status") or {}).get("bom") or {}
        reference = BomRef(
            namespace=self.namespace, name=name, key=stored.key, sha256=stored.sha256, files=stored.files
        )
        if previous.get("sha256") == stored.sha256 and previous.get("namespace") == self.namespace:
            return reference.wire()  # unchanged (a re-evaluation with the same result): no write
        try:
            await self._apply(configmap(self.namespace, scan, stored))
        except Exception as exc:  # noqa: BLE001 - the verdict is recorded whatever happens here
            reason = getattr(exc, "reason", None) or type(exc).__name__
            status = getattr(exc, "status", None)
            problem = (
                f"could not write ConfigMap {self.namespace}/{name}: {status or ''} {reason}".replace(
                    "  ", " "
                )
                + "; verify --scan compares the fingerprint instead"
            )
            log.warning(printable(f"ModelScan {name}: {problem}"))
            return BomRef(problem=printable(problem)[:1000]).wire()
        return reference.wire()
