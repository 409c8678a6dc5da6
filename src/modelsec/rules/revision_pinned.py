"""RevisionPinned: a model reference names an immutable revision.

A verdict is about bytes. ``hf://org/name`` (or ``@main``, ``@v1.0``) names whatever the
branch or tag points to *when the model is loaded*, which may not be what was scanned.
Pinned means:

- Hugging Face: a full 40-hex commit sha (short shas are ambiguous and refused);
- S3: an object version id, or a content digest the S3 source verifies (``etag:...``,
  ``sha256:...``); the words S3 and users employ for "whatever is current" (``null``,
  ``latest``, ``main``, ...) are not pins;
- either: a revision matching the group's ``trustedRevisions`` glob patterns (protected
  release tags an organisation does not move).

Local paths have no revisions that anything verifies, so the rule does not apply to
Local sources.

The admission webhook judges the reference as the workload wrote it (:func:`judge`). In a
scan, the requested revision comes from the source's metadata
(``extra["requestedRevision"]``, recorded by the Hugging Face source whenever one was
asked for); a source that does not record it gets SKIPPED with a message, never PASSED.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass

from modelsec.findings import Severity, threat
from modelsec.rules.base import EvaluationInput, Rule, RuleOutcome, RuleParams, RuleResult, SourceType, param

UNPINNED_REVISION = threat(
    "MS-POL-003",
    "RevisionPinned",
    Severity.MEDIUM,
    "Model reference does not pin an immutable revision",
    "Pin the model: hf://org/name@<40-hex commit sha>, s3://bucket/key@<version id>, or "
    "the revision a ModelScan recorded.",
    "A branch, tag or missing revision names whatever the model is at load time, which may "
    "not be the bytes that were scanned.",
)

_COMMIT_SHA = re.compile(r"^[0-9a-fA-F]{40}$")
_HEX = re.compile(r"^[0-9a-fA-F]{7,39}$")
_DIGEST = re.compile(r"^(sha256:[0-9a-fA-F]{64}|etag:.+)$")
# What people write when they mean "the current one": never a pin.
MUTABLE_NAMES = frozenset({"main", "master", "head", "latest", "null", "current", "default", "stable"})
REQUESTED_REVISION = "requestedRevision"  # ModelMetadata.extra key set by sources


@dataclass(frozen=True, kw_only=True)
class RevisionPinnedParams(RuleParams):
    """Parameters of RevisionPinned: patterns of revisions trusted as pins besides immutable ones."""

    trusted_revisions: list[str] = param(
        default_factory=list,
        alias="trustedRevisions",
        description="Glob patterns of revisions accepted as pinned although they are not "
        "commit shas or version ids, e.g. protected release tags (`v*`). Empty: only "
        "immutable revisions count.",
    )


@dataclass(frozen=True)
class Judgement:
    """Whether a revision is a pin, and a message that says why (or how to fix it)."""

    pinned: bool
    message: str


def judge(source_type: SourceType, revision: str | None, params: RevisionPinnedParams) -> Judgement:
    """Is ``revision`` of a ``source_type`` reference a pin? The message says how to fix it."""
    revision = (revision or "").strip()
    if not revision:
        return Judgement(False, "no revision: pin a commit sha or version id")
    trusted = next((p for p in params.trusted_revisions if fnmatch.fnmatchcase(revision, p)), None)
    if trusted is not None:
        return Judgement(True, f"revision {revision} is trusted (trustedRevisions {trusted!r})")
    if _DIGEST.match(revision):
        return Judgement(True, f"pinned to content digest {revision[:24]}")
    if revision.lower() in MUTABLE_NAMES:
        return Judgement(False, f"revision {revision!r} moves: pin a commit sha or version id")
    if source_type == SourceType.HUGGING_FACE:
        if _COMMIT_SHA.match(revision):
            return Judgement(True, f"pinned to commit {revision[:12]}")
        if _HEX.match(revision):
            return Judgement(False, f"short commit {revision!r} is ambiguous: use all 40 hex digits")
        return Judgement(False, f"revision {revision!r} is a branch or tag: pin a 40-hex commit sha")
    # S3: any other revision is a version id, which S3 never reassigns.
    return Judgement(True, f"pinned to version {revision[:32]}")


class RevisionPinned(Rule[RevisionPinnedParams]):
    id = "RevisionPinned"
    title = "Model reference pins an immutable revision"
    description = (
        "Fails when a Hugging Face reference has no revision or a branch/tag instead of a "
        "40-hex commit sha, or an S3 reference has no version id or digest. The admission "
        "webhook applies it to each workload's reference. `trustedRevisions` accepts "
        "patterns such as protected release tags. Not applicable to Local sources."
    )
    Params = RevisionPinnedParams
    sources = frozenset({SourceType.HUGGING_FACE, SourceType.S3})
    judges_content = False

    def evaluate(self, given: EvaluationInput, params: RevisionPinnedParams) -> RuleOutcome:
        metadata = given.metadata
        if metadata is None:
            return RuleOutcome(
                RuleResult.ERROR,
                message="no source metadata: cannot tell which revision was asked for; failing closed",
            )
        if REQUESTED_REVISION in metadata.extra:
            requested: str | None = metadata.extra[REQUESTED_REVISION]
        elif given.source_type == SourceType.HUGGING_FACE:
            requested = None  # the Hub source records every requested revision
        else:
            return RuleOutcome(
                RuleResult.SKIPPED,
                message="the source does not record the "
                "requested revision; the admission webhook judges the reference",
            )
        verdict = judge(given.source_type, requested, params)
        if verdict.pinned:
            return RuleOutcome(RuleResult.PASSED, message=verdict.message)
        return RuleOutcome(
            RuleResult.FAILED,
            [
                UNPINNED_REVISION.at(
                    metadata.uri, f"{metadata.uri}: {verdict.message}", subject=requested or None
                )
            ],
            verdict.message,
        )


RULE = RevisionPinned()
