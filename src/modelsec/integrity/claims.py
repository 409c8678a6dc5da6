"""Digests a remote source *claims* for files the scan did not read whole.

A remote scan records ``claimed:<kind>:<value>@<scope>`` (see
:meth:`modelsec.sources.remote_scan.RemoteEntry.claimed_digest`) when it fingerprints a file
by the Hub's or the bucket's word rather than by hashing the bytes. Checks that compare
digests must know a claim from a computed SHA-256: a claim proves what the server said,
not what it served.
"""

from __future__ import annotations

from dataclasses import dataclass

PREFIX = "claimed:"


@dataclass(frozen=True)
class Claim:
    """A digest a remote source claimed for a file: its kind, its value and where the claim came from."""

    kind: str  # "sha256" (Hub LFS oid, S3 checksum), "git-blob" (Hub git object), "s3-etag"
    value: str  # lowercase hex for sha256 and git-blob
    scope: str  # endpoint, repository or bucket, and revision that made the claim

    def __str__(self) -> str:
        return f"{self.kind}:{self.value}"


def parse_claim(digest: str | None) -> Claim | None:
    """The claim in a recorded digest, or None if it is not one."""
    if not digest or not digest.startswith(PREFIX):
        return None
    claim, _, scope = digest[len(PREFIX) :].partition("@")
    kind, sep, value = claim.partition(":")
    if not sep or not value:
        return None
    if kind in ("sha256", "git-blob"):
        value = value.lower()
    return Claim(kind, value, scope)
