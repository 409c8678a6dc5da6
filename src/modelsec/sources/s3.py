"""S3 and S3-compatible object stores (AWS, MinIO, Ceph, R2) through boto3.

``s3://bucket/prefix/`` is a model made of every object under the prefix;
``s3://bucket/key`` is a one-file model (if no such object exists but objects exist under
``key/``, it is taken as a prefix). Custom endpoints, region and path-style addressing come
from the source config.

Revision: where the bucket is versioned, the version id of every object (each object is then
read at exactly that version); otherwise each object's ETag + size, and reads are made with
``If-Match: <etag>`` so an object replaced during the scan fails the scan (MS-SRC-009)
instead of mixing two contents. The model's revision string is the version id (one
object), ``etag:<etag>:<size>`` (one unversioned object), or ``sha256:<digest of the sorted
key/version-or-etag/size list>`` (a prefix). A reference may pin any of these
(``s3://b/k@<versionId>``, ``s3://b/p/@sha256:...``); a pinned prefix whose objects changed
is an ERROR, not a scan of other bytes.

Fingerprints: small objects are hashed (``hashSmallFilesBytes``); for the others the
object's full-object SHA-256 checksum (``ChecksumSHA256``) where it was uploaded with one,
else ``s3-etag:<etag>``, recorded as a claim of this endpoint, bucket, key and version (see
:meth:`RemoteEntry.claimed_digest`). Bytes are read with ranged GetObject calls through the
same block cache as the Hub.

The endpoint is not trusted to be consistent: each listing is read page by page within
``maxListPages`` and ``MAX_FILES`` entries (a listing that does not end is an ERROR, and
one too long is never silently truncated), every answer is bounded in size and time
(:mod:`modelsec.sources.s3_http`), and what HEAD and GetObject answers say (size,
``Content-Range`` total, ETag, version id) must match the listing (MS-SRC-009).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from modelsec.engine import Engine, ScanReport
from modelsec.metadata import ModelMetadata, SourceType
from modelsec.sources import ModelRef, ScannedModel, ScanOptions, remote_scan, retry
from modelsec.sources.config import S3Config, parse_config
from modelsec.sources.credentials import redact_url, secrets_in_use
from modelsec.sources.deadline import Deadline
from modelsec.sources.errors import (
    ACCESS_DENIED,
    CLIENT_MISSING,
    CONFIG,
    FILE_NOT_FOUND,
    INTEGRITY,
    NETWORK,
    NOT_FOUND,
    REMOTE_ERROR,
    REVISION_NOT_FOUND,
    THROTTLED,
    TOO_LARGE,
    TOO_MANY_FILES,
    SourceFailure,
)
from modelsec.sources.remote_file import RangeNotSupported, check_range_answer, check_total_size
from modelsec.sources.s3_http import BotocoreOverHttpx
from modelsec.sources.status import StatusMeaning, already_classified, meaning_of, retry_after_seconds

log = logging.getLogger(__name__)
T = TypeVar("T")

READ_CHUNK = 1 << 20
MAX_CHECKSUM_HEADS = 1000  # per-object HEADs for SHA-256 checksums; beyond, ETags only

# Listing operations: the response fields that continue a truncated listing, and the
# request parameters they go into.
_CONTINUATIONS = {
    "list_objects_v2": (("NextContinuationToken", "ContinuationToken"),),
    "list_object_versions": (("NextKeyMarker", "KeyMarker"), ("NextVersionIdMarker", "VersionIdMarker")),
}
_ENTRY_FIELDS = ("Contents", "Versions", "DeleteMarkers", "CommonPrefixes")

_THROTTLE_CODES = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "TooManyRequests",
    "RequestThrottled",
    "ServiceUnavailable",
}
_DENIED_CODES = {"AccessDenied", "AllAccessDisabled", "AccountProblem", "403", "Forbidden"}
_BAD_CREDENTIAL_CODES = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "TokenRefreshRequired",
    "InvalidSecurity",
}
# Error codes that stand for a status (a HEAD answer has no body: botocore names its
# code after the status), read through the shared table in modelsec.sources.status.
_CODE_STATUS: dict[str, int] = {
    **{code: 403 for code in _DENIED_CODES},
    **{code: 429 for code in _THROTTLE_CODES},
    "PreconditionFailed": 412,
    "412": 412,
    "InvalidRange": 416,
    "416": 416,
    "InternalError": 500,
    "500": 500,
    "502": 502,
    "504": 504,
}
_S3_STATUS_MEANINGS = {503: StatusMeaning(THROTTLED, transient=True)}  # 503 SlowDown


@dataclass
class S3Object:
    """One S3 object as a listing or HEAD describes it: key, size, ETag, version id, date, SHA-256."""

    key: str
    size: int
    etag: str
    version_id: str | None
    last_modified: Any = None
    sha256: str | None = None


class Bucket:
    """One bucket on one endpoint with one set of credentials, for one scan."""

    def __init__(self, ref: ModelRef, cfg: S3Config, policy: retry.RetryPolicy) -> None:
        assert policy.deadline is not None
        self.ref = ref
        self.cfg = cfg
        self.name, _, self.key = ref.location.partition("/")
        # boto3 itself honours AWS_ENDPOINT_URL(_S3); we only need it for messages and the
        # addressing default.
        self.endpoint = (
            cfg.endpoint or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        )
        self.shown_endpoint = redact_url(self.endpoint) if self.endpoint else "AWS S3"
        self.policy = policy
        self.client = self._client()
        self.wire = BotocoreOverHttpx.install(
            self.client,
            policy.deadline,
            cfg.timeout,
            cfg.max_response_bytes,
            os.environ.get("AWS_CA_BUNDLE"),
        )

    def close(self) -> None:
        self.wire.close()

    def scope(self, obj: S3Object) -> str:
        """Where claims about ``obj`` come from (see :meth:`RemoteEntry.claimed_digest`)."""
        endpoint = self.shown_endpoint if self.endpoint else "s3.amazonaws.com"
        pin = f"version:{obj.version_id}" if obj.version_id else f"etag:{obj.etag}"
        return f"{endpoint}/{self.name}/{obj.key}@{pin}"

    def _client(self) -> Any:
        import boto3
        from botocore import UNSIGNED
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError

        c = self.cfg
        key_id = c.access_key_id.get_secret_value() if c.access_key_id else None
        secret = c.secret_access_key.get_secret_value() if c.secret_access_key else None
        if bool(key_id) != bool(secret):
            raise SourceFailure(CONFIG, "accessKeyId and secretAccessKey must be given together")
        style = c.addressing_style or ("path" if self.endpoint else "auto")
        try:
            session = boto3.session.Session(
                aws_access_key_id=key_id,
                aws_secret_access_key=secret,
                aws_session_token=c.session_token.get_secret_value() if c.session_token else None,
                profile_name=c.profile if not key_id else None,
            )
            config = Config(
                connect_timeout=c.timeout,
                read_timeout=c.timeout,
                retries={"mode": "standard", "total_max_attempts": 1},  # we retry, bounded (retry.py)
                s3={"addressing_style": style},
                signature_version=UNSIGNED if c.anonymous else None,
                user_agent_extra="modelsec",
            )
            return session.client(
                "s3",
                endpoint_url=c.endpoint,
                region_name=c.region or session.region_name or "us-east-1",
                config=config,
            )
        except BotoCoreError as exc:
            raise SourceFailure(CONFIG, f"cannot set up the S3 client: {type(exc).__name__}: {exc}") from None

    # --- errors -----------------------------------------------------------------------

    def classify(self, exc: Exception, what: str) -> Exception:
        """A client exception as :class:`retry.Transient` or a final :class:`SourceFailure`;
        anything else (a bug of ours) unchanged, so it is not retried."""
        if isinstance(exc, SourceFailure) and exc.code == TOO_LARGE and exc.message.startswith("S3 "):
            return SourceFailure(TOO_LARGE, f"{what}: {exc.message}")  # from the wire: say where
        return (
            already_classified(exc, what)
            or self._client_error(exc, what)
            or self._botocore_error(exc, what)
            or exc
        )

    def _client_error(self, exc: Exception, what: str) -> Exception | None:
        """An error answer: S3's error code first (it is more precise than the status),
        then the shared status table."""
        from botocore.exceptions import ClientError

        if not isinstance(exc, ClientError):
            return None
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        metadata = exc.response.get("ResponseMetadata", {})
        named = self._error_code_failure(code, str(error.get("Message", "")), what)
        if named is not None:
            return named
        status = _CODE_STATUS.get(code) or metadata.get("HTTPStatusCode") or 0
        meaning = meaning_of(status, _S3_STATUS_MEANINGS)
        retry_after = retry_after_seconds(metadata.get("HTTPHeaders", {}).get("retry-after"))
        return meaning.error(
            self._status_message(status, code, what), retry_after if meaning.transient else None
        )

    def _error_code_failure(self, code: str, message: str, what: str) -> SourceFailure | None:
        """The S3 error codes whose meaning no status carries."""
        origin = self.shown_endpoint
        if code == "NoSuchBucket":
            return SourceFailure(NOT_FOUND, f"{what}: bucket {self.name!r} does not exist on {origin}")
        if code in ("NoSuchKey", "404", "NotFound"):
            return SourceFailure(FILE_NOT_FOUND, f"{what}: no such object on {origin}")
        if code == "NoSuchVersion" or (code == "InvalidArgument" and "version" in message.lower()):
            return SourceFailure(REVISION_NOT_FOUND, f"{what}: version {self.ref.revision!r} does not exist")
        if code == "400" and self.ref.revision:  # a HEAD has no body: the version id is the suspect
            return SourceFailure(
                REVISION_NOT_FOUND, f"{what}: version {self.ref.revision!r} is not valid here (HTTP 400)"
            )
        if code == "InvalidObjectState":
            return SourceFailure(
                REMOTE_ERROR,
                f"{what}: the object is archived (Glacier/Deep Archive); restore it before scanning",
            )
        if code in _BAD_CREDENTIAL_CODES:
            return SourceFailure(
                ACCESS_DENIED,
                f"{what}: {origin} rejected the credentials ({code}); check "
                f"accessKeyId/secretAccessKey/sessionToken ({self._credential_origin()})",
            )
        if code in ("PermanentRedirect", "AuthorizationHeaderMalformed"):
            return SourceFailure(
                CONFIG,
                f"{what}: bucket {self.name!r} is in another region or needs another endpoint ({code}); set region/endpoint",
            )
        return None

    def _status_message(self, status: int, code: str, what: str) -> str:
        if status == 403:
            return (
                f"{what}: access to bucket {self.name!r} denied ({code or 'HTTP 403'}); the "
                f"credentials ({self._credential_origin()}) need s3:ListBucket and "
                "s3:GetObject (S3 also answers 403 for a missing key without s3:ListBucket)"
            )
        if status == 412:
            return f"{what}: the object changed during the scan (its ETag no longer matches)"
        if status == 416:
            return f"{what}: object shorter than listed (changed during the scan?)"
        if status in (429, 503):
            return f"{what}: throttled by {self.shown_endpoint} ({code or status})"
        return f"{what}: {self.shown_endpoint} answered {code or status}"

    def _botocore_error(self, exc: Exception, what: str) -> Exception | None:
        """No answer, or no request: credentials, timeouts, connections, parameters."""
        from botocore.exceptions import (
            BotoCoreError,
            ConnectionClosedError,
            ConnectTimeoutError,
            EndpointConnectionError,
            NoCredentialsError,
            ParamValidationError,
            PartialCredentialsError,
            ProfileNotFound,
            ReadTimeoutError,
        )

        origin = self.shown_endpoint
        if isinstance(exc, NoCredentialsError):
            return SourceFailure(
                ACCESS_DENIED,
                f"{what}: no AWS credentials found: give accessKeyId/secretAccessKey in the "
                "source Secret, set AWS_* variables or a profile, or anonymous: true for a "
                "public bucket",
            )
        if isinstance(exc, (PartialCredentialsError, ProfileNotFound)):
            return SourceFailure(
                CONFIG, f"{what}: incomplete credentials configuration ({type(exc).__name__})"
            )
        if isinstance(exc, (ConnectTimeoutError, ReadTimeoutError)):
            return retry.Transient(
                NETWORK, f"{what}: no answer from {origin} within {self.cfg.timeout:g}s (timeout)"
            )
        if isinstance(exc, (EndpointConnectionError, ConnectionClosedError)):
            return retry.Transient(
                NETWORK, f"{what}: cannot connect to {origin} (connection refused or unreachable)"
            )
        if isinstance(exc, ParamValidationError):
            return SourceFailure(CONFIG, f"{what}: invalid S3 request: {exc}")
        if isinstance(exc, BotoCoreError):
            return retry.Transient(NETWORK, f"{what}: {type(exc).__name__} talking to {origin}")
        return None

    def _credential_origin(self) -> str:
        c = self.cfg
        if c.anonymous:
            return "anonymous"
        if c.access_key_id:
            return "from the source configuration"
        return "from the AWS default chain"

    def call(self, fn: Callable[[], T], what: str) -> T:
        def attempt() -> T:
            try:
                return fn()
            except Exception as exc:
                raise self.classify(exc, what) from None

        return retry.call(attempt, self.policy, what=what)

    # --- listing ----------------------------------------------------------------------

    def versioning(self) -> str:
        """ "Enabled", "Suspended", "Off", or "unknown" (not allowed to ask)."""
        try:
            answer = self.call(
                lambda: self.client.get_bucket_versioning(Bucket=self.name), f"s3://{self.name}"
            )
        except SourceFailure as exc:
            if exc.code == ACCESS_DENIED:
                return "unknown"
            raise
        return str(answer.get("Status") or "Off")

    def head(self, key: str, version: str | None) -> S3Object:
        kwargs: dict[str, Any] = {"Bucket": self.name, "Key": key, "ChecksumMode": "ENABLED"}
        if version:
            kwargs["VersionId"] = version
        answer = self.call(lambda: self.client.head_object(**kwargs), f"s3://{self.name}/{key}")
        size = answer.get("ContentLength")
        if not isinstance(size, int) or size < 0:
            raise SourceFailure(
                REMOTE_ERROR, f"s3://{self.name}/{key}: {self.shown_endpoint} did not say the object's size"
            )
        return S3Object(
            key=key,
            size=size,
            etag=str(answer.get("ETag", "")).strip('"'),
            version_id=_version(answer.get("VersionId")),
            last_modified=answer.get("LastModified"),
            sha256=_full_object_sha256(answer),
        )

    def pages(self, operation: str, prefix: str) -> Iterator[dict[str, Any]]:
        """The pages of one listing, each its own request (own deadline, own retries),
        bounded: at most ``maxListPages`` pages and ``MAX_FILES`` entries, and every
        truncated page must carry a new continuation token. Never a silently shortened
        listing: a model is scanned whole or not at all."""
        what = f"s3://{self.name}/{prefix}"
        params: dict[str, Any] = {"Bucket": self.name, "Prefix": prefix}
        seen = 0
        tokens: set[tuple[Any, ...]] = set()
        for number in range(1, self.cfg.max_list_pages + 1):
            page = self.call(
                lambda: getattr(self.client, operation)(**params), f"{what} (listing page {number})"
            )
            yield page
            seen += sum(len(page.get(name) or []) for name in _ENTRY_FIELDS)
            if seen > remote_scan.MAX_FILES:
                raise SourceFailure(
                    TOO_MANY_FILES,
                    f"{what}: more than {remote_scan.MAX_FILES} entries listed and still listing; a "
                    "model scan accepts no more: point the reference at the model's own prefix",
                )
            if not page.get("IsTruncated"):
                return
            following = {to: page.get(field) for field, to in _CONTINUATIONS[operation] if page.get(field)}
            token = tuple(sorted(following.items()))
            if not following or token in tokens:
                raise SourceFailure(
                    REMOTE_ERROR,
                    f"{what}: listing page {number} is truncated but gives "
                    f"{'the same continuation again' if following else 'no continuation'}; "
                    "refusing a listing that does not end",
                )
            tokens.add(token)
            params.update(following)
        raise SourceFailure(
            TOO_LARGE,
            f"{what}: more than {self.cfg.max_list_pages} listing pages (maxListPages) and still "
            f"truncated ({seen} entries so far); refusing a listing that does not end",
        )

    def list_prefix(self, prefix: str, versioned: bool) -> list[S3Object]:
        what = f"s3://{self.name}/{prefix}"
        objects: list[S3Object] = []
        if versioned:
            deleted: set[str] = set()
            for page in self.pages("list_object_versions", prefix):
                for marker in page.get("DeleteMarkers", []) or []:
                    if marker.get("IsLatest"):
                        deleted.add(marker["Key"])
                for v in page.get("Versions", []) or []:
                    if v.get("IsLatest") and v["Key"] not in deleted:
                        objects.append(
                            S3Object(
                                v["Key"],
                                _size(v, what),
                                str(v.get("ETag", "")).strip('"'),
                                _version(v.get("VersionId")),
                                v.get("LastModified"),
                            )
                        )
        else:
            for page in self.pages("list_objects_v2", prefix):
                for o in page.get("Contents", []) or []:
                    objects.append(
                        S3Object(
                            o["Key"],
                            _size(o, what),
                            str(o.get("ETag", "")).strip('"'),
                            None,
                            o.get("LastModified"),
                        )
                    )
        # "Folder" placeholder objects that consoles create are not files of the model.
        objects = [o for o in objects if not (o.key.endswith("/") and o.size == 0)]
        return sorted(objects, key=lambda o: o.key)

    def checksum(self, obj: S3Object) -> str | None:
        """The object's full-object SHA-256 if it was uploaded with one (listings do not
        carry checksum values: one HEAD each). The HEAD must agree with the listing."""
        try:
            head = self.head(obj.key, obj.version_id)
        except SourceFailure as exc:
            if exc.code in (ACCESS_DENIED, FILE_NOT_FOUND):
                return None
            raise
        what = f"s3://{self.name}/{obj.key}"
        check_total_size(head.size, obj.size, f"{what} (HEAD)")
        _check_pin(head.etag, head.version_id, obj, f"{what} (HEAD)")
        return head.sha256

    def has_objects_under(self, prefix: str) -> bool:
        answer = self.call(
            lambda: self.client.list_objects_v2(Bucket=self.name, Prefix=prefix, MaxKeys=1),
            f"s3://{self.name}/{prefix}",
        )
        return bool(answer.get("KeyCount") or answer.get("Contents"))


class S3Fetcher:
    """Ranged GetObject on one object, pinned to its version (or ETag)."""

    def __init__(self, bucket: Bucket, obj: S3Object) -> None:
        self.bucket = bucket
        self.obj = obj
        self.what = f"s3://{bucket.name}/{obj.key}"

    def _pin(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"Bucket": self.bucket.name, "Key": self.obj.key}
        if self.obj.version_id:
            kwargs["VersionId"] = self.obj.version_id
        elif self.obj.etag:
            kwargs["IfMatch"] = f'"{self.obj.etag}"'
        return kwargs

    def fetch(self, start: int, end: int) -> bytes:
        try:
            answer = self.bucket.client.get_object(Range=f"bytes={start}-{end - 1}", **self._pin())
            body = answer["Body"]
            try:
                _check_pin(_etag(answer), _version(answer.get("VersionId")), self.obj, self.what)
                content_range = answer.get("ContentRange")
                if not content_range:
                    # A server that ignores Range may still answer a read of the whole
                    # (small) object; anything else would be a whole download here.
                    check_total_size(answer.get("ContentLength"), self.obj.size, self.what)
                    if start == 0 and self.obj.size <= end - start:
                        return _read_at_most(body, end - start)
                    raise RangeNotSupported(self.what)  # never read a whole body here
                check_range_answer(content_range, start, self.obj.size, self.what)
                return _read_at_most(body, end - start)
            finally:
                body.close()
        except Exception as exc:
            raise self.bucket.classify(exc, self.what) from None

    def stream(self) -> Generator[bytes, None, None]:
        try:
            answer = self.bucket.client.get_object(**self._pin())
            body = answer["Body"]
            try:
                _check_pin(_etag(answer), _version(answer.get("VersionId")), self.obj, self.what)
                check_total_size(answer.get("ContentLength"), self.obj.size, self.what)
                yield from body.iter_chunks(READ_CHUNK)
            finally:
                body.close()
        except Exception as exc:
            raise self.bucket.classify(exc, self.what) from None


def _etag(answer: dict[str, Any]) -> str | None:
    value = answer.get("ETag")
    return str(value).strip('"') if value else None


def _check_pin(etag: str | None, version: str | None, obj: S3Object, what: str) -> None:
    """An answer about ``obj`` must be about the listed version and content (an endpoint
    that ignores ``If-Match`` or ``VersionId`` is caught here)."""
    if obj.version_id and version and version != obj.version_id:
        raise SourceFailure(
            INTEGRITY,
            f"{what}: the server answered for version {version[:80]!r}, the listing named {obj.version_id}",
        )
    if obj.etag and etag and etag != obj.etag:
        raise SourceFailure(
            INTEGRITY,
            f"{what}: the server answered with ETag {etag[:80]!r}, the listing gave {obj.etag} "
            "(the object changed during the scan, or the server contradicts itself)",
        )


def _size(entry: dict[str, Any], what: str) -> int:
    size = entry.get("Size")
    if not isinstance(size, int) or size < 0:
        key = str(entry.get("Key"))[:200]
        raise SourceFailure(
            REMOTE_ERROR, f"{what}: {key!r} is listed with size {str(size)[:40]!r}, not a byte count"
        )
    return size


def _read_at_most(body: Any, limit: int) -> bytes:
    out = bytearray()
    while len(out) < limit:
        chunk = body.read(min(READ_CHUNK, limit - len(out)))
        if not chunk:
            break
        out += chunk
    return bytes(out)


def _version(value: Any) -> str | None:
    return None if value in (None, "", "null") else str(value)


def _full_object_sha256(answer: dict[str, Any]) -> str | None:
    value = answer.get("ChecksumSHA256")
    kind = answer.get("ChecksumType")
    if not value or "-" in value or (kind and kind != "FULL_OBJECT"):
        return None  # composite (multipart) checksums are not the content's SHA-256
    try:
        return base64.b64decode(value).hex()
    except ValueError:
        return None


def _aggregate_revision(objects: list[S3Object], prefix: str) -> str:
    digest = hashlib.sha256()
    for o in objects:
        pin = f"v:{o.version_id}" if o.version_id else f"e:{o.etag}"
        digest.update(f"{o.key[len(prefix) :]}\0{pin}\0{o.size}\n".encode())
    return "sha256:" + digest.hexdigest()


def _single_revision(obj: S3Object) -> str:
    return obj.version_id or f"etag:{obj.etag}:{obj.size}"


def _resolve(bucket: Bucket, ref: ModelRef) -> tuple[str, list[S3Object], str, str]:
    """(model prefix or key, objects, revision, versioning status)."""
    key = bucket.key
    revision = ref.revision
    if key and not key.endswith("/"):
        pinned_version = revision if revision and not revision.startswith(("etag:", "sha256:")) else None
        try:
            obj = bucket.head(key, pinned_version)
        except SourceFailure as exc:
            if exc.code != FILE_NOT_FOUND or pinned_version:
                if exc.code == FILE_NOT_FOUND and pinned_version:
                    raise SourceFailure(
                        REVISION_NOT_FOUND,
                        f"s3://{bucket.name}/{key}: version {pinned_version!r} does not exist",
                    ) from None
                raise
            if not bucket.has_objects_under(key + "/"):
                raise SourceFailure(
                    FILE_NOT_FOUND,
                    f"s3://{bucket.name}/{key}: no such object, and no objects under "
                    f"s3://{bucket.name}/{key}/",
                ) from None
            key += "/"
        else:
            actual = _single_revision(obj)
            if revision and revision != actual:
                raise SourceFailure(
                    REVISION_NOT_FOUND,
                    f"s3://{bucket.name}/{key}: pinned revision {revision} no longer matches "
                    f"the object ({actual})",
                )
            return key, [obj], actual, "single"
    status = bucket.versioning()
    objects = bucket.list_prefix(key, versioned=status in ("Enabled", "Suspended"))
    if not objects:
        # Distinguish "no such bucket" (raised by listing) from an empty prefix.
        raise SourceFailure(FILE_NOT_FOUND, f"s3://{bucket.name}/{key}: no objects under this prefix")
    actual = _aggregate_revision(objects, key)
    if revision and revision != actual:
        raise SourceFailure(
            REVISION_NOT_FOUND,
            f"s3://{bucket.name}/{key}: pinned revision {revision} no longer matches the objects "
            f"under the prefix ({actual}); a prefix is pinned by the sha256: revision a scan recorded",
        )
    return key, objects, actual, status


def scan(ref: ModelRef, engine: Engine, options: ScanOptions) -> ScannedModel:
    metadata = ModelMetadata(uri=ref.uri)
    report = ScanReport(target=ref.uri.rstrip("/"), locations=[ref.uri])
    try:
        import boto3  # noqa: F401
    except ImportError:
        failure = SourceFailure(CLIENT_MISSING, "boto3 is not installed: pip install 'modelsec[remote]'")
        return ScannedModel(ref, remote_scan.failed(report, str(ref), failure), metadata, SourceType.S3)
    try:
        cfg = parse_config(S3Config, options.config, "S3")
    except SourceFailure as failure:
        return ScannedModel(ref, remote_scan.failed(report, str(ref), failure), metadata, SourceType.S3)
    secrets = [
        s.get_secret_value() for s in (cfg.access_key_id, cfg.secret_access_key, cfg.session_token) if s
    ]
    policy = remote_scan.policy_of(cfg, Deadline(cfg.scan_deadline, cfg.request_deadline))
    bucket: Bucket | None = None
    with secrets_in_use(secrets):
        try:
            bucket = Bucket(ref, cfg, policy)
            model_key, objects, revision, status = _resolve(bucket, ref)
            single = status == "single"
            target = f"s3://{bucket.name}/{model_key}".rstrip("/")
            report.target = target
            report.revision = revision
            versions = {o.key: o.version_id for o in objects if o.version_id}
            extra = {
                "endpoint": bucket.shown_endpoint,
                "bucket": bucket.name,
                "versioning": "n/a" if single else status,
            }
            if versions and not single:
                extra["versions"] = json.dumps(
                    {k[len(model_key) :]: v for k, v in versions.items()}, sort_keys=True
                )
            dates = [o.last_modified for o in objects if o.last_modified is not None]
            metadata = ModelMetadata(
                uri=ref.uri, revision=revision, last_modified=max(dates) if dates else None, extra=extra
            )
            entries = [
                remote_scan.RemoteEntry(
                    path="" if single else o.key[len(model_key) :],
                    size=o.size,
                    fetcher=S3Fetcher(bucket, o),
                    sha256=o.sha256,
                    digest=f"s3-etag:{o.etag}" if o.etag else None,
                    scope=bucket.scope(o),
                )
                for o in objects
            ]
            if not single:
                entries = remote_scan.filter_entries(entries, cfg, ref.uri)
                if len(entries) <= MAX_CHECKSUM_HEADS:
                    for entry in entries:
                        assert isinstance(entry.fetcher, S3Fetcher)  # every entry was built above
                        entry.sha256 = bucket.checksum(entry.fetcher.obj)
            report = remote_scan.scan_entries(
                engine,
                target=target,
                locations=[ref.uri],
                entries=entries,
                cfg=cfg,
                policy=policy,
                progress=options.progress,
            )
            report.revision = revision
        except SourceFailure as failure:
            remote_scan.failed(report, str(ref), failure)
        except retry.Transient as transient:
            remote_scan.failed(report, str(ref), SourceFailure(transient.code, transient.message))
        except Exception as exc:  # fail closed with a message rather than crash the caller
            remote_scan.failed(report, str(ref), remote_scan.unexpected(exc, str(ref)))
        finally:
            if bucket is not None:
                bucket.close()
        report = remote_scan.scrubbed(report)
    return ScannedModel(ref, report, metadata, SourceType.S3)
