"""``modelsec.io/models``: models named explicitly for modelsec.

A comma- (or whitespace-) separated list of references, each optionally ``@<revision>``:
``hf://org/name@<sha>, s3://bucket/key, file:///models/x.pt``. Bare Hub ids work too. The
annotation may sit on the workload or on its pod template; both are read. Text that does
not parse is reported as invalid (the webhook denies it: the user asked for a check that
cannot be made).
"""

from __future__ import annotations

import re
from typing import Iterator

from modelsec.references.model import Found, Workload

ANNOTATION = "modelsec.io/models"
_SEPARATORS = re.compile(r"[,\s]+")
MAX_ENTRIES = 64


class AnnotationExtractor:
    name = "annotation"

    def extract(self, workload: Workload) -> Iterator[Found]:
        for value in workload.annotation_values(ANNOTATION):
            for entry in [e for e in _SEPARATORS.split(value) if e][:MAX_ENTRIES]:
                yield Found(entry, f"annotation {ANNOTATION}", explicit=True)


EXTRACTOR = AnnotationExtractor()
