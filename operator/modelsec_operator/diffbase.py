"""Where kopf keeps the last handled state of each object: in memory for ModelScans.

kopf compares an object's essence (spec, labels, annotations) with the last one handled
to tell a creation, an update or nothing new. Its stock storage writes that essence into
an annotation after every successful handling: one more API write per scan, beside the
status and Event that carry the verdict, and the most common one in a burst of scans.

ModelScans do not need it across restarts: at start-up kopf runs the resume handler for
every object anyway, and our one handler (create, update and resume alike) re-plans from
the status, which holds everything that matters (the verdict, the group digest, the
rescan request). So for ModelScans the essence is remembered here, per UID, in a bounded
LRU; an object not (or no longer) remembered is a creation, which runs the same handler
and records nothing new when there is nothing to do. Other kinds (SecurityGroups,
ModelSources, few and rarely changed) keep the annotation.

What the annotation also gave: kopf waits, after its own patch, for a watch event at
least that new before handling again, so a handler never saw a body older than its own
last status write. Without the patch it can (events of our own writes arrive late), so
the scan handler reads the object afresh when this process handled it before
(:meth:`ScanDiffBase.remembers`).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Any, cast

import kopf

from modelsec.k8s import GROUP

SCAN_KIND = "ModelScan"
REMEMBERED = 20_000  # about 0.5 KiB each as compact JSON: ~10 MiB at most


class ScanDiffBase(kopf.AnnotationsDiffBaseStorage):
    def __init__(self, *, prefix: str, key: str, capacity: int = REMEMBERED) -> None:
        super().__init__(prefix=prefix, key=key)
        self.capacity = capacity
        self._essences: OrderedDict[str, str] = OrderedDict()  # uid -> essence as JSON

    @staticmethod
    def _scan_uid(body: Any) -> str | None:
        if body.get("kind") != SCAN_KIND or not str(body.get("apiVersion", "")).startswith(f"{GROUP}/"):
            return None
        uid = (body.get("metadata") or {}).get("uid")
        return uid if isinstance(uid, str) and uid else None

    def remembers(self, uid: str) -> bool:
        """Whether this process handled the ModelScan with this UID (and still remembers)."""
        return uid in self._essences

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        uid = self._scan_uid(body)
        if uid is None:
            return super().fetch(body=body)
        encoded = self._essences.get(uid)
        return None if encoded is None else cast(kopf.BodyEssence, json.loads(encoded))

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        uid = self._scan_uid(body)
        if uid is None:
            super().store(body=body, patch=patch, essence=essence)
            return
        self._essences[uid] = json.dumps(essence, separators=(",", ":"), sort_keys=True)
        self._essences.move_to_end(uid)
        while len(self._essences) > self.capacity:
            self._essences.popitem(last=False)
