"""Source failures: what went wrong reaching a model, as a stable code plus a precise message.

A :class:`SourceFailure` never escapes :func:`modelsec.sources.scan_model`: the source turns
it into an :class:`~modelsec.findings.Incomplete` on the report, which makes every content
rule ERROR (fail closed). Codes are stable and documented in ``docs/sources.md``; never
reuse one. Messages are built by us from facts we chose (names, status codes) and are run
through :func:`modelsec.sources.credentials.redact` before they reach a report, so a
credential cannot leak through a server that echoes it back.
"""

from __future__ import annotations

# MS-SRC-001 is "no such source in this build" (modelsec.sources.__init__).
CONFIG = "MS-SRC-002"  # the source configuration (options.config / Secret) is invalid
NOT_FOUND = "MS-SRC-003"  # repository / bucket does not exist (or is hidden from us)
ACCESS_DENIED = "MS-SRC-004"  # gated, private without token, bucket denied, bad credentials
REVISION_NOT_FOUND = "MS-SRC-005"  # branch/tag/commit/version id unknown, or pinned set changed
THROTTLED = "MS-SRC-006"  # still rate limited after the bounded retries
NETWORK = "MS-SRC-007"  # timeout, connection refused, DNS: the source could not be reached
FILE_NOT_FOUND = "MS-SRC-008"  # key/file missing, or nothing left to scan after filtering
INTEGRITY = "MS-SRC-009"  # bytes or headers contradict the listing, or changed mid-scan
TEMP_LIMIT = "MS-SRC-010"  # a whole-file download would exceed the bounded temporary area
CLIENT_MISSING = "MS-SRC-011"  # boto3 / huggingface_hub not installed
REMOTE_ERROR = "MS-SRC-012"  # any other refusal by the source (5xx after retries, odd replies)
LAYOUT = "MS-SRC-013"  # a file path that cannot be laid out for the layout checks (.., absolute)
TOO_MANY_FILES = "MS-SRC-014"  # more files than a model plausibly has: narrow the reference
DEADLINE = "MS-SRC-015"  # the scan's total deadline passed (a request's deadline is MS-SRC-007)
TOO_LARGE = "MS-SRC-016"  # an answer, a listing's pages or a decompression past its bound

TITLES: dict[str, str] = {
    CONFIG: "Invalid source configuration",
    NOT_FOUND: "Repository or bucket not found",
    ACCESS_DENIED: "Access denied (gated, private, or credentials refused)",
    REVISION_NOT_FOUND: "Revision not found",
    THROTTLED: "Throttled by the source after bounded retries",
    NETWORK: "Source unreachable (timeout, connection refused)",
    FILE_NOT_FOUND: "File or object not found, or nothing to scan",
    INTEGRITY: "Content does not match the source's digest",
    TEMP_LIMIT: "Temporary download area limit reached",
    CLIENT_MISSING: "Client library for this source is not installed",
    REMOTE_ERROR: "Source returned an unexpected error",
    LAYOUT: "File path cannot be laid out for the multi-file checks",
    TOO_MANY_FILES: "Too many files for one model",
    DEADLINE: "Scan deadline passed",
    TOO_LARGE: "Answer or listing larger than its bound",
}


class SourceFailure(Exception):
    """A failure reaching or reading a remote model. ``message`` must already be free of
    credentials; callers still redact it."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return self.message
