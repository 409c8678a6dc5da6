"""The remote sources' HTTP client against servers that never finish: total deadlines in
every phase (connect, TLS handshake, headers, body), over real sockets and real TLS; and
bounded inflation of compressed answers."""

from __future__ import annotations

import gzip
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Callable, Iterator

import httpx2
import pytest
import trustme

from modelsec.sources.deadline import Deadline, DeadlineExceeded
from modelsec.sources.errors import SourceFailure
from modelsec.sources.http import DeadlineClient, read_body


class TrickleServer:
    """Accepts connections on loopback and hands each to ``serve(conn)`` in a thread."""

    def __init__(self, serve: Callable[[socket.socket], None], tls: ssl.SSLContext | None = None) -> None:
        self._serve = serve
        self._tls = tls
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.port = self._listener.getsockname()[1]
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                continue
            thread = threading.Thread(target=self._run, args=(conn,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _run(self, conn: socket.socket) -> None:
        try:
            if self._tls is not None:
                conn = self._tls.wrap_socket(conn, server_side=True)
            self._serve(conn)
        except OSError:
            pass  # the client gave up: what these tests want
        finally:
            conn.close()

    def trickle(self, conn: socket.socket, data: bytes) -> None:
        conn.settimeout(5)
        conn.recv(65536)  # the request
        for byte in data:
            if self._stop.is_set():
                return
            conn.sendall(bytes([byte]))
            time.sleep(0.05)

    def close(self) -> None:
        self._stop.set()
        self._accepting.join(2)
        for thread in self._threads:
            thread.join(2)
        self._listener.close()


@pytest.fixture
def serve() -> Iterator[Callable[..., TrickleServer]]:
    servers: list[TrickleServer] = []

    def start(
        serve: Callable[[TrickleServer, socket.socket], None], tls: ssl.SSLContext | None = None
    ) -> TrickleServer:
        server = TrickleServer(lambda conn: serve(server, conn), tls)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


ENDLESS_HEADERS = b"HTTP/1.1 200 OK\r\nX-Padding: " + b"a" * 100_000
ENDLESS_BODY = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b" " * 100_000


def get(client: DeadlineClient, deadline: Deadline, url: str) -> None:
    with deadline.request():
        with client.stream("GET", url) as response:
            for _ in response.iter_raw():
                pass


@pytest.mark.parametrize("reply", [ENDLESS_HEADERS, ENDLESS_BODY], ids=["headers", "body"])
def test_request_deadline_over_plain_tcp(serve: Callable[..., TrickleServer], reply: bytes) -> None:
    server = serve(lambda s, conn: s.trickle(conn, reply))
    deadline = Deadline(scan_seconds=60, request_seconds=0.5)
    with DeadlineClient(deadline, timeout=30) as client, pytest.raises(DeadlineExceeded) as err:
        get(client, deadline, f"http://127.0.0.1:{server.port}/")
    assert err.value.limit.setting == "requestDeadline"
    assert "no complete answer within 0.5s" in str(err.value)


def test_request_deadline_through_an_environment_proxy(
    serve: Callable[..., TrickleServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Proxies from the environment get their own transports; they obey the deadline too."""
    proxy = serve(lambda s, conn: s.trickle(conn, ENDLESS_HEADERS))
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
    deadline = Deadline(scan_seconds=60, request_seconds=0.5)
    with DeadlineClient(deadline, timeout=30) as client, pytest.raises(DeadlineExceeded):
        get(client, deadline, "http://models.example.invalid/api/models/org/name")


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def tls_pair(ca: trustme.CA) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return server, client


def test_request_deadline_over_tls(serve: Callable[..., TrickleServer], ca: trustme.CA) -> None:
    server_ctx, client_ctx = tls_pair(ca)
    server = serve(lambda s, conn: s.trickle(conn, ENDLESS_HEADERS), tls=server_ctx)
    deadline = Deadline(scan_seconds=60, request_seconds=0.5)
    with DeadlineClient(deadline, timeout=30, verify=client_ctx) as client, pytest.raises(DeadlineExceeded):
        get(client, deadline, f"https://127.0.0.1:{server.port}/")


def test_tls_handshake_that_never_completes(serve: Callable[..., TrickleServer]) -> None:
    """The server accepts the connection and says nothing: the handshake is cut off."""
    server = serve(lambda s, conn: s._stop.wait(10))
    deadline = Deadline(scan_seconds=60, request_seconds=0.5)
    with DeadlineClient(deadline, timeout=30) as client, pytest.raises(DeadlineExceeded):
        get(client, deadline, f"https://127.0.0.1:{server.port}/")


def test_scan_deadline_applies_outside_requests_and_is_final(serve: Callable[..., TrickleServer]) -> None:
    server = serve(lambda s, conn: s.trickle(conn, ENDLESS_BODY))
    deadline = Deadline(scan_seconds=0.5, request_seconds=60)
    with DeadlineClient(deadline, timeout=30) as client, pytest.raises(DeadlineExceeded) as err:
        with client.stream("GET", f"http://127.0.0.1:{server.port}/") as response:  # no request()
            for _ in response.iter_raw():
                pass
    failure = err.value.classified("s3://b/k")
    assert isinstance(failure, SourceFailure) and failure.code == "MS-SRC-015"
    with pytest.raises(SourceFailure) as over:
        deadline.check("next file")
    assert "scanDeadline" in over.value.message


# --- bounded inflation -----------------------------------------------------------------------


def answer(body: bytes, encoding: str) -> httpx2.Response:
    return httpx2.Response(200, headers={"Content-Encoding": encoding}, stream=httpx2.ByteStream(body))


@pytest.mark.parametrize(
    ("encoding", "pack"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),  # zlib-wrapped, as RFC 9110 says
        ("deflate", lambda data: zlib.compress(data, wbits=-15)),  # raw, as some servers send
    ],
)
def test_compressed_answers_inflate_within_the_bound(encoding: str, pack: Callable[[bytes], bytes]) -> None:
    text = b'{"ok": true}' + b" " * 5000
    assert read_body(answer(pack(text), encoding), 1 << 20, "x") == text
    with pytest.raises(SourceFailure) as err:
        read_body(answer(pack(b" " * (4 << 20)), encoding), 1 << 20, "model info")
    assert err.value.code == "MS-SRC-016" and "after decompression" in err.value.message


@pytest.mark.parametrize(
    "body",
    [gzip.compress(b"{}")[:-6], gzip.compress(b"{}") + b"trailing", b"not gzip at all"],
    ids=["truncated", "trailing-data", "corrupt"],
)
def test_broken_compressed_answers_are_errors(body: bytes) -> None:
    with pytest.raises(SourceFailure) as err:
        read_body(answer(body, "gzip"), 1 << 20, "x")
    assert err.value.code == "MS-SRC-012"


def test_unknown_encodings_and_announced_sizes_are_refused() -> None:
    with pytest.raises(SourceFailure) as err:
        read_body(answer(b"x", "br"), 1 << 20, "x")
    assert "unsupported Content-Encoding" in err.value.message
    big = httpx2.Response(200, headers={"Content-Length": str(2 << 20)}, stream=httpx2.ByteStream(b""))
    with pytest.raises(SourceFailure) as err:
        read_body(big, 1 << 20, "x")
    assert err.value.code == "MS-SRC-016" and "announced" in err.value.message
