"""Hugging Face Hub models: ``hf://org/name[@revision]`` (and https://huggingface.co URLs).

The scan is of one commit: the reference's branch or tag (default branch when none) is
resolved to its commit SHA by ``model_info``, and every file is then read at that SHA, so
a push during the scan cannot mix two revisions. Files are listed with their sizes and,
for LFS files, the Hub's SHA-256 (the fingerprint: no download is needed to know what a
file is). Bytes are read with HTTP range requests on ``/resolve/<sha>/<path>`` through
huggingface_hub's own HTTP session (its proxy/CA/user-agent settings apply); redirects to a
CDN are followed and the token is not forwarded off the Hub's origin.

Metadata for the rules: author/organisation, license (model card, else ``license:`` tags),
commit SHA, last modified, and the organisation's verified flag (organisation overview).
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Iterator, TypeVar

from modelsec.engine import Engine, ScanReport
from modelsec.metadata import ModelMetadata
from modelsec.rules.base import SourceType
from modelsec.sources import ModelRef, ScannedModel, ScanOptions, remote_scan, retry
from modelsec.sources.config import HuggingFaceConfig, parse_config
from modelsec.sources.credentials import huggingface_token, redact_url, secrets_in_use
from modelsec.sources.errors import (
    ACCESS_DENIED,
    CLIENT_MISSING,
    FILE_NOT_FOUND,
    INTEGRITY,
    NETWORK,
    NOT_FOUND,
    REMOTE_ERROR,
    REVISION_NOT_FOUND,
    THROTTLED,
    SourceFailure,
)
from modelsec.sources.remote_file import RangeNotSupported

log = logging.getLogger(__name__)
T = TypeVar("T")

READ_CHUNK = 1 << 20


class Hub:
    """One model repository on one Hub endpoint, with one token (or none)."""

    def __init__(self, ref: ModelRef, cfg: HuggingFaceConfig, token: str | None) -> None:
        from huggingface_hub import HfApi

        self.ref = ref
        self.cfg = cfg
        self.repo_id = ref.location
        self.endpoint = cfg.resolved_endpoint()
        self.shown_endpoint = redact_url(self.endpoint)
        self.token = token
        self.api = HfApi(endpoint=self.endpoint, token=token or False)
        self.policy = remote_scan.policy_of(cfg)
        self.sha: str | None = None

    # --- errors -----------------------------------------------------------------------

    def classify(self, exc: BaseException, what: str, path: str | None = None) -> Exception:
        """A client exception as :class:`retry.Transient` or a final :class:`SourceFailure`."""
        import httpx2
        from huggingface_hub.errors import (
            GatedRepoError,
            HfHubHTTPError,
            OfflineModeIsEnabled,
            RemoteEntryNotFoundError,
            RepositoryNotFoundError,
            RevisionNotFoundError,
        )

        uri = self.ref.uri
        authed = self.token is not None
        token_hint = (
            "the token given has not been granted access"
            if authed
            else "no token was given (set token in the source Secret, HF_TOKEN, or `hf auth login`)"
        )
        if isinstance(exc, (SourceFailure, retry.Transient, RangeNotSupported)):
            return exc  # type: ignore[return-value]
        if isinstance(exc, GatedRepoError):
            return SourceFailure(
                ACCESS_DENIED,
                f"{uri} is a gated model: {token_hint}; accept its conditions on the model page "
                "with the account the token belongs to",
            )
        if isinstance(exc, RevisionNotFoundError):
            return SourceFailure(
                REVISION_NOT_FOUND,
                f"{uri}: revision {self.ref.revision!r} does not exist (no such branch, tag or "
                f"commit on {self.shown_endpoint})",
            )
        if isinstance(exc, RemoteEntryNotFoundError):
            return SourceFailure(
                FILE_NOT_FOUND,
                f"{uri}: {path or 'a listed file'} is not served at revision {self.sha} "
                "(deleted or rewritten during the scan?)",
            )
        status = None
        if isinstance(exc, HfHubHTTPError) and exc.response is not None:
            status = exc.response.status_code
        error_code = exc.response.headers.get("X-Error-Code") if status is not None else None  # type: ignore[union-attr]
        if status == 401 and authed and error_code not in ("RepoNotFound", "GatedRepo"):
            return SourceFailure(
                ACCESS_DENIED,
                f"{self.shown_endpoint} rejected the credentials for {uri} (HTTP 401: invalid or "
                "expired token)",
            )
        if isinstance(exc, RepositoryNotFoundError) or (status in (401, 404) and path is None):
            if status == 401:
                return SourceFailure(
                    ACCESS_DENIED,
                    f"{uri} requires authentication (private or gated model): {token_hint}",
                )
            hidden = (
                "or the token given cannot see it" if authed else "or it is private and no token was given"
            )
            return SourceFailure(
                NOT_FOUND, f"{uri} does not exist on {self.shown_endpoint} ({hidden})"
            )
        if status is not None:
            assert isinstance(exc, HfHubHTTPError)
            headers = exc.response.headers
            if status == 401:
                return SourceFailure(
                    ACCESS_DENIED,
                    f"{self.shown_endpoint} rejected the credentials for {uri} (HTTP 401: "
                    "invalid or expired token)" if authed else f"{uri} requires a token (HTTP 401)",
                )
            if status == 403:
                return SourceFailure(
                    ACCESS_DENIED, f"{what}: {self.shown_endpoint} refused access (HTTP 403): {token_hint}"
                )
            if status == 404:
                return SourceFailure(FILE_NOT_FOUND, f"{what}: not found (HTTP 404) at revision {self.sha}")
            if status == 429:
                return retry.Transient(
                    THROTTLED, f"{what}: throttled by {self.shown_endpoint} (HTTP 429)",
                    _retry_after(headers),
                )
            if status == 408 or status >= 500:
                return retry.Transient(
                    REMOTE_ERROR, f"{what}: {self.shown_endpoint} answered HTTP {status}",
                    _retry_after(headers),
                )
            return SourceFailure(REMOTE_ERROR, f"{what}: {self.shown_endpoint} answered HTTP {status}")
        if isinstance(exc, OfflineModeIsEnabled):
            return SourceFailure(NETWORK, f"{what}: HF_HUB_OFFLINE is set; a remote scan needs the network")
        if isinstance(exc, httpx2.TimeoutException):
            return retry.Transient(
                NETWORK, f"{what}: no answer from {self.shown_endpoint} within {self.cfg.timeout:g}s (timeout)"
            )
        if isinstance(exc, httpx2.ConnectError):
            return retry.Transient(NETWORK, f"{what}: cannot connect to {self.shown_endpoint} ({exc})")
        if isinstance(exc, (httpx2.NetworkError, httpx2.RemoteProtocolError)):
            return retry.Transient(NETWORK, f"{what}: connection to {self.shown_endpoint} failed ({exc})")
        if isinstance(exc, (httpx2.HTTPError, ValueError, KeyError, TypeError)):
            return SourceFailure(
                REMOTE_ERROR, f"{what}: unexpected answer from {self.shown_endpoint}: {type(exc).__name__}"
            )
        return exc  # type: ignore[return-value]

    def call(self, fn: Callable[[], T], what: str, path: str | None = None) -> T:
        def attempt() -> T:
            try:
                return fn()
            except Exception as exc:
                raise self.classify(exc, what, path) from None

        return retry.call(attempt, self.policy)

    # --- listing and metadata ---------------------------------------------------------

    def model_info(self) -> Any:
        info = self.call(
            lambda: self.api.model_info(
                self.repo_id, revision=self.ref.revision, files_metadata=True, timeout=self.cfg.timeout
            ),
            f"{self.ref.uri}: model info",
        )
        if not info.sha:
            raise SourceFailure(
                REMOTE_ERROR, f"{self.ref.uri}: {self.shown_endpoint} did not say which commit it serves"
            )
        if self.ref.revision and len(self.ref.revision) == 40 and info.sha != self.ref.revision.lower():
            raise SourceFailure(
                INTEGRITY, f"{self.ref.uri}: asked for commit {self.ref.revision}, the Hub answered {info.sha}"
            )
        self.sha = info.sha
        return info

    def files(self, info: Any) -> list[dict[str, Any]]:
        """``path``, ``size``, ``sha256`` (LFS) and ``blob`` (git oid) of every file."""
        siblings = info.siblings or []
        if siblings and all(s.size is not None for s in siblings):
            return [
                {
                    "path": s.rfilename,
                    "size": s.size,
                    "sha256": s.lfs.sha256 if s.lfs else None,
                    "blob": s.blob_id,
                }
                for s in siblings
            ]
        # A mirror that ignores blobs=True: ask the tree API, at the resolved commit.
        from huggingface_hub.hf_api import RepoFile

        tree = self.call(
            lambda: list(
                self.api.list_repo_tree(self.repo_id, recursive=True, revision=self.sha)
            ),
            f"{self.ref.uri}: file listing",
        )
        return [
            {
                "path": t.path,
                "size": t.size,
                "sha256": t.lfs.sha256 if t.lfs else None,
                "blob": t.blob_id,
            }
            for t in tree
            if isinstance(t, RepoFile)
        ]

    def organization_verified(self, author: str | None) -> tuple[bool | None, str]:
        """(verified flag, what the author is). ``None`` when it could not be established."""
        if not author:
            return None, "unknown"
        from huggingface_hub.errors import HfHubHTTPError

        try:
            org = self.call(
                lambda: self.api.get_organization_overview(author),
                f"organization {author}",
                path="overview",
            )
        except SourceFailure as exc:
            if exc.code in (FILE_NOT_FOUND, NOT_FOUND):
                return False, "user"  # not an organisation: no verified-organisation badge
            log.info("organisation lookup for %s failed: %s", author, exc.message)
            return None, "unknown"
        except HfHubHTTPError:
            return None, "unknown"
        return (bool(org.is_verified) if org.is_verified is not None else None), "organization"

    def metadata(self, info: Any) -> ModelMetadata:
        author = info.author or self.repo_id.split("/", 1)[0]
        licenses = _licenses(info)
        verified, kind = self.organization_verified(author)
        extra = {"endpoint": self.shown_endpoint, "authorType": kind}
        if self.ref.revision:
            extra["requestedRevision"] = self.ref.revision
        if len(licenses) > 1:
            extra["licenses"] = ",".join(licenses)
        card = info.card_data
        license_name = getattr(card, "license_name", None) if card is not None else None
        if license_name:
            extra["licenseName"] = str(license_name)
        if info.gated:
            extra["gated"] = str(info.gated)
        if info.private:
            extra["private"] = "true"
        return ModelMetadata(
            uri=self.ref.uri,
            model_id=info.id or self.repo_id,
            author=author,
            license=licenses[0] if licenses else None,
            revision=info.sha,
            last_modified=info.last_modified,
            verified_organization=verified,
            extra=extra,
        )

    # --- reading ----------------------------------------------------------------------

    def url(self, path: str) -> str:
        from huggingface_hub import hf_hub_url

        assert self.sha is not None
        return hf_hub_url(self.repo_id, path, revision=self.sha, endpoint=self.endpoint)

    def headers(self) -> dict[str, str]:
        from huggingface_hub.utils import build_hf_headers

        headers = build_hf_headers(token=self.token or False, library_name="modelsec")
        headers["Accept-Encoding"] = "identity"  # sizes and ranges are of the stored bytes
        return headers

    def preflight(self, path: str) -> None:
        """One HEAD on a file: a gated model without access fails here, once, with a precise
        message, instead of once per file."""
        from huggingface_hub import get_hf_file_metadata

        self.call(
            lambda: get_hf_file_metadata(
                self.url(path), token=self.token or False, timeout=self.cfg.timeout,
                endpoint=self.endpoint,
            ),
            f"{self.ref.uri}: access check",
            path,
        )


class HubFetcher:
    """Range reads of one file at the resolved commit.

    The Hub answers ``/resolve`` for LFS files with a redirect to a (signed) CDN URL. The
    first read follows it; later reads go straight to that URL, without the token (it is
    another origin), so a scan makes one ``/resolve`` call per file rather than one per
    read (the Hub rate-limits resolves). If the CDN refuses the URL later (signature
    expired), the next read goes through ``/resolve`` again.
    """

    def __init__(self, hub: Hub, path: str) -> None:
        self.hub = hub
        self.path = path
        self.url = hub.url(path)
        self._headers = hub.headers()
        self._direct: str | None = None

    def _what(self) -> str:
        return f"{self.hub.ref.uri}/{self.path}"

    def fetch(self, start: int, end: int) -> bytes:
        if self._direct is not None:
            data = self._get_range(self._direct, _without_auth(self._headers), start, end, direct=True)
            if data is not None:
                return data
            self._direct = None  # expired or refused: back through /resolve
        data = self._get_range(self.url, self._headers, start, end, direct=False)
        assert data is not None
        return data

    def _get_range(self, url: str, base: dict[str, str], start: int, end: int, direct: bool) -> bytes | None:
        from huggingface_hub.utils import get_session, hf_raise_for_status

        headers = {**base, "Range": f"bytes={start}-{end - 1}"}
        try:
            with get_session().stream(
                "GET", url, headers=headers, timeout=self.hub.cfg.timeout, follow_redirects=not direct
            ) as response:
                if direct and response.status_code in (301, 302, 303, 307, 308, 401, 403, 404, 410):
                    return None
                if response.status_code == 206:
                    _check_content_range(response.headers.get("Content-Range"), start, self._what())
                    if not direct and response.history:
                        self._direct = str(response.url)
                    return _read_at_most(response.iter_bytes(READ_CHUNK), end - start)
                if response.status_code == 200:
                    raise RangeNotSupported(self._what())  # never read a whole body here
                if response.status_code == 416:
                    return b""
                response.read()
                hf_raise_for_status(response)
                raise SourceFailure(
                    REMOTE_ERROR, f"{self._what()}: unexpected HTTP {response.status_code}"
                )
        except Exception as exc:
            raise self.hub.classify(exc, self._what(), self.path) from None

    def stream(self) -> Iterator[bytes]:
        from huggingface_hub.utils import get_session, hf_raise_for_status

        try:
            with get_session().stream(
                "GET", self.url, headers=self._headers, timeout=self.hub.cfg.timeout,
                follow_redirects=True,
            ) as response:
                if response.status_code != 200:
                    response.read()
                    hf_raise_for_status(response)
                yield from response.iter_bytes(READ_CHUNK)
        except Exception as exc:
            raise self.hub.classify(exc, self._what(), self.path) from None


def _without_auth(headers: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() != "authorization"}


def _read_at_most(chunks: Iterator[bytes], limit: int) -> bytes:
    """At most ``limit`` bytes: a server that sends more than it announced cannot make us
    buffer more than we asked for."""
    out = bytearray()
    for chunk in chunks:
        out += chunk
        if len(out) >= limit:
            break
    return bytes(out[:limit])


def _check_content_range(value: str | None, start: int, what: str) -> None:
    if value and value.startswith("bytes "):
        first = value[6:].split("-", 1)[0].strip()
        if first.isdigit() and int(first) != start:
            raise SourceFailure(
                INTEGRITY, f"{what}: asked for bytes from {start}, the server sent from {first}"
            )


def _retry_after(headers: Any) -> float | None:
    value = headers.get("Retry-After")
    if value and value.strip().isdigit():
        return float(value.strip())
    try:
        from huggingface_hub.utils._http import parse_ratelimit_headers

        info = parse_ratelimit_headers(headers)
    except Exception:
        return None
    if info is not None and info.remaining == 0:
        return float(info.reset_in_seconds)
    return None


def _licenses(info: Any) -> list[str]:
    """SPDX-style ids from the model card, else from ``license:`` tags."""
    card = info.card_data
    declared = getattr(card, "license", None) if card is not None else None
    if isinstance(declared, str) and declared.strip():
        found = [declared.strip()]
    elif isinstance(declared, list):
        found = [str(x).strip() for x in declared if str(x).strip()]
    else:
        found = [t.split(":", 1)[1].strip() for t in (info.tags or []) if t.startswith("license:")]
    return list(dict.fromkeys(x for x in found if x))


def scan(ref: ModelRef, engine: Engine, options: ScanOptions) -> ScannedModel:
    metadata = ModelMetadata(uri=ref.uri, model_id=ref.location, revision=None)
    report = ScanReport(target=ref.uri, locations=[ref.uri])
    try:
        import huggingface_hub  # noqa: F401
    except ImportError:
        failure = SourceFailure(
            CLIENT_MISSING, "huggingface_hub is not installed: pip install 'modelsec[remote]'"
        )
        return ScannedModel(ref, remote_scan.failed(report, str(ref), failure), metadata, SourceType.HUGGING_FACE)
    try:
        cfg = parse_config(HuggingFaceConfig, options.config, "HuggingFace")
    except SourceFailure as failure:
        return ScannedModel(ref, remote_scan.failed(report, str(ref), failure), metadata, SourceType.HUGGING_FACE)
    token = huggingface_token(cfg.token.get_secret_value() if cfg.token else None)
    with secrets_in_use([token]):
        try:
            hub = Hub(ref, cfg, token)
            info = hub.model_info()
            metadata = hub.metadata(info)
            report.revision = hub.sha
            listed = hub.files(info)
            entries = [
                remote_scan.RemoteEntry(
                    path=f["path"],
                    size=int(f["size"]),
                    fetcher=HubFetcher(hub, f["path"]),
                    sha256=f["sha256"],
                    digest=None if f["sha256"] else (f"git-blob:{f['blob']}" if f["blob"] else None),
                    git_blob=None if f["sha256"] else f["blob"],
                )
                for f in listed
            ]
            entries = remote_scan.filter_entries(entries, cfg, ref.uri)
            if info.gated:
                hub.preflight(entries[0].path)
            report = remote_scan.scan_entries(
                engine, target=ref.uri, locations=[ref.uri], entries=entries, cfg=cfg,
                progress=options.progress,
            )
            report.revision = hub.sha
        except SourceFailure as failure:
            remote_scan.failed(report, str(ref), failure)
        except retry.Transient as transient:  # classify() output outside retry.call
            remote_scan.failed(report, str(ref), SourceFailure(transient.code, transient.message))
        except Exception as exc:  # fail closed with a message rather than crash the caller
            remote_scan.failed(report, str(ref), remote_scan.unexpected(exc, str(ref)))
        report = remote_scan.scrubbed(report)
    return ScannedModel(ref, report, metadata, SourceType.HUGGING_FACE)


def resolve_commit(ref: ModelRef, config: dict[str, Any] | None = None) -> str:
    """The commit SHA an ``hf://`` reference names now (for ``RevisionPinned`` in the
    webhook), without scanning. Raises :class:`SourceFailure` with a precise, redacted
    message (MS-SRC-003/004/005/007...)."""
    cfg = parse_config(HuggingFaceConfig, config, "HuggingFace")
    token = huggingface_token(cfg.token.get_secret_value() if cfg.token else None)
    with secrets_in_use([token]):
        try:
            hub = Hub(ref, cfg, token)
            info = hub.call(
                lambda: hub.api.model_info(hub.repo_id, revision=ref.revision, timeout=cfg.timeout, expand=["sha"]),
                f"{ref.uri}: revision",
            )
        except SourceFailure as failure:
            raise SourceFailure(failure.code, remote_scan.clean(failure.message)) from None
        if not info.sha:
            raise SourceFailure(REMOTE_ERROR, f"{ref.uri}: {hub.shown_endpoint} did not say which commit it serves")
        return str(info.sha)
