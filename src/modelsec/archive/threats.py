"""Archive threats shared by the zip, tar, 7z and compressed-stream scanners.

Codes are stable. MS-ARC-010 (member count) and MS-ARC-011 (nesting depth) belong to the
core (:mod:`modelsec.context`) and are incompletes, not threats. The ``INCOMPLETE_*``
codes below are likewise used with ``ctx.incomplete``: what could not be inspected is not
a finding, the group's ``errorOutcome`` decides.
"""

from __future__ import annotations

from modelsec.findings import Severity, threat

RULE = "SuspiciousComponents"

PATH_TRAVERSAL = threat(
    "MS-ARC-001",
    RULE,
    Severity.HIGH,
    "Archive member name escapes the extraction directory",
    "Rebuild the archive with relative member names that stay inside it (no '..').",
    "An extractor that trusts the name writes outside the target directory (zip slip), "
    "e.g. over a shell profile or another model.",
)

ABSOLUTE_PATH = threat(
    "MS-ARC-002",
    RULE,
    Severity.HIGH,
    "Archive member has an absolute path or drive letter",
    "Rebuild the archive with relative member names.",
    "An extractor that trusts the name writes to an arbitrary location on the host.",
)

LINK_ESCAPE = threat(
    "MS-ARC-003",
    RULE,
    Severity.HIGH,
    "Archive link member points outside the archive",
    "Replace the link with the file it should contain.",
    "After extraction the link lets a loader read, or a later writer overwrite, a file "
    "outside the model (credentials, system files).",
)

SPECIAL_FILE = threat(
    "MS-ARC-004",
    RULE,
    Severity.MEDIUM,
    "Archive contains a device file, FIFO or other special file",
    "Remove special files; a model archive holds regular files only.",
    "Extracting a device node or FIFO can expose host devices or block a loader forever.",
)

DUPLICATE_NAME = threat(
    "MS-ARC-005",
    RULE,
    Severity.MEDIUM,
    "Archive contains the same member name more than once",
    "Rebuild the archive so that every name appears once.",
    "Different tools pick different copies (first or last), so the file a scanner "
    "inspected may not be the file a loader uses.",
)

DECOMPRESSION_BOMB = threat(
    "MS-ARC-006",
    RULE,
    Severity.HIGH,
    "Decompression bomb",
    "Do not load this archive; rebuild it from trusted content.",
    "A small compressed input expands to an enormous output, exhausting memory or disk of whatever loads it.",
)

OVERLAPPING_MEMBERS = threat(
    "MS-ARC-007",
    RULE,
    Severity.HIGH,
    "Zip members overlap (quine / overlapping-entry bomb technique)",
    "Rebuild the archive; every member must own its own bytes.",
    "Entries that share compressed data are the basis of non-recursive zip bombs and let "
    "one byte range be read as different files.",
)

HEADER_MISMATCH = threat(
    "MS-ARC-008",
    RULE,
    Severity.HIGH,
    "Zip local header disagrees with the central directory",
    "Rebuild the archive with a standard tool.",
    "A loader that reads local headers (streaming) sees a different file (name, method, "
    "size or flags) than one that reads the central directory; both views were scanned.",
)

HIDDEN_MEMBER = threat(
    "MS-ARC-009",
    RULE,
    Severity.HIGH,
    "Zip member present in local headers but missing from the central directory",
    "Rebuild the archive with a standard tool.",
    "Streaming extractors see this member, directory-based tools do not.",
)

DIRECTORY_WITH_DATA = threat(
    "MS-ARC-019",
    RULE,
    Severity.HIGH,
    "Archive directory entry holds data",
    "Rebuild the archive with a standard tool; a directory entry holds no bytes.",
    "Loaders and extractors read an entry's bytes whatever its mode bits, attributes or "
    "trailing slash say (zipfile, numpy.load and torch's reader; 7-Zip), while a tool that "
    "skips directories never sees them.",
)

DIRECTORY_DISAGREEMENT = threat(
    "MS-ARC-025",
    RULE,
    Severity.HIGH,
    "Zip readers disagree on which central directory to read",
    "Rebuild the archive with a standard tool.",
    "The zip64 records are arranged so that Python's zipfile (numpy.load, keras) and "
    "torch's reader list different members: each can be shown another model. Every "
    "directory was scanned.",
)

FAKE_ENCRYPTION = threat(
    "MS-ARC-012",
    RULE,
    Severity.HIGH,
    "Zip member flagged as encrypted or patched but stored in plain text",
    "Rebuild the archive without the misleading flags.",
    "The flag makes some scanners skip the member while lenient loaders read it anyway.",
)

MALFORMED_ARCHIVE = threat(
    "MS-ARC-013",
    RULE,
    Severity.MEDIUM,
    "Malformed archive or compressed stream",
    "Rebuild the archive with a standard tool and re-check its integrity.",
    "Structural damage (broken directory, truncated or corrupt data) makes tools disagree "
    "about the contents; what could be read was scanned.",
)

PREFIX_DATA = threat(
    "MS-ARC-014",
    RULE,
    Severity.MEDIUM,
    "Data before the start of the archive",
    "Remove the leading bytes; a model archive starts with its first member.",
    "A file that is two formats at once (e.g. a pickle with a zip appended) is read "
    "differently by different loaders; the leading data was scanned separately.",
)

TRAILING_DATA = threat(
    "MS-ARC-015",
    RULE,
    Severity.MEDIUM,
    "Data after the end of the archive or stream",
    "Remove the trailing bytes.",
    "Appended data is ignored by some tools and read by others (polyglot files); it was scanned separately.",
)

CRC_MISMATCH = threat(
    "MS-ARC-016",
    RULE,
    Severity.MEDIUM,
    "Archive member checksum does not match its content",
    "Re-download or rebuild the archive.",
    "The member was modified after the archive was written, or the header was forged so "
    "that strict tools reject it while lenient loaders read it.",
)

SIZE_MISMATCH = threat(
    "MS-ARC-017",
    RULE,
    Severity.MEDIUM,
    "Archive member size differs from its header",
    "Rebuild the archive with a standard tool.",
    "Tools that trust the declared size read a different amount of data than tools that decode the stream.",
)

SUSPICIOUS_NAME = threat(
    "MS-ARC-018",
    RULE,
    Severity.MEDIUM,
    "Archive member name contains control characters",
    "Rename the member.",
    "NUL and control characters truncate or disguise names differently across tools (model.pkl\\0.txt).",
)

# Incomplete codes (``ctx.incomplete``): content that could not be inspected.
INCOMPLETE_ENCRYPTED = "MS-ARC-020"
INCOMPLETE_UNSUPPORTED_METHOD = "MS-ARC-021"
INCOMPLETE_UNREADABLE = "MS-ARC-022"
INCOMPLETE_LIMIT = "MS-ARC-023"
INCOMPLETE_NO_PICKLE_ANALYSIS = "MS-ARC-024"
