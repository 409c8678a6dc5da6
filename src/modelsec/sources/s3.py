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

Fingerprints: the object's full-object SHA-256 checksum where it was uploaded with one
(``ChecksumSHA256``), else ``s3-etag:<etag>`` (small objects are hashed, see
``hashSmallFilesBytes``). Bytes are read with ranged GetObject calls through the same block
cache as the Hub.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from typing import Any, Callable, Iterator, TypeVar

from modelsec.engine import Engine, ScanReport
from modelsec.metadata import ModelMetadata
from modelsec.rules.base import SourceType
from modelsec.sources import ModelRef, ScannedModel, ScanOptions, remote_scan, retry
from modelsec.sources.config import S3Config, parse_config
from modelsec.sources.credentials import redact_url, secrets_in_use
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
    SourceFailure,
)
from modelsec.sources.remote_file import RangeNotSupported

log = logging.getLogger(__name__)
T = TypeVar("T")

READ_CHUNK = 1 << 20
MAX_CHECKSUM_HEADS = 1000  # per-object HEADs for SHA-256 checksums; beyond, ETags only

_THROTTLE_CODES = {"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded",
                   "TooManyRequests", "RequestThrottled", "ServiceUnavailable"}
_DENIED_CODES = {"AccessDenied", "AllAccessDisabled", "AccountProblem", "403", "Forbidden"}
_BAD_CREDENTIAL_CODES = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken",
                         "InvalidToken", "TokenRefreshRequired", "InvalidSecurity"}


@dataclass
class S3Object:
    key: str
    size: int
    etag: str
    version_id: str | None
    last_modified: Any = None
    sha256: str | None = None


class Bucket:
    """One bucket on one endpoint with one set of credentials."""

    def __init__(self, ref: ModelRef, cfg: S3Config) -> None:
        self.ref = ref
        self.cfg = cfg
        self.name, _, self.key = ref.location.partition("/")
        # boto3 itself honours AWS_ENDPOINT_URL(_S3); we only need it for messages and the
        # addressing default.
        self.endpoint = cfg.endpoint or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        self.shown_endpoint = redact_url(self.endpoint) if self.endpoint else "AWS S3"
        self.policy = remote_scan.policy_of(cfg)
        self.client = self._client()

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

    def classify(self, exc: BaseException, what: str) -> Exception:
        from botocore.exceptions import (
            ClientError,
            ConnectionClosedError,
            ConnectTimeoutError,
            EndpointConnectionError,
            NoCredentialsError,
            ParamValidationError,
            PartialCredentialsError,
            ProfileNotFound,
            ReadTimeoutError,
        )

        if isinstance(exc, (SourceFailure, retry.Transient, RangeNotSupported)):
            return exc  # type: ignore[return-value]
        where = f"s3://{self.name}"
        if isinstance(exc, ClientError):
            err = exc.response.get("Error", {})
            code = str(err.get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            headers = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
            if code == "NoSuchBucket":
                return SourceFailure(NOT_FOUND, f"{what}: bucket {self.name!r} does not exist on {self.shown_endpoint}")
            if code in ("NoSuchKey", "404", "NotFound"):
                return SourceFailure(FILE_NOT_FOUND, f"{what}: no such object on {self.shown_endpoint}")
            if code in ("NoSuchVersion",) or (code == "InvalidArgument" and "version" in str(err.get("Message", "")).lower()):
                return SourceFailure(REVISION_NOT_FOUND, f"{what}: version {self.ref.revision!r} does not exist")
            if code == "400" and self.ref.revision:  # a HEAD has no body: the version id is the suspect
                return SourceFailure(REVISION_NOT_FOUND, f"{what}: version {self.ref.revision!r} is not valid here (HTTP 400)")
            if code == "InvalidObjectState":
                return SourceFailure(
                    REMOTE_ERROR, f"{what}: the object is archived (Glacier/Deep Archive); restore it before scanning"
                )
            if code in _BAD_CREDENTIAL_CODES:
                return SourceFailure(
                    ACCESS_DENIED,
                    f"{what}: {self.shown_endpoint} rejected the credentials ({code}); check "
                    f"accessKeyId/secretAccessKey/sessionToken ({self._credential_origin()})",
                )
            if code in _DENIED_CODES or status == 403:
                return SourceFailure(
                    ACCESS_DENIED,
                    f"{what}: access to bucket {self.name!r} denied ({code or 'HTTP 403'}); the "
                    f"credentials ({self._credential_origin()}) need s3:ListBucket and "
                    "s3:GetObject (S3 also answers 403 for a missing key without s3:ListBucket)",
                )
            if code in ("PreconditionFailed", "412") or status == 412:
                return SourceFailure(
                    INTEGRITY, f"{what}: the object changed during the scan (its ETag no longer matches)"
                )
            if code in ("InvalidRange", "416") or status == 416:
                return SourceFailure(INTEGRITY, f"{what}: object shorter than listed (changed during the scan?)")
            if code in _THROTTLE_CODES or status in (429, 503):
                retry_after = headers.get("retry-after")
                hint = float(retry_after) if retry_after and retry_after.isdigit() else None
                return retry.Transient(THROTTLED, f"{what}: throttled by {self.shown_endpoint} ({code or status})", hint)
            if code in ("InternalError", "500", "502", "504") or (status and status >= 500):
                return retry.Transient(REMOTE_ERROR, f"{what}: {self.shown_endpoint} answered {code or status}")
            if code == "PermanentRedirect" or code == "AuthorizationHeaderMalformed":
                return SourceFailure(CONFIG, f"{what}: bucket {self.name!r} is in another region or needs another endpoint ({code}); set region/endpoint")
            return SourceFailure(REMOTE_ERROR, f"{what}: {self.shown_endpoint} answered {code or status}")
        if isinstance(exc, NoCredentialsError):
            return SourceFailure(
                ACCESS_DENIED,
                f"{what}: no AWS credentials found: give accessKeyId/secretAccessKey in the "
                "source Secret, set AWS_* variables or a profile, or anonymous: true for a "
                "public bucket",
            )
        if isinstance(exc, (PartialCredentialsError, ProfileNotFound)):
            return SourceFailure(CONFIG, f"{what}: incomplete credentials configuration ({type(exc).__name__})")
        if isinstance(exc, (ConnectTimeoutError, ReadTimeoutError)):
            return retry.Transient(NETWORK, f"{what}: no answer from {self.shown_endpoint} within {self.cfg.timeout:g}s (timeout)")
        if isinstance(exc, (EndpointConnectionError, ConnectionClosedError)):
            return retry.Transient(NETWORK, f"{what}: cannot connect to {self.shown_endpoint} (connection refused or unreachable)")
        if isinstance(exc, ParamValidationError):
            return SourceFailure(CONFIG, f"{what}: invalid S3 request: {exc}")
        from botocore.exceptions import BotoCoreError

        if isinstance(exc, BotoCoreError):
            return retry.Transient(NETWORK, f"{what}: {type(exc).__name__} talking to {self.shown_endpoint}")
        return exc  # type: ignore[return-value]

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

        return retry.call(attempt, self.policy)

    # --- listing ----------------------------------------------------------------------

    def versioning(self) -> str:
        """"Enabled", "Suspended", "Off", or "unknown" (not allowed to ask)."""
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
        if "ContentLength" not in answer:
            raise SourceFailure(REMOTE_ERROR, f"s3://{self.name}/{key}: {self.shown_endpoint} did not say the object's size")
        return S3Object(
            key=key,
            size=int(answer["ContentLength"]),
            etag=str(answer.get("ETag", "")).strip('"'),
            version_id=_version(answer.get("VersionId")),
            last_modified=answer.get("LastModified"),
            sha256=_full_object_sha256(answer),
        )

    def list_prefix(self, prefix: str, versioned: bool) -> list[S3Object]:
        what = f"s3://{self.name}/{prefix}"
        objects: list[S3Object] = []
        if versioned:
            deleted: set[str] = set()
            paginator = self.client.get_paginator("list_object_versions")
            pages = self.call(lambda: _bounded_pages(paginator.paginate(Bucket=self.name, Prefix=prefix)), what)
            for page in pages:
                for marker in page.get("DeleteMarkers", []) or []:
                    if marker.get("IsLatest"):
                        deleted.add(marker["Key"])
                for v in page.get("Versions", []) or []:
                    if v.get("IsLatest") and v["Key"] not in deleted:
                        objects.append(
                            S3Object(v["Key"], int(v["Size"]), str(v.get("ETag", "")).strip('"'),
                                     _version(v.get("VersionId")), v.get("LastModified"))
                        )
        else:
            paginator = self.client.get_paginator("list_objects_v2")
            pages = self.call(lambda: _bounded_pages(paginator.paginate(Bucket=self.name, Prefix=prefix)), what)
            for page in pages:
                for o in page.get("Contents", []) or []:
                    objects.append(
                        S3Object(o["Key"], int(o["Size"]), str(o.get("ETag", "")).strip('"'), None,
                                 o.get("LastModified"))
                    )
        # "Folder" placeholder objects that consoles create are not files of the model.
        objects = [o for o in objects if not (o.key.endswith("/") and o.size == 0)]
        return sorted(objects, key=lambda o: o.key)

    def checksum(self, obj: S3Object) -> str | None:
        """The object's full-object SHA-256 if it was uploaded with one (listings do not
        carry checksum values: one HEAD each)."""
        try:
            return self.head(obj.key, obj.version_id).sha256
        except SourceFailure as exc:
            if exc.code in (ACCESS_DENIED, FILE_NOT_FOUND):
                return None
            raise

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
                content_range = answer.get("ContentRange")
                if not content_range:
                    if start == 0 and int(answer.get("ContentLength", -1)) <= end - start:
                        return body.read(end - start)
                    raise RangeNotSupported(self.what)  # never read a whole body here
                first = content_range.split(" ", 1)[-1].split("-", 1)[0]
                if first.isdigit() and int(first) != start:
                    raise SourceFailure(
                        INTEGRITY, f"{self.what}: asked for bytes from {start}, got from {first}"
                    )
                return _read_at_most(body, end - start)
            finally:
                body.close()
        except Exception as exc:
            raise self.bucket.classify(exc, self.what) from None

    def stream(self) -> Iterator[bytes]:
        try:
            answer = self.bucket.client.get_object(**self._pin())
            body = answer["Body"]
            try:
                yield from body.iter_chunks(READ_CHUNK)
            finally:
                body.close()
        except Exception as exc:
            raise self.bucket.classify(exc, self.what) from None


def _bounded_pages(pages: Any) -> list[dict[str, Any]]:
    """Listing pages, stopping once more objects than a model scan accepts were listed (the
    selection step then reports MS-SRC-014) instead of listing a whole bucket."""
    out: list[dict[str, Any]] = []
    seen = 0
    for page in pages:
        out.append(page)
        seen += len(page.get("Contents", []) or []) + len(page.get("Versions", []) or [])
        if seen > remote_scan.MAX_FILES:
            break
    return out


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
        digest.update(f"{o.key[len(prefix):]}\0{pin}\0{o.size}\n".encode())
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
                        REVISION_NOT_FOUND, f"s3://{bucket.name}/{key}: version {pinned_version!r} does not exist"
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
    secrets = [s.get_secret_value() for s in (cfg.access_key_id, cfg.secret_access_key, cfg.session_token) if s]
    with secrets_in_use(secrets):
        try:
            bucket = Bucket(ref, cfg)
            model_key, objects, revision, status = _resolve(bucket, ref)
            single = status == "single"
            target = f"s3://{bucket.name}/{model_key}".rstrip("/")
            report.target = target
            report.revision = revision
            versions = {o.key: o.version_id for o in objects if o.version_id}
            extra = {"endpoint": bucket.shown_endpoint, "bucket": bucket.name,
                     "versioning": "n/a" if single else status}
            if versions and not single:
                extra["versions"] = json.dumps({k[len(model_key):]: v for k, v in versions.items()}, sort_keys=True)
            dates = [o.last_modified for o in objects if o.last_modified is not None]
            metadata = ModelMetadata(
                uri=ref.uri, revision=revision, last_modified=max(dates) if dates else None, extra=extra
            )
            entries = [
                remote_scan.RemoteEntry(
                    path="" if single else o.key[len(model_key):],
                    size=o.size,
                    fetcher=S3Fetcher(bucket, o),
                    sha256=o.sha256,
                    digest=f"s3-etag:{o.etag}" if o.etag else None,
                )
                for o in objects
            ]
            if not single:
                entries = remote_scan.filter_entries(entries, cfg, ref.uri)
                if len(entries) <= MAX_CHECKSUM_HEADS:
                    for entry in entries:
                        entry.sha256 = bucket.checksum(entry.fetcher.obj)  # type: ignore[attr-defined]
            report = remote_scan.scan_entries(
                engine, target=target, locations=[ref.uri], entries=entries, cfg=cfg,
                progress=options.progress,
            )
            report.revision = revision
        except SourceFailure as failure:
            remote_scan.failed(report, str(ref), failure)
        except retry.Transient as transient:
            remote_scan.failed(report, str(ref), SourceFailure(transient.code, transient.message))
        except Exception as exc:  # fail closed with a message rather than crash the caller
            remote_scan.failed(report, str(ref), remote_scan.unexpected(exc, str(ref)))
        report = remote_scan.scrubbed(report)
    return ScannedModel(ref, report, metadata, SourceType.S3)
