"""Names of the CycloneDX properties modelsec writes (taxonomy prefix ``modelsec:``).

Kept apart from the builder so that readers of a BOM (``modelsec verify --bom``) need
neither cyclonedx-python-lib nor anything else heavy.
"""

from __future__ import annotations

PREFIX = "modelsec:"

# On the model component (metadata.component)
URI = "modelsec:uri"  # hf://org/name, s3://bucket/prefix/, file:///path
SOURCE_TYPE = "modelsec:sourceType"  # Local, HuggingFace, S3
REVISION = "modelsec:revision"  # commit sha, version ids / content digest
SINGLE_FILE = "modelsec:singleFile"  # "true" when the model is one file
FINGERPRINT = "modelsec:fingerprint"  # SHA-256 over (name, digest) pairs
GROUP = "modelsec:securityGroup"
OUTCOME = "modelsec:outcome"  # ALLOWED, BLOCKED, ERROR
REASON = "modelsec:reason"
FINDINGS_TOTAL = "modelsec:findingsTotal"
INCOMPLETE_TOTAL = "modelsec:incompleteTotal"
RULE = "modelsec:rule:"  # + rule name -> "<RESULT> <Mode>: <message>"
SCANNER_VERSION = "modelsec:scannerVersion"

# On each file component
NAME = "modelsec:name"  # path inside the model (POSIX); the single file's name otherwise
FORMAT = "modelsec:format"
SIZE = "modelsec:size"
CLAIMED_DIGEST = "modelsec:claimedDigest"  # claimed:<kind>:<value>@<scope>, see integrity.claims
SOURCE = "modelsec:source"  # the model's URI, on every file
