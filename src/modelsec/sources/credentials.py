"""Credentials for remote sources: where they come from, and keeping them out of everything
we write.

Where they come from, in order:

* Hugging Face: ``token`` in the source config (the operator copies it from the Secret named
  in the ``ModelSource``); else huggingface_hub's own lookup (``HF_TOKEN``,
  ``HUGGING_FACE_HUB_TOKEN``, the token file written by ``hf auth login``).
* S3: ``accessKeyId`` / ``secretAccessKey`` / ``sessionToken`` (or ``profile``) in the source
  config; else boto3's default chain (``AWS_*`` variables, ``~/.aws``, container/instance
  roles). ``anonymous: true`` sends unsigned requests (public buckets).

Keeping them out: every secret value that a scan uses is registered here for the duration
of the scan. :func:`redact` replaces registered values in any text that goes into a report
or an exception message, and :class:`RedactingFilter` does the same for log records of the
client libraries that log request headers at DEBUG (botocore logs the signed headers,
including ``X-Amz-Security-Token``).
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections.abc import Iterable, Iterator
from urllib.parse import urlsplit, urlunsplit

_lock = threading.Lock()
_active: dict[str, int] = {}  # secret value -> number of scans using it

# Secrets shorter than this are not redacted by substring (they would mangle ordinary
# text); no real token or key is that short.
_MIN_SECRET_LEN = 6

# Loggers of the client libraries we drive. A filter on a logger sees only the records
# logged on that very logger, so each one that may format request details is listed.
_LOGGERS = (
    "botocore",
    "botocore.auth",
    "botocore.endpoint",
    "botocore.hooks",
    "botocore.httpsession",
    "botocore.parsers",
    "botocore.retryhandler",
    "botocore.regions",
    "botocore.credentials",
    "boto3",
    "boto3.resources",
    "s3transfer",
    "urllib3",
    "urllib3.connectionpool",
    "httpx",
    "httpx2",
    "httpcore",
    "httpcore.http11",
    "httpcore.connection",
    "huggingface_hub",
    "huggingface_hub.utils._http",
    "huggingface_hub.file_download",
    "huggingface_hub.hf_api",
    "modelsec",
)


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by ``***``."""
    with _lock:
        secrets = sorted(_active, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, "***")
    return text


def redact_url(url: str) -> str:
    """A URL without user-info (``https://user:pass@host`` -> ``https://***@host``)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, f"***@{host}", parts.path, parts.query, parts.fragment))


class RedactingFilter(logging.Filter):
    """Rewrites log records that contain a registered secret. Never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not _active:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a record that cannot format is left to the handler
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = ()
        return True


_FILTER = RedactingFilter()
_installed = False


def _install_filter() -> None:
    global _installed
    if _installed:
        return
    for name in _LOGGERS:
        logging.getLogger(name).addFilter(_FILTER)
    _installed = True


@contextlib.contextmanager
def secrets_in_use(values: Iterable[str | None]) -> Iterator[None]:
    """Register ``values`` as secrets for the duration of a scan."""
    used = [v for v in values if v and len(v) >= _MIN_SECRET_LEN]
    _install_filter()
    with _lock:
        for v in used:
            _active[v] = _active.get(v, 0) + 1
    try:
        yield
    finally:
        with _lock:
            for v in used:
                left = _active.get(v, 0) - 1
                if left <= 0:
                    _active.pop(v, None)
                else:
                    _active[v] = left


def huggingface_token(configured: str | None) -> str | None:
    """The token to use: the configured one, else huggingface_hub's standard lookup."""
    if configured:
        return configured
    try:
        from huggingface_hub import get_token
    except ImportError:  # the caller reports the missing client
        return None
    try:
        return get_token()
    except Exception:  # an OIDC exchange that fails means "no token", reported as denied
        return None


_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9_\-\.=:]+")


def scrub_headers_text(text: str) -> str:
    """Belt and braces for texts that might quote an Authorization header."""
    return _BEARER.sub(r"\1***", text)
