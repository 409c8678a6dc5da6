"""botocore's requests, sent through the deadline-bounded HTTP client.

boto3 builds, signs and parses every S3 request; only the wire is ours. botocore offers
the hook: a ``before-send`` handler that returns a response is used instead of botocore's
own urllib3 session (moto's in-process mock works the same way). Ours sends the signed
request through a :class:`~modelsec.sources.http.DeadlineClient`, so every request obeys
the scan's deadlines (urllib3 has no total timeout), and bounds what botocore buffers: an
answer botocore reads whole (listings, HEAD, errors) may not pass ``maxResponseBytes``.
Object bodies stream to the caller, which reads exactly the ranges it asked for.

Transport errors are raised as the botocore exceptions urllib3's would have become, so the
S3 source classifies them as before.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Iterator
from typing import Any

import httpx2

from modelsec.sources.deadline import Deadline
from modelsec.sources.errors import TOO_LARGE, SourceFailure
from modelsec.sources.http import DeadlineClient


def _botocore_error(exc: httpx2.HTTPError, url: str) -> Exception:
    from botocore.exceptions import (
        ConnectionClosedError,
        ConnectTimeoutError,
        EndpointConnectionError,
        HTTPClientError,
        ProxyConnectionError,
        ReadTimeoutError,
    )

    if isinstance(exc, httpx2.ConnectTimeout):
        return ConnectTimeoutError(endpoint_url=url, error=exc)
    if isinstance(exc, httpx2.TimeoutException):
        return ReadTimeoutError(endpoint_url=url, error=exc)
    if isinstance(exc, httpx2.ProxyError):
        return ProxyConnectionError(proxy_url="(proxy)", error=exc)
    if isinstance(exc, httpx2.ConnectError):
        return EndpointConnectionError(endpoint_url=url, error=exc)
    if isinstance(exc, (httpx2.NetworkError, httpx2.RemoteProtocolError)):
        return ConnectionClosedError(endpoint_url=url, error=exc)
    return HTTPClientError(error=exc)


@contextlib.contextmanager
def _as_botocore_errors(url: str) -> Iterator[None]:
    try:
        yield
    except httpx2.HTTPError as exc:
        raise _botocore_error(exc, url) from None


class _Body:
    """``AWSResponse.raw``: what botocore reads an answer through. :meth:`stream` (used for
    answers botocore buffers) is bounded; :meth:`read` serves object bodies to a caller
    that asks for a known amount."""

    def __init__(self, response: httpx2.Response, url: str, limit: int, what: str) -> None:
        self._response = response
        self._url = url
        self._limit = limit
        self._what = what
        self._chunks = response.iter_raw()
        self._pending = bytearray()

    def _next(self) -> bytes | None:
        with _as_botocore_errors(self._url):
            return next(self._chunks, None)

    def stream(self, **_: Any) -> Iterator[bytes]:
        received = len(self._pending)
        try:
            if self._pending:
                yield bytes(self._pending)
                self._pending.clear()
            while (chunk := self._next()) is not None:
                received += len(chunk)
                if received > self._limit:
                    raise SourceFailure(
                        TOO_LARGE,
                        f"{self._what} larger than {self._limit} bytes (maxResponseBytes); "
                        "refusing it (a compromised or broken server)",
                    )
                yield chunk
        finally:
            self.close()

    def read(self, amt: int | None = None) -> bytes:
        while amt is None or len(self._pending) < amt:
            chunk = self._next()
            if chunk is None:
                break
            self._pending += chunk
        size = len(self._pending) if amt is None else min(amt, len(self._pending))
        out = bytes(self._pending[:size])
        del self._pending[:size]
        return out

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._response.close()


class BotocoreOverHttpx:
    """A ``before-send`` handler for one boto3 client; :meth:`close` when the scan ends."""

    def __init__(self, client: DeadlineClient, max_response_bytes: int) -> None:
        self._client = client
        self._limit = max_response_bytes

    @classmethod
    def install(
        cls,
        s3_client: Any,
        deadline: Deadline,
        timeout: float,
        max_response_bytes: int,
        ca_bundle: str | None,
    ) -> BotocoreOverHttpx:
        verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca_bundle) if ca_bundle else True
        http = DeadlineClient(deadline, timeout=timeout, follow_redirects=False, verify=verify)
        handler = cls(http, max_response_bytes)
        s3_client.meta.events.register("before-send.s3", handler)
        return handler

    def close(self) -> None:
        self._client.close()

    def __call__(self, request: Any, event_name: str = "", **_: Any) -> Any:
        from botocore.awsrequest import AWSResponse

        operation = event_name.rsplit(".", 1)[-1] or "S3"
        headers = {
            k: v.decode("latin-1") if isinstance(v, bytes) else str(v) for k, v in request.headers.items()
        }
        headers.setdefault("Accept-Encoding", "identity")  # as urllib3 sends: bodies stay raw
        body = request.body
        if hasattr(body, "read"):
            body = body.read()
        outgoing = self._client.build_request(
            request.method, request.url, headers=headers, content=body or None
        )
        with _as_botocore_errors(request.url):
            response = self._client.send(outgoing, stream=True)
        raw = _Body(response, request.url, self._limit, f"S3 {operation} answer")
        # AWSResponse copies the headers into a HeadersDict, which any mapping fills; the
        # stub asks for the http.client message urllib3 happens to pass.
        answer = AWSResponse(request.url, response.status_code, response.headers, raw)  # type: ignore[arg-type]
        if not request.stream_output:
            answer.content  # noqa: B018 - the property buffers the body now, bounded, as botocore does
        return answer
