"""Hugging Face Hub models: ``hf://org/name[@revision]`` (and https://huggingface.co URLs).

The scan is of one commit: the reference's branch or tag (default branch when none) is
resolved to its commit SHA by ``model_info``, and every file is then read at that SHA, so
a push during the scan cannot mix two revisions. Files are listed with their sizes and,
for LFS files, the Hub's SHA-256. Bytes are read with HTTP range requests on
``/resolve/<sha>/<path>``; redirects to a CDN are followed and the token is not forwarded
off the Hub's origin.

The server is not trusted to be consistent, because a mirror or the Hub itself may be
broken or compromised:

* **Cross-checks.** Every ``/resolve`` answer must agree with the listing: ``X-Repo-Commit``
  with the commit being scanned, ``X-Linked-Size`` with the listed size, ``X-Linked-Etag``
  with the listed LFS SHA-256 (and a regular file's ``ETag`` with its git blob id), every
  ``Content-Range`` total with the listed size. A disagreement is MS-SRC-009. A file listed
  as empty is still requested (:meth:`RemoteFile.confirm_empty`).
* **Bounds.** Requests go through a :class:`~modelsec.sources.http.DeadlineClient` (total
  deadlines per request and per scan), API answers are read with
  :func:`~modelsec.sources.http.read_body` (``maxResponseBytes`` after decompression), the
  tree listing page by page (``maxListPages``, and at most ``MAX_FILES`` files).
* **Claims stay claims.** The LFS SHA-256 of a file the scan did not read whole is recorded
  as a claim scoped to this endpoint, repository and commit, not as the file's SHA-256
  (:meth:`RemoteEntry.claimed_digest`).

huggingface_hub supplies the request headers (token, user agent), the error mapping
(``hf_raise_for_status``: gated, missing repository or revision...), URLs and the answer
types (``ModelInfo``, ``RepoFile``, ``Organization``); the HTTP client is our own bounded one,
so settings made through ``huggingface_hub.set_client_factory`` do not apply (environment
proxies and CA files do).

Metadata for the rules: author/organisation, license (model card, else ``license:`` tags),
commit SHA, last modified, and the organisation's verified flag (organisation overview).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

from modelsec.engine import Engine, ScanReport
from modelsec.metadata import ModelMetadata, SourceType
from modelsec.safe_text import printable
from modelsec.sources import ModelRef, ScannedModel, ScanOptions, remote_scan, retry
from modelsec.sources.config import HuggingFaceConfig, parse_config
from modelsec.sources.credentials import huggingface_token, redact_url, secrets_in_use
from modelsec.sources.deadline import Deadline
from modelsec.sources.errors import (
    ACCESS_DENIED,
    CLIENT_MISSING,
    DEADLINE,
    FILE_NOT_FOUND,
    INTEGRITY,
    NETWORK,
    NOT_FOUND,
    REMOTE_ERROR,
    REVISION_NOT_FOUND,
    TOO_LARGE,
    TOO_MANY_FILES,
    SourceFailure,
)
from modelsec.sources.http import (
    DeadlineClient,
    materialized,
    raw_chunks,
    read_at_most,
    read_body,
    require_identity,
)
from modelsec.sources.remote_file import RangeNotSupported, check_range_answer, check_total_size
from modelsec.sources.status import already_classified, meaning_of, retry_after_seconds

log = logging.getLogger(__name__)
T = TypeVar("T")

_HEX40 = re.compile(r"[0-9a-f]{40}")
_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class ListedFile:
    """One file as the Hub lists it (checked for shape, not yet against the bytes)."""

    path: str
    size: int
    sha256: str | None  # LFS files: the Hub's SHA-256 of the content
    blob: str | None  # git object id (of the LFS pointer for LFS files)


def _offline_guard(request: Any) -> None:
    from huggingface_hub import constants
    from huggingface_hub.errors import OfflineModeIsEnabled

    if constants.is_offline_mode():
        raise OfflineModeIsEnabled(f"Cannot reach {request.url}: offline mode is enabled (HF_HUB_OFFLINE)")


class Hub:
    """One model repository on one Hub endpoint, with one token (or none), for one scan."""

    def __init__(
        self, ref: ModelRef, cfg: HuggingFaceConfig, token: str | None, policy: retry.RetryPolicy
    ) -> None:
        assert policy.deadline is not None
        self.ref = ref
        self.cfg = cfg
        self.repo_id = ref.location
        self.endpoint = cfg.resolved_endpoint()
        self.shown_endpoint = redact_url(self.endpoint)
        self.token = token
        self.policy = policy
        self.http = DeadlineClient(
            policy.deadline,
            follow_redirects=True,
            timeout=cfg.timeout,
            event_hooks={"request": [_offline_guard]},
        )
        self.sha: str | None = None

    def close(self) -> None:
        self.http.close()

    # --- errors -----------------------------------------------------------------------

    def classify(self, exc: Exception, what: str, path: str | None = None) -> Exception:
        """A client exception as :class:`retry.Transient` or a final :class:`SourceFailure`;
        anything else (a bug of ours) unchanged, so it is not retried."""
        return (
            already_classified(exc, what)
            or self._hub_error(exc, path)
            or self._http_error(exc, what, path)
            or self._transport_error(exc, what)
            or exc
        )

    def _token_hint(self) -> str:
        if self.token is not None:
            return "the token given has not been granted access"
        return "no token was given (set token in the source Secret, HF_TOKEN, or `hf auth login`)"

    def _credentials_rejected(self) -> str:
        return (
            f"{self.shown_endpoint} rejected the credentials for {self.ref.uri} (HTTP 401: "
            "invalid or expired token)"
        )

    def _hub_error(self, exc: Exception, path: str | None) -> SourceFailure | None:
        """The errors huggingface_hub names from the Hub's answer (``X-Error-Code``)."""
        from huggingface_hub.errors import GatedRepoError, RemoteEntryNotFoundError, RevisionNotFoundError

        uri = self.ref.uri
        if isinstance(exc, GatedRepoError):
            return SourceFailure(
                ACCESS_DENIED,
                f"{uri} is a gated model: {self._token_hint()}; accept its conditions on the model page "
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
        return None

    def _http_error(self, exc: Exception, what: str, path: str | None) -> Exception | None:
        """An HTTP error answer: a missing or hidden repository first (the Hub answers 401
        for a private repository), then the status table."""
        from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

        if not isinstance(exc, HfHubHTTPError):
            return None
        response = exc.response
        status = response.status_code if response is not None else None
        if isinstance(exc, RepositoryNotFoundError) and response is None:
            return self._repository_error(None)
        if response is None:
            return None
        error_code = response.headers.get("X-Error-Code")
        if status == 401 and self.token is not None and error_code not in ("RepoNotFound", "GatedRepo"):
            return SourceFailure(ACCESS_DENIED, self._credentials_rejected())
        if isinstance(exc, RepositoryNotFoundError) or (status in (401, 404) and path is None):
            return self._repository_error(status)
        meaning = meaning_of(response.status_code)
        retry_after = _retry_after(response.headers) if meaning.transient else None
        return meaning.error(self._status_message(response.status_code, what), retry_after)

    def _repository_error(self, status: int | None) -> SourceFailure:
        uri = self.ref.uri
        if status == 401:
            return SourceFailure(
                ACCESS_DENIED, f"{uri} requires authentication (private or gated model): {self._token_hint()}"
            )
        hidden = (
            "or the token given cannot see it"
            if self.token is not None
            else "or it is private and no token was given"
        )
        return SourceFailure(NOT_FOUND, f"{uri} does not exist on {self.shown_endpoint} ({hidden})")

    def _status_message(self, status: int, what: str) -> str:
        if status == 401:
            return (
                self._credentials_rejected()
                if self.token is not None
                else f"{self.ref.uri} requires a token (HTTP 401)"
            )
        if status == 403:
            return f"{what}: {self.shown_endpoint} refused access (HTTP 403): {self._token_hint()}"
        if status == 404:
            return f"{what}: not found (HTTP 404) at revision {self.sha}"
        if status == 429:
            return f"{what}: throttled by {self.shown_endpoint} (HTTP 429)"
        return f"{what}: {self.shown_endpoint} answered HTTP {status}"

    def _transport_error(self, exc: Exception, what: str) -> Exception | None:
        """No usable answer: offline mode, timeouts, refused or broken connections, and
        answers that do not parse."""
        import httpx2
        from huggingface_hub.errors import OfflineModeIsEnabled

        origin = self.shown_endpoint
        if isinstance(exc, OfflineModeIsEnabled):
            return SourceFailure(NETWORK, f"{what}: HF_HUB_OFFLINE is set; a remote scan needs the network")
        if isinstance(exc, httpx2.TimeoutException):
            return retry.Transient(
                NETWORK, f"{what}: no answer from {origin} within {self.cfg.timeout:g}s (timeout)"
            )
        if isinstance(exc, httpx2.ConnectError):
            return retry.Transient(NETWORK, f"{what}: cannot connect to {origin} ({exc})")
        if isinstance(exc, (httpx2.NetworkError, httpx2.RemoteProtocolError)):
            return retry.Transient(NETWORK, f"{what}: connection to {origin} failed ({exc})")
        if isinstance(exc, httpx2.TooManyRedirects):
            return SourceFailure(REMOTE_ERROR, f"{what}: {origin} redirects in circles")
        if isinstance(
            exc, (httpx2.HTTPError, ValueError, KeyError, TypeError, AttributeError, RecursionError)
        ):
            return SourceFailure(
                REMOTE_ERROR, f"{what}: unexpected answer from {origin}: {type(exc).__name__}"
            )
        return None

    def call(self, fn: Callable[[], T], what: str, path: str | None = None) -> T:
        def attempt() -> T:
            try:
                return fn()
            except Exception as exc:
                raise self.classify(exc, what, path) from None

        return retry.call(attempt, self.policy, what=what)

    # --- the API, bounded -------------------------------------------------------------

    def api_headers(self) -> dict[str, str]:
        from huggingface_hub.utils import build_hf_headers  # type: ignore[attr-defined]  # exported by its lazy loader, not in a form mypy reads

        headers = build_hf_headers(token=self.token or False, library_name="modelsec")
        headers["Accept-Encoding"] = "gzip, deflate"  # inflated by read_body, bounded
        return headers

    def get_json(self, url: str, what: str, params: dict[str, Any] | None = None) -> tuple[Any, Any]:
        """One API answer, parsed: (JSON value, the read response). Bounded in time (the
        request deadline) and in size (``maxResponseBytes``, after decompression)."""
        from huggingface_hub import hf_raise_for_status

        def attempt() -> tuple[Any, Any]:
            with self.http.stream("GET", url, params=params, headers=self.api_headers()) as response:
                body = read_body(response, self.cfg.max_response_bytes, what)
            answer = materialized(response, body)
            hf_raise_for_status(answer)
            return answer.json(), answer

        return self.call(attempt, what)

    def model_info(self) -> Any:
        from huggingface_hub.hf_api import ModelInfo

        what = f"{self.ref.uri}: model info"
        data, _ = self.get_json(self._info_url(self.ref.revision), what, {"blobs": "true"})
        info = _parsed(functools.partial(ModelInfo, **_object(data, what)), what)
        if not isinstance(info.sha, str) or not _HEX40.fullmatch(info.sha.lower()):
            raise SourceFailure(
                REMOTE_ERROR,
                f"{self.ref.uri}: {self.shown_endpoint} did not say which commit it serves "
                f"(sha {str(info.sha)[:80]!r})",
            )
        sha = info.sha.lower()
        if (
            self.ref.revision
            and _HEX40.fullmatch(self.ref.revision.lower())
            and sha != self.ref.revision.lower()
        ):
            raise SourceFailure(
                INTEGRITY, f"{self.ref.uri}: asked for commit {self.ref.revision}, the Hub answered {sha}"
            )
        self.sha = sha
        return info

    def _info_url(self, revision: str | None) -> str:
        base = f"{self.endpoint}/api/models/{self.repo_id}"
        return base if revision is None else f"{base}/revision/{quote(revision, safe='')}"

    def files(self, info: Any) -> dict[str, ListedFile]:
        """Every file of the commit by path, with its size, LFS SHA-256 and git blob id."""
        siblings = info.siblings or []
        what = f"{self.ref.uri}: file listing"
        if siblings and all(s.size is not None for s in siblings):
            if len(siblings) > remote_scan.MAX_FILES:
                raise _too_many_files(self.ref.uri, len(siblings))
            listed = [_listed(s.rfilename, s.size, s.lfs, s.blob_id, what) for s in siblings]
        else:
            listed = self.tree()  # a mirror that ignores blobs=True: ask the tree API
        by_path = {f.path: f for f in listed}
        if len(by_path) != len(listed):
            raise SourceFailure(
                REMOTE_ERROR, f"{what}: a path is listed twice; the listing contradicts itself"
            )
        return by_path

    def tree(self) -> list[ListedFile]:
        """The recursive tree at the resolved commit, page by page: at most
        ``maxListPages`` pages, ``maxResponseBytes`` each, and ``MAX_FILES`` files, so an
        endless ``Link: next`` chain ends in an ERROR, not in memory exhaustion."""
        from huggingface_hub.hf_api import RepoFile

        assert self.sha is not None
        what = f"{self.ref.uri}: file listing"
        url: str | None = f"{self.endpoint}/api/models/{self.repo_id}/tree/{self.sha}"
        params: dict[str, Any] | None = {"recursive": "true", "expand": "false"}
        listed: list[ListedFile] = []
        pages = 0
        while url is not None:
            pages += 1
            if pages > self.cfg.max_list_pages:
                raise SourceFailure(
                    TOO_LARGE,
                    f"{what}: more than {self.cfg.max_list_pages} pages (maxListPages) and the "
                    f"server still links a next one ({len(listed)} files so far); refusing a "
                    "listing that does not end",
                )
            page_what = f"{what} (page {pages})"
            data, answer = self.get_json(url, page_what, params)
            if not isinstance(data, list):
                raise SourceFailure(REMOTE_ERROR, f"{page_what}: not a list of entries")
            for item in data:
                if isinstance(item, dict) and item.get("type") == "file":
                    entry = _parsed(functools.partial(RepoFile, **item), page_what)
                    listed.append(_listed(entry.path, entry.size, entry.lfs, entry.blob_id, page_what))
            if len(listed) > remote_scan.MAX_FILES:
                raise _too_many_files(self.ref.uri, len(listed), still_listing=True)
            url, params = self._next_page(answer, page_what), None
        return listed

    def _next_page(self, answer: Any, what: str) -> str | None:
        link = answer.links.get("next", {}).get("url")
        if link is None:
            return None
        # The token goes with every page: never follow a link to another origin.
        ours, theirs = urlsplit(self.endpoint), urlsplit(str(answer.url.join(link)))
        if (theirs.scheme, theirs.netloc) != (ours.scheme, ours.netloc):
            raise SourceFailure(
                REMOTE_ERROR,
                f"{what}: the next page is linked on another host ({printable(theirs.netloc)[:200]}); "
                "not following it with the token",
            )
        return str(answer.url.join(link))

    def organization_verified(self, author: str | None) -> tuple[bool | None, str]:
        """(verified flag, what the author is). ``None`` when it could not be established."""
        if not author:
            return None, "unknown"
        from huggingface_hub.hf_api import Organization

        what = f"organization {author}"
        try:
            data, _ = self.get_json(
                f"{self.endpoint}/api/organizations/{quote(author, safe='')}/overview", what
            )
            org = _parsed(lambda: Organization(**_object(data, what)), what)
        except SourceFailure as exc:
            if exc.code in (FILE_NOT_FOUND, NOT_FOUND):
                return False, "user"  # not an organisation: no verified-organisation badge
            if exc.code in (TOO_LARGE, DEADLINE):
                raise  # a hostile answer or the deadline: not "unknown", an ERROR
            log.info("organisation lookup for %s failed: %s", printable(author), printable(exc.message))
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
            revision=self.sha,
            last_modified=info.last_modified,
            verified_organization=verified,
            extra=extra,
        )

    # --- reading ----------------------------------------------------------------------

    def url(self, path: str) -> str:
        from huggingface_hub import hf_hub_url

        assert self.sha is not None
        return hf_hub_url(self.repo_id, path, revision=self.sha, endpoint=self.endpoint)

    def file_headers(self) -> dict[str, str]:
        headers = self.api_headers()
        headers["Accept-Encoding"] = "identity"  # sizes and ranges are of the stored bytes
        return headers

    def preflight(self, listed: ListedFile) -> None:
        """One HEAD on a file: a gated model without access fails here, once, with a precise
        message, instead of once per file. Its answer is cross-checked like any other."""
        from huggingface_hub import hf_raise_for_status

        what = f"{self.ref.uri}: access check"

        def attempt() -> None:
            with self.http.stream(
                "HEAD", self.url(listed.path), headers=self.file_headers(), follow_redirects=False
            ) as response:
                answer = materialized(response, b"")
            hf_raise_for_status(answer)
            _cross_check(answer, listed, self.sha, f"{self.ref.uri}/{listed.path}")

        self.call(attempt, what, listed.path)

    def scope(self) -> str:
        """Where this scan's claims come from (see :meth:`RemoteEntry.claimed_digest`)."""
        return f"{self.shown_endpoint}/{self.repo_id}@{self.sha}"


def _parsed(build: Callable[[], T], what: str) -> T:
    """An answer type of huggingface_hub built from JSON: a malformed answer is MS-SRC-012
    with a message, not a crash."""
    try:
        return build()
    except (TypeError, KeyError, ValueError, AttributeError, RecursionError) as exc:
        raise SourceFailure(REMOTE_ERROR, f"{what}: malformed answer ({type(exc).__name__})") from None


def _object(data: Any, what: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise SourceFailure(REMOTE_ERROR, f"{what}: the answer is not a JSON object")
    return data


def _too_many_files(uri: str, count: int, still_listing: bool = False) -> SourceFailure:
    more = " and still listing" if still_listing else ""
    return SourceFailure(
        TOO_MANY_FILES,
        f"{uri}: {count} files listed{more}, more than the {remote_scan.MAX_FILES} a model scan "
        "accepts; use allowPatterns, or check the endpoint",
    )


def _listed(path: Any, size: Any, lfs: Any, blob: Any, what: str) -> ListedFile:
    """A listing entry checked for shape: a path, a non-negative integer size, hex digests,
    and an LFS size equal to the file's size."""
    if not isinstance(path, str) or not path:
        raise SourceFailure(REMOTE_ERROR, f"{what}: an entry without a file path")
    shown = printable(path)[:300]
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise SourceFailure(REMOTE_ERROR, f"{what}: {shown} has size {str(size)[:40]!r}, not a byte count")
    sha256 = None
    if lfs is not None:
        sha256 = str(lfs.get("sha256", "")).lower() if isinstance(lfs, dict) else ""
        if not _HEX64.fullmatch(sha256):
            raise SourceFailure(REMOTE_ERROR, f"{what}: {shown} has an LFS SHA-256 that is not 64 hex digits")
        if lfs.get("size") != size:
            raise SourceFailure(
                INTEGRITY,
                f"{what}: {shown} is listed with size {size} and LFS size {str(lfs.get('size'))[:40]}; "
                "the listing contradicts itself",
            )
    blob_id = str(blob).lower() if blob else None
    if blob_id is not None and not _HEX40.fullmatch(blob_id):
        raise SourceFailure(REMOTE_ERROR, f"{what}: {shown} has a git object id that is not 40 hex digits")
    return ListedFile(path, size, sha256, blob_id)


def _etag_value(value: str) -> str:
    value = value.strip()
    if value.startswith("W/"):
        value = value[2:]
    return value.strip('"').lower()


def _cross_check(response: Any, listed: ListedFile, sha: str | None, what: str) -> None:
    """What a ``/resolve`` answer says about the file must match what the listing said.

    The first answer is the Hub's own (a 302 to the CDN for LFS files); later hops are the
    CDN's, whose ETags are its own business, but any hop naming a commit must name ours.
    """
    hops = [*response.history, response]
    for hop in hops:
        commit = hop.headers.get("X-Repo-Commit")
        if commit is not None and commit.strip().lower() != sha:
            raise SourceFailure(
                INTEGRITY,
                f"{what}: served from commit {commit.strip()[:80]!r} (X-Repo-Commit), but the scan "
                f"is of commit {sha}; the server mixes revisions",
            )
    hub = hops[0].headers
    linked_size = hub.get("X-Linked-Size")
    if linked_size is not None and linked_size.strip() != str(listed.size):
        raise SourceFailure(
            INTEGRITY,
            f"{what}: the server gives its size as {linked_size.strip()[:40]!r} (X-Linked-Size), "
            f"the listing as {listed.size}; the listing does not describe the bytes served",
        )
    linked_etag = hub.get("X-Linked-Etag")
    if linked_etag is not None:
        claimed = _etag_value(linked_etag)
        if listed.sha256 is None:
            raise SourceFailure(
                INTEGRITY,
                f"{what}: the server serves it as an LFS file with SHA-256 {claimed[:80]!r} "
                "(X-Linked-Etag), the listing as a regular git file",
            )
        if claimed != listed.sha256:
            raise SourceFailure(
                INTEGRITY,
                f"{what}: the server gives its SHA-256 as {claimed[:80]!r} (X-Linked-Etag), the "
                f"listing as {listed.sha256}",
            )
    elif listed.sha256 is None and listed.blob is not None:
        etag = _etag_value(hub.get("ETag", ""))
        if _HEX40.fullmatch(etag) and etag != listed.blob:
            raise SourceFailure(
                INTEGRITY,
                f"{what}: the server gives its git object id as {etag} (ETag), the listing as {listed.blob}",
            )


class HubFetcher:
    """Range reads of one file at the resolved commit.

    The Hub answers ``/resolve`` for LFS files with a redirect to a (signed) CDN URL. The
    first read follows it; later reads go straight to that URL, without the token (it is
    another origin), so a scan makes one ``/resolve`` call per file rather than one per
    read (the Hub rate-limits resolves). If the CDN refuses the URL later (signature
    expired), the next read goes through ``/resolve`` again. Every answer is checked
    against the listing (:func:`_cross_check`, :func:`check_range_answer`).
    """

    def __init__(self, hub: Hub, listed: ListedFile) -> None:
        self.hub = hub
        self.listed = listed
        self.path = listed.path
        self.url = hub.url(listed.path)
        self._headers = hub.file_headers()
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
        headers = {**base, "Range": f"bytes={start}-{end - 1}"}
        what = self._what()
        try:
            with self.hub.http.stream("GET", url, headers=headers, follow_redirects=not direct) as response:
                status = response.status_code
                if direct and status in (301, 302, 303, 307, 308, 401, 403, 404, 410):
                    return None
                if not direct and status in (200, 206, 416):
                    _cross_check(response, self.listed, self.hub.sha, what)
                if status == 206:
                    require_identity(response, what)
                    check_range_answer(response.headers.get("Content-Range"), start, self.listed.size, what)
                    if not direct and response.history:
                        self._direct = str(response.url)
                    return read_at_most(response, end - start)
                if status == 200:
                    check_total_size(response.headers.get("Content-Length"), self.listed.size, what)
                    raise RangeNotSupported(what)  # never read a whole body here
                if status == 416:
                    check_range_answer(response.headers.get("Content-Range"), None, self.listed.size, what)
                    return b""
                self._raise_for(response, what)
        except Exception as exc:
            raise self.hub.classify(exc, what, self.path) from None
        raise AssertionError("unreachable")

    def _raise_for(self, response: Any, what: str) -> None:
        from huggingface_hub import hf_raise_for_status

        body = read_body(response, self.hub.cfg.max_response_bytes, what)
        hf_raise_for_status(materialized(response, body))
        raise SourceFailure(REMOTE_ERROR, f"{what}: unexpected HTTP {response.status_code}")

    def stream(self) -> Generator[bytes, None, None]:
        what = self._what()
        try:
            with self.hub.http.stream(
                "GET", self.url, headers=self._headers, follow_redirects=True
            ) as response:
                if response.status_code != 200:
                    self._raise_for(response, what)
                _cross_check(response, self.listed, self.hub.sha, what)
                require_identity(response, what)
                check_total_size(response.headers.get("Content-Length"), self.listed.size, what)
                yield from raw_chunks(response)
        except Exception as exc:
            raise self.hub.classify(exc, what, self.path) from None


def _without_auth(headers: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() != "authorization"}


def _retry_after(headers: Any) -> float | None:
    seconds = retry_after_seconds(headers.get("Retry-After"))
    if seconds is not None:
        return seconds
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
        found = [
            t.split(":", 1)[1].strip()
            for t in (info.tags or [])
            if isinstance(t, str) and t.startswith("license:")
        ]
    return list(dict.fromkeys(x for x in found if x))


@contextlib.contextmanager
def _hub(ref: ModelRef, cfg: HuggingFaceConfig, token: str | None) -> Iterator[Hub]:
    policy = remote_scan.policy_of(cfg, Deadline(cfg.scan_deadline, cfg.request_deadline))
    hub = Hub(ref, cfg, token, policy)
    try:
        yield hub
    finally:
        hub.close()


def scan(ref: ModelRef, engine: Engine, options: ScanOptions) -> ScannedModel:
    metadata = ModelMetadata(uri=ref.uri, model_id=ref.location, revision=None)
    report = ScanReport(target=ref.uri, locations=[ref.uri])
    try:
        import huggingface_hub  # noqa: F401
    except ImportError:
        failure = SourceFailure(
            CLIENT_MISSING, "huggingface_hub is not installed: pip install 'modelsec[remote]'"
        )
        return ScannedModel(
            ref, remote_scan.failed(report, str(ref), failure), metadata, SourceType.HUGGING_FACE
        )
    try:
        cfg = parse_config(HuggingFaceConfig, options.config, "HuggingFace")
    except SourceFailure as failure:
        return ScannedModel(
            ref, remote_scan.failed(report, str(ref), failure), metadata, SourceType.HUGGING_FACE
        )
    token = huggingface_token(cfg.token.get_secret_value() if cfg.token else None)
    with secrets_in_use([token]), _hub(ref, cfg, token) as hub:
        try:
            info = hub.model_info()
            metadata = hub.metadata(info)
            report.revision = hub.sha
            scope = hub.scope()
            listed = hub.files(info)
            entries = [
                remote_scan.RemoteEntry(
                    path=f.path,
                    size=f.size,
                    fetcher=HubFetcher(hub, f),
                    sha256=f.sha256,
                    digest=None if f.sha256 else (f"git-blob:{f.blob}" if f.blob else None),
                    git_blob=None if f.sha256 else f.blob,
                    scope=scope,
                )
                for f in listed.values()
            ]
            entries = remote_scan.filter_entries(entries, cfg, ref.uri)
            if info.gated:
                hub.preflight(listed[entries[0].path])
            report = remote_scan.scan_entries(
                engine,
                target=ref.uri,
                locations=[ref.uri],
                entries=entries,
                cfg=cfg,
                policy=hub.policy,
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
    message (MS-SRC-003/004/005/007...). Bounded like a scan: ``requestDeadline`` per
    attempt, ``scanDeadline`` in all, ``maxResponseBytes``."""
    from huggingface_hub.hf_api import ModelInfo

    cfg = parse_config(HuggingFaceConfig, config, "HuggingFace")
    token = huggingface_token(cfg.token.get_secret_value() if cfg.token else None)
    with secrets_in_use([token]), _hub(ref, cfg, token) as hub:
        what = f"{ref.uri}: revision"
        try:
            data, _ = hub.get_json(hub._info_url(ref.revision), what, {"expand": ["sha"]})
            info = _parsed(functools.partial(ModelInfo, **_object(data, what)), what)
        except SourceFailure as failure:
            raise SourceFailure(failure.code, remote_scan.clean(failure.message)) from None
        if not isinstance(info.sha, str) or not _HEX40.fullmatch(info.sha.lower()):
            raise SourceFailure(
                REMOTE_ERROR, f"{ref.uri}: {hub.shown_endpoint} did not say which commit it serves"
            )
        return info.sha.lower()
