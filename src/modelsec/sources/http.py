"""HTTP for remote sources: a client whose every socket operation obeys the scan's
deadlines, and answers read within bounds.

:class:`DeadlineClient` is httpx's client (the library huggingface_hub is built on; its
proxy and CA settings from the environment apply as usual) with one difference: its
connections read and write through :class:`_BoundedStream`, which shortens each socket
operation's timeout to what is left of the active :class:`~modelsec.sources.deadline.Deadline`.
The Hugging Face source sends every request through one; the S3 source hands botocore's
signed requests to one (:mod:`modelsec.sources.s3_http`).

Answers are read raw (:meth:`httpx2.Response.iter_raw`), never through httpx's own
decoders, which inflate a whole network chunk at once: :func:`read_body` inflates gzip and
deflate itself, a bounded step at a time, and stops at ``limit`` bytes, so a 1 MB
compressed answer cannot become gigabytes of memory. Byte ranges must arrive unencoded
(:func:`require_identity`).
"""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Iterable, Iterator
from typing import Any

import httpcore2
import httpx2

from modelsec.sources.deadline import Deadline, DeadlineExceeded
from modelsec.sources.errors import REMOTE_ERROR, TOO_LARGE, SourceFailure

READ_CHUNK = 1 << 20


@contextlib.contextmanager
def _within(deadline: Deadline, timeout: float | None) -> Iterator[float]:
    """The timeout one socket operation may take, shortened to the active deadline; a
    timeout caused by that shortening is reported as the deadline it is."""
    bounded, limit = deadline.socket_timeout(timeout)
    try:
        yield bounded
    except httpcore2.TimeoutException:
        if limit is not None:
            raise DeadlineExceeded(limit) from None
        raise


class _BoundedStream(httpcore2.NetworkStream):
    """A connection whose reads, writes and TLS handshake end by the active deadline."""

    def __init__(self, stream: httpcore2.NetworkStream, deadline: Deadline) -> None:
        self._stream = stream
        self._deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        with _within(self._deadline, timeout) as bounded:
            return self._stream.read(max_bytes, bounded)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        with _within(self._deadline, timeout) as bounded:
            self._stream.write(buffer, bounded)

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore2.NetworkStream:
        with _within(self._deadline, timeout) as bounded:
            tls = self._stream.start_tls(ssl_context, server_hostname, bounded)
        return _BoundedStream(tls, self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _BoundedBackend(httpcore2.NetworkBackend):
    def __init__(self, deadline: Deadline) -> None:
        self._backend = httpcore2.SyncBackend()
        self._deadline = deadline

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.NetworkStream:
        with _within(self._deadline, timeout) as bounded:
            stream = self._backend.connect_tcp(host, port, bounded, local_address, socket_options)
        return _BoundedStream(stream, self._deadline)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore2.NetworkStream:
        with _within(self._deadline, timeout) as bounded:
            stream = self._backend.connect_unix_socket(path, bounded, socket_options)
        return _BoundedStream(stream, self._deadline)

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


def _bounded(transport: httpx2.BaseTransport, backend: _BoundedBackend) -> httpx2.BaseTransport:
    # httpx builds each transport's httpcore pool with the default network backend and has
    # no parameter for another one; the pool takes it as a public constructor argument and
    # keeps it here. Fail loudly if a release moves it: a client without deadlines must
    # never be used silently.
    pool = getattr(transport, "_pool", None)
    if pool is None or not hasattr(pool, "_network_backend"):
        raise RuntimeError(
            f"httpx2 {httpx2.__version__}: cannot install the deadline-bounded network backend "
            "(transport layout changed); remote scans would have no total deadline"
        )
    pool._network_backend = backend
    return transport


class DeadlineClient(httpx2.Client):
    """An ``httpx2.Client`` (environment proxies and CA settings included) whose connections
    obey ``deadline``. One per scan; close it when the scan ends."""

    def __init__(self, deadline: Deadline, **kwargs: Any) -> None:
        self._bounded_backend = _BoundedBackend(deadline)  # before super(): it builds transports
        super().__init__(**kwargs)

    def _init_transport(self, *args: Any, **kwargs: Any) -> httpx2.BaseTransport:
        return _bounded(super()._init_transport(*args, **kwargs), self._bounded_backend)

    def _init_proxy_transport(self, *args: Any, **kwargs: Any) -> httpx2.BaseTransport:
        return _bounded(super()._init_proxy_transport(*args, **kwargs), self._bounded_backend)


# --- reading answers ------------------------------------------------------------------------


def _encoding(response: httpx2.Response) -> str:
    return response.headers.get("Content-Encoding", "").strip().lower()


def require_identity(response: httpx2.Response, what: str) -> None:
    """Byte ranges and downloads are of the stored bytes: an encoded answer is refused
    (we asked for ``identity``; inflating it would also be unbounded)."""
    encoding = _encoding(response)
    if encoding not in ("", "identity"):
        raise SourceFailure(
            REMOTE_ERROR,
            f"{what}: the server sent file bytes with Content-Encoding {encoding!r} although "
            "identity was asked for; refusing to inflate them",
        )


def _too_large(what: str, limit: int, how: str) -> SourceFailure:
    return SourceFailure(
        TOO_LARGE,
        f"{what}: answer larger than {limit} bytes {how} (maxResponseBytes); refusing it "
        "(a compromised or broken server)",
    )


class _Inflater:
    """Bounded inflation of one gzip or deflate body."""

    def __init__(self, encoding: str, limit: int, what: str) -> None:
        self._what = what
        self._limit = limit
        self._produced = 0
        self._raw_deflate_tried = encoding != "deflate"
        # gzip: header and trailer checked by zlib; deflate: zlib-wrapped per RFC 9110, but
        # some servers send raw deflate (retried below on the first chunk, as httpx does).
        self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS)
        self._started = False

    def feed(self, data: bytes) -> bytes:
        out = bytearray()
        pending = data
        while pending:
            room = self._limit - self._produced - len(out)
            try:
                piece = self._zlib.decompress(pending, room + 1)
            except zlib.error:
                if self._started or self._raw_deflate_tried:
                    raise SourceFailure(REMOTE_ERROR, f"{self._what}: corrupt compressed answer") from None
                self._raw_deflate_tried = True
                self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
                continue
            self._started = True
            out += piece
            if self._produced + len(out) > self._limit:
                raise _too_large(self._what, self._limit, "after decompression")
            if self._zlib.eof:
                if self._zlib.unused_data.strip(b"\0"):
                    raise SourceFailure(
                        REMOTE_ERROR, f"{self._what}: data after the end of the compressed answer"
                    )
                break
            pending = self._zlib.unconsumed_tail
        self._produced += len(out)
        return bytes(out)

    def finish(self) -> None:
        if not self._zlib.eof and self._started:
            raise SourceFailure(REMOTE_ERROR, f"{self._what}: compressed answer ends early")


def read_body(response: httpx2.Response, limit: int, what: str) -> bytes:
    """The whole body of ``response`` (still streaming), inflated if gzip or deflate, or a
    :class:`SourceFailure` (MS-SRC-016) as soon as it passes ``limit`` bytes, compressed
    or not."""
    declared = response.headers.get("Content-Length", "").strip()
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(what, limit, f"(it announced {declared})")
    encoding = _encoding(response)
    if encoding in ("", "identity"):
        inflater = None
    elif encoding in ("gzip", "x-gzip", "deflate"):
        inflater = _Inflater("gzip" if encoding == "x-gzip" else encoding, limit, what)
    else:
        raise SourceFailure(REMOTE_ERROR, f"{what}: unsupported Content-Encoding {encoding!r}")
    body = bytearray()
    received = 0
    for chunk in response.iter_raw(READ_CHUNK):
        received += len(chunk)
        if received > limit:
            raise _too_large(what, limit, "on the wire")
        body += inflater.feed(chunk) if inflater is not None else chunk
    if inflater is not None:
        inflater.finish()
    return bytes(body)


def materialized(response: httpx2.Response, body: bytes) -> httpx2.Response:
    """A read copy of ``response`` holding ``body`` (already inflated), for code that wants
    a complete response: ``hf_raise_for_status``, ``.json()``, ``.links``."""
    headers = [
        (k, v)
        for k, v in response.headers.multi_items()
        if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")
    ]
    copy = httpx2.Response(
        response.status_code,
        headers=headers,
        content=body,
        request=response.request,
        history=list(response.history),
    )
    return copy


def read_at_most(response: httpx2.Response, limit: int) -> bytes:
    """At most ``limit`` raw bytes: a server that sends more than asked cannot make us
    buffer more."""
    out = bytearray()
    for chunk in response.iter_raw(min(READ_CHUNK, max(limit, 1))):
        out += chunk
        if len(out) >= limit:
            break
    return bytes(out[:limit])


def raw_chunks(response: httpx2.Response) -> Iterator[bytes]:
    return response.iter_raw(READ_CHUNK)
