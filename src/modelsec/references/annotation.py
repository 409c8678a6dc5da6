"""``modelsec.io/models``: models named explicitly for modelsec.

A comma- (or whitespace-) separated list of references, each optionally ``@<revision>``:
``hf://org/name@<sha>, s3://bucket/key, file:///models/x.pt`` (an absolute path is a
``file://`` reference too). The annotation may sit on the workload or on its pod template;
both are read. Text that is not a reference is reported as invalid (the webhook denies
it: the user asked for a check that cannot be made), and that includes a bare
``org/name``: in a list written for modelsec it could as well be a relative path
(``models/x.pkl``), so the scheme must say which.

The annotation names a model, not the program that loads it, so every container's
environment (and every command line's, where a script exports variables) may redirect its
download: ``HF_ENDPOINT`` for ``hf://``, ``AWS_ENDPOINT_URL(_S3)`` for ``s3://``
(:func:`~modelsec.references.redirects.redirect_any`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from modelsec.references.container import Container
from modelsec.references.model import Found, Invalid, Workload
from modelsec.references.pins import Spelled
from modelsec.references.redirects import ANY_PROGRAM, Downloader

ANNOTATION = "modelsec.io/models"
_SEPARATORS = re.compile(r"[,\s]+")
MAX_ENTRIES = 256  # beyond this the annotation is refused, not partly read


class AnnotationExtractor:
    name = "annotation"

    def extract(self, workload: Workload) -> Iterator[Found | Invalid]:
        downloaders: tuple[Downloader, ...] | None = None  # read once, if anything is annotated
        for path, value in workload.annotation_sites(ANNOTATION):
            if downloaders is None:
                downloaders = tuple(_downloaders(workload.containers))
            entries = [e for e in _SEPARATORS.split(value, maxsplit=MAX_ENTRIES + 1) if e]
            if len(entries) > MAX_ENTRIES:
                yield Invalid(
                    f"{value[:40]}...",
                    f"annotation {ANNOTATION}",
                    f"more than {MAX_ENTRIES} entries; list fewer models per workload",
                )
                continue
            for entry in entries:
                if "://" not in entry and not entry.startswith("/"):
                    yield Invalid(
                        entry,
                        f"annotation {ANNOTATION}",
                        "ambiguous: a Hub id or a "
                        "relative path? write hf://org/name, or file:///absolute/path",
                    )
                    continue
                yield Found(
                    entry,
                    f"annotation {ANNOTATION}",
                    explicit=True,
                    site=Spelled(path, entry, "uri"),
                    downloaders=downloaders,
                )


def _downloaders(containers: tuple[Container, ...]) -> Iterator[Downloader]:
    """Every environment a program of the workload may load the model in."""
    for container in containers:
        yield Downloader(ANY_PROGRAM, container.environment)
        for line in container.lines:
            if line.env is not container.environment:
                yield Downloader(ANY_PROGRAM, line.env)


EXTRACTOR = AnnotationExtractor()
